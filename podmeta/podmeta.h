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

#include "diag.h"
#include "helperproto.h"

#define PODMETA_LINE_MAX	16384		/* longer requests get ERR */
#define PODMETA_PENDING_MAX	100000		/* requests waiting for the first sync */
#define PODMETA_IPS_MAX		8		/* addresses kept per pod */
#define PODMETA_MAX_VALUE	256		/* default --max-value */
#define PODMETA_TRUNCATED	"\xe2\x80\xa6(truncated)"	/* "…(truncated)" */
#define LAST_APPLIED		"kubectl.kubernetes.io/last-applied-configuration"

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
	double		 pc_sync_wait;
	double		 pc_delete_grace;
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
};

struct addrent;

/* One pod's claim on one address. */
struct podaddr {
	struct pod		*pa_pod;
	struct addrent		*pa_ent;
	TAILQ_ENTRY(podaddr)	 pa_entry;	/* in ae_claims */
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
	struct in6_addr		 p_ips[PODMETA_IPS_MAX];
	size_t			 p_nips;
	struct podaddr		 p_claims[PODMETA_IPS_MAX];
	struct pod		*p_hnext;	/* uid hash chain */
	TAILQ_ENTRY(pod)	 p_entry;	/* live list or tombstone queue */
};
TAILQ_HEAD(podlist, pod);

struct addrent {
	struct in6_addr		 ae_addr;
	struct pod		*ae_owner;
	TAILQ_HEAD(, podaddr)	 ae_claims;
	struct addrent		*ae_hnext;
};

/* proto.c: one parsed request */
struct proto_req {
	char			 pr_id[HELPER_ID_MAXLEN + 1];	/* "" if none */
	struct in6_addr		 pr_addr;		/* v4 as ::ffff:a.b.c.d */
	const char		*pr_error;		/* NULL if valid */
};

/* proto.c: a growable output buffer */
struct pbuf {
	char			*pb_data;
	size_t			 pb_len;
	size_t			 pb_cap;
};

enum proto_answer {
	PROTO_HIT,		/* pod or hostNetwork tail */
	PROTO_UNKNOWN_OK,
	PROTO_UNKNOWN_ERR,
	PROTO_BH,		/* message: pr_error or the given text */
	PROTO_BAD		/* ERR message=pr_error */
};

/* ----------------------------------------------------------- prototypes */

/* podmeta.c */
extern struct podmeta_conf	 conf;
extern struct podmeta_stats	 stats;
extern struct ev_loop		*loop;
void	 podmeta_synced(void);
void	 podmeta_stats_log(const char *);

/* proto.c */
int	 proto_parse(char *, size_t, struct proto_req *);
int	 proto_reply(struct pbuf *, const struct proto_req *,
	    enum proto_answer, const char *, size_t);
void	 proto_addr_str(const struct in6_addr *, char *, size_t);
void	 pbuf_free(struct pbuf *);

/* index.c */
void	 index_init(void);
int	 index_upsert(struct pod *);
void	 index_delete(const char *);
void	 index_list_begin(void);
void	 index_list_end(void);
const struct pod *index_lookup(const struct in6_addr *);
void	 index_expire(double);
void	 index_counts(size_t *, size_t *, size_t *);
void	 index_clear(void);
void	 pod_free(struct pod *);

/* render.c */
int	 render_init(const char *, const char *, size_t);
struct pod *render_pod(json_t *);
const char *render_uid(json_t *);
const char *render_rv(json_t *);
void	 render_free(void);

/* kube.c */
int	 kube_init(void);
int	 kube_token_reload(void);
int	 kube_easy_setup(void *, const char *);
void	*kube_headers(void);
const char *kube_server(void);
void	 kube_free(void);

/* watch.c */
int	 watch_start(void);
void	 watch_stop(void);

/* source.c */
int	 source_start(const char *);
void	 source_stop(void);

#endif
