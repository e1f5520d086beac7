/* render.c: a pod object -> the few fields podmeta keeps and its rendered reply tail */
#include <sys/types.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "addr.h"
#include "jsonutil.h"
#include "podmeta.h"

#define JBLIT(jb, s)	buf_add((jb), (s), sizeof(s) - 1)

struct render {
	pcre2_code		*r_labels_re;	/* NULL: every label */
	pcre2_code		*r_annots_re;	/* NULL: no annotation */
	pcre2_match_data	*r_md;
	size_t			 r_max_value;	/* 0: no cap */
};

static pcre2_code *
render_compile(const char *flag, const char *pattern)
{
	pcre2_code	*re;
	PCRE2_UCHAR	 msg[256];
	PCRE2_SIZE	 off;
	int		 err;

	re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0,
	    &err, &off, NULL);
	if (re == NULL) {
		pcre2_get_error_message(err, msg, sizeof(msg));
		log_warnx("%s: bad regular expression at offset %zu: %s",
		    flag, (size_t)off, (char *)msg);
	}
	return re;
}

struct render *
render_new(const char *labels, const char *annots, size_t maxvalue)
{
	struct render	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		log_warn("render");
		return NULL;
	}
	r->r_max_value = maxvalue;
	if (labels != NULL &&
	    (r->r_labels_re = render_compile("--labels", labels)) == NULL)
		goto fail;
	if (annots != NULL &&
	    (r->r_annots_re = render_compile("--annotations", annots)) == NULL)
		goto fail;
	if ((r->r_md = pcre2_match_data_create(4, NULL)) == NULL) {
		log_warnx("pcre2_match_data_create failed");
		goto fail;
	}
	return r;
 fail:
	render_free(r);
	return NULL;
}

void
render_free(struct render *r)
{
	if (r == NULL)
		return;
	pcre2_code_free(r->r_labels_re);
	pcre2_code_free(r->r_annots_re);
	pcre2_match_data_free(r->r_md);
	free(r);
}

static const char *
render_str(json_t *obj, const char *key)
{
	json_t	*v;

	if (!json_is_object(obj) || (v = json_object_get(obj, key)) == NULL ||
	    !json_is_string(v))
		return NULL;
	return json_string_value(v);
}

static json_t *
render_obj(json_t *obj, const char *key)
{
	json_t	*v;

	if (!json_is_object(obj) || (v = json_object_get(obj, key)) == NULL ||
	    !json_is_object(v))
		return NULL;
	return v;
}

const char *
render_uid(json_t *pod)
{
	return render_str(render_obj(pod, "metadata"), "uid");
}

const char *
render_rv(json_t *obj)
{
	return render_str(render_obj(obj, "metadata"), "resourceVersion");
}

/* RFC 3339 as the API writes it ("2026-01-02T03:04:05Z"); 0 if absent or odd. */
static double
render_time(const char *s)
{
	struct tm	 tm;
	int		 y, mo, d, h, mi, sec;

	if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h,
	    &mi, &sec) != 6)
		return 0;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	return (double)timegm(&tm);
}

static int
render_jstr(struct buf *jb, const char *s)
{
	if (s == NULL)
		return JBLIT(jb, "null");
	if (buf_addc(jb, '"') == -1 ||
	    json_buf_escape(jb, s, strlen(s)) == -1)
		return -1;
	return buf_addc(jb, '"');
}

/* A label or annotation value, capped at --max-value on a UTF-8 boundary. */
static int
render_value(const struct render *r, struct buf *jb, const char *s,
    size_t len)
{
	size_t	n = len;

	if (r->r_max_value > 0 && len > r->r_max_value) {
		n = r->r_max_value;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	if (buf_addc(jb, '"') == -1 || json_buf_escape(jb, s, n) == -1)
		return -1;
	if (n < len && buf_add(jb, PODMETA_TRUNCATED,
	    sizeof(PODMETA_TRUNCATED) - 1) == -1)
		return -1;
	return buf_addc(jb, '"');
}

static int
render_keycmp(const void *a, const void *b)
{
	return strcmp(*(const char * const *)a, *(const char * const *)b);
}

static int
render_map(struct render *r, struct buf *jb, json_t *map, pcre2_code *re,
    int all)
{
	const char	**keys = NULL, *key;
	json_t		 *v;
	size_t		  n = 0, i, klen;
	int		  first = 1;

	if (buf_addc(jb, '{') == -1)
		return -1;
	if (json_is_object(map) && (all || re != NULL) &&
	    json_object_size(map) > 0) {
		if ((keys = calloc(json_object_size(map), sizeof(*keys))) ==
		    NULL)
			return -1;
		json_object_foreach(map, key, v) {
			if (!json_is_string(v) || strcmp(key, LAST_APPLIED) == 0)
				continue;
			klen = strlen(key);
			if (!all && pcre2_match(re, (PCRE2_SPTR)key, klen, 0, 0,
			    r->r_md, NULL) < 0)
				continue;
			keys[n++] = key;
		}
		qsort(keys, n, sizeof(*keys), render_keycmp);
		for (i = 0; i < n; i++) {
			v = json_object_get(map, keys[i]);
			if ((!first && buf_addc(jb, ',') == -1) ||
			    render_jstr(jb, keys[i]) == -1 ||
			    buf_addc(jb, ':') == -1 ||
			    render_value(r, jb, json_string_value(v),
			    json_string_length(v)) == -1)
				goto fail;
			first = 0;
		}
		free(keys);
	}
	return buf_addc(jb, '}');
 fail:
	free(keys);
	return -1;
}

static int
render_owner(struct buf *jb, json_t *meta)
{
	json_t	*refs, *ref, *best = NULL;
	size_t	 i;

	refs = json_object_get(meta, "ownerReferences");
	if (json_is_array(refs)) {
		json_array_foreach(refs, i, ref) {
			if (!json_is_object(ref))
				continue;
			if (best == NULL || json_is_true(json_object_get(ref,
			    "controller"))) {
				best = ref;
				if (json_is_true(json_object_get(ref,
				    "controller")))
					break;
			}
		}
	}
	if (best == NULL)
		return JBLIT(jb, "null");
	if (JBLIT(jb, "{\"kind\":") == -1 ||
	    render_jstr(jb, render_str(best, "kind")) == -1 ||
	    JBLIT(jb, ",\"name\":") == -1 ||
	    render_jstr(jb, render_str(best, "name")) == -1)
		return -1;
	return buf_addc(jb, '}');
}

static void
render_addip(struct pod *p, const char *s)
{
	struct in6_addr	 a;
	size_t		 i;

	if (s == NULL || p->p_nips == PODMETA_IPS_MAX ||
	    addr_key_parse(s, &a, NULL) == -1)
		return;
	for (i = 0; i < p->p_nips; i++)
		if (memcmp(&p->p_ips[i], &a, sizeof(a)) == 0)
			return;
	p->p_ips[p->p_nips++] = a;
}

/* The tail: quoted JSON from the end of the ip value on, then the notes. */
static int
render_tail(struct pod *p, const struct buf *json)
{
	char	*tail;
	size_t	 qlen, nlen, ns, nn, off, size;

	qlen = helper_quote(NULL, 0, json->b_data, json->b_len);
	/* notes with empty values are left out: Squid stops at "key= " */
	ns = nn = 0;
	if (!p->p_hostnet) {
		ns = helper_escape(NULL, 0, p->p_namespace,
		    strlen(p->p_namespace));
		nn = helper_escape(NULL, 0, p->p_name, strlen(p->p_name));
	} else if (p->p_node != NULL)
		ns = helper_escape(NULL, 0, p->p_node, strlen(p->p_node));
	nlen = 11 + ns + 5 + nn;
	size = qlen + nlen + 1;
	if ((tail = malloc(size)) == NULL)
		return -1;
	/* the opening quote is already in the reply prefix */
	helper_quote(tail, qlen + 1, json->b_data, json->b_len);
	memmove(tail, tail + 1, qlen - 1);
	off = qlen - 1;
	if (p->p_hostnet && ns > 0) {
		memcpy(tail + off, " node=", 6);
		off += 6;
		off += helper_escape(tail + off, size - off, p->p_node,
		    strlen(p->p_node));
	}
	if (!p->p_hostnet && ns > 0) {
		memcpy(tail + off, " namespace=", 11);
		off += 11;
		off += helper_escape(tail + off, size - off, p->p_namespace,
		    strlen(p->p_namespace));
	}
	if (!p->p_hostnet && nn > 0) {
		memcpy(tail + off, " pod=", 5);
		off += 5;
		off += helper_escape(tail + off, size - off, p->p_name,
		    strlen(p->p_name));
	}
	tail[off] = '\0';
	p->p_tail = tail;
	p->p_taillen = off;
	return 0;
}

static char *
render_dup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

struct pod *
render_pod(struct render *r, json_t *obj)
{
	struct buf	 jb = BUF_INITIALIZER(0);
	struct pod	*p;
	json_t		*meta, *spec, *status, *ips, *ent;
	const char	*uid, *phase, *t;
	size_t		 i;

	if ((meta = render_obj(obj, "metadata")) == NULL ||
	    (uid = render_str(meta, "uid")) == NULL)
		return NULL;
	spec = render_obj(obj, "spec");
	status = render_obj(obj, "status");
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->p_uid = strdup(uid);
	p->p_namespace = strdup(render_str(meta, "namespace") != NULL ?
	    render_str(meta, "namespace") : "");
	p->p_name = strdup(render_str(meta, "name") != NULL ?
	    render_str(meta, "name") : "");
	p->p_node = render_dup(render_str(spec, "nodeName"));
	if (p->p_uid == NULL || p->p_namespace == NULL || p->p_name == NULL)
		goto fail;
	p->p_hostnet = json_is_true(json_object_get(spec, "hostNetwork"));
	/* parsed here, once per version of the pod, not per lookup */
	p->p_polsig = policy_spec_read(meta, &p->p_policy);
	phase = render_str(status, "phase");
	p->p_finished = phase != NULL && (strcmp(phase, "Succeeded") == 0 ||
	    strcmp(phase, "Failed") == 0);
	t = render_str(status, "startTime");
	if (t == NULL)
		t = render_str(meta, "creationTimestamp");
	p->p_start = render_time(t);

	ips = json_object_get(status, "podIPs");
	if (json_is_array(ips))
		json_array_foreach(ips, i, ent)
			render_addip(p, render_str(ent, "ip"));
	render_addip(p, render_str(status, "podIP"));

	if (p->p_hostnet) {
		if (JBLIT(&jb, "\",\"node\":") == -1 ||
		    render_jstr(&jb, p->p_node) == -1 ||
		    JBLIT(&jb, ",\"host_network\":true,\"ambiguous\":true}") == -1)
			goto fail;
	} else {
		if (JBLIT(&jb, "\",\"namespace\":") == -1 ||
		    render_jstr(&jb, p->p_namespace) == -1 ||
		    JBLIT(&jb, ",\"name\":") == -1 ||
		    render_jstr(&jb, p->p_name) == -1 ||
		    JBLIT(&jb, ",\"uid\":") == -1 ||
		    render_jstr(&jb, p->p_uid) == -1 ||
		    JBLIT(&jb, ",\"node\":") == -1 ||
		    render_jstr(&jb, p->p_node) == -1 ||
		    JBLIT(&jb, ",\"labels\":") == -1 ||
		    render_map(r, &jb, json_object_get(meta, "labels"),
		    r->r_labels_re, r->r_labels_re == NULL) == -1 ||
		    JBLIT(&jb, ",\"annotations\":") == -1 ||
		    render_map(r, &jb, json_object_get(meta, "annotations"),
		    r->r_annots_re, 0) == -1 ||
		    JBLIT(&jb, ",\"owner\":") == -1 ||
		    render_owner(&jb, meta) == -1 ||
		    JBLIT(&jb, ",\"host_network\":false}") == -1)
			goto fail;
	}
	if (render_tail(p, &jb) == -1)
		goto fail;
	buf_free(&jb);
	return p;
 fail:
	buf_free(&jb);
	pod_free(p);
	return NULL;
}
