/* kube.c: where the API is and how to authenticate: in-cluster, --server, --kubeconfig; token re-reads */
#include "config.h"

#include <sys/types.h>
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "podmeta.h"

#define SA_DIR		"/var/run/secrets/kubernetes.io/serviceaccount"
#define TOKEN_MAX	(64 * 1024)
#define KUBECONFIG_MAX	(4 * 1024 * 1024)

struct kube_blob {
	char	*kb_data;
	size_t	 kb_len;
};

static struct {
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
} kube;

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

/* Re-read the token file: 1 if the token changed, 0 if not, -1 on error. */
int
kube_token_reload(void)
{
	char	*buf, *tok;
	int	 changed;

	if (kube.k_token_file == NULL)
		return 0;
	if ((buf = kube_readfile(kube.k_token_file, TOKEN_MAX, NULL)) ==
	    NULL) {
		log_warn("token file %s", kube.k_token_file);
		return -1;
	}
	tok = kube_trim(buf);
	if (*tok == '\0' || strpbrk(tok, "\r\n") != NULL) {
		log_warnx("token file %s: empty or several lines",
		    kube.k_token_file);
		free(buf);
		return -1;
	}
	changed = kube.k_token == NULL || strcmp(kube.k_token, tok) != 0;
	if (changed) {
		free(kube.k_token);
		if ((kube.k_token = strdup(tok)) == NULL) {
			free(buf);
			return -1;
		}
		log_debug("token read from %s", kube.k_token_file);
	}
	free(buf);
	return changed;
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
 * Just enough YAML for kubeconfig files as kubectl writes them: block
 * mappings and sequences by indentation, plain, 'single' and "double"
 * quoted scalars, {} and [].  A file starting with '{' is JSON.
 */
struct yline {
	int	 yl_indent;
	char	*yl_text;
};

static json_t	*yaml_node(struct yline *, size_t, size_t *, int);

/* Unquote a "double" or 'single' quoted scalar in place; 0 if s is plain. */
static int
yaml_unquote(char *s)
{
	char	*d, *p;

	if (*s == '"') {
		for (p = s + 1, d = s; *p != '\0' && *p != '"'; p++) {
			if (*p == '\\' && p[1] != '\0') {
				p++;
				*d++ = *p == 'n' ? '\n' : *p == 't' ? '\t' :
				    *p;
			} else
				*d++ = *p;
		}
		*d = '\0';
		return 1;
	}
	if (*s == '\'') {
		for (p = s + 1, d = s; *p != '\0'; p++) {
			if (*p == '\'' && p[1] == '\'')
				p++;
			else if (*p == '\'')
				break;
			*d++ = *p;
		}
		*d = '\0';
		return 1;
	}
	return 0;
}

static json_t *
yaml_scalar(char *s)
{
	s = kube_trim(s);
	if (yaml_unquote(s))
		return json_string(s);
	if (strcmp(s, "{}") == 0)
		return json_object();
	if (strcmp(s, "[]") == 0)
		return json_array();
	if (strcmp(s, "true") == 0)
		return json_true();
	if (strcmp(s, "false") == 0)
		return json_false();
	if (strcmp(s, "null") == 0 || strcmp(s, "~") == 0 || *s == '\0')
		return json_null();
	return json_string(s);
}

/* The ": " of a "key: value" line outside quotes, or NULL. */
static char *
yaml_colon(char *s)
{
	char	q = 0;

	for (; *s != '\0'; s++) {
		if (q != 0) {
			if (*s == q)
				q = 0;
		} else if (*s == '"' || *s == '\'')
			q = *s;
		else if (*s == ':' && (s[1] == ' ' || s[1] == '\0'))
			return s;
	}
	return NULL;
}

static int
yaml_is_item(const char *s)
{
	return s[0] == '-' && (s[1] == ' ' || s[1] == '\0');
}

static json_t *
yaml_seq(struct yline *l, size_t n, size_t *i, int indent)
{
	json_t	*arr, *v;
	char	*rest;
	int	 sp;

	if ((arr = json_array()) == NULL)
		return NULL;
	while (*i < n && l[*i].yl_indent == indent &&
	    yaml_is_item(l[*i].yl_text)) {
		rest = l[*i].yl_text + 1;
		for (sp = 1; *rest == ' '; rest++)
			sp++;
		if (*rest == '\0') {
			(*i)++;
			v = *i < n && l[*i].yl_indent > indent ?
			    yaml_node(l, n, i, l[*i].yl_indent) : json_null();
		} else {
			/* "- key: v" opens a mapping at the column of key */
			l[*i].yl_indent += sp;
			l[*i].yl_text = rest;
			v = yaml_node(l, n, i, l[*i].yl_indent);
		}
		if (v == NULL || json_array_append_new(arr, v) == -1) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static json_t *
yaml_node(struct yline *l, size_t n, size_t *i, int indent)
{
	json_t	*map, *v;
	char	*colon, *key;

	if (*i >= n)
		return json_null();
	if (yaml_is_item(l[*i].yl_text))
		return yaml_seq(l, n, i, indent);
	if ((colon = yaml_colon(l[*i].yl_text)) == NULL)
		return yaml_scalar(l[(*i)++].yl_text);
	if ((map = json_object()) == NULL)
		return NULL;
	while (*i < n && l[*i].yl_indent == indent &&
	    !yaml_is_item(l[*i].yl_text) &&
	    (colon = yaml_colon(l[*i].yl_text)) != NULL) {
		*colon = '\0';
		key = kube_trim(l[*i].yl_text);
		yaml_unquote(key);
		if (colon[1] != '\0' && *kube_trim(colon + 1) != '\0') {
			v = yaml_scalar(colon + 1);
			(*i)++;
		} else {
			(*i)++;
			if (*i < n && l[*i].yl_indent > indent)
				v = yaml_node(l, n, i, l[*i].yl_indent);
			else if (*i < n && l[*i].yl_indent == indent &&
			    yaml_is_item(l[*i].yl_text))
				v = yaml_seq(l, n, i, indent);
			else
				v = json_null();
		}
		if (v == NULL || json_object_set_new(map, key, v) == -1) {
			json_decref(map);
			return NULL;
		}
	}
	return map;
}

static json_t *
yaml_load(char *buf)
{
	struct yline	*l = NULL, *nl;
	size_t		 n = 0, cap = 0, i = 0;
	char		*line, *next, *p;
	json_t		*root;

	for (line = buf; line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		for (p = line; *p == ' '; p++)
			;
		if (*p == '\0' || *p == '#' || strncmp(p, "---", 3) == 0)
			continue;
		kube_trim(p);
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((nl = reallocarray(l, cap, sizeof(*l))) == NULL) {
				free(l);
				return NULL;
			}
			l = nl;
		}
		l[n].yl_indent = (int)(p - line);
		l[n].yl_text = p;
		n++;
	}
	root = n > 0 ? yaml_node(l, n, &i, l[0].yl_indent) : NULL;
	free(l);
	return root;
}

/* The entry of a named list ("clusters", "users", ...) called name. */
static json_t *
kube_named(json_t *root, const char *list, const char *name, const char *what)
{
	json_t		*arr, *ent;
	const char	*s;
	size_t		 i;

	arr = json_object_get(root, list);
	if (json_is_array(arr) && name != NULL)
		json_array_foreach(arr, i, ent) {
			s = json_string_value(json_object_get(ent, "name"));
			if (s != NULL && strcmp(s, name) == 0 &&
			    json_is_object(json_object_get(ent, what)))
				return json_object_get(ent, what);
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

static int
kube_file_or_data(const char *kc, json_t *obj, const char *fkey,
    const char *dkey, char **file, struct kube_blob *blob)
{
	const char	*s;

	if ((s = json_string_value(json_object_get(obj, dkey))) != NULL) {
		if (kube_b64decode(s, blob) == -1) {
			log_warnx("%s: %s: bad base64", kc, dkey);
			return -1;
		}
		return 0;
	}
	if ((s = json_string_value(json_object_get(obj, fkey))) != NULL &&
	    (*file = kube_path(kc, s)) == NULL)
		return -1;
	return 0;
}

static int
kube_kubeconfig(const char *path)
{
	json_error_t	 jerr;
	json_t		*root = NULL, *ctx, *cluster, *user;
	const char	*cname, *s;
	char		*buf;

	if ((buf = kube_readfile(path, KUBECONFIG_MAX, NULL)) == NULL) {
		log_warn("%s", path);
		return -1;
	}
	if (*kube_trim(buf) == '{')
		root = json_loads(buf, 0, &jerr);
	else
		root = yaml_load(buf);
	free(buf);
	if (!json_is_object(root)) {
		log_warnx("%s: not a kubeconfig file", path);
		goto fail;
	}
	cname = conf.pc_context != NULL ? conf.pc_context :
	    json_string_value(json_object_get(root, "current-context"));
	if ((ctx = kube_named(root, "contexts", cname, "context")) == NULL) {
		log_warnx("%s: no context %s", path,
		    cname != NULL ? cname : "(current-context unset)");
		goto fail;
	}
	s = json_string_value(json_object_get(ctx, "cluster"));
	if ((cluster = kube_named(root, "clusters", s, "cluster")) == NULL ||
	    (s = json_string_value(json_object_get(cluster, "server"))) ==
	    NULL) {
		log_warnx("%s: context %s: no cluster with a server", path,
		    cname);
		goto fail;
	}
	if (kube.k_server == NULL && (kube.k_server = strdup(s)) == NULL)
		goto fail;
	kube.k_insecure = json_is_true(json_object_get(cluster,
	    "insecure-skip-tls-verify"));
	if (kube.k_ca_file == NULL && kube_file_or_data(path, cluster,
	    "certificate-authority", "certificate-authority-data",
	    &kube.k_ca_file, &kube.k_ca) == -1)
		goto fail;

	s = json_string_value(json_object_get(ctx, "user"));
	user = kube_named(root, "users", s, "user");
	if (user != NULL) {
		if (json_object_get(user, "exec") != NULL ||
		    json_object_get(user, "auth-provider") != NULL)
			log_warnx("%s: user %s: exec and auth-provider "
			    "credentials are not supported", path, s);
		if (kube.k_token_file == NULL &&
		    (s = json_string_value(json_object_get(user, "tokenFile")))
		    != NULL && (kube.k_token_file = kube_path(path, s)) == NULL)
			goto fail;
		if (kube.k_token_file == NULL &&
		    (s = json_string_value(json_object_get(user, "token"))) !=
		    NULL && (kube.k_token = strdup(s)) == NULL)
			goto fail;
		if (kube_file_or_data(path, user, "client-certificate",
		    "client-certificate-data", &kube.k_cert_file,
		    &kube.k_cert) == -1 ||
		    kube_file_or_data(path, user, "client-key",
		    "client-key-data", &kube.k_key_file, &kube.k_key) == -1)
			goto fail;
	}
	json_decref(root);
	return 0;
 fail:
	json_decref(root);
	return -1;
}

static int
kube_incluster(void)
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
	if (asprintf(&kube.k_server, strchr(host, ':') != NULL ?
	    "https://[%s]:%s" : "https://%s:%s", host, port) == -1 ||
	    asprintf(&kube.k_token_file, "%s/token", dir) == -1 ||
	    asprintf(&kube.k_ca_file, "%s/ca.crt", dir) == -1)
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

int
kube_init(void)
{
	size_t	len;

	if (conf.pc_token_file != NULL &&
	    (kube.k_token_file = strdup(conf.pc_token_file)) == NULL)
		return -1;
	if (conf.pc_ca_file != NULL &&
	    (kube.k_ca_file = strdup(conf.pc_ca_file)) == NULL)
		return -1;
	if (conf.pc_server != NULL &&
	    (kube.k_server = strdup(conf.pc_server)) == NULL)
		return -1;
	if (conf.pc_kubeconfig != NULL) {
		if (kube_kubeconfig(conf.pc_kubeconfig) == -1)
			return -1;
	} else if (conf.pc_server == NULL && kube_incluster() == -1)
		return -1;
	len = strlen(kube.k_server);
	while (len > 0 && kube.k_server[len - 1] == '/')
		kube.k_server[--len] = '\0';
	if (strncmp(kube.k_server, "https://", 8) != 0 &&
	    strncmp(kube.k_server, "http://", 7) != 0) {
		log_warnx("server %s: not an http(s) URL", kube.k_server);
		return -1;
	}
	if (kube.k_token_file != NULL && kube_token_reload() == -1)
		log_warnx("starting without a token; will retry");
	log_info("API server %s%s%s", kube.k_server,
	    kube.k_token != NULL || kube.k_token_file != NULL ?
	    ", bearer token" : "",
	    kube.k_cert_file != NULL || kube.k_cert.kb_data != NULL ?
	    ", client certificate" : "");
	return 0;
}

const char *
kube_server(void)
{
	return kube.k_server;
}

/* A header list for one request: Accept and the current bearer token. */
void *
kube_headers(void)
{
	struct curl_slist	*h, *n;
	char			*auth;

	if ((h = curl_slist_append(NULL, "Accept: application/json")) == NULL)
		return NULL;
	if (kube.k_token != NULL) {
		if (asprintf(&auth, "Authorization: Bearer %s",
		    kube.k_token) == -1) {
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

/* TLS and authentication options of an easy handle for url. */
int
kube_easy_setup(void *easy, const char *url)
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
	if (kube.k_ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, kube.k_ca_file);
	else if (kube.k_ca.kb_data != NULL)
		kube_blobopt(e, CURLOPT_CAINFO_BLOB, &kube.k_ca);
	if (kube.k_insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (kube.k_cert_file != NULL)
		curl_easy_setopt(e, CURLOPT_SSLCERT, kube.k_cert_file);
	else if (kube.k_cert.kb_data != NULL)
		kube_blobopt(e, CURLOPT_SSLCERT_BLOB, &kube.k_cert);
	if (kube.k_key_file != NULL)
		curl_easy_setopt(e, CURLOPT_SSLKEY, kube.k_key_file);
	else if (kube.k_key.kb_data != NULL)
		kube_blobopt(e, CURLOPT_SSLKEY_BLOB, &kube.k_key);
	return 0;
}

void
kube_free(void)
{
	free(kube.k_server);
	free(kube.k_token_file);
	free(kube.k_token);
	free(kube.k_ca_file);
	free(kube.k_ca.kb_data);
	free(kube.k_cert_file);
	free(kube.k_cert.kb_data);
	free(kube.k_key_file);
	free(kube.k_key.kb_data);
	memset(&kube, 0, sizeof(kube));
}
