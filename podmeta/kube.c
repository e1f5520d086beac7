/* kube.c: where the API is and how to authenticate: in-cluster, --server, --kubeconfig; token re-reads */
#include <sys/types.h>
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "podmeta.h"
#include "util.h"

#define SA_DIR		"/var/run/secrets/kubernetes.io/serviceaccount"
#define TOKEN_MAX	(64 * 1024)
#define KUBECONFIG_MAX	(4 * 1024 * 1024)

struct kube_blob {
	char	*kb_data;
	size_t	 kb_len;
};

struct kube {
	char		*k_server;	/* https://host:port, no trailing / */
	char		*k_token_file;	/* re-read every minute and on 401 */
	char		*k_token;	/* static or last read; NULL: none */
	char		*k_ca_file;
	struct kube_blob k_ca;
	char		*k_cert_file;
	struct kube_blob k_cert;
	char		*k_key_file;
	struct kube_blob k_key;
	int		 k_insecure;
};

/* A small file as a NUL-terminated string; NULL and errno on error. */
static char *
kube_readfile(const char *path, size_t max, size_t *lenp)
{
	FILE	*f;
	char	*buf;
	size_t	 len;

	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	if ((buf = malloc(max + 1)) == NULL) {
		fclose(f);
		return NULL;
	}
	len = fread(buf, 1, max + 1, f);
	if (ferror(f) || len > max) {
		if (!ferror(f))
			errno = EFBIG;
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	buf[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return buf;
}

static char *
kube_trim(char *s)
{
	size_t	len;

	while (isspace((unsigned char)*s))
		s++;
	len = strlen(s);
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		s[--len] = '\0';
	return s;
}

int
kube_token_reload(struct kube *k)
{
	char	*buf, *tok;

	if (k->k_token_file == NULL)
		return 0;
	if ((buf = kube_readfile(k->k_token_file, TOKEN_MAX, NULL)) == NULL) {
		log_warn("token file %s", k->k_token_file);
		return -1;
	}
	tok = kube_trim(buf);
	if (*tok == '\0' || strpbrk(tok, "\r\n") != NULL) {
		log_warnx("token file %s: empty or several lines",
		    k->k_token_file);
		free(buf);
		return -1;
	}
	if (k->k_token == NULL || strcmp(k->k_token, tok) != 0) {
		free(k->k_token);
		if ((k->k_token = strdup(tok)) == NULL) {
			log_warn("token file %s", k->k_token_file);
			free(buf);
			return -1;
		}
		log_debug("token read from %s", k->k_token_file);
	}
	free(buf);
	return 0;
}

static int
kube_b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

static int
kube_b64decode(const char *s, struct kube_blob *b)
{
	unsigned int	 acc = 0;
	int		 bits = 0, v;

	if ((b->kb_data = malloc(strlen(s) * 3 / 4 + 3)) == NULL)
		return -1;
	b->kb_len = 0;
	for (; *s != '\0' && *s != '='; s++) {
		if (isspace((unsigned char)*s))
			continue;
		if ((v = kube_b64val((unsigned char)*s)) < 0) {
			free(b->kb_data);
			b->kb_data = NULL;
			return -1;
		}
		acc = (acc << 6) | (unsigned int)v;
		if ((bits += 6) >= 8) {
			bits -= 8;
			b->kb_data[b->kb_len++] = (char)(acc >> bits);
		}
	}
	return 0;
}

/* ---------------------------------------------------------- kubeconfig */

/*
 * A kubeconfig is YAML as kubectl writes it, read by libyaml
 * (yamljson.c) into a JSON tree; a file whose first non-blank byte is
 * '{' is JSON, read by jansson.  Then the tree is checked as kubectl
 * would decode it: a wrong type anywhere in the named lists is an
 * error, an absent field is not.  Messages say FILE:LINE:COLUMN when
 * the tree came from YAML (kc_marks), FILE otherwise.
 */
struct kcfile {
	const char	*kc_path;
	json_t		*kc_root;
	json_t		*kc_marks;	/* JSON Pointer -> [line, column] */
};

#define KC_PTR_MAX	256		/* a JSON Pointer into a kubeconfig */

/* The named lists of a kubeconfig and the mapping each entry holds. */
enum { KC_CLUSTERS, KC_CONTEXTS, KC_USERS };
static const struct {
	const char	*list;
	const char	*member;
} kc_lists[] = {
	{ "clusters",	"cluster" },
	{ "contexts",	"context" },
	{ "users",	"user" }
};

static void	kc_warnx(const struct kcfile *, const char *, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

/* Log a problem with the node at JSON Pointer ptr (NULL: the file). */
static void
kc_warnx(const struct kcfile *kc, const char *ptr, const char *fmt, ...)
{
	char	 msg[512];
	json_t	*pos = NULL;
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ptr != NULL && kc->kc_marks != NULL)
		pos = json_object_get(kc->kc_marks, ptr);
	if (json_is_array(pos))
		log_warnx("%s:%d:%d: %s", kc->kc_path,
		    (int)json_integer_value(json_array_get(pos, 0)),
		    (int)json_integer_value(json_array_get(pos, 1)), msg);
	else
		log_warnx("%s: %s", kc->kc_path, msg);
}

/*
 * The JSON Pointer of member key of the node at ptr, in buf (KC_PTR_MAX
 * bytes).  Pointers here are short: built from the names above and
 * indices.  One too long becomes "", the top of the file.
 */
static const char *
kc_ptr(char *buf, const char *ptr, const char *key)
{
	int	n;

	n = snprintf(buf, KC_PTR_MAX, "%s/%s", ptr, key);
	if (n < 0 || n >= KC_PTR_MAX)
		buf[0] = '\0';
	return buf;
}

/* A JSON Pointer as a reader would say it: /users/0/user is users[0].user. */
static const char *
kc_pathname(char *buf, const char *ptr)
{
	size_t	n = 0, seg;

	for (; *ptr == '/' && n + 1 < KC_PTR_MAX; ptr += seg) {
		ptr++;
		seg = strcspn(ptr, "/");
		if (strspn(ptr, "0123456789") == seg)
			n += (size_t)snprintf(buf + n, KC_PTR_MAX - n, "[%.*s]",
			    (int)seg, ptr);
		else
			n += (size_t)snprintf(buf + n, KC_PTR_MAX - n, "%s%.*s",
			    n > 0 ? "." : "", (int)seg, ptr);
	}
	buf[n < KC_PTR_MAX ? n : KC_PTR_MAX - 1] = '\0';
	return buf;
}

static const char *
kc_typename(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "a mapping";
	case JSON_ARRAY:
		return "a list";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "?";
}

/*
 * Member key of obj (at pointer ptr) if it is of type want, else NULL;
 * absent and null are NULL without a word, any other type is an error
 * (*bad set).  want JSON_TRUE means a boolean.
 */
static json_t *
kc_member(const struct kcfile *kc, json_t *obj, const char *ptr,
    const char *key, json_type want, int *bad)
{
	char	 mptr[KC_PTR_MAX], name[KC_PTR_MAX];
	json_t	*v;

	if ((v = json_object_get(obj, key)) == NULL || json_is_null(v))
		return NULL;
	if (json_typeof(v) == want ||
	    (want == JSON_TRUE && json_is_boolean(v)))
		return v;
	kc_ptr(mptr, ptr, key);
	kc_warnx(kc, mptr, "%s: %s expected, not %s", kc_pathname(name, mptr),
	    want == JSON_OBJECT ? "a mapping" : want == JSON_ARRAY ?
	    "a list" : want == JSON_STRING ? "a string" : "true or false",
	    kc_typename(v));
	*bad = 1;
	return NULL;
}

/* The same for a string: its value, or NULL. */
static const char *
kc_string(const struct kcfile *kc, json_t *obj, const char *ptr,
    const char *key, int *bad)
{
	return json_string_value(kc_member(kc, obj, ptr, key, JSON_STRING,
	    bad));
}

/* Check the types in clusters, contexts and users; -1 after logging. */
static int
kc_check(const struct kcfile *kc)
{
	json_t	*arr, *ent;
	char	 ptr[KC_PTR_MAX];
	size_t	 i, l;
	int	 bad = 0;

	kc_member(kc, kc->kc_root, "", "current-context", JSON_STRING, &bad);
	for (l = 0; l < nitems(kc_lists); l++) {
		arr = kc_member(kc, kc->kc_root, "", kc_lists[l].list,
		    JSON_ARRAY, &bad);
		json_array_foreach(arr, i, ent) {
			if (snprintf(ptr, sizeof(ptr), "/%s/%zu",
			    kc_lists[l].list, i) >= (int)sizeof(ptr))
				ptr[0] = '\0';
			if (!json_is_object(ent)) {
				kc_warnx(kc, ptr, "%s[%zu]: a mapping "
				    "expected (name: and %s:), not %s",
				    kc_lists[l].list, i, kc_lists[l].member,
				    kc_typename(ent));
				bad = 1;
				continue;
			}
			kc_member(kc, ent, ptr, "name", JSON_STRING, &bad);
			kc_member(kc, ent, ptr, kc_lists[l].member,
			    JSON_OBJECT, &bad);
		}
	}
	return bad ? -1 : 0;
}

/*
 * The mapping that entry name of list l holds, its pointer into ptr
 * (KC_PTR_MAX bytes); NULL if there is none.  kc_check() has passed.
 */
static json_t *
kc_named(const struct kcfile *kc, size_t l, const char *name, char *ptr)
{
	char		 ent_ptr[KC_PTR_MAX];
	json_t		*arr, *ent, *m;
	const char	*s;
	size_t		 i;

	if (name == NULL)
		return NULL;
	arr = json_object_get(kc->kc_root, kc_lists[l].list);
	json_array_foreach(arr, i, ent) {
		s = json_string_value(json_object_get(ent, "name"));
		m = json_object_get(ent, kc_lists[l].member);
		if (s != NULL && strcmp(s, name) == 0 && json_is_object(m)) {
			if (snprintf(ent_ptr, sizeof(ent_ptr), "/%s/%zu",
			    kc_lists[l].list, i) >= (int)sizeof(ent_ptr))
				ent_ptr[0] = '\0';
			kc_ptr(ptr, ent_ptr, kc_lists[l].member);
			return m;
		}
	}
	return NULL;
}

/* A path from the kubeconfig, relative to the kubeconfig's directory. */
static char *
kube_path(const char *kubeconfig, const char *path)
{
	const char	*slash;
	char		*out;

	if (path[0] == '/' || (slash = strrchr(kubeconfig, '/')) == NULL)
		return strdup(path);
	if (asprintf(&out, "%.*s/%s", (int)(slash - kubeconfig), kubeconfig,
	    path) == -1)
		return NULL;
	return out;
}

/* fkey (a file) or dkey (base64 data) of obj, into *file or *blob. */
static int
kc_file_or_data(const struct kcfile *kc, json_t *obj, const char *ptr,
    const char *fkey, const char *dkey, char **file, struct kube_blob *blob)
{
	char		 dptr[KC_PTR_MAX], name[KC_PTR_MAX];
	const char	*s;
	int		 bad = 0;

	if ((s = kc_string(kc, obj, ptr, dkey, &bad)) != NULL) {
		if (kube_b64decode(s, blob) == -1) {
			kc_ptr(dptr, ptr, dkey);
			kc_warnx(kc, dptr, "%s: bad base64",
			    kc_pathname(name, dptr));
			return -1;
		}
		return 0;
	}
	if ((s = kc_string(kc, obj, ptr, fkey, &bad)) != NULL &&
	    (*file = kube_path(kc->kc_path, s)) == NULL) {
		log_warn("%s", kc->kc_path);
		return -1;
	}
	return bad ? -1 : 0;
}

/* Parse the file, YAML or JSON, into kc; -1 after logging. */
static int
kc_load(struct kcfile *kc)
{
	json_error_t	 err;
	char		*buf, *p;
	size_t		 len;

	if ((buf = kube_readfile(kc->kc_path, KUBECONFIG_MAX, &len)) ==
	    NULL) {
		log_warn("%s", kc->kc_path);
		return -1;
	}
	for (p = buf; isspace((unsigned char)*p); p++)
		;
	if (*p == '{')
		kc->kc_root = json_loadb(buf, len, 0, &err);
	else
		kc->kc_root = yamljson_load(buf, len, &kc->kc_marks, &err);
	free(buf);
	if (kc->kc_root == NULL) {
		log_warnx("%s:%d:%d: %s", kc->kc_path, err.line, err.column,
		    err.text);
		return -1;
	}
	if (!json_is_object(kc->kc_root)) {
		kc_warnx(kc, "", "not a kubeconfig: a mapping expected at "
		    "the top, not %s", kc_typename(kc->kc_root));
		return -1;
	}
	return kc_check(kc);
}

/* The user's credentials into k, unless the command line gave some. */
static int
kc_user(const struct kcfile *kc, struct kube *k, json_t *user,
    const char *ptr, const char *name)
{
	const char	*s, *how;
	char		 xptr[KC_PTR_MAX];
	int		 bad = 0;

	if (k->k_token_file == NULL &&
	    (s = kc_string(kc, user, ptr, "tokenFile", &bad)) != NULL &&
	    (k->k_token_file = kube_path(kc->kc_path, s)) == NULL) {
		log_warn("%s", kc->kc_path);
		return -1;
	}
	if (k->k_token_file == NULL &&
	    (s = kc_string(kc, user, ptr, "token", &bad)) != NULL &&
	    (k->k_token = strdup(s)) == NULL) {
		log_warn("%s", kc->kc_path);
		return -1;
	}
	if (bad || kc_file_or_data(kc, user, ptr, "client-certificate",
	    "client-certificate-data", &k->k_cert_file, &k->k_cert) == -1 ||
	    kc_file_or_data(kc, user, ptr, "client-key", "client-key-data",
	    &k->k_key_file, &k->k_key) == -1)
		return -1;
	how = json_object_get(user, "exec") != NULL ? "exec" :
	    json_object_get(user, "auth-provider") != NULL ?
	    "auth-provider" : NULL;
	if (how == NULL)
		return 0;
	kc_ptr(xptr, ptr, how);
	if (k->k_token_file == NULL && k->k_token == NULL &&
	    k->k_cert_file == NULL && k->k_cert.kb_data == NULL) {
		/* nothing else would authenticate us */
		kc_warnx(kc, xptr, "user %s: %s credentials are not "
		    "supported: use token, tokenFile or client-certificate",
		    name, how);
		return -1;
	}
	kc_warnx(kc, xptr, "user %s: %s credentials are not supported; "
	    "using the others", name, how);
	return 0;
}

static int
kube_kubeconfig(struct kube *k, const char *path, const char *context)
{
	struct kcfile	 kc;
	json_t		*ctx, *cluster, *user;
	const char	*cname, *s;
	char		 ctxptr[KC_PTR_MAX], cptr[KC_PTR_MAX];
	char		 uptr[KC_PTR_MAX];
	int		 bad = 0, rc = -1;

	memset(&kc, 0, sizeof(kc));
	kc.kc_path = path;
	if (kc_load(&kc) == -1)
		goto done;
	cname = context != NULL ? context :
	    json_string_value(json_object_get(kc.kc_root, "current-context"));
	if ((ctx = kc_named(&kc, KC_CONTEXTS, cname, ctxptr)) == NULL) {
		kc_warnx(&kc, context == NULL ? "/current-context" : NULL,
		    "no context %s", cname != NULL ? cname :
		    "(current-context unset)");
		goto done;
	}
	s = kc_string(&kc, ctx, ctxptr, "cluster", &bad);
	if ((cluster = kc_named(&kc, KC_CLUSTERS, s, cptr)) == NULL ||
	    (s = kc_string(&kc, cluster, cptr, "server", &bad)) == NULL) {
		if (!bad)
			kc_warnx(&kc, cluster != NULL ? cptr : ctxptr,
			    "context %s: no cluster with a server", cname);
		goto done;
	}
	if (k->k_server == NULL && (k->k_server = strdup(s)) == NULL) {
		log_warn("%s", path);
		goto done;
	}
	k->k_insecure = json_is_true(kc_member(&kc, cluster, cptr,
	    "insecure-skip-tls-verify", JSON_TRUE, &bad));
	if (bad || (k->k_ca_file == NULL && kc_file_or_data(&kc, cluster,
	    cptr, "certificate-authority", "certificate-authority-data",
	    &k->k_ca_file, &k->k_ca) == -1))
		goto done;

	s = kc_string(&kc, ctx, ctxptr, "user", &bad);
	if (bad)
		goto done;
	if ((user = kc_named(&kc, KC_USERS, s, uptr)) != NULL &&
	    kc_user(&kc, k, user, uptr, s) == -1)
		goto done;
	rc = 0;
 done:
	json_decref(kc.kc_root);
	json_decref(kc.kc_marks);
	return rc;
}

static int
kube_incluster(struct kube *k)
{
	const char	*host, *port, *dir;
	char		*path, *ns;

	host = getenv("KUBERNETES_SERVICE_HOST");
	port = getenv("KUBERNETES_SERVICE_PORT");
	if (host == NULL || *host == '\0' || port == NULL || *port == '\0') {
		log_warnx("not in a cluster (KUBERNETES_SERVICE_HOST/PORT "
		    "unset): use --server, --kubeconfig or --source file:PATH");
		return -1;
	}
	if ((dir = getenv("PODMETA_SERVICEACCOUNT_DIR")) == NULL)
		dir = SA_DIR;
	if (asprintf(&k->k_server, strchr(host, ':') != NULL ?
	    "https://[%s]:%s" : "https://%s:%s", host, port) == -1 ||
	    asprintf(&k->k_token_file, "%s/token", dir) == -1 ||
	    asprintf(&k->k_ca_file, "%s/ca.crt", dir) == -1)
		return -1;
	if (asprintf(&path, "%s/namespace", dir) != -1) {
		if ((ns = kube_readfile(path, 256, NULL)) != NULL)
			log_info("in cluster, own namespace %s",
			    kube_trim(ns));
		free(ns);
		free(path);
	}
	return 0;
}

/* kube_new() without the cleanup: -1 leaves k for kube_free(). */
static int
kube_setup(struct kube *k, const struct podmeta_conf *conf)
{
	size_t	len;

	if (conf->pc_token_file != NULL &&
	    (k->k_token_file = strdup(conf->pc_token_file)) == NULL)
		return -1;
	if (conf->pc_ca_file != NULL &&
	    (k->k_ca_file = strdup(conf->pc_ca_file)) == NULL)
		return -1;
	if (conf->pc_server != NULL &&
	    (k->k_server = strdup(conf->pc_server)) == NULL)
		return -1;
	if (conf->pc_kubeconfig != NULL) {
		if (kube_kubeconfig(k, conf->pc_kubeconfig,
		    conf->pc_context) == -1)
			return -1;
	} else if (conf->pc_server == NULL && kube_incluster(k) == -1)
		return -1;
	len = strlen(k->k_server);
	while (len > 0 && k->k_server[len - 1] == '/')
		k->k_server[--len] = '\0';
	if (strncmp(k->k_server, "https://", 8) != 0 &&
	    strncmp(k->k_server, "http://", 7) != 0) {
		log_warnx("server %s: not an http(s) URL", k->k_server);
		return -1;
	}
	if (k->k_token_file != NULL && kube_token_reload(k) == -1)
		log_warnx("starting without a token; will retry");
	log_info("API server %s%s%s", k->k_server,
	    k->k_token != NULL || k->k_token_file != NULL ?
	    ", bearer token" : "",
	    k->k_cert_file != NULL || k->k_cert.kb_data != NULL ?
	    ", client certificate" : "");
	return 0;
}

struct kube *
kube_new(const struct podmeta_conf *conf)
{
	struct kube	*k;

	if ((k = calloc(1, sizeof(*k))) == NULL) {
		log_warn("kube");
		return NULL;
	}
	if (kube_setup(k, conf) == -1) {
		kube_free(k);
		return NULL;
	}
	return k;
}

const char *
kube_server(const struct kube *k)
{
	return k->k_server;
}

void *
kube_headers(const struct kube *k)
{
	struct curl_slist	*h, *n;
	char			*auth;

	if ((h = curl_slist_append(NULL, "Accept: application/json")) == NULL)
		return NULL;
	if (k->k_token != NULL) {
		if (asprintf(&auth, "Authorization: Bearer %s",
		    k->k_token) == -1) {
			curl_slist_free_all(h);
			return NULL;
		}
		n = curl_slist_append(h, auth);
		free(auth);
		if (n == NULL) {
			curl_slist_free_all(h);
			return NULL;
		}
		h = n;
	}
	return h;
}

static void
kube_blobopt(CURL *e, CURLoption opt, const struct kube_blob *b)
{
	struct curl_blob	cb;

	cb.data = b->kb_data;
	cb.len = b->kb_len;
	cb.flags = CURL_BLOB_COPY;
	curl_easy_setopt(e, opt, &cb);
}

void
kube_easy_setup(const struct kube *k, void *easy, const char *url)
{
	CURL	*e = easy;

	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "podmeta/" PACKAGE_VERSION);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 10L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
	if (k->k_ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, k->k_ca_file);
	else if (k->k_ca.kb_data != NULL)
		kube_blobopt(e, CURLOPT_CAINFO_BLOB, &k->k_ca);
	if (k->k_insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (k->k_cert_file != NULL)
		curl_easy_setopt(e, CURLOPT_SSLCERT, k->k_cert_file);
	else if (k->k_cert.kb_data != NULL)
		kube_blobopt(e, CURLOPT_SSLCERT_BLOB, &k->k_cert);
	if (k->k_key_file != NULL)
		curl_easy_setopt(e, CURLOPT_SSLKEY, k->k_key_file);
	else if (k->k_key.kb_data != NULL)
		kube_blobopt(e, CURLOPT_SSLKEY_BLOB, &k->k_key);
}

void
kube_free(struct kube *k)
{
	if (k == NULL)
		return;
	free(k->k_server);
	free(k->k_token_file);
	free(k->k_token);
	free(k->k_ca_file);
	free(k->k_ca.kb_data);
	free(k->k_cert_file);
	free(k->k_cert.kb_data);
	free(k->k_key_file);
	free(k->k_key.kb_data);
	free(k);
}
