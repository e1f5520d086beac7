/* podmeta.h: podmeta's private header: types, then prototypes grouped by file */
#ifndef PODMETA_H
#define PODMETA_H

#include <sys/types.h>
#include <sys/queue.h>
#include <netinet/in.h>

#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <jansson.h>

#include "buf.h"
#include "diag.h"
#include "hash.h"
#include "helperproto.h"

#define PODMETA_LINE_MAX	16384		/* longer requests get ERR */
#define PODMETA_PENDING_MAX	100000		/* requests waiting for the first sync */
#define PODMETA_IPS_MAX		8		/* addresses kept per pod */
#define PODMETA_MAX_VALUE	256		/* default --max-value */
#define PODMETA_TRUNCATED	"\xe2\x80\xa6(truncated)"	/* "…(truncated)" */
#define LAST_APPLIED		"kubectl.kubernetes.io/last-applied-configuration"
#define POLICY_ANNOT_ALLOW	"egress.connectd.io/allow"
#define POLICY_ANNOT_MODE	"egress.connectd.io/mode"
#define POLICY_ENTRIES_MAX	4096		/* entries in one list */
#define POLICY_NAME_MAX		253		/* RFC 1035: a name's text */
#define POLICY_ENTRY_MAX	320		/* one entry, port included */
#define POLICY_HOST_MAX		255		/* a request's %DST or SNI */

/* ---------------------------------------------------------------- types */

struct podmeta_conf {
	const char	*pc_source_file;	/* --source file:PATH, else NULL */
	const char	*pc_server;
	const char	*pc_token_file;
	const char	*pc_ca_file;
	const char	*pc_kubeconfig;
	const char	*pc_context;
	const char	*pc_node;		/* NULL or "": every node */
	const char	*pc_namespace;		/* NULL: every namespace */
	const char	*pc_labels;		/* NULL: every label */
	const char	*pc_annotations;	/* NULL: no annotation */
	size_t		 pc_max_value;		/* 0: no cap */
	int		 pc_unknown_err;
	enum helper_idmode pc_idmode;		/* --channel-id */
	size_t		 pc_addrtok;		/* --address-token, 1-based */
	double		 pc_sync_wait;
	double		 pc_delete_grace;
	int		 pc_policy;		/* --policy */
};

struct podmeta_stats {
	unsigned long long	 ps_events;	/* watch events and file reloads */
	unsigned long long	 ps_lists;	/* complete lists */
	unsigned long long	 ps_relists;	/* lists after the first */
	unsigned long long	 ps_api_errors;
	unsigned long long	 ps_lookups;
	unsigned long long	 ps_hits;
	unsigned long long	 ps_bad_requests;
	unsigned long long	 ps_bad_objects;	/* pods we could not use */
	unsigned long long	 ps_ns_events;		/* namespace watch events */
	unsigned long long	 ps_policy_allow;	/* --policy verdicts */
	unsigned long long	 ps_policy_deny;
	unsigned long long	 ps_policy_would_deny;
};

enum policy_mode {
	POLICY_MODE_NONE,	/* not said (or said wrong) */
	POLICY_MODE_ENFORCE,
	POLICY_MODE_REPORT,
	POLICY_MODE_OFF
};

struct policy_list;	/* policy.c: parsed allow entries */

/* What one object's annotations say; each key valid or not used. */
struct policy_spec {
	struct policy_list	*ps_allow;	/* NULL unless ps_has_allow */
	int			 ps_has_allow;	/* a valid allow annotation */
	enum policy_mode	 ps_mode;
	char			*ps_error;	/* what was not used, and why */
};

/* One --policy answer; the strings are static or the list's. */
struct policy_result {
	enum policy_mode	 pr_mode;
	int			 pr_allow;	/* OK, else ERR */
	const char		*pr_rule;	/* the entry that matched */
	const char		*pr_from;	/* "pod", "namespace" or NULL */
	const char		*pr_reason;	/* NULL, or why not listed */
};

struct addrent;		/* index.c: one indexed address */

/* One pod's claim on one address. */
struct podaddr {
	struct pod		*pa_pod;
	struct addrent		*pa_ent;
	TAILQ_ENTRY(podaddr)	 pa_entry;	/* in the address's claims */
};

/*
 * What podmeta keeps of a pod: identity, ordering, addresses and the
 * rendered reply tail.  The tail is the Squid-quoted JSON after the "ip"
 * value, the closing quote and the notes, so that a reply is
 *	OK log="{\"ip\":\"<ip>  +  <tail>
 */
struct pod {
	char			*p_uid;
	char			*p_namespace;
	char			*p_name;
	char			*p_node;
	char			*p_tail;
	size_t			 p_taillen;
	double			 p_start;	/* start time, else creation */
	uint64_t		 p_seq;		/* update order: breaks ties */
	int			 p_hostnet;
	int			 p_finished;	/* Succeeded or Failed */
	int			 p_deleted;	/* a tombstone */
	double			 p_expire;	/* when the tombstone goes */
	unsigned int		 p_gen;		/* last list that had it */
	struct policy_spec	 p_policy;	/* its egress annotations */
	uint64_t		 p_polsig;	/* their text: 0 if none */
	struct in6_addr		 p_ips[PODMETA_IPS_MAX];
	size_t			 p_nips;
	struct podaddr		 p_claims[PODMETA_IPS_MAX];
	struct hnode		 p_hnode;	/* in the index, by p_uid */
	TAILQ_ENTRY(pod)	 p_entry;	/* live list or tombstone queue */
};

/* proto.c: one parsed request */
struct proto_req {
	char			 pr_id[HELPER_ID_MAXLEN + 1];	/* "" if none */
	struct in6_addr		 pr_addr;		/* v4 as ::ffff:a.b.c.d */
	const char		*pr_error;		/* NULL if valid */
	/* --policy: %DST %PORT [%ssl::>sni] after the address */
	char			 pr_dst[POLICY_HOST_MAX + 1];
	unsigned		 pr_port;
	char			 pr_sni[POLICY_HOST_MAX + 1];	/* "" if none */
};

enum proto_answer {
	PROTO_HIT,		/* pod or hostNetwork tail */
	PROTO_UNKNOWN_OK,
	PROTO_UNKNOWN_ERR,
	PROTO_BH,		/* message: pr_error or the given text */
	PROTO_BAD		/* ERR message=pr_error */
};

/* Each module's own state; defined in its file. */
struct pending;		/* podmeta.c: a request waiting for the first list */
struct pod_index;
struct ns_index;
struct render;
struct kube;
struct watch;
struct source;

/*
 * The whole program: its configuration, counters, event loop, the parts
 * it owns, and the state of the request loop on stdin (podmeta.c).
 * main() has the only one; each file is handed it, or the piece it needs.
 */
struct podmeta {
	struct podmeta_conf	 pm_conf;
	struct podmeta_stats	 pm_stats;
	struct ev_loop		*pm_loop;

	struct pod_index	*pm_index;
	struct ns_index		*pm_ns;		/* --policy only */
	struct render		*pm_render;
	struct kube		*pm_kube;	/* --source api only */
	struct watch		*pm_watch;	/* --source api only */
	struct watch		*pm_nswatch;	/* --source api --policy */
	struct source		*pm_source;	/* --source file: only */

	/* podmeta.c: the request loop */
	TAILQ_HEAD(, pending)	 pm_pending;
	size_t			 pm_npending;
	int			 pm_synced;	/* a list has completed */
	int			 pm_pods_synced;	/* ... of pods */
	int			 pm_ns_synced;	/* ... of namespaces (--policy) */
	int			 pm_gave_up;	/* --sync-wait passed unsynced */
	int			 pm_eof;
	ev_io			 pm_stdin;
	ev_timer		 pm_syncwait;
	ev_timer		 pm_sweep;
	ev_signal		 pm_sigusr1, pm_sigterm, pm_sigint;
	struct buf		 pm_out;	/* replies not yet written */
	char			 pm_in[PODMETA_LINE_MAX + 1];
	size_t			 pm_inlen;
	int			 pm_discard;	/* inside an overlong line */
	struct proto_req	 pm_longreq;	/* its ID */
};

/* ----------------------------------------------------------- prototypes */

/* podmeta.c */

/*
 * A complete list of pods (namespaces: a list of them) is in pm's
 * index: once both are (namespaces only with --policy), answer waiting
 * requests and, from now on, every request at once.  Called by watch.c
 * and source.c.
 */
void	 podmeta_synced(struct podmeta *pm, int namespaces);

/*
 * Render the pod API object obj (borrowed) and put it in pm's index.
 * 0, or -1 if obj is not a usable pod (counted in ps_bad_objects).  Out
 * of memory in the index is logged, prefixed with what, and returns 0.
 */
int	 podmeta_add_pod(struct podmeta *pm, json_t *obj, const char *what);

/*
 * p is about to replace what the index has for its UID: log, once per
 * change of their text, why its egress annotations are not used.
 */
void	 podmeta_pod_policy_note(struct podmeta *pm, const struct pod *p);

/* Log one stats line to stderr; why says what prompted it. */
void	 podmeta_stats_log(struct podmeta *pm, const char *why);

/* proto.c */

/*
 * Parse the request line[0..len) in place (line[len] must be writable):
 * a channel ID as idmode says, then tokens, of which the addrtok-th
 * (1-based, at most HELPER_TOKENS_MAX) is the client address.  Returns 0
 * with *pr filled, or -1 with pr->pr_error saying why (and pr->pr_id set
 * if the line had a channel ID).
 */
int	 proto_parse_as(char *line, size_t len, enum helper_idmode idmode,
	    size_t addrtok, struct proto_req *pr);

/*
 * The same for --policy: the address token is followed by %DST, %PORT
 * and optionally %ssl::>sni, copied into pr (a name longer than
 * POLICY_HOST_MAX becomes "", which only "*" lets through).
 */
int	 proto_parse_policy(char *line, size_t len, enum helper_idmode idmode,
	    size_t addrtok, struct proto_req *pr);

/*
 * Append one reply line for pr, newline included, to out.  For
 * PROTO_HIT, tail[0..taillen) is a pod's rendered tail; for PROTO_BH and
 * PROTO_BAD, tail is a message (NULL: pr->pr_error).  0, or -1 if out
 * could not take it (out is then left with part of the line).
 */
int	 proto_reply(struct buf *out, const struct proto_req *pr,
	    enum proto_answer ans, const char *tail, size_t taillen);

/*
 * Append a --policy reply: OK, or ERR if !ok, with the pod's log= (tail
 * as for PROTO_HIT; NULL: the client is no pod, "pod":null) and
 * policy= with the JSON text pol.  0, or -1 as proto_reply().
 */
int	 proto_reply_policy(struct buf *out, const struct proto_req *pr,
	    int ok, const char *tail, size_t taillen, const char *pol);

/* index.c */

/*
 * An empty index of pods by UID and by address.  A deleted pod stays a
 * tombstone for grace seconds (0: it goes at once).  NULL if out of
 * memory.  index_free() frees it and every pod in it.
 */
struct pod_index *index_new(double grace);
void	 index_free(struct pod_index *);

/*
 * Add p, or replace the pod with its UID; the index owns p from now on,
 * even on error.  A finished pod, or one without an address, only
 * removes the earlier version.  0, or -1 if out of memory (p is dropped).
 */
int	 index_upsert(struct pod_index *, struct pod *p);

/* The pod uid was deleted at time now: it becomes a tombstone. */
void	 index_delete(struct pod_index *, const char *uid, double now);

/*
 * Around a complete list: the live pods that list_end() finds were not
 * upserted since list_begin() were deleted meanwhile, at time now.
 */
void	 index_list_begin(struct pod_index *);
void	 index_list_end(struct pod_index *, double now);

/* The pod with UID uid (live or a tombstone), or NULL. */
const struct pod *index_pod(const struct pod_index *, const char *uid);

/* The pod that owns address a, or NULL.  Valid until the next change. */
const struct pod *index_lookup(const struct pod_index *,
	    const struct in6_addr *a);

/* Remove the tombstones whose grace period has passed by time now. */
void	 index_expire(struct pod_index *, double now);

/* How many live pods, tombstones and addresses are held. */
void	 index_counts(const struct pod_index *, size_t *live, size_t *tombs,
	    size_t *addrs);

/* Free a pod that is in no index (NULL is fine). */
void	 pod_free(struct pod *);

/* render.c */

/*
 * The label and annotation filters (PCRE2 patterns; labels NULL: all,
 * annots NULL: none) and the value cap (0: none).  NULL after logging
 * why, e.g. a bad pattern.  render_free() accepts NULL.
 */
struct render *render_new(const char *labels, const char *annots,
	    size_t maxvalue);
void	 render_free(struct render *);

/*
 * A pod from its API object (borrowed), with its reply tail rendered;
 * the caller owns it.  NULL if the object has no metadata.uid, or when
 * out of memory.
 */
struct pod *render_pod(struct render *, json_t *obj);

/* metadata.uid and metadata.resourceVersion of obj, borrowed; or NULL. */
const char *render_uid(json_t *obj);
const char *render_rv(json_t *obj);

/* kube.c */

/*
 * Where the API is and how to authenticate, from conf: --server and
 * friends, --kubeconfig, else the in-cluster service account.  Reads
 * the token file once.  NULL after logging why.  kube_free() accepts
 * NULL.
 */
struct kube *kube_new(const struct podmeta_conf *conf);
void	 kube_free(struct kube *);

/*
 * Read the token file again, if there is one.  0 (token unchanged, or
 * replaced), or -1 after logging why (the old token stays).
 */
int	 kube_token_reload(struct kube *);

/* The server's base URL, without a trailing '/'.  Owned by k. */
const char *kube_server(const struct kube *k);

/*
 * Request headers, Accept and the current bearer token, as a curl_slist
 * the caller frees with curl_slist_free_all().  NULL if out of memory.
 */
void	*kube_headers(const struct kube *);

/* Set URL, TLS and timeouts of the curl easy handle easy for url. */
void	 kube_easy_setup(const struct kube *, void *easy, const char *url);

/* yamljson.c */

/*
 * Parse one YAML document, buf[0..len), into the JSON tree it means:
 * mappings are objects, sequences arrays; a plain null, ~ or nothing is
 * null, a plain true or false (or True, TRUE, ...) a boolean, and every
 * other scalar a string (numbers included).  Anchors, aliases, tags
 * other than !!str, !!map and !!seq, keys that are not scalars,
 * duplicate keys, NUL characters, nesting over 64 levels and a second
 * document are errors.  The caller owns the tree.
 *
 * If marks is not NULL, *marks is set to a new object that maps the
 * JSON Pointer (RFC 6901) of every node to [line, column] of its key
 * (members) or its start (items, the root); the caller owns it.
 *
 * NULL on error, with err->text, err->line and err->column (1-based)
 * saying what and where; no document at all is an error too.
 */
json_t	*yamljson_load(const char *buf, size_t len, json_t **marks,
	    json_error_t *err);

/* policy.c */

/*
 * Parse an allow annotation's text into *out (the caller frees it with
 * policy_list_free()).  0, or -1 with err saying which entry and why.
 */
int	 policy_list_parse(const char *text, struct policy_list **out,
	    char *err, size_t errlen);
void	 policy_list_free(struct policy_list *);
/* "enforce", "report", "off"; else POLICY_MODE_NONE. */
enum policy_mode policy_mode_parse(const char *);
const char *policy_mode_name(enum policy_mode);

/*
 * Read the egress annotations of the object whose metadata is meta
 * (borrowed) into *ps (cleared first; the caller clears it with
 * policy_spec_clear()).  Returns a signature of their text: 0 if there
 * are none, so that a change can be told from a repeat.
 */
uint64_t policy_spec_read(json_t *meta, struct policy_spec *ps);
void	 policy_spec_clear(struct policy_spec *);

/*
 * Namespaces' egress defaults, by name.  ns_upsert() takes a Namespace
 * object (borrowed): 0, or -1 if it has no name; a malformed annotation
 * is logged once per change.  ns_list_begin()/ns_list_end() around a
 * complete list drop the namespaces it did not have.
 */
struct ns_index *ns_index_new(void);
void	 ns_index_free(struct ns_index *);
int	 ns_upsert(struct ns_index *, json_t *obj);
void	 ns_delete(struct ns_index *, json_t *obj);
void	 ns_list_begin(struct ns_index *);
void	 ns_list_end(struct ns_index *);
size_t	 ns_count(const struct ns_index *);

/*
 * The verdict for pod p (NULL: no pod) reaching host:port, with the
 * TLS SNI (NULL, "" or "-": none) that must be listed too: p's own
 * annotations key by key, else its namespace's in nx (NULL: none).
 * Fills *r, whose strings stay valid until the pod or namespace
 * changes.  Returns 0.
 */
int	 policy_decide(const struct ns_index *nx, const struct pod *p,
	    const char *host, unsigned port, const char *sni,
	    struct policy_result *r);

/* r as the answer's JSON object text (the caller frees it); NULL if out of memory. */
char	*policy_result_json(const struct policy_result *r);

/* watch.c */

/*
 * Start listing, then watching, the pods of pm->pm_kube's API server in
 * pm's loop, into pm's index (namespaces: their egress defaults, into
 * pm->pm_ns); podmeta_synced() after every complete list.  NULL if libcurl cannot start.  watch_stop() stops and frees it
 * (NULL is fine).
 */
struct watch *watch_start(struct podmeta *pm, int namespaces);
void	 watch_stop(struct watch *);

/* source.c */

/*
 * Read the PodList at path into pm's index now and whenever the file
 * changes (checked every second); podmeta_synced() after every load.
 * A worker thread reads the file and renders its pods an item at a time
 * (with its own struct render from pm's configuration); the loop puts
 * them in the index a slice per turn, so lookups go on meanwhile.  What
 * is not a regular file is refused, and never opened in a way that could
 * block.  NULL after logging why (out of memory, a bad --labels
 * pattern).  source_stop() stops and frees it, abandoning a load under
 * way promptly (NULL is fine).
 */
struct source *source_start(struct podmeta *pm, const char *path);
void	 source_stop(struct source *);

#endif
