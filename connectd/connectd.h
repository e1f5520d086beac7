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
#include "addr.h"
#include "buf.h"
#include "timefmt.h"
#include "tlshello.h"
#include "util.h"

#define CONNECTD_CONF		SYSCONFDIR "/connectd/connectd.conf"
#define HOST_NAME_MAX_LEN	255
#define AUTHORITY_MAX_LEN	(HOST_NAME_MAX_LEN + 8)	/* [host]:65535 */
#define USER_AGENT_MAX_LEN	512
#define USER_MAX_LEN		128	/* a Basic user name kept for the log */
#define HTTP_CRED_MAX		769	/* a decoded Basic "user:pass", NUL */
#define REQUEST_HEADER_MAX	(16 * 1024)
#define ERRBUF_LEN		512
#define LOGREC_INSTANCE_LEN	17	/* 16 hex digits and the NUL */
#define WORKERS_MAX		256	/* `workers N`: the most N */
#define LOGREC_POD_RAW_MAX	1024	/* pod_raw is cut here (bytes) */

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
	/* the first Proxy-Authorization's value, NULL if absent: a
	 * credential, never logged or passed on (http_basic_decode()) */
	const char	*hr_proxy_auth;
	size_t		 hr_proxy_auth_len;
	size_t		 hr_head_len;		/* bytes of the head incl. CRLFCRLF */
	int		 hr_status;		/* on error: 400, 431, 501, 505 */
	const char	*hr_error;		/* on error: static text */
	/* a request to forward (absolute-form, not CONNECT) */
	int		 hr_forward;		/* http://host[:port]/path */
	const char	*hr_path;		/* path and query; "" for "/" */
	size_t		 hr_path_len;
	int64_t		 hr_clen;		/* Content-Length; -1: none */
	int		 hr_chunked;		/* Transfer-Encoding: chunked */
	int		 hr_close;		/* no other request after this */
};

enum http_parse {
	HTTP_PARSE_ERROR = -1,
	HTTP_PARSE_INCOMPLETE = 0,
	HTTP_PARSE_DONE = 1
};

/*
 * http.c: where the parser is in a head that arrives in pieces, so that
 * each read costs what it adds, not the whole head again.  Zero it
 * before the first call.  What complete lines gave is kept as offsets,
 * since the buffer may move as it grows.
 */
struct http_field {
	size_t		 hf_off;
	size_t		 hf_len;
	int		 hf_set;
};

#define HTTP_HEADERS_MAX	100

struct http_head {
	size_t		 hh_pos;	/* start of the first line not parsed */
	size_t		 hh_scan;	/* bytes after it known to hold no LF */
	size_t		 hh_nheaders;
	int		 hh_line1;	/* the request line is parsed */
	struct http_field hh_method;
	struct http_field hh_target;
	struct http_field hh_host;
	struct http_field hh_user_agent;
	struct http_field hh_proxy_auth;
	struct http_field hh_path;
	uint16_t	 hh_port;
	int		 hh_version;
	int		 hh_forward;
	int64_t		 hh_clen;	/* -1: none */
	int		 hh_chunked;
	int		 hh_close;	/* Connection: close, or 1.0 without */
	int		 hh_keepalive;	/* Connection: keep-alive */
	int		 hh_seen;	/* HH_* below */
#define HH_HOST		0x01
#define HH_CLEN		0x02
#define HH_TE		0x04
	struct http_field hh_lines[HTTP_HEADERS_MAX];	/* "name: value" */
};

/* httpmsg.c: how a message body is delimited (RFC 9112 6.3) */
enum http_body_kind {
	HTTP_BODY_NONE,
	HTTP_BODY_LENGTH,	/* Content-Length */
	HTTP_BODY_CHUNKED,
	HTTP_BODY_CLOSE		/* until the server closes */
};

/* httpmsg.c: a response head; pointers into the caller's buffer */
struct http_response {
	int		 rs_version;	/* 10, 11 */
	int		 rs_status;
	size_t		 rs_line_len;	/* the status line, without its end */
	size_t		 rs_head_len;	/* the whole head, empty line included */
	size_t		 rs_nfields;
	enum http_body_kind rs_body;
	int64_t		 rs_clen;	/* -1: none */
	int		 rs_chunked;
	int		 rs_close;	/* the server closes after it */
	const char	*rs_type;	/* Content-Type, or NULL */
	size_t		 rs_type_len;
	const char	*rs_error;	/* why it was refused */
};

/* httpmsg.c: a body's framing as its bytes pass */
struct http_body {
	enum http_body_kind hb_kind;
	uint64_t	 hb_left;	/* of the length, or of the chunk */
	int		 hb_done;
	enum {
		HB_SIZE, HB_EXT, HB_SIZE_LF, HB_DATA, HB_DATA_CR, HB_DATA_LF,
		HB_TRAILER
	}		 hb_state;
	int		 hb_digits;
	size_t		 hb_count;	/* extension or trailer bytes */
	size_t		 hb_line;	/* bytes of the trailer line */
	int		 hb_decode;	/* report chunk data runs */
	size_t		 hb_data;	/* the last run, in the last input */
	size_t		 hb_data_len;
};

/* logformat.c: a compiled log template (opaque) */
struct logformat;

/* sink.c: a log output with its own writer thread (opaque) */
struct sink;

/*
 * sink.c: an output's counters (sink_stats()), for SIGUSR1 and a metrics
 * exporter.  They count from the output's opening: an output kept across
 * a reload (same destination) keeps counting, a new one starts at zero.
 * Every line pushed ends up in exactly one of written, dropped, errors,
 * or is still queued.
 */
struct sink_counters {
	uint64_t		 sc_written;	/* lines written; TCP: those the
						   receiver's TCP acknowledged */
	uint64_t		 sc_dropped;	/* queue full, too big, or given up
						   at exit */
	uint64_t		 sc_errors;	/* lines lost to write errors */
	uint64_t		 sc_truncated;	/* shortened to fit a datagram
						   (also counted once written) */
	uint64_t		 sc_reconnects;	/* connections after the first */
	uint64_t		 sc_connect_failures; /* attempts that failed and
						   connections that broke */
	size_t			 sc_queued;	/* lines waiting, or in flight */
	size_t			 sc_queued_bytes;
	int			 sc_connected;	/* network: a connection is up;
						   a file: 1 */
};

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

/* conf.c: where an access_log line writes: Squid's module names */
enum access_log_kind {
	ALK_STDIO,		/* stdio:PATH: a file, a FIFO, standard output */
	ALK_TCP,		/* tcp://HOST:PORT: lines, newline-delimited */
	ALK_UDP,		/* udp://HOST:PORT: one line per datagram */
	ALK_SYSLOG		/* syslog:FACILITY.PRIORITY: RFC 5424 datagrams */
};

struct access_log_conf {
	enum access_log_kind	 alc_kind;
	char			*alc_name;	/* canonical module:place */
	char			*alc_path;	/* stdio: the file; syslog: the
						   unix socket, NULL: /dev/log */
	char			*alc_host;	/* tcp, udp; syslog over UDP */
	char			*alc_port;	/* its port, as text */
	int			 alc_facility;	/* syslog: RFC 5424 code, 0..23 */
	int			 alc_severity;	/* syslog: 0..7 */
	size_t			 alc_datagram_size; /* udp, syslog: bytes a
						   datagram may hold */
	const struct logformat	*alc_format;	/* owned by conf or built in */
	size_t			 alc_buffer_size; /* queue bound, bytes */
	size_t			 alc_lineno;	/* 0: the default log */
	char			*alc_line;	/* as written, for messages */
	struct sink		*alc_sink;	/* set by accesslog_open() */
	TAILQ_ENTRY(access_log_conf) alc_entry;
};

struct conf {
	int			 c_refcnt;	/* atomic: any worker's thread */
	struct conf		*c_dead_next;	/* worker.c: freed at turn end */
	char			*c_path;
	TAILQ_HEAD(, listen_conf) c_listens;
	TAILQ_HEAD(, logformat_conf) c_logformats;
	TAILQ_HEAD(, access_log_conf) c_access_logs;
	double			 c_connect_timeout;
	double			 c_read_timeout;
	double			 c_request_header_timeout;
	double			 c_half_closed_timeout;
	double			 c_shutdown_lifetime;
	double			 c_access_log_interval;	/* 0: no interim records */
	char			*c_visible_hostname;	/* the line's "proxy" */
	size_t			 c_request_header_max_size;
	char			*c_dns_nameservers;	/* "ip,ip" or NULL */
	char			*c_hosts_file;		/* NULL: /etc/hosts */
	struct acl_conf		*c_acl;		/* acl.c: acls, http_access */
	double			 c_client_lifetime;
	double			 c_client_idle_pconn_timeout;
	double			 c_server_idle_pconn_timeout;
	int			 c_strip_query_terms;
	int			 c_tls_peek;	/* peek.c: read the hellos */
	double			 c_tls_peek_timeout; /* ... for at most this */
	int			 c_tls_hello_required; /* a held tunnel with no
						   complete hello is denied */
	int			 c_relay_splice; /* relay.c: splice(2) bulk */
	size_t			 c_relay_splice_min; /* ... once a direction
						   carried this many bytes */
	unsigned		 c_relay_splice_pipes; /* the worker's pool bound */
	unsigned		 c_max_connections;	/* 0: from the fd limit */
	unsigned		 c_client_ip_max_connections; /* 0: none */
	unsigned		 c_workers;	/* event loops; 0: auto */
	char			*c_effective_user;	/* NULL: stay */
	struct helper_conf	*c_helpers;	/* helper.c: external_acl_type */
	struct listen_conf	*c_metrics;	/* metrics_port; NULL: none */
};

/*
 * logrec.c: why a tunnel or request ended; the log line's "close" field.
 * conn.c picks one, relay.c names the side, logformat.c prints the name.
 */
enum close_reason {
	CLOSE_NONE,		/* still open */
	CLOSE_CLIENT_EOF,
	CLOSE_SERVER_EOF,
	CLOSE_IDLE_TIMEOUT,
	CLOSE_CLIENT_RESET,
	CLOSE_SERVER_RESET,
	CLOSE_DNS_FAILED,
	CLOSE_CONNECT_FAILED,
	CLOSE_CONNECT_TIMEOUT,
	CLOSE_BAD_REQUEST,
	CLOSE_HEADER_TIMEOUT,
	CLOSE_DENIED,
	CLOSE_LIMIT,
	CLOSE_LIFETIME,
	CLOSE_SHUTDOWN,
	CLOSE_DONE		/* a forwarded request and its response ended */
};

/*
 * peek.c: how the read of a tunnel's ClientHello ended, the "hello" of
 * the line's "tls" object; 0 while it is being read.
 */
enum peek_hello {
	PEEK_HELLO_NONE,
	PEEK_HELLO_COMPLETE,
	PEEK_HELLO_MALFORMED,
	PEEK_HELLO_TRUNCATED,	/* the stream ended inside it */
	PEEK_HELLO_TOOBIG,
	PEEK_HELLO_TIMEOUT	/* tls_peek_timeout ran out inside it */
};

/* peek.c: the SNI against the CONNECT host, "sni_match" */
enum peek_match {
	PEEK_MATCH_NONE,	/* not known: no complete hello */
	PEEK_MATCH_MATCH,
	PEEK_MATCH_MISMATCH,
	PEEK_MATCH_NO_SNI,
	PEEK_MATCH_ECH_OUTER,
	PEEK_MATCH_IP_TARGET
};
#define PEEK_NMATCH		6
#define PEEK_NHELLO		6

/*
 * peek.c: what a tunnel's hellos said, in compact form: one allocation
 * of exactly the size it needs, made once the ClientHello has been read
 * (or the ServerHello, should it come first), so that a tunnel idle
 * after its hello holds this and no reader.  The SNI and the ALPN list
 * are the client's bytes, any of them (renderers escape).
 */
struct logtls {
	uint8_t			 lt_hello;	/* enum peek_hello */
	uint8_t			 lt_match;	/* enum peek_match */
	uint8_t			 lt_ech;
	uint8_t			 lt_pq;
	uint8_t			 lt_has_sni;	/* kept: not too long */
	uint8_t			 lt_nversions;
	uint8_t			 lt_server;	/* a ServerHello was read */
	uint8_t			 lt_hrr;	/* ... a HelloRetryRequest */
	uint16_t		 lt_legacy;	/* ClientHello legacy_version */
	uint16_t		 lt_versions[TLSHELLO_VERSIONS_MAX]; /* offered */
	uint16_t		 lt_version;	/* negotiated (lt_server) */
	uint16_t		 lt_cipher;	/* chosen (lt_server) */
	uint32_t		 lt_hello_bytes;
	char			 lt_ja4[TLSHELLO_JA4_LEN + 1]; /* "": none */
	uint16_t		 lt_sni_len;
	uint16_t		 lt_alpn_len;	/* wire format: length, bytes */
	uint8_t			 lt_data[];	/* the SNI, then the ALPN list */
};

/*
 * The line's "policy" (issue 15): what an egress policy helper said in
 * its policy= note, normalized once when the answer arrived
 * (helper_cache.c): exactly these members, each a string or null, so
 * that the field has one shape whatever a helper sends.  One
 * allocation with the strings inside it (offsets, not pointers), so
 * that a copy is one memcpy (logpolicy_dup()).
 */
enum logpolicy_member {
	LP_MODE,		/* enforce, report, off */
	LP_VERDICT,		/* allow, deny, would_deny */
	LP_RULE,		/* the allow-list entry that matched */
	LP_FROM,		/* pod, namespace */
	LP_REASON,		/* host_not_listed, sni_not_listed, no_pod */
	LP_NMEMBERS
};
#define LOGPOLICY_VALUE_MAX	512	/* bytes kept of one member */
#define LOGPOLICY_NULL		UINT16_MAX
struct logpolicy {
	size_t			 lp_size;	/* of the allocation */
	uint16_t		 lp_off[LP_NMEMBERS]; /* into lp_data, or
						   LOGPOLICY_NULL */
	char			 lp_data[];
};

/*
 * One log record per tunnel or refused request: what its line says.
 * conn.c fills it in as the tunnel goes and hands it to accesslog.c at
 * close; logformat.c renders it.  Owned strings are NUL-terminated
 * copies of what the client sent (may hold any byte but NUL; renderers
 * must escape).
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
	char			*lr_user;	/* Proxy-Authorization: Basic's
						   user name (%un, "user") */
	int			 lr_status;	/* HTTP status sent; 0 if none */
	uint64_t		 lr_bytes_up;	/* payload client -> server */
	uint64_t		 lr_bytes_down;	/* payload server -> client */
	uint64_t		 lr_head_in;	/* request head bytes read */
	uint64_t		 lr_reply_out;	/* 200 or error reply bytes written */
	enum close_reason	 lr_close;
	char			*lr_detail;	/* optional human text, e.g. errno */
	char			*lr_pod;	/* the helper's log= value */
	int			 lr_pod_json;	/* lr_pod is one valid JSON value */
	const char		*lr_pod_error;	/* no pod from the helpers: why */
	/*
	 * "policy": from the first answer with policy= among the external
	 * acls the rules asked, else among the line's lookups (owned); else,
	 * when an acl's lookup with on_failure= got no answer, the verdict
	 * that stood in ("fail_open", "fail_closed") and why ("timeout"...)
	 */
	struct logpolicy	*lr_policy;
	const char		*lr_policy_fail;	/* static */
	const char		*lr_policy_why;		/* static */
	char			*lr_rule;	/* the http_access line that denied */
	/* forwarded requests (absolute-form), not tunnels */
	const char		*lr_scheme;	/* "http", or NULL for CONNECT */
	char			*lr_url;	/* scheme://host:port/path */
	int			 lr_http_status; /* the origin's; 0 if none */
	char			*lr_content_type; /* the response's */
	unsigned		 lr_nreq;	/* requests on the connection */
	/* who wrote the line: set by accesslog_submit() (not owned) */
	const char		*lr_proxy;	/* visible_hostname */
	const char		*lr_instance;	/* the worker's random, in hex */
	/* the lines of one tunnel or request (access_log_interval) */
	int			 lr_interim;	/* an interim record, not the end */
	unsigned		 lr_seq;	/* its lines written before this */
	uint64_t		 lr_up_logged;	/* bytes_up as the last line said */
	uint64_t		 lr_down_logged;
	/* peek.c: what the tunnel's first bytes were */
	uint8_t			 lr_proto;	/* enum tlshello_proto of the
						   client's; NONE: no byte */
	struct logtls		*lr_tls;	/* owned; NULL: no TLS hello read */
};

/* acl.c: what the access rules decide */
enum acl_verdict {
	ACL_WAIT,	/* undecided: needs the addresses or a helper answer */
	ACL_ALLOW,
	ACL_DENY,
	ACL_HOLD	/* undecided until the ClientHello is read */
};

/*
 * acl.c: what the rules look at, filled in by the caller.  ar_addrs is
 * NULL until the name is resolved.  ar_external asks external_acl_type
 * helper for the acl's arguments (data NULL: none) and returns 1 (OK),
 * 0 (ERR, BH or no answer) or -1 (on its way: the caller asks again
 * when it arrives).
 */
struct acl_request {
	const struct sockaddr_storage *ar_client;
	const char		*ar_method;
	const char		*ar_scheme;	/* "http"; NULL for CONNECT */
	const char		*ar_host;
	int			 ar_port;
	const struct sockaddr_storage *ar_addrs;
	size_t			 ar_naddrs;
	const struct in6_addr	*ar_self;	/* this host's, sorted (to_self) */
	size_t			 ar_nself;
	int			(*ar_external)(void *, const char *helper,
				    const char *data);
	void			*ar_arg;
	/* Proxy-Authorization: Basic, decoded ("user:password"; NULL: none,
	 * or no auth_param) and its user name, for proxy_auth acls */
	const char		*ar_cred;
	const char		*ar_user;
	/* the ClientHello (ssl::server_name, tls_sni_match): ar_hello 0
	 * while it may still come; then ar_sni (NULL: none, or no hello)
	 * and ar_sni_match (enum peek_match; PEEK_MATCH_NONE: no hello) */
	int			 ar_hello;
	const char		*ar_sni;
	int			 ar_sni_match;
};

/* conn.c */
enum conn_state {
	CONN_HEAD,		/* reading the request head */
	CONN_DECIDE,		/* the rules wait for a helper or the addresses */
	CONN_RESOLVE,		/* allowed; waiting for the addresses */
	CONN_CONNECT,		/* trying the resolved addresses in turn */
	CONN_RELAY,		/* tunnel established, bytes flow */
	CONN_FORWARD,		/* a request forwarded, its response back */
	CONN_REPLY,		/* writing an error reply, then a short linger */
	CONN_CLOSED		/* logged; freed at the end of the loop turn */
};

/* a pending write: only allocated while a peer cannot take more */
struct relay_buf {
	size_t			 rb_off;
	size_t			 rb_len;
	size_t			 rb_cap;
	size_t			 rb_reply;	/* bytes at rb_off that are our
						   own reply, not the tunnel's */
	char			 rb_data[];
};

/*
 * relay.c: a pipe for splice(2), from the worker's pool (struct
 * relay_pool).  A tunnel direction holds one only while bytes sit in it.
 */
struct relay_pipe {
	int			 rp_fd[2];	/* read end, write end */
	size_t			 rp_len;	/* bytes in it */
	struct relay_pipe	*rp_next;	/* the pool's free list */
};

/* relay.c: the worker's pipes, bounded by relay_splice_pipes */
struct relay_pool {
	struct relay_pipe	*rpl_free;	/* empty, ready */
	unsigned		 rpl_nfree;
	unsigned		 rpl_used;	/* held by tunnels now */
	uint64_t		 rpl_bytes;	/* moved by splice, to the
						   destination */
	uint64_t		 rpl_tunnels;	/* tunnels that spliced a byte */
	uint64_t		 rpl_exhausted;	/* reads that wanted a pipe and
						   found none: copied instead */
};

struct worker;
struct resolve_query;
struct limit_table;
struct helper_log;
struct helper_wait;
struct helper_pools;
struct conn_head;
struct fwd;
TAILQ_HEAD(helper_waits, helper_wait);

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
	ev_tstamp		 c_wait_since;	/* the head was complete */
	ev_tstamp		 c_born;	/* accepted */
	ev_tstamp		 c_interim_due;	/* the next interim record; 0: none */
	struct conn_head	*c_head;	/* reading the head; freed once parsed */
	struct relay_buf	*c_up;		/* waiting to be written to server */
	struct relay_buf	*c_down;	/* waiting to be written to client */
	struct relay_pipe	*c_pipe[2];	/* relay.c: up, down; held only
						   while bytes sit in it */
	struct peek		*c_peek[2];	/* peek.c: hello readers, up and
						   down, while they read */
	int			 c_flags;
#define CONN_CLIENT_EOF		0x01	/* read 0 from the client */
#define CONN_SERVER_EOF		0x02	/* read 0 from the server */
#define CONN_SERVER_SHUT	0x04	/* shutdown(server, SHUT_WR) done */
#define CONN_CLIENT_SHUT	0x08	/* shutdown(client, SHUT_WR) done */
#define CONN_ADVANCING		0x10	/* inside conn_advance() */
#define CONN_COUNTED		0x20	/* holds a slot of the limits */
#define CONN_PEEKED_UP		0x40	/* peek.c: the client's first bytes
					   were read (or are not to be) */
#define CONN_PEEKED_DOWN	0x80	/* the same for the server's */
#define CONN_HOLD		0x100	/* relay.c: the client's bytes are
					   held until its hello is read and
					   the rules decide (conn_hello) */
#define CONN_SPLICE_UP		0x200	/* relay.c: client -> server moves
					   by splice(2) through a pipe */
#define CONN_SPLICE_DOWN	0x400	/* the same, server -> client */
#define CONN_SPLICED		0x800	/* a byte went by splice (counted) */
#define CONN_HELLO_WAIT		0x1000	/* with CONN_HOLD: the hello is read
					   and the rules wait for a helper
					   asked with it (%ssl::>sni); the
					   client is not read meanwhile */
#define CONN_HELLO_ASKED	0x2000	/* the rules have had the hello:
					   conn_hello_decide() asks them */
	enum acl_verdict	 c_verdict;
	struct resolve_query	*c_query;
	struct sockaddr_storage	*c_addrs;
	size_t			 c_naddrs;
	size_t			 c_addri;
	int			 c_connect_errno;
	ev_tstamp		 c_half_since;	/* first EOF in the relay */
	enum close_reason	 c_eof_reason;	/* the side that ended first */
	enum close_reason	 c_reason;	/* close reason after an error reply */
	struct logrec		*c_rec;		/* handed to accesslog.c at close */
	struct helper_log	*c_lookups;	/* helper answers for the line */
	struct fwd		*c_fwd;		/* forward.c: plain-HTTP requests */
	int			 c_pooled;	/* a server connection from the pool */
	unsigned		 c_nreq;	/* requests on this connection */
	struct helper_waits	 c_acl_waits;	/* helper answers for the rules */
	char			*c_cred;	/* "user:password" for auth_param
						   basic, wiped when done */
	TAILQ_ENTRY(conn)	 c_entry;	/* w_conns, then w_closed */
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

TAILQ_HEAD(listener_list, listener);

struct stats {
	uint64_t		 st_accepted;
	uint64_t		 st_active;
	uint64_t		 st_tunnels;	/* 200 sent */
	uint64_t		 st_forwarded;	/* plain-HTTP requests done */
	uint64_t		 st_refused;	/* error replies */
	uint64_t		 st_accept_errors;
	uint64_t		 st_bytes_up;
	uint64_t		 st_bytes_down;
};

/*
 * metrics.c: what /metrics reports beyond struct stats.  Histograms
 * have fixed buckets (metrics.c's table); each bucket counts the
 * observations up to its bound, and the writer adds them up, as the
 * exposition format wants (cumulative, ending with +Inf).
 */
#define METRICS_NBUCKETS	9

struct metrics_hist {
	uint64_t		 mh_bucket[METRICS_NBUCKETS];
	uint64_t		 mh_count;	/* +Inf */
	double			 mh_sum;
};

/* lines by kind, status and close reason */
struct metrics_line {
	uint8_t			 ml_kind;
	uint8_t			 ml_reason;
	uint16_t		 ml_status;
	uint64_t		 ml_count;
};

/* Kept sorted, so that the output is stable; a few dozen entries. */
struct metrics_lines {
	struct metrics_line	*mls_v;
	size_t			 mls_n;
	size_t			 mls_cap;
};

/* helper_pool.c: one external_acl_type's counts, for metrics.c */
struct helper_counts {
	uint64_t		 hm_lookups;
	uint64_t		 hm_hits;	/* answered from the cache */
	uint64_t		 hm_shared;	/* joined a lookup on its way */
	uint64_t		 hm_requests;	/* lines sent to children */
	uint64_t		 hm_ok;
	uint64_t		 hm_err;
	uint64_t		 hm_bh;
	uint64_t		 hm_timeouts;
	uint64_t		 hm_queue_full;
	uint64_t		 hm_down;
	uint64_t		 hm_malformed;
	uint64_t		 hm_restarts;
	uint64_t		 hm_queued;	/* now */
	uint64_t		 hm_running;	/* now */
};

struct metrics {
	double			 m_start;	/* wall clock, seconds */
	uint64_t		 m_empty;	/* conns that sent nothing */
	uint64_t		 m_bytes[2][2];	/* [tunnel, http][up, down] */
	uint64_t		 m_reloads;	/* SIGHUPs acted on */
	uint64_t		 m_reload_failures;
	int			 m_reload_failed; /* the last one was refused */
	uint64_t		 m_proto[6];	/* tunnel lines by lr_proto */
	uint64_t		 m_sni_match[PEEK_NMATCH]; /* by lt_match */
	uint64_t		 m_hello[PEEK_NHELLO];	/* by lt_hello */
	uint64_t		 m_holds[3];	/* conn_hello(): by HOLD_* */
#define HOLD_RELEASED		0	/* allowed: the held bytes went on */
#define HOLD_DENIED		1	/* closed, none of them sent */
#define HOLD_ABORTED		2	/* closed for another reason first */
	struct metrics_hist	 m_dns;		/* resolve.c: c-ares queries */
	struct metrics_hist	 m_connect;	/* conn.c: connect() to done */
	struct metrics_lines	*m_lines;
};

/* admin.c: a metrics_port request's method and path (no query) */
struct admin_request {
	const char		*aq_method;	/* into the caller's buffer */
	size_t			 aq_method_len;
	const char		*aq_path;
	size_t			 aq_path_len;
};

/*
 * metrics.c: what /metrics and SIGUSR1 report, taken from one worker in
 * its own thread (metrics_snapshot()) and summed by the main thread
 * (metrics_view_add()): nothing is read across threads while it moves.
 */
struct metrics_vhelper {
	char			*vh_name;
	struct helper_counts	 vh_counts;
};

struct metrics_view {
	struct stats		 v_stats;
	struct metrics		 v_m;		/* v_m.m_lines: v_lines */
	struct metrics_lines	*v_lines;
	uint64_t		 v_states[CONN_CLOSED];
	uint64_t		 v_tunnels;	/* in CONN_RELAY */
	uint64_t		 v_peek;	/* hello readers allocated */
	uint64_t		 v_parked;
	struct metrics_vhelper	*v_helpers;
	size_t			 v_nhelpers;
	char			 v_unready[128]; /* why /readyz says 503;
						   "": ready */
	uint64_t		 v_accepted[WORKERS_MAX]; /* by worker */
	unsigned		 v_nworkers;
	struct relay_pool	 v_pipes;	/* the counters (rpl_free NULL) */
};

/*
 * One event loop and everything that lives on it.  With `workers N`
 * there are N, each in its own thread (worker 0 in the main thread);
 * every function that needs the loop's state is given the worker, and
 * nothing on a connection's path is shared with another worker.
 */
struct logpark;
struct ifaddr_set;
struct pconn_pool;
struct admin;
struct wgroup;
struct sink_stage;
struct worker {
	struct ev_loop		*w_loop;
	struct conf		*w_conf;	/* current configuration */
	char			*w_scratch;	/* relay read buffer, shared */
	size_t			 w_scratch_len;
	void			*w_resolver;	/* resolve.c state */
	TAILQ_HEAD(, conn)	 w_conns;
	TAILQ_HEAD(, conn)	 w_closed;	/* freed at the end of the turn */
	TAILQ_HEAD(, listener)	 w_listeners;
	int			 w_spare_fd;	/* for EMFILE shedding */
	ev_tstamp		 w_accept_warned;
	int			 w_accept_paused;
#define LISTEN_PAUSE_LIMIT	0x01	/* max_connections reached */
#define LISTEN_PAUSE_NOFD	0x02	/* EMFILE/ENFILE: a short rest */
	ev_timer		 w_accept_timer;	/* ends LISTEN_PAUSE_NOFD */
	unsigned		 w_auto_max;	/* max_connections from the fd limit */
	unsigned		 w_counted;	/* conns held against max_connections */
	struct limit_table	*w_clients;	/* limit.c: conns by client IP */
	struct helper_pools	*w_helpers;	/* helper_pool.c: running pools */
	struct ifaddr_set	*w_self;	/* ifaddr.c: this host's addresses */
	struct pconn_pool	*w_pconns;	/* forward.c: idle server conns */
	TAILQ_HEAD(, logpark)	 w_parked;	/* accesslog.c: lines that wait */
	size_t			 w_nparked;
	ev_prepare		 w_turn_end;	/* work deferred to a safe point */
	int			 w_stopping;
	int			 w_listening;	/* every http_port is bound */
	int			 w_helpers_ready; /* each helper has answered */
	uint64_t		 w_next_id;	/* the last id given, then + */
	unsigned		 w_id_step;	/* the number of workers: ids
						   stay unique in the process */
	char			 w_instance[LOGREC_INSTANCE_LEN]; /* the "uid" prefix */
	struct stats		 w_stats;
	struct metrics		 w_metrics;
	struct admin		*w_admin;	/* admin.c: metrics_port */
	/* worker.c: the other loops, and what crosses between threads */
	unsigned		 w_index;	/* 0: the main thread's */
	struct wgroup		*w_group;
	struct sink_stage	*w_stage;	/* sink.c: the turn's lines */
	struct conf		*w_dead;	/* confs to free at turn end */
	ev_async		 w_ctl;		/* messages from the main thread */
	ev_timer		 w_grace;	/* shutdown_lifetime (workers) */
	int			 w_msgs;	/* WMSG_*, under the group lock */
	struct conf		*w_newconf;	/* WMSG_CONF: a reference */
	struct listener_list	 w_addl;	/* WMSG_CONF: listeners to add */
	struct listener_list	 w_dell;	/* WMSG_CONF: addresses to drop */
	struct metrics_view	 w_view;	/* WMSG_SNAP's answer */
	int			 w_view_busy;	/* asked, not answered */
	int			 w_exited;	/* its loop ended (group lock) */
	char			 w_unready[128];
	struct relay_pool	 w_pipes;	/* relay.c: pipes for splice */
};

/* ----------------------------------------------------------- prototypes */

/* conf.c */
int	 conf_load(const char *, struct conf **, char *, size_t);
int	 conf_load_buffer(const char *, const char *, size_t, struct conf **,
	    char *, size_t);
struct conf *conf_ref(struct conf *);
/* Drop a reference; the last one frees it (see worker_conf_dead()). */
void	 conf_unref(struct conf *);
/* Close c's logs and free it, now: the main thread, no references. */
void	 conf_destroy(struct conf *);
int	 conf_parse_time(const char *, double *);
int	 conf_parse_addrport(const char *, struct sockaddr_storage *,
	    socklen_t *, char *, size_t);
void	 conf_dump(const struct conf *, FILE *);

/*
 * Directives that belong to another module are parsed there: argv[0] is
 * the directive's name; a module writes the message to err and conf.c
 * adds FILE:LINE (the line's number is passed in, for a module to keep
 * for its end-of-file checks).  Each module also checks the whole file at
 * its end, setting *lineno to the line an error is about (0: none),
 * dumps its lines for -t -v, and frees its part of a conf.
 */
int	 acl_conf_directive(struct conf *, size_t, int, char **, char *,
	    size_t);
int	 acl_conf_finish(struct conf *, size_t *, char *, size_t);
void	 acl_conf_dump(const struct conf *, FILE *);
void	 acl_conf_free(struct conf *);
int	 helper_conf_directive(struct conf *, size_t, int, char **, char *,
	    size_t);
int	 helper_conf_finish(struct conf *, size_t *, char *, size_t);
void	 helper_conf_dump(const struct conf *, FILE *);
void	 helper_conf_free(struct conf *);
/* is external_acl_type name defined in cf?  (for acl_conf_finish) */
int	 helper_conf_exists(const struct conf *, const char *);
/* 1 if the external_acl_type called name has %ssl::>sni in its FORMAT. */
int	 helper_conf_needs_hello(const struct conf *, const char *);

/* acl.c */
/*
 * The first http_access line that matches decides; *rule gets its text
 * (or the implicit rule's).  ACL_WAIT while a line above the deciding
 * one cannot be decided yet: ask again when what it waits for arrives.
 */
enum acl_verdict acl_check(const struct acl_conf *,
	    const struct acl_request *, const char **);
/* Is a denial by this rule text (acl_check's) a 407?  (proxy_auth last) */
int	 acl_challenges(const struct acl_conf *, const char *);

/* helper_pool.c: the children of each external_acl_type, per worker */
/* Start or keep pools for a configuration now in force. */
void	 helper_sync(struct worker *, struct conf *);
/* At exit: stop every child; waiters get "helper_down". */
void	 helper_shutdown(struct worker *);
void	 helper_stats_log(struct worker *);
/* At exit: fn for each helper's counts summed over the stopped workers
 * (several workers only), once; the sums are then forgotten. */
void	 helper_exit_view(void (*)(void *, const char *,
	    const struct helper_counts *), void *);
void	 metrics_view_helper(void *, const char *, const struct helper_counts *);

/*
 * For /metrics: cb(arg, name, counts) for each helper name, the
 * counts of its running pool and of the retired ones still finishing
 * added together.  A pool whose definition changed starts from zero.
 */
void	 helper_metrics(struct worker *, void (*)(void *, const char *,
	    const struct helper_counts *), void *);
/*
 * For /readyz: the name of a helper of the running configuration that
 * has not answered OK or ERR yet, or NULL once every one has.
 */
const char *helper_unanswered(struct worker *);

/* helper_cache.c */
/* Run the callbacks of lookups answered this turn (from w_turn_end). */
void	 helper_ready_run(struct worker *);

/* helper_conn.c: what connections and log lines ask of helpers */
/*
 * Start a lookup for the line (the pod field) in every running pool.
 * Returns NULL when there are none, or when the cache answered them
 * all: then rec is filled in already.  Else the caller owns the result
 * and passes it to accesslog_submit() with the record.
 */
struct helper_log *helper_log_start(struct worker *, struct logrec *);
/*
 * The line is complete but answers are on their way: how long it may
 * wait for them (0: write it now).  A line that waits is counted, and
 * cb(arg) runs at the end of each loop turn in which one arrives.
 */
double	 helper_log_park(struct helper_log *, void (*)(void *), void *);
/* 1 once the answer that gives the pod field (or every answer) is in. */
int	 helper_log_settled(const struct helper_log *);
/*
 * lr_pod from the first answer with log=, else lr_pod_error.  With
 * expired set, the answers still awaited are given up as timeouts.
 */
void	 helper_log_fill(struct helper_log *, struct logrec *, int);
void	 helper_log_free(struct helper_log *);
/*
 * For an external acl: the answer of helper name for this connection,
 * with data as %DATA (NULL: "-").  1 (OK), 0 (ERR, BH, none in time),
 * or -1 while it is on its way: conn_wake(c) runs when it arrives.
 * hello: the rules have the ClientHello's fields (conn_hello()); for a
 * helper whose FORMAT has %ssl::>sni that is another question than the
 * one asked before it (with "-"), so another answer.
 */
int	 helper_acl_answer(struct conn *, const char *, const char *, int);
/* The earliest deadline of an acl answer still awaited, or 0. */
ev_tstamp helper_acl_deadline(const struct conn *);
/* Give up on the acl answers due by now (all of them if all is set). */
void	 helper_acl_expire(struct conn *, ev_tstamp, int);
void	 helper_acl_free(struct conn *);
/*
 * The record's policy from the connection's acl answers: the first, in
 * the order the rules asked, that carries one replaces lr_policy; else
 * the first lookup of an on_failure= helper that got no answer sets
 * lr_policy_fail and lr_policy_why.  Called whenever the rules decide,
 * and at the close, while the answers are still there.
 */
void	 helper_acl_policy(struct conn *, struct logrec *);
/*
 * For /readyz: ask each helper that has not answered yet one lookup,
 * as for a client at 127.0.0.1, again each second while it answers BH
 * or nothing, until it answers OK or ERR.  Nothing is asked twice at
 * once, so calling it again (after a reload) only adds new helpers.
 */
void	 helper_probe_start(struct worker *);

/* http.c */
enum http_parse http_parse_request(struct http_head *, const char *, size_t,
	    size_t, struct http_request *);
int	 http_reply_error(int, char *, size_t);
int	 http_reply_challenge(int, const char *, char *, size_t);
size_t	 http_target_redact(const char *, size_t, char *, size_t);
int	 http_basic_decode(const char *, size_t, char *, size_t);
const char *http_status_text(int);

/* httpmsg.c */
size_t	 httpmsg_head_end(const char *, size_t, size_t *);
size_t	 httpmsg_field(const char *, size_t, const char **, size_t *);
int	 httpmsg_response(const char *, size_t, int, struct http_response *);
int	 httpmsg_list_has(const char *, size_t, const char *);
int64_t	 httpmsg_content_length(const char *, size_t);
int	 httpmsg_chunked_last(const char *, size_t);
void	 httpmsg_body_init(struct http_body *, enum http_body_kind, int64_t);
ssize_t	 httpmsg_body(struct http_body *, const char *, size_t);

/* worker.c: the event loops (`workers N`), one a thread */
/* N for `workers`: auto is the CPUs this process may run on. */
unsigned workers_count(const struct conf *);
/*
 * The group of cf's workers_count() workers, each with its loop, DNS
 * channel and scratch buffer (worker_create()); worker 0 is the main
 * thread's.  Exits on failure.
 */
struct wgroup *wgroup_new(struct conf *);
struct worker *worker_create(struct conf *, struct wgroup *, unsigned);
void	 worker_free(struct worker *);
unsigned wgroup_size(const struct wgroup *);
struct worker *wgroup_worker(struct wgroup *, unsigned);
/* Bind cf's http_ports for every worker; -1 and err: nothing changed. */
int	 wgroup_listen(struct wgroup *, struct conf *, char *, size_t);
/* Start the threads of workers 1..N-1; 0, or -1 and err. */
int	 wgroup_start(struct wgroup *, char *, size_t);
/* Reload: workers 1..N-1 adopt cf at their next turn (a reference each). */
void	 wgroup_reload(struct wgroup *, struct conf *);
/* SIGTERM to workers 1..N-1: drain (now: close everything). */
void	 wgroup_stop(struct wgroup *, int);
/* SIGUSR1 to workers 1..N-1: each logs its helper pools' counts. */
void	 wgroup_stats(struct wgroup *);
/* How many of workers 1..N-1 still run their loop. */
unsigned wgroup_running(struct wgroup *);
/* At exit, once none runs: join the threads, free every worker. */
void	 wgroup_free(struct wgroup *);
/*
 * Every worker's counters summed into v (worker 0's own and the
 * others' taken in their threads); the caller frees v with
 * metrics_view_free().  Returns how many workers did not answer.
 */
unsigned wgroup_view(struct wgroup *, struct metrics_view *);
/* /readyz: why not ready (any worker), or NULL. */
const char *worker_unready(struct worker *);
/* conf.c: c's last reference went; 0 if freed later, -1: free it now. */
int	 worker_conf_dead(struct conf *);
/*
 * w takes conf (a reference the caller gives up): DNS, helpers, limits
 * and the readiness probe follow it, and the old conf's reference goes.
 * In w's own thread.
 */
void	 worker_conf_adopt(struct worker *, struct conf *);
/* Hand the turn's lines over, then free the confs that died in it. */
void	 worker_flush(struct worker *);
/* One connection more (1) or fewer (-1) against max_connections. */
void	 worker_count(struct worker *, int);
/* Connections counted against max_connections, all workers. */
unsigned worker_counted(const struct worker *);
/* Send msg (WMSG_* in worker.c) to w's loop. */
void	 worker_post(struct worker *, int);

/* listener.c */
/* A listening socket on ss, non-blocking; -1 with errno. */
int	 listener_bind(const struct sockaddr_storage *, socklen_t);
int	 listener_sync(struct worker *, struct conf *, char *, size_t);
void	 listener_limit(struct worker *);
void	 listener_pause(struct worker *);
void	 listener_resume(struct worker *);
void	 listener_close_all(struct worker *);
/*
 * workers > 1 (main thread): a SO_REUSEPORT socket per worker for each
 * new http_port of cf, in worker order, steered by client address
 * (a classic BPF program); add[i] gets worker i's new listeners, del[i]
 * the addresses it must drop.  -1 and err: nothing changed.
 */
int	 listener_group_sync(unsigned, struct conf *, struct listener_list *,
	    struct listener_list *, char *, size_t);
/* In w's thread: watch the listeners of add, close those del names. */
void	 listener_adopt(struct worker *, struct listener_list *,
	    struct listener_list *);
void	 listener_list_free(struct listener_list *);

/* conn.c */
typedef void conn_io_cb(struct ev_loop *, ev_io *, int);
void	 conn_io_init(struct conn *, conn_io_cb *, conn_io_cb *, conn_io_cb *,
	    conn_io_cb *);
void	 conn_accept(struct worker *, int, const struct sockaddr_storage *,
	    const struct sockaddr_storage *);
void	 conn_close(struct conn *, enum close_reason);
/*
 * The client's hello is read (or will not be: not TLS, bad, too slow,
 * ended) while CONN_HOLD: the rules decide again with it.  Allowed: the
 * held bytes go (relay_release()); denied: conn_close(CLOSE_DENIED),
 * nothing of them sent.  A no-op without CONN_HOLD.
 */
void	 conn_hello(struct conn *);
void	 conn_wake(void *);
void	 conn_timer_arm(struct conn *);
void	 conn_shutdown_all(struct worker *);
/*
 * SIGTERM: close at once, without a line, the connections with nothing
 * to finish (between two requests, or that have sent nothing); the
 * others may finish within shutdown_lifetime.
 */
void	 conn_drain(struct worker *);
void	 conn_reap(struct worker *);
const char *conn_state_name(enum conn_state);
void	 conn_fail(struct conn *, int, enum close_reason, const char *);
/*
 * forward.c: the exchange ended; client_keep: the client may send
 * another request; server_keep: the server connection may be pooled.
 */
void	 conn_forward_done(struct conn *, int, int);
/* forward.c: a pooled connection failed at once: connect afresh. */
void	 conn_forward_reconnect(struct conn *);

/* forward.c */
int	 forward_prepare(struct conn *, const struct http_request *,
	    const char *, const struct http_head *);
int	 forward_pool_take(struct conn *, struct sockaddr_storage *);
void	 forward_pool_free(struct worker *);
void	 forward_start(struct conn *);
int	 forward_replied(const struct conn *);
void	 forward_end(struct conn *, int, struct buf *);
void	 forward_free(struct conn *);

/* limit.c */
/*
 * The count of ss's connections with this one, in w's table, or in one
 * table for the process under a mutex once limit_share() was called
 * (the BPF steering could not be attached).
 */
unsigned limit_client_add(struct worker *, const struct sockaddr_storage *);
/* Before the workers start: one table for all (see above). */
void	 limit_share(void);
void	 limit_client_del(struct worker *, const struct sockaddr_storage *);
void	 limit_free(struct worker *);
unsigned limit_auto_max(void);
int	 limit_drop_privileges(const struct conf *, char *, size_t);

/* peek.c: the hellos of a tunnel, read beside the relay */
#define PEEK_UP		0	/* what the client sends */
#define PEEK_DOWN	1	/* what the server sends */
/*
 * The relay starts: with tls_peek off, nothing will be read.  Bytes the
 * client sent after its head go through peek_feed() here.
 */
void	 peek_start(struct conn *);
/*
 * A copy of len bytes that went (or are going) dir's way, in order.
 * The first allocates dir's reader; the reader is freed, and what it
 * read put on c's record, as soon as its result is final.  Never
 * holds or changes the bytes.
 */
void	 peek_feed(struct conn *, int, const void *, size_t);
/* The earliest tls_peek_timeout of a reader still reading, or 0. */
ev_tstamp peek_deadline(const struct conn *);
/* Give up on the readers due by now; 1 if one was, else 0. */
int	 peek_expire(struct conn *, ev_tstamp);
/* dir's stream ended: a hello not read whole is cut short. */
void	 peek_eof(struct conn *, int);
/* The tunnel ends: every reader still reading ends as cut short. */
void	 peek_end(struct conn *);

/* relay.c */
void	 relay_start(struct conn *);
/* CONN_HOLD is over and allowed: write the held bytes, then relay. */
void	 relay_release(struct conn *);
/*
 * Free c's pending buffers; an empty pipe goes back to the pool, one
 * with bytes in it is closed (they are lost with the tunnel).
 */
void	 relay_free_buffers(struct conn *);
/* At exit: close the worker's pooled pipes (none may be held). */
void	 relay_pool_free(struct worker *);

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
int	 accesslog_open(struct conf *, char *, size_t);
/*
 * For connectd -t: could each log be opened, as far as can be told
 * without opening it?  0, or -1 with "FILE:LINE: ..." in err.
 */
int	 accesslog_check(const struct conf *, char *, size_t);
void	 accesslog_close(struct conf *);
/*
 * The one way a line gets written.  Takes rec and hl (NULL: no helper
 * answers awaited) and frees them; the line goes to cf's access logs,
 * now or, while hl's answers are on their way, at most their log-wait
 * later.  The line is signed with cf's visible_hostname and w's
 * instance; an interim record goes to the json-format logs only.
 */
void	 accesslog_submit(struct worker *, struct conf *, struct logrec *,
	    struct helper_log *);
/* At exit: write every waiting line as it is. */
void	 accesslog_shutdown(struct worker *);

/* ifaddr.c */
void	 ifaddr_init(struct worker *);
void	 ifaddr_free(struct worker *);
const struct in6_addr *ifaddr_list(const struct worker *, size_t *);

/* opener.c */
int	 opener_start(const struct conf *, char *, size_t);
int	 opener_open(const char *);

/* sdnotify.c: systemd's Type=notify protocol */
int	 sdnotify_init(char *, size_t);
void	 sdnotify(const char *, ...) __attribute__((format(printf, 1, 2)));
unsigned long long sdnotify_monotonic_usec(void);

/* logrec.c */
struct logrec *logrec_new(void);
/*
 * A copy of rec with copies of the strings it owns, for an interim
 * record; NULL if out of memory.
 */
struct logrec *logrec_dup(const struct logrec *);
/* Free the record and the strings it owns. */
void	 logrec_free(struct logrec *);
const char *logrec_close_name(enum close_reason);
/*
 * A policy of the members v[i] (NULL: null) of length len[i], each cut
 * to LOGPOLICY_VALUE_MAX bytes on a UTF-8 character boundary (a member
 * is a short word or an allow-list entry: more is not a policy's).
 * NULL if out of memory.  Free it with free().
 */
struct logpolicy *logpolicy_new(const char *const *, const size_t *);
/* A copy of p (one allocation); NULL if out of memory or p NULL. */
struct logpolicy *logpolicy_dup(const struct logpolicy *);
/* Member m of p as a C string, or NULL for null. */
const char *logpolicy_get(const struct logpolicy *, enum logpolicy_member);
/* The JSON name of member m ("mode", "verdict", "rule", "from", "reason"). */
const char *logpolicy_name(enum logpolicy_member);
/* A copy of t, of its size (logrec_dup()); NULL: out of memory, or t NULL. */
struct logtls *logrec_tls_dup(const struct logtls *);
/* "TLS/1.3", "SSL/3.0", or "0x7f1c" for others, into buf (8 bytes). */
const char *logrec_version_name(uint16_t, char *);
/* The tls object's "hello" and "sni_match" values; NULL for NONE. */
const char *logrec_hello_name(enum peek_hello);
const char *logrec_match_name(enum peek_match);
/* "tls" (SSLv2-style too), "ssh", "http", "unknown"; NULL for none. */
const char *logrec_proto_name(int);
/*
 * 16 hex digits of getrandom(2) into buf (LOGREC_INSTANCE_LEN bytes):
 * what makes a line's uid unique across processes and hosts.  0, or -1
 * if the kernel gave no randomness (then the digits come from the time
 * and the pid, and the caller should say so).
 */
int	 logrec_instance(char *, size_t);

/* logformat.c */
struct logformat *logformat_compile(const char *, const char *, char *,
	    size_t);
const struct logformat *logformat_builtin(const char *);
void	 logformat_free(struct logformat *);
const char *logformat_name(const struct logformat *);
/* The line for rec with its newline, malloc'd; NULL if out of memory. */
char	*logformat_render(const struct logformat *, const struct logrec *,
	    size_t *);
/*
 * The line for rec in at most max bytes, newline included, for an
 * output that cannot take more (a datagram).  The fields that can be
 * large are left out (logformat.c's lf_shrink() names them): a JSON
 * line then says "truncated":true and is still valid JSON; a Squid-style
 * line prints "-" for them and, still too long, is cut at a character
 * boundary.  Returns the malloc'd line, or NULL when even that does not
 * fit (a JSON line) or memory ran out.
 */
char	*logformat_render_fit(const struct logformat *, const struct logrec *,
	    size_t, size_t *);

/*
 * sink.c: log outputs, each with a writer thread behind a bounded queue.
 * Opening, releasing and listing them is for the main thread; a worker
 * stages its lines (sink_push(), no lock) and hands them over once per
 * loop turn (sink_stage_flush(), a lock per output).
 */
/* Open (or share: same destination, same kind) the output alc names. */
struct sink *sink_open(const struct access_log_conf *, char *, size_t);
void	 sink_release(struct sink *);
/* A worker's staging area (worker_create()); NULL if out of memory. */
struct sink_stage *sink_stage_new(void);
/* Hand over what is staged, then free it. */
void	 sink_stage_free(struct sink_stage *);
/*
 * Stage a line (malloc'd, with its newline; the sink owns it) for the
 * end of the turn; the output must stay open until then (worker.c
 * frees a conf only after the flush).  truncated: the line was shortened
 * to fit (logformat_render_fit()), and is counted as such.
 */
void	 sink_push(struct sink_stage *, struct sink *, char *, size_t, int);
/*
 * The end of the turn: each output gets its staged lines in one batch,
 * in order, or drops and counts them if its queue is full.
 */
void	 sink_stage_flush(struct sink_stage *);
/* Count a line that could not be made to fit the output as dropped. */
void	 sink_drop(struct sink *);
/* The longest line, newline included, the output takes; 0: any. */
size_t	 sink_line_max(const struct sink *);
/* SIGUSR1: files are reopened; a network output retries at once. */
void	 sink_reopen_all(void);
void	 sink_flush_all(double);
/* SIGUSR1: one line of counters per output on stderr. */
void	 sink_stats_log(void);

/* metrics.c */
void	 metrics_init(struct worker *);
void	 metrics_free(struct worker *);
/* Count rec's line (accesslog_submit()): by kind, status, reason, bytes. */
void	 metrics_line(struct worker *, const struct logrec *);
/* One observation, in seconds, into a histogram. */
void	 metrics_observe(struct metrics_hist *, double);
/*
 * Append the Prometheus text exposition (format 0.0.4) to the buffer.
 * 0, or -1 when its bound was reached or memory ran out: the partial
 * text must not be served.
 */
int	 metrics_render(struct worker *, struct buf *);
/* w's counters now, in w's thread, into v (its old contents freed). */
void	 metrics_snapshot(struct worker *, struct metrics_view *);
/* Add s to d (d owns what it copies). */
void	 metrics_view_add(struct metrics_view *, const struct metrics_view *);
void	 metrics_view_free(struct metrics_view *);

/* admin.c: the metrics_port listener: /metrics, /healthz, /readyz */
/*
 * The head read so far: 0 while incomplete (and under max bytes), 431
 * once over, 400 for a bad request line or a target not in origin-form,
 * 200 with aq filled.  Pure (fuzz/fuzz_admin.c).
 */
int	 admin_parse(const char *, size_t, size_t, struct admin_request *);
/*
 * Listen on cf's metrics_port, keeping the socket if the address is
 * unchanged, or stop listening (none).  On a failure nothing changes:
 * -1 with the reason in err.
 */
int	 admin_sync(struct worker *, const struct conf *, char *, size_t);
/* Close the listener and every admin connection (at exit). */
void	 admin_free(struct worker *);
/* Why /readyz answers 503 (static text), or NULL when ready. */
const char *admin_unready(struct worker *);

/* The outputs in use, in opening order: sink_next(NULL) is the first. */
struct sink *sink_next(const struct sink *);
/* "stdio", "tcp", "udp" or "syslog". */
const char *sink_kind(const struct sink *);
/* Its destination, as messages name it: a path, "tcp://host:port" ... */
const char *sink_name(const struct sink *);
/* A consistent snapshot of its counters; safe from any thread. */
void	 sink_stats(struct sink *, struct sink_counters *);

#endif
