/* connectd.h: connectd's private header: types, then prototypes grouped by file */
#ifndef CONNECTD_H
#define CONNECTD_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <ev.h>

#include "diag.h"
#include "timefmt.h"
#include "util.h"

#define CONNECTD_CONF		SYSCONFDIR "/connectd/connectd.conf"
#define HOST_NAME_MAX_LEN	255
#define AUTHORITY_MAX_LEN	(HOST_NAME_MAX_LEN + 8)	/* [host]:65535 */
#define USER_AGENT_MAX_LEN	512
#define REQUEST_HEADER_MAX	(16 * 1024)
#define ERRBUF_LEN		512

/* ---------------------------------------------------------------- types */

/*
 * http.c: the result of parsing one request head.  Every pointer points
 * into the caller's buffer; nothing is allocated.
 */
struct http_request {
	const char	*hr_method;		/* NULL if unparseable */
	size_t		 hr_method_len;
	const char	*hr_target;		/* request-target as sent */
	size_t		 hr_target_len;
	const char	*hr_host;		/* without [] for IPv6 */
	size_t		 hr_host_len;
	uint16_t	 hr_port;
	int		 hr_version;		/* 10, 11; 0 if unknown */
	const char	*hr_user_agent;		/* NULL if absent */
	size_t		 hr_user_agent_len;
	size_t		 hr_head_len;		/* bytes of the head incl. CRLFCRLF */
	int		 hr_status;		/* on error: 400, 405, 431, 505 */
	const char	*hr_error;		/* on error: static text */
};

enum http_parse {
	HTTP_PARSE_ERROR = -1,
	HTTP_PARSE_INCOMPLETE = 0,
	HTTP_PARSE_DONE = 1
};

/* logformat.c: a compiled log template (opaque) */
struct logformat;

/* sink.c: a log output with its own writer thread (opaque) */
struct sink;

/* acl.c and helper.c keep their configuration in these (opaque to conf.c) */
struct acl_conf;
struct helper_conf;

/* conf.c */
struct listen_conf {
	struct sockaddr_storage	 lc_addr;
	socklen_t		 lc_addrlen;
	char			*lc_text;	/* as written, for messages */
	TAILQ_ENTRY(listen_conf) lc_entry;
};

struct logformat_conf {
	char			*lfc_name;
	char			*lfc_template;	/* as written, for conf_dump() */
	struct logformat	*lfc_format;
	TAILQ_ENTRY(logformat_conf) lfc_entry;
};

struct access_log_conf {
	char			*alc_path;	/* after "stdio:" */
	const struct logformat	*alc_format;	/* owned by conf or built in */
	size_t			 alc_buffer_size; /* queue bound, bytes */
	struct sink		*alc_sink;	/* set by accesslog_open() */
	TAILQ_ENTRY(access_log_conf) alc_entry;
};

struct conf {
	int			 c_refcnt;
	char			*c_path;
	TAILQ_HEAD(, listen_conf) c_listens;
	TAILQ_HEAD(, logformat_conf) c_logformats;
	TAILQ_HEAD(, access_log_conf) c_access_logs;
	double			 c_connect_timeout;
	double			 c_read_timeout;
	double			 c_request_header_timeout;
	double			 c_half_closed_timeout;
	double			 c_shutdown_lifetime;
	size_t			 c_request_header_max_size;
	char			*c_dns_nameservers;	/* "ip,ip" or NULL */
	char			*c_hosts_file;		/* NULL: /etc/hosts */
	struct acl_conf		*c_acl;		/* acl.c: acls, http_access */
	double			 c_client_lifetime;
	unsigned		 c_max_connections;	/* 0: from the fd limit */
	unsigned		 c_client_ip_max_connections; /* 0: none */
	char			*c_effective_user;	/* NULL: stay */
	struct helper_conf	*c_helpers;	/* helper.c: external_acl_type */
};

/*
 * One log record per tunnel or refused request.  conn.c fills it in as
 * the tunnel goes; accesslog.c renders it at close.  Owned strings are
 * NUL-terminated copies of what the client sent (may hold any byte but
 * NUL; renderers must escape).
 */
struct logrec {
	uint64_t		 lr_id;
	double			 lr_start;	/* wall clock, seconds */
	double			 lr_end;
	struct sockaddr_storage	 lr_client;
	struct sockaddr_storage	 lr_local;	/* the listening address */
	struct sockaddr_storage	 lr_server;
	int			 lr_has_server;
	char			*lr_method;	/* NULL if never parsed */
	char			*lr_authority;	/* request-target as sent */
	char			*lr_host;
	int			 lr_port;	/* 0 if unknown */
	char			*lr_user_agent;
	int			 lr_status;	/* HTTP status sent; 0 if none */
	uint64_t		 lr_bytes_up;	/* payload client -> server */
	uint64_t		 lr_bytes_down;	/* payload server -> client */
	uint64_t		 lr_head_in;	/* request head bytes read */
	uint64_t		 lr_reply_out;	/* 200 or error reply bytes written */
	const char		*lr_close;	/* close reason, static */
	char			*lr_detail;	/* optional human text, e.g. errno */
	/* filled by later features; NULL/0 until then */
	char			*lr_pod;	/* helper's log= value, raw */
	const char		*lr_pod_error;
	char			*lr_rule;
};

/* conn.c */
enum conn_state {
	CONN_HEAD,		/* reading the request head */
	CONN_RESOLVE,		/* waiting for DNS */
	CONN_CONNECT,		/* trying the resolved addresses in turn */
	CONN_RELAY,		/* tunnel established, bytes flow */
	CONN_REPLY,		/* writing an error reply, then close */
	CONN_CLOSED
};

/* a pending write: only allocated while a peer cannot take more */
struct relay_buf {
	size_t			 rb_off;
	size_t			 rb_len;
	size_t			 rb_cap;
	char			 rb_data[];
};

struct worker;
struct resolve_query;
struct limit_table;
struct conn_helper;

struct conn {
	uint64_t		 c_id;
	enum conn_state		 c_state;
	struct worker		*c_worker;
	struct conf		*c_conf;	/* reference held */
	int			 c_cfd;		/* client */
	int			 c_sfd;		/* server */
	ev_io			 c_cread;
	ev_io			 c_cwrite;
	ev_io			 c_sread;
	ev_io			 c_swrite;
	ev_timer		 c_timer;
	ev_tstamp		 c_activity;	/* last byte moved (lazy timer) */
	ev_tstamp		 c_state_since;
	char			*c_head;	/* request head, freed once parsed */
	size_t			 c_head_len;
	size_t			 c_head_cap;
	struct relay_buf	*c_up;		/* waiting to be written to server */
	struct relay_buf	*c_down;	/* waiting to be written to client */
	int			 c_flags;
#define CONN_CLIENT_EOF		0x01	/* read 0 from the client */
#define CONN_SERVER_EOF		0x02	/* read 0 from the server */
#define CONN_SERVER_SHUT	0x04	/* shutdown(server, SHUT_WR) done */
#define CONN_CLIENT_SHUT	0x08	/* shutdown(client, SHUT_WR) done */
#define CONN_DENIED		0x10	/* the rules said no */
	struct resolve_query	*c_query;
	struct sockaddr_storage	*c_addrs;
	size_t			 c_naddrs;
	size_t			 c_addri;
	int			 c_connect_errno;
	ev_tstamp		 c_half_since;	/* first EOF in the relay */
	const char		*c_eof_reason;	/* the side that ended first */
	const char		*c_reason;	/* close reason after an error reply */
	struct logrec		 c_rec;
	struct conn_helper	*c_helper;	/* helper.c: lookups of this conn */
	TAILQ_ENTRY(conn)	 c_entry;
};

/* listener.c */
struct listener {
	int			 l_fd;
	struct sockaddr_storage	 l_addr;
	socklen_t		 l_addrlen;
	char			*l_text;
	ev_io			 l_io;
	struct worker		*l_worker;
	int			 l_mark;	/* reload bookkeeping */
	int			 l_wildcard;	/* bound to 0.0.0.0 or [::] */
	TAILQ_ENTRY(listener)	 l_entry;
};

struct stats {
	uint64_t		 st_accepted;
	uint64_t		 st_active;
	uint64_t		 st_tunnels;	/* 200 sent */
	uint64_t		 st_refused;	/* error replies */
	uint64_t		 st_accept_errors;
	uint64_t		 st_bytes_up;
	uint64_t		 st_bytes_down;
};

/*
 * One event loop and everything that lives on it.  There is one worker
 * today; the type exists so that several loops can come later.
 */
struct worker {
	struct ev_loop		*w_loop;
	struct conf		*w_conf;	/* current configuration */
	char			*w_scratch;	/* relay read buffer, shared */
	size_t			 w_scratch_len;
	void			*w_resolver;	/* resolve.c state */
	TAILQ_HEAD(, conn)	 w_conns;
	TAILQ_HEAD(, listener)	 w_listeners;
	int			 w_spare_fd;	/* for EMFILE shedding */
	ev_tstamp		 w_accept_warned;
	int			 w_accept_paused;
#define LISTEN_PAUSE_LIMIT	0x01	/* max_connections reached */
#define LISTEN_PAUSE_NOFD	0x02	/* EMFILE/ENFILE: a short rest */
	ev_timer		 w_accept_timer;	/* ends LISTEN_PAUSE_NOFD */
	unsigned		 w_auto_max;	/* max_connections from the fd limit */
	struct limit_table	*w_clients;	/* limit.c: conns by client IP */
	int			 w_stopping;
	uint64_t		 w_next_id;
	struct stats		 w_stats;
};

/* ----------------------------------------------------------- prototypes */

/* connectd.c */
extern struct worker	*worker_main;

/* conf.c */
int	 conf_load(const char *, struct conf **, char *, size_t);
int	 conf_load_buffer(const char *, const char *, size_t, struct conf **,
	    char *, size_t);
struct conf *conf_ref(struct conf *);
void	 conf_unref(struct conf *);
int	 conf_parse_time(const char *, double *);
int	 conf_parse_addrport(const char *, struct sockaddr_storage *,
	    socklen_t *, char *, size_t);
void	 conf_dump(const struct conf *, FILE *);

/*
 * Directives that belong to another module are parsed there: argv[0] is
 * the directive's name; a module writes the message to err and conf.c
 * adds FILE:LINE.  Each module also checks the whole file at its end,
 * dumps its lines for -t -v, and frees its part of a conf.
 */
int	 acl_conf_directive(struct conf *, int, char **, char *, size_t);
int	 acl_conf_finish(struct conf *, char *, size_t);
void	 acl_conf_dump(const struct conf *, FILE *);
void	 acl_conf_free(struct conf *);
int	 helper_conf_directive(struct conf *, int, char **, char *, size_t);
int	 helper_conf_finish(struct conf *, char *, size_t);
void	 helper_conf_dump(const struct conf *, FILE *);
void	 helper_conf_free(struct conf *);

/* acl.c */
enum acl_verdict {
	ACL_ALLOW,
	ACL_DENY,
	ACL_WAIT	/* needs the addresses or a helper answer first */
};
int	 acl_check(struct conn *, const char **);

/* helper.c */
void	 helper_conn_start(struct conn *);
int	 helper_conn_finish(struct conn *);
/*
 * For an `external` acl: the answer of external_acl_type name for this
 * connection, with the acl's arguments as %DATA (NULL: "-").  Returns
 * 1 (OK), 0 (ERR, BH, or no answer in time) or -1 while it is on its way;
 * conn_policy_wakeup() is called when it arrives.
 */
int	 helper_conn_answer(struct conn *, const char *, const char *);
/* for acl.c at configuration time: is external_acl_type name defined? */
int	 helper_conf_exists(const struct conf *, const char *);
/* connectd.c: start or keep pools for a configuration now in force */
void	 helper_sync(struct worker *, struct conf *);
void	 helper_shutdown(struct worker *);
void	 helper_stats_log(void);

/* http.c */
enum http_parse http_parse_request(const char *, size_t, size_t,
	    struct http_request *);
int	 http_reply_error(int, char *, size_t);
const char *http_status_text(int);

/* listener.c */
int	 listener_sync(struct worker *, struct conf *, char *, size_t);
void	 listener_limit(struct worker *);
void	 listener_pause(struct worker *);
void	 listener_resume(struct worker *);
void	 listener_close_all(struct worker *);

/* conn.c */
void	 conn_accept(struct worker *, int, const struct sockaddr_storage *,
	    const struct sockaddr_storage *);
void	 conn_close(struct conn *, const char *);
void	 conn_set_state(struct conn *, enum conn_state);
int	 conn_policy(struct conn *);
void	 conn_policy_wakeup(struct conn *);
void	 conn_timer_arm(struct conn *);
void	 conn_shutdown_all(struct worker *);

/* limit.c */
unsigned limit_client_add(struct worker *, const struct sockaddr_storage *);
void	 limit_client_del(struct worker *, const struct sockaddr_storage *);
void	 limit_free(struct worker *);
unsigned limit_auto_max(void);
int	 limit_drop_privileges(const struct conf *, char *, size_t);

/* relay.c */
void	 relay_start(struct conn *);
void	 relay_free_buffers(struct conn *);

/* resolve.c */
typedef void (*resolve_cb)(void *, int, const struct sockaddr_storage *,
	    size_t, const char *);
int	 resolve_init(struct worker *, const struct conf *, char *, size_t);
void	 resolve_reconfigure(struct worker *, const struct conf *);
void	 resolve_free(struct worker *);
struct resolve_query *resolve_start(struct worker *, const char *, uint16_t,
	    resolve_cb, void *);
void	 resolve_cancel(struct resolve_query *);

/* accesslog.c */
int	 accesslog_open(struct conf *, struct conf *, char *, size_t);
void	 accesslog_close(struct conf *);
void	 accesslog_write(struct conf *, const struct logrec *);

/* logformat.c */
struct logformat *logformat_compile(const char *, const char *, char *,
	    size_t);
const struct logformat *logformat_builtin(const char *);
void	 logformat_free(struct logformat *);
const char *logformat_name(const struct logformat *);
char	*logformat_render(const struct logformat *, const struct logrec *,
	    size_t *);
void	 logrec_clear(struct logrec *);

/* sink.c */
struct sink *sink_open(const char *, size_t, char *, size_t);
void	 sink_release(struct sink *);
void	 sink_push(struct sink *, char *, size_t);
void	 sink_kick_all(void);
void	 sink_reopen_all(void);
void	 sink_flush_all(double);
void	 sink_stats_log(void);

#endif
