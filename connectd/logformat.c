/* logformat.c: log templates (Squid codes, JSON mode, built-in json), compiled once */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "connectd.h"
#include "jsonutil.h"

#define LF_WIDTH_MAX		1024
#define LF_TIME_MAX		253402300799.0	/* 9999-12-31T23:59:59Z */
#define LF_TIME_DEFAULT		"%d/%b/%Y:%H:%M:%S %z"
#define LF_SQUID_TEMPLATE	"%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru " \
				"%[un %Sh/%<a %mt"

enum lf_code {
	LFC_TEXT,
	LFC_TIME_SEC,		/* %ts */
	LFC_TIME_SUB,		/* %tu */
	LFC_TIME_START,		/* %tS */
	LFC_TIME_LOCAL,		/* %tl */
	LFC_TIME_GMT,		/* %tg */
	LFC_DURATION,		/* %tr */
	LFC_CLIENT_ADDR,	/* %>a */
	LFC_CLIENT_PORT,	/* %>p */
	LFC_SERVER_ADDR,	/* %<a */
	LFC_SERVER_PORT,	/* %<p */
	LFC_LOCAL_ADDR,		/* %la */
	LFC_LOCAL_PORT,		/* %lp */
	LFC_URI,		/* %ru */
	LFC_METHOD,		/* %rm */
	LFC_SIZE_IN,		/* %>st */
	LFC_SIZE_OUT,		/* %<st */
	LFC_SIZE_TOTAL,		/* %st */
	LFC_HEAD_IN,		/* %>sh */
	LFC_HEAD_OUT,		/* %<sh */
	LFC_STATUS,		/* %>Hs */
	LFC_STATUS_ORIGIN,	/* %<Hs */
	LFC_MIME_TYPE,		/* %mt */
	LFC_SQUID_STATUS,	/* %Ss */
	LFC_HIERARCHY,		/* %Sh */
	LFC_EXT_LOG,		/* %ea */
	LFC_USER_AGENT,		/* %{User-Agent}>h */
	LFC_USER,		/* %un: Proxy-Authorization: Basic user */
	LFC_XACTION,		/* %master_xaction: the json format's "id" */
	LFC_PROTO,		/* %proto: the json format's "proto" */
	LFC_TLS_SNI,		/* %ssl::>sni */
	LFC_TLS_ALPN,		/* %ssl::>alpn */
	LFC_TLS_JA4,		/* %ssl::>ja4 */
	LFC_TLS_HELLO_VERSION,	/* %ssl::>received_hello_version */
	LFC_TLS_SUPPORTED,	/* %ssl::>received_supported_version */
	LFC_TLS_VERSION,	/* %ssl::>negotiated_version, %ssl::<... */
	LFC_TLS_CIPHER,		/* %ssl::>negotiated_cipher, %ssl::<... */
	LFC_TLS_SNI_MATCH,	/* %ssl::sni_match */
	LFC_TLS_HELLO,		/* %ssl::hello */
};

/* quoting, as selected by a modifier or inherited from the literal text */
enum lf_quote {
	LFQ_NONE,
	LFQ_QUOTES,		/* " */
	LFQ_RAW,		/* ' */
	LFQ_URL,		/* # */
	LFQ_MIMEBLOB		/* [ */
};

struct lf_code_def {
	const char	*lcd_name;
	enum lf_code	 lcd_code;
	int		 lcd_flags;
#define LCD_QUOTE	0x01	/* Squid escapes it even without a modifier */
#define LCD_ARG_TIME	0x02	/* optional {strftime} */
#define LCD_ARG_HEADER	0x04	/* {Header-Name} required */
};

static const struct lf_code_def lf_codes[] = {
	{ "ts",		LFC_TIME_SEC,		0 },
	{ "tu",		LFC_TIME_SUB,		0 },
	{ "tS",		LFC_TIME_START,		0 },
	{ "tl",		LFC_TIME_LOCAL,		LCD_ARG_TIME },
	{ "tg",		LFC_TIME_GMT,		LCD_ARG_TIME },
	{ "tr",		LFC_DURATION,		0 },
	{ ">a",		LFC_CLIENT_ADDR,	0 },
	{ ">A",		LFC_CLIENT_ADDR,	0 },
	{ ">p",		LFC_CLIENT_PORT,	0 },
	{ "<a",		LFC_SERVER_ADDR,	0 },
	{ "<p",		LFC_SERVER_PORT,	0 },
	{ "la",		LFC_LOCAL_ADDR,		0 },
	{ "lp",		LFC_LOCAL_PORT,		0 },
	{ "ru",		LFC_URI,		LCD_QUOTE },
	{ ">ru",	LFC_URI,		LCD_QUOTE },
	{ "rm",		LFC_METHOD,		LCD_QUOTE },
	{ ">rm",	LFC_METHOD,		LCD_QUOTE },
	{ ">st",	LFC_SIZE_IN,		0 },
	{ "<st",	LFC_SIZE_OUT,		0 },
	{ "st",		LFC_SIZE_TOTAL,		0 },
	{ ">sh",	LFC_HEAD_IN,		0 },
	{ "<sh",	LFC_HEAD_OUT,		0 },
	{ ">Hs",	LFC_STATUS,		0 },
	{ "<Hs",	LFC_STATUS_ORIGIN,	0 },
	{ "Ss",		LFC_SQUID_STATUS,	0 },
	{ "Sh",		LFC_HIERARCHY,		0 },
	{ "ea",		LFC_EXT_LOG,		LCD_QUOTE },
	{ ">h",		LFC_USER_AGENT,		LCD_QUOTE | LCD_ARG_HEADER },
	{ "un",		LFC_USER,		LCD_QUOTE },
	{ "mt",		LFC_MIME_TYPE,		0 },
	{ "master_xaction", LFC_XACTION,	0 },
	/*
	 * Squid's names where Squid has one (cf.data.pre, logformat): in a
	 * spliced tunnel the client's and the server's TLS session are the
	 * same one, so > and < give the same version and cipher.  JA4, ALPN,
	 * the SNI check and the hello's read have no Squid code.
	 */
	{ "proto",	LFC_PROTO,		0 },
	{ "ssl::>sni",	LFC_TLS_SNI,		LCD_QUOTE },
	{ "ssl::>alpn",	LFC_TLS_ALPN,		LCD_QUOTE },
	{ "ssl::>ja4",	LFC_TLS_JA4,		0 },
	{ "ssl::>received_hello_version", LFC_TLS_HELLO_VERSION, 0 },
	{ "ssl::>received_supported_version", LFC_TLS_SUPPORTED, 0 },
	{ "ssl::>negotiated_version", LFC_TLS_VERSION, 0 },
	{ "ssl::<negotiated_version", LFC_TLS_VERSION, 0 },
	{ "ssl::>negotiated_cipher", LFC_TLS_CIPHER,	0 },
	{ "ssl::<negotiated_cipher", LFC_TLS_CIPHER,	0 },
	{ "ssl::sni_match", LFC_TLS_SNI_MATCH,	0 },
	{ "ssl::hello",	LFC_TLS_HELLO,		0 },
	{ NULL,		LFC_TEXT,		0 }
};

struct lf_token {
	enum lf_code	 lt_code;
	char		*lt_text;	/* literal text, or the {arg} */
	size_t		 lt_len;
	enum lf_quote	 lt_quote;	/* effective, Squid rules */
	int		 lt_explicit;	/* lt_quote came from a modifier */
	int		 lt_flags;
#define LT_LEFT		0x01
#define LT_ZERO		0x02
#define LT_INSTR	0x04	/* JSON mode: inside a JSON string */
#define LT_SQUIDQ	0x08	/* Squid escapes it without a modifier */
	int		 lt_width;	/* -1: none */
	int		 lt_prec;	/* -1: none */
	long		 lt_divisor;	/* %tu: microseconds per unit */
};

enum lf_kind {
	LFK_JSON,		/* the built-in json format */
	LFK_SQUID,		/* a template, Squid rules */
	LFK_JSONTPL		/* a template in JSON mode */
};

struct logformat {
	char		*lf_name;
	enum lf_kind	 lf_kind;
	int		 lf_builtin;
	struct lf_token	*lf_tokens;
	size_t		 lf_ntokens;
	size_t		 lf_hint;	/* initial render buffer size */
};

/* one rendered value */
enum lf_vkind {
	LFV_ABSENT,
	LFV_INT,
	LFV_NUMTEXT,		/* v_str is a valid JSON number */
	LFV_STR
};

struct lf_value {
	enum lf_vkind	 v_kind;
	uint64_t	 v_int;
	int		 v_nullzero;	/* JSON: an LFV_INT of 0 means absent */
	int		 v_json;	/* v_str is one checked JSON value */
	const char	*v_str;
	size_t		 v_len;
	char		 v_buf[256];
};

static struct logformat	*lf_json;
static struct logformat	*lf_squid;

static int	 lf_parse_code(struct lf_token *, const char **, enum lf_quote,
		    char *, size_t);
static int	 lf_add_token(struct logformat *, struct lf_token *);
static int	 lf_check_json(struct logformat *, char *, size_t);
static void	 lf_value(const struct lf_token *, const struct logrec *,
		    struct lf_value *);
static int	 lf_render_json(const struct logrec *, struct buf *);
static int	 lf_render_template(const struct logformat *,
		    const struct logrec *, struct buf *, int);

/* ------------------------------------------------------------- compile */

struct logformat *
logformat_compile(const char *name, const char *template, char *err,
    size_t errlen)
{
	struct logformat	*lf;
	struct lf_token		 t;
	const char		*p, *q;
	enum lf_quote		 squidq = LFQ_NONE;
	int			 instr = 0, esc = 0;
	char			 msg[256];

	msg[0] = '\0';
	if ((lf = calloc(1, sizeof(*lf))) == NULL ||
	    (lf->lf_name = strdup(name != NULL ? name : "")) == NULL) {
		snprintf(msg, sizeof(msg), "out of memory");
		goto fail;
	}
	lf->lf_hint = 256;
	for (p = template; *p == ' ' || *p == '\t'; p++)
		;
	lf->lf_kind = *p == '{' ? LFK_JSONTPL : LFK_SQUID;
	tzset();

	for (p = template; *p != '\0'; ) {
		memset(&t, 0, sizeof(t));
		t.lt_width = t.lt_prec = -1;
		if (p[0] == '%' && p[1] == '%') {
			t.lt_code = LFC_TEXT;
			t.lt_text = (char *)"%";
			t.lt_len = 1;
			p += 2;
			esc = 0;
		} else if (p[0] == '%') {
			if (esc) {
				snprintf(msg, sizeof(msg), "a code cannot follow "
				    "a backslash inside a JSON string");
				goto fail;
			}
			if (lf_parse_code(&t, &p, squidq, msg,
			    sizeof(msg)) == -1)
				goto fail;
			if (instr)
				t.lt_flags |= LT_INSTR;
		} else {
			for (q = p; *q != '\0' && *q != '%'; q++) {
				if (*q == '\r' || *q == '\n') {
					snprintf(msg, sizeof(msg), "line "
					    "breaks are not allowed");
					goto fail;
				}
				/* Squid's quote inheritance */
				if (*q == '"')
					squidq = squidq == LFQ_NONE ?
					    LFQ_QUOTES : squidq == LFQ_QUOTES ?
					    LFQ_NONE : squidq;
				else if (*q == '[' && squidq == LFQ_NONE)
					squidq = LFQ_MIMEBLOB;
				else if (*q == ']' && squidq == LFQ_MIMEBLOB)
					squidq = LFQ_NONE;
				/* JSON strings, for JSON mode */
				if (esc)
					esc = 0;
				else if (instr && *q == '\\')
					esc = 1;
				else if (*q == '"')
					instr = !instr;
			}
			t.lt_code = LFC_TEXT;
			t.lt_text = (char *)p;
			t.lt_len = (size_t)(q - p);
			p = q;
		}
		if (lf_add_token(lf, &t) == -1) {
			if (t.lt_code != LFC_TEXT)
				free(t.lt_text);
			snprintf(msg, sizeof(msg), "out of memory");
			goto fail;
		}
	}
	if (lf->lf_kind == LFK_JSONTPL && lf_check_json(lf, msg,
	    sizeof(msg)) == -1)
		goto fail;
	return lf;
 fail:
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "logformat %s: %s", name != NULL ?
		    name : "", msg);
	logformat_free(lf);
	return NULL;
}

/*
 * Parses one %code at *pp, Squid's way: %[modifier][-][0][width][.prec]
 * [{arg}]code[{arg}].
 */
static int
lf_parse_code(struct lf_token *t, const char **pp, enum lf_quote inherited,
    char *msg, size_t msglen)
{
	const struct lf_code_def	*d, *best = NULL;
	const char			*p = *pp + 1, *arg = NULL, *start;
	size_t				 arglen = 0, n, bestlen = 0;
	long				 v;

	start = *pp;
	t->lt_explicit = 1;
	switch (*p) {
	case '"':
		t->lt_quote = LFQ_QUOTES;
		p++;
		break;
	case '\'':
		t->lt_quote = LFQ_RAW;
		p++;
		break;
	case '#':
		t->lt_quote = LFQ_URL;
		p++;
		break;
	case '[':
		t->lt_quote = LFQ_MIMEBLOB;
		p++;
		break;
	case '/':
		snprintf(msg, msglen, "the / (shell) modifier is not "
		    "supported");
		return -1;
	default:
		t->lt_quote = inherited;
		t->lt_explicit = 0;
		break;
	}
	if (*p == '-') {
		t->lt_flags |= LT_LEFT;
		p++;
	}
	if (*p == '0') {
		t->lt_flags |= LT_ZERO;
		p++;
	}
	if (*p >= '0' && *p <= '9') {
		for (v = 0; *p >= '0' && *p <= '9'; p++)
			if ((v = v * 10 + (*p - '0')) > LF_WIDTH_MAX) {
				snprintf(msg, msglen, "width too large in "
				    "%.*s", (int)(p - start + 1), start);
				return -1;
			}
		t->lt_width = (int)v;
	}
	if (*p == '.' && p[1] >= '0' && p[1] <= '9') {
		for (p++, v = 0; *p >= '0' && *p <= '9'; p++)
			if ((v = v * 10 + (*p - '0')) > LF_WIDTH_MAX) {
				snprintf(msg, msglen, "precision too large in "
				    "%.*s", (int)(p - start + 1), start);
				return -1;
			}
		t->lt_prec = (int)v;
	}
	if (*p == '{') {
		arg = ++p;
		if ((p = strchr(p, '}')) == NULL) {
			snprintf(msg, msglen, "unterminated { in %.20s", start);
			return -1;
		}
		arglen = (size_t)(p - arg);
		p++;
	}
	for (d = lf_codes; d->lcd_name != NULL; d++) {
		n = strlen(d->lcd_name);
		if (n > bestlen && strncmp(p, d->lcd_name, n) == 0) {
			best = d;
			bestlen = n;
		}
	}
	if (best == NULL) {
		if (*p == '\0')
			snprintf(msg, msglen, "incomplete code %s at the end",
			    start);
		else {
			for (n = 0; n < 3 && p[n] != '\0' && p[n] != ' ' &&
			    p[n] != '%' && p[n] != '"'; n++)
				;
			snprintf(msg, msglen, "unknown code %%%.*s",
			    (int)(p + (n ? n : 1) - (start + 1)), start + 1);
		}
		return -1;
	}
	p += bestlen;
	if (arg == NULL && *p == '{') {
		arg = ++p;
		if ((p = strchr(p, '}')) == NULL) {
			snprintf(msg, msglen, "unterminated { in %.20s", start);
			return -1;
		}
		arglen = (size_t)(p - arg);
		p++;
	}
	t->lt_code = best->lcd_code;
	if (best->lcd_flags & LCD_QUOTE)
		t->lt_flags |= LT_SQUIDQ;
	if (best->lcd_flags & LCD_ARG_HEADER) {
		if (arg == NULL || arglen != strlen("User-Agent") ||
		    strncasecmp(arg, "User-Agent", arglen) != 0) {
			snprintf(msg, msglen, "%.*s: only %%{User-Agent}>h is "
			    "logged", (int)(p - start), start);
			return -1;
		}
		arg = NULL;
	} else if (arg != NULL && !(best->lcd_flags & LCD_ARG_TIME)) {
		snprintf(msg, msglen, "%.*s: %%%s takes no {argument}",
		    (int)(p - start), start, best->lcd_name);
		return -1;
	}
	if (arg != NULL && arglen > 0) {
		if ((t->lt_text = strndup(arg, arglen)) == NULL) {
			snprintf(msg, msglen, "out of memory");
			return -1;
		}
		t->lt_len = arglen;
	}
	if (t->lt_code == LFC_TIME_SUB) {
		/* microseconds per printed unit: milliseconds by default */
		t->lt_divisor = 1000;
		if (t->lt_prec > 0) {
			for (t->lt_divisor = 1000000, v = t->lt_prec;
			    v > 0 && t->lt_divisor > 1; v--)
				t->lt_divisor /= 10;
		}
	}
	*pp = p;
	return 0;
}

static int
lf_add_token(struct logformat *lf, struct lf_token *t)
{
	struct lf_token	*nt, *last;
	char		*s;

	/* literal text is copied, adjacent pieces merged */
	if (t->lt_code == LFC_TEXT) {
		last = lf->lf_ntokens > 0 ? &lf->lf_tokens[lf->lf_ntokens - 1] :
		    NULL;
		if (last != NULL && last->lt_code == LFC_TEXT) {
			if ((s = realloc(last->lt_text, last->lt_len +
			    t->lt_len + 1)) == NULL)
				return -1;
			memcpy(s + last->lt_len, t->lt_text, t->lt_len);
			last->lt_len += t->lt_len;
			s[last->lt_len] = '\0';
			last->lt_text = s;
			return 0;
		}
		if ((s = strndup(t->lt_text, t->lt_len)) == NULL)
			return -1;
		t->lt_text = s;
	}
	if ((nt = reallocarray(lf->lf_tokens, lf->lf_ntokens + 1,
	    sizeof(*nt))) == NULL) {
		if (t->lt_code == LFC_TEXT)
			free(t->lt_text);
		t->lt_text = NULL;
		return -1;
	}
	lf->lf_tokens = nt;
	lf->lf_tokens[lf->lf_ntokens++] = *t;
	return 0;
}

/*
 * A JSON-mode template must be valid JSON with a placeholder for every
 * code: "x" inside strings, null outside.  Every value renders as
 * something that can stand where its placeholder stood, so every line
 * rendered from the template is valid JSON too.
 */
static int
lf_check_json(struct logformat *lf, char *msg, size_t msglen)
{
	struct buf	 jb;
	json_t		*j;
	json_error_t	 jerr;

	memset(&jb, 0, sizeof(jb));
	if (lf_render_template(lf, NULL, &jb, 1) == -1) {
		buf_free(&jb);
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	if ((j = json_loadb(jb.b_data, jb.b_len, 0, &jerr)) == NULL) {
		snprintf(msg, msglen, "the template starts with '{' but is "
		    "not valid JSON: %s (column %d)", jerr.text,
		    jerr.column);
		buf_free(&jb);
		return -1;
	}
	json_decref(j);
	buf_free(&jb);
	return 0;
}

const struct logformat *
logformat_builtin(const char *name)
{
	if (name == NULL)
		return NULL;
	if (strcmp(name, "json") == 0) {
		if (lf_json == NULL &&
		    (lf_json = calloc(1, sizeof(*lf_json))) != NULL) {
			if ((lf_json->lf_name = strdup("json")) == NULL) {
				free(lf_json);
				lf_json = NULL;
				return NULL;
			}
			lf_json->lf_kind = LFK_JSON;
			lf_json->lf_builtin = 1;
			lf_json->lf_hint = 512;
		}
		return lf_json;
	}
	if (strcmp(name, "squid") == 0) {
		if (lf_squid == NULL && (lf_squid = logformat_compile("squid",
		    LF_SQUID_TEMPLATE, NULL, 0)) != NULL)
			lf_squid->lf_builtin = 1;
		return lf_squid;
	}
	return NULL;
}

void
logformat_free(struct logformat *lf)
{
	size_t	 i;

	if (lf == NULL || lf->lf_builtin)
		return;
	for (i = 0; i < lf->lf_ntokens; i++)
		free(lf->lf_tokens[i].lt_text);
	free(lf->lf_tokens);
	free(lf->lf_name);
	free(lf);
}

const char *
logformat_name(const struct logformat *lf)
{
	return lf != NULL ? lf->lf_name : NULL;
}

/* -------------------------------------------------------------- render */

char *
logformat_render(const struct logformat *lf, const struct logrec *rec,
    size_t *lenp)
{
	struct buf	 jb = BUF_INITIALIZER(0);
	size_t		 avail;
	int		 rv;

	/* one allocation for a typical line */
	if (buf_space(&jb, lf->lf_hint, &avail) == NULL)
		return NULL;
	if (lf->lf_kind == LFK_JSON)
		rv = lf_render_json(rec, &jb);
	else
		rv = lf_render_template(lf, rec, &jb, 0);
	if (rv == -1 || buf_addc(&jb, '\n') == -1) {
		buf_free(&jb);
		return NULL;
	}
	return buf_take(&jb, lenp);
}

/*
 * Leave out of r the fields that can make a line long: at step 0 the
 * pod (a helper's answer, the usual culprit), at step 1 also every
 * string a client, an origin or a helper chose.  What is left is
 * bounded: addresses, numbers, times, names from a fixed list.  A new
 * field of unbounded length must be added here.
 */
static void
lf_shrink(struct logrec *r, int step)
{
	r->lr_pod = NULL;
	r->lr_pod_json = 0;
	if (step == 0)
		return;
	r->lr_user_agent = NULL;
	r->lr_user = NULL;
	r->lr_url = NULL;
	r->lr_authority = NULL;
	r->lr_host = NULL;
	r->lr_detail = NULL;
	r->lr_rule = NULL;
	r->lr_content_type = NULL;
	/* a helper's words, if bounded */
	r->lr_policy = NULL;
	r->lr_policy_fail = NULL;
	/* the SNI and the ALPN values are the client's: "tls" goes null */
	r->lr_tls = NULL;
}

/*
 * Adds "truncated":true to a rendered JSON object: before its closing
 * brace, which only blanks and the newline follow (the built-in format
 * ends so, and a JSON template is checked to be one object).
 */
static int
lf_mark_truncated(char **linep, size_t *lenp)
{
	static const char	 mark[] = "\"truncated\":true";
	char			*line = *linep, *n;
	size_t			 len = *lenp, brace, before, add;

	for (brace = len; brace > 0 && line[brace - 1] != '}'; brace--)
		;
	if (brace == 0)
		return -1;
	brace--;
	for (before = brace; before > 0 && strchr(" \t\r\n",
	    line[before - 1]) != NULL; before--)
		;
	if (before == 0)
		return -1;
	/* {} takes the member without a comma */
	add = sizeof(mark) - 1 + (line[before - 1] == '{' ? 0 : 1);
	if ((n = realloc(line, len + add + 1)) == NULL)
		return -1;
	/* the rest and its NUL move up: lines stay NUL-terminated */
	memmove(n + brace + add, n + brace, len - brace + 1);
	if (add == sizeof(mark) - 1)
		memcpy(n + brace, mark, sizeof(mark) - 1);
	else {
		n[brace] = ',';
		memcpy(n + brace + 1, mark, sizeof(mark) - 1);
	}
	*linep = n;
	*lenp = len + add;
	return 0;
}

char *
logformat_render_fit(const struct logformat *lf, const struct logrec *rec,
    size_t max, size_t *lenp)
{
	struct logrec	 r = *rec;	/* shallow: nothing here is freed */
	char		*line = NULL;
	size_t		 len = 0, cut;
	int		 step, json = lf->lf_kind != LFK_SQUID;

	for (step = 0; step < 2; step++) {
		free(line);
		lf_shrink(&r, step);
		if ((line = logformat_render(lf, &r, &len)) == NULL)
			return NULL;
		if (json && lf_mark_truncated(&line, &len) == -1) {
			free(line);
			return NULL;
		}
		if (len <= max) {
			*lenp = len;
			return line;
		}
	}
	if (json || max < 2) {
		free(line);
		return NULL;
	}
	/*
	 * A Squid-style line has no room for a mark: cut it, but not inside
	 * a UTF-8 sequence (a client's bytes are not checked to be UTF-8;
	 * this only keeps valid text valid).
	 */
	for (cut = max - 1; cut > 0 &&
	    ((unsigned char)line[cut] & 0xc0) == 0x80; cut--)
		;
	line[cut] = '\n';
	line[cut + 1] = '\0';
	*lenp = cut + 1;
	return line;
}

static void
lf_split_time(double t, time_t *sec, long *usec)
{
	if (!(t > 0))
		t = 0;
	if (t > LF_TIME_MAX)
		t = LF_TIME_MAX;
	*sec = (time_t)t;
	*usec = (long)((t - (double)*sec) * 1e6 + 0.5);
	if (*usec > 999999)
		*usec = 999999;
	if (*usec < 0)
		*usec = 0;
}

static uint64_t
lf_duration_ms(const struct logrec *rec)
{
	double	 d = (rec->lr_end - rec->lr_start) * 1000.0;

	if (!(d > 0))
		return 0;
	if (d > 1e15)
		return UINT64_C(1000000000000000);
	return (uint64_t)(d + 0.5);
}

static void
lf_setstr(struct lf_value *v, const char *s)
{
	if (s == NULL || *s == '\0') {
		v->v_kind = LFV_ABSENT;
		return;
	}
	v->v_kind = LFV_STR;
	v->v_str = s;
	v->v_len = strlen(s);
}

/* the format comes from the configuration, as in Squid */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static size_t
lf_strftime(char *buf, size_t len, const char *fmt, const struct tm *tm)
{
	return strftime(buf, len, fmt, tm);
}
#pragma GCC diagnostic pop

/* The %ssl:: codes: absent unless the line would have a "tls" object. */
static void
lf_value_tls(const struct lf_token *t, const struct logrec *r,
    struct lf_value *v)
{
	const struct logtls	*tls = r->lr_tls;
	const uint8_t		*a;
	size_t			 off, n, len;
	uint16_t		 max;
	unsigned		 i;

	v->v_kind = LFV_ABSENT;
	if (r->lr_proto != TLSHELLO_PROTO_TLS || tls == NULL ||
	    tls->lt_hello == PEEK_HELLO_NONE)
		return;
	switch (t->lt_code) {
	case LFC_TLS_HELLO:
		lf_setstr(v, logrec_hello_name(tls->lt_hello));
		break;
	case LFC_TLS_SNI_MATCH:
		lf_setstr(v, logrec_match_name(tls->lt_match));
		break;
	case LFC_TLS_SNI:
		/* any bytes, NUL included: by length */
		if (tls->lt_has_sni && tls->lt_sni_len > 0) {
			v->v_kind = LFV_STR;
			v->v_str = (const char *)tls->lt_data;
			v->v_len = tls->lt_sni_len;
		}
		break;
	case LFC_TLS_ALPN:
		/* the values comma-joined: shorter than the wire list */
		a = tls->lt_data + tls->lt_sni_len;
		for (off = len = 0; off < tls->lt_alpn_len; off += 1 + n) {
			n = a[off];
			if (off + 1 + n > tls->lt_alpn_len ||
			    len + n + 1 >= sizeof(v->v_buf))
				break;
			if (len > 0)
				v->v_buf[len++] = ',';
			memcpy(v->v_buf + len, a + off + 1, n);
			len += n;
		}
		if (len > 0) {
			v->v_kind = LFV_STR;
			v->v_str = v->v_buf;
			v->v_len = len;
		}
		break;
	case LFC_TLS_JA4:
		lf_setstr(v, tls->lt_ja4);
		break;
	case LFC_TLS_HELLO_VERSION:
		if (tls->lt_hello == PEEK_HELLO_COMPLETE)
			lf_setstr(v, logrec_version_name(tls->lt_legacy,
			    v->v_buf));
		break;
	case LFC_TLS_SUPPORTED:
		for (i = 0, max = 0; i < tls->lt_nversions; i++)
			if (tls->lt_versions[i] > max)
				max = tls->lt_versions[i];
		if (max != 0)
			lf_setstr(v, logrec_version_name(max, v->v_buf));
		break;
	case LFC_TLS_VERSION:
		if (tls->lt_server)
			lf_setstr(v, logrec_version_name(tls->lt_version,
			    v->v_buf));
		break;
	case LFC_TLS_CIPHER:
		if (tls->lt_server) {
			snprintf(v->v_buf, sizeof(v->v_buf), "0x%04x",
			    tls->lt_cipher);
			lf_setstr(v, v->v_buf);
		}
		break;
	default:
		break;
	}
}

static void
lf_value(const struct lf_token *t, const struct logrec *r,
    struct lf_value *v)
{
	struct tm	 tm;
	time_t		 sec;
	long		 usec;
	int		 port;
	size_t		 n;

	v->v_kind = LFV_INT;
	v->v_nullzero = 0;
	v->v_json = 0;
	v->v_str = NULL;
	v->v_len = 0;
	switch (t->lt_code) {
	case LFC_TEXT:
		v->v_kind = LFV_STR;
		v->v_str = t->lt_text;
		v->v_len = t->lt_len;
		break;
	case LFC_TIME_SEC:
		lf_split_time(r->lr_end, &sec, &usec);
		v->v_int = (uint64_t)sec;
		break;
	case LFC_TIME_SUB:
		lf_split_time(r->lr_end, &sec, &usec);
		v->v_int = (uint64_t)(usec / t->lt_divisor);
		break;
	case LFC_TIME_START:
		lf_split_time(r->lr_start, &sec, &usec);
		snprintf(v->v_buf, sizeof(v->v_buf), "%lld.%03ld",
		    (long long)sec, usec / 1000);
		v->v_kind = LFV_NUMTEXT;
		v->v_str = v->v_buf;
		v->v_len = strlen(v->v_buf);
		break;
	case LFC_TIME_LOCAL:
	case LFC_TIME_GMT:
		lf_split_time(r->lr_end, &sec, &usec);
		if ((t->lt_code == LFC_TIME_LOCAL ? localtime_r(&sec, &tm) :
		    gmtime_r(&sec, &tm)) == NULL)
			n = 0;
		else
			n = lf_strftime(v->v_buf, sizeof(v->v_buf),
			    t->lt_text != NULL ? t->lt_text : LF_TIME_DEFAULT,
			    &tm);
		v->v_buf[n] = '\0';
		/* strftime's %n and %t must not split the line */
		for (n = 0; v->v_buf[n] != '\0'; n++)
			if (v->v_buf[n] == '\n' || v->v_buf[n] == '\r' ||
			    v->v_buf[n] == '\t')
				v->v_buf[n] = ' ';
		lf_setstr(v, v->v_buf);
		break;
	case LFC_DURATION:
		v->v_int = lf_duration_ms(r);
		break;
	case LFC_CLIENT_ADDR:
	case LFC_LOCAL_ADDR:
		if (addr_ntop(t->lt_code == LFC_CLIENT_ADDR ? &r->lr_client :
		    &r->lr_local, v->v_buf, sizeof(v->v_buf), NULL) == -1)
			v->v_kind = LFV_ABSENT;
		else
			lf_setstr(v, v->v_buf);
		break;
	case LFC_CLIENT_PORT:
	case LFC_LOCAL_PORT:
		if (addr_ntop(t->lt_code == LFC_CLIENT_PORT ? &r->lr_client :
		    &r->lr_local, v->v_buf, sizeof(v->v_buf), &port) == -1)
			v->v_kind = LFV_ABSENT;
		else
			v->v_int = (uint64_t)port;
		break;
	case LFC_SERVER_ADDR:
		if (!r->lr_has_server || addr_ntop(&r->lr_server, v->v_buf,
		    sizeof(v->v_buf), NULL) == -1)
			v->v_kind = LFV_ABSENT;
		else
			lf_setstr(v, v->v_buf);
		break;
	case LFC_SERVER_PORT:
		if (!r->lr_has_server || addr_ntop(&r->lr_server, v->v_buf,
		    sizeof(v->v_buf), &port) == -1)
			v->v_kind = LFV_ABSENT;
		else
			v->v_int = (uint64_t)port;
		break;
	case LFC_URI:
		lf_setstr(v, r->lr_url != NULL ? r->lr_url : r->lr_authority);
		break;
	case LFC_METHOD:
		lf_setstr(v, r->lr_method);
		break;
	case LFC_SIZE_IN:
		/* a forwarded request's bytes count its head already */
		v->v_int = (r->lr_scheme ? 0 : r->lr_head_in) + r->lr_bytes_up;
		break;
	case LFC_SIZE_OUT:
		v->v_int = (r->lr_scheme ? 0 : r->lr_reply_out) +
		    r->lr_bytes_down;
		break;
	case LFC_SIZE_TOTAL:
		v->v_int = (r->lr_scheme ? 0 : r->lr_head_in + r->lr_reply_out) +
		    r->lr_bytes_up + r->lr_bytes_down;
		break;
	case LFC_HEAD_IN:
		v->v_int = r->lr_head_in;
		break;
	case LFC_HEAD_OUT:
		v->v_int = r->lr_reply_out;
		break;
	case LFC_STATUS:
		/*
		 * Squid prints 0 (000 with %03>Hs) when nothing was sent
		 * (Format.cc: LFT_HTTP_SENT_STATUS_CODE is always a number),
		 * so a JSON template gets 0 too, not null.
		 */
		v->v_int = r->lr_status > 0 ? (uint64_t)r->lr_status : 0;
		break;
	case LFC_STATUS_ORIGIN:
		v->v_int = r->lr_http_status > 0 ? (uint64_t)r->lr_http_status :
		    0;
		v->v_nullzero = 1;
		break;
	case LFC_MIME_TYPE:
		lf_setstr(v, r->lr_content_type);
		break;
	case LFC_SQUID_STATUS:
		/* as Squid 5.7 logs CONNECT outcomes and forwarded requests */
		lf_setstr(v, r->lr_status == 403 ? "TCP_DENIED" :
		    r->lr_scheme != NULL && (r->lr_has_server ||
		    r->lr_http_status > 0) ? "TCP_MISS" :
		    r->lr_status == 200 && r->lr_scheme == NULL ? "TCP_TUNNEL" :
		    "NONE_NONE");
		break;
	case LFC_HIERARCHY:
		lf_setstr(v, r->lr_has_server ? "HIER_DIRECT" : "HIER_NONE");
		break;
	case LFC_EXT_LOG:
		lf_setstr(v, r->lr_pod);
		v->v_json = r->lr_pod_json;
		break;
	case LFC_USER_AGENT:
		lf_setstr(v, r->lr_user_agent);
		break;
	case LFC_USER:
		lf_setstr(v, r->lr_user);
		break;
	case LFC_XACTION:
		v->v_int = r->lr_id;
		break;
	case LFC_PROTO:
		lf_setstr(v, logrec_proto_name(r->lr_proto));
		break;
	default:
		lf_value_tls(t, r, v);
		break;
	}
}

/* ------------------------------------------------------------ escapers */

static const char lf_hex[] = "0123456789ABCDEF";

static int
lf_add_pct(struct buf *jb, unsigned char c)
{
	char	 e[3];

	e[0] = '%';
	e[1] = lf_hex[c >> 4];
	e[2] = lf_hex[c & 0xf];
	return buf_add(jb, e, 3);
}

/* Squid's rfc1738_escape(); keeppct: rfc1738_escape_unescaped() */
static int
lf_esc_url(struct buf *jb, const char *s, size_t len, int keeppct)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i, run;

	for (i = run = 0; i < len; i++) {
		if (u[i] > 0x20 && u[i] < 0x7f &&
		    strchr("<>\"#{}|\\^~[]`'", u[i]) == NULL &&
		    (u[i] != '%' || keeppct))
			continue;
		if (buf_add(jb, s + run, i - run) == -1 ||
		    lf_add_pct(jb, u[i]) == -1)
			return -1;
		run = i + 1;
	}
	return buf_add(jb, s + run, len - run);
}

/* Squid's log_quoted_string(): backslash before " and \, CR LF TAB named */
static int
lf_esc_quotes(struct buf *jb, const char *s, size_t len)
{
	size_t	 i, run;
	char	 e[2];

	for (i = run = 0; i < len; i++) {
		e[0] = '\\';
		switch (s[i]) {
		case '"':
		case '\\':
			e[1] = s[i];
			break;
		case '\r':
			e[1] = 'r';
			break;
		case '\n':
			e[1] = 'n';
			break;
		case '\t':
			e[1] = 't';
			break;
		default:
			continue;
		}
		if (buf_add(jb, s + run, i - run) == -1 ||
		    buf_add(jb, e, 2) == -1)
			return -1;
		run = i + 1;
	}
	return buf_add(jb, s + run, len - run);
}

/* Squid's QuoteMimeBlob() */
static int
lf_esc_mimeblob(struct buf *jb, const char *s, size_t len)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i, run;
	int			 rv;

	for (i = run = 0; i < len; i++) {
		if (u[i] >= 0x20 && u[i] < 0x7f &&
		    strchr("%\"#/;[]", u[i]) == NULL)
			continue;
		if (buf_add(jb, s + run, i - run) == -1)
			return -1;
		if (u[i] == '\r')
			rv = buf_add(jb, "\\r", 2);
		else if (u[i] == '\n')
			rv = buf_add(jb, "\\n", 2);
		else
			rv = lf_add_pct(jb, u[i]);
		if (rv == -1)
			return -1;
		run = i + 1;
	}
	return buf_add(jb, s + run, len - run);
}

/*
 * Raw, except that CR and LF are written as \r and \n: a client must not
 * be able to start a log line of its own.
 */
static int
lf_esc_raw(struct buf *jb, const char *s, size_t len)
{
	size_t	 i, run;

	for (i = run = 0; i < len; i++) {
		if (s[i] != '\r' && s[i] != '\n')
			continue;
		if (buf_add(jb, s + run, i - run) == -1 ||
		    buf_add(jb, s[i] == '\r' ? "\\r" : "\\n", 2) == -1)
			return -1;
		run = i + 1;
	}
	return buf_add(jb, s + run, len - run);
}

static int
lf_escape(struct buf *jb, enum lf_quote q, const char *s, size_t len)
{
	switch (q) {
	case LFQ_NONE:
		return lf_esc_url(jb, s, len, 1);
	case LFQ_URL:
		return lf_esc_url(jb, s, len, 0);
	case LFQ_QUOTES:
		return lf_esc_quotes(jb, s, len);
	case LFQ_MIMEBLOB:
		return lf_esc_mimeblob(jb, s, len);
	case LFQ_RAW:
		break;
	}
	return lf_esc_raw(jb, s, len);
}

/*
 * s (len bytes) truncated to the precision and padded to the width, with
 * leading zeros if zero is set (Squid's %0Nx on numbers).
 */
static int
lf_add_padded(struct buf *jb, const struct lf_token *t, const char *s,
    size_t len, int json, int zero)
{
	static const char	 sp[] = "                                ";
	static const char	 zs[] = "00000000000000000000000000000000";
	const char		*fill = zero ? zs : sp;
	size_t			 pad = 0, n;
	int			 left = (t->lt_flags & LT_LEFT) && !zero;

	if (t->lt_prec >= 0 && len > (size_t)t->lt_prec &&
	    t->lt_code != LFC_TIME_SUB)
		len = (size_t)t->lt_prec;
	if (t->lt_width > 0 && len < (size_t)t->lt_width)
		pad = (size_t)t->lt_width - len;
	if (!left)
		for (; pad > 0; pad -= n)
			if (buf_add(jb, fill, (n = pad < sizeof(sp) - 1 ?
			    pad : sizeof(sp) - 1)) == -1)
				return -1;
	if ((json ? json_buf_escape(jb, s, len) : buf_add(jb, s, len)) == -1)
		return -1;
	for (; pad > 0; pad -= n)
		if (buf_add(jb, sp, (n = pad < sizeof(sp) - 1 ?
		    pad : sizeof(sp) - 1)) == -1)
			return -1;
	return 0;
}

/*
 * Renders a template.  With skel set, rec is unused and every code
 * becomes its placeholder (see lf_check_json()).
 */
static int
lf_render_template(const struct logformat *lf, const struct logrec *rec,
    struct buf *jb, int skel)
{
	const struct lf_token	*t;
	struct lf_value		 v;
	struct buf		 tmp;
	char			 num[32];
	const char		*s;
	size_t			 i, len;
	int			 json = lf->lf_kind == LFK_JSONTPL, instr, rv;
	int			 zero;

	memset(&tmp, 0, sizeof(tmp));
	for (i = 0; i < lf->lf_ntokens; i++) {
		t = &lf->lf_tokens[i];
		if (t->lt_code == LFC_TEXT) {
			if (buf_add(jb, t->lt_text, t->lt_len) == -1)
				goto fail;
			continue;
		}
		instr = json && (t->lt_flags & LT_INSTR);
		if (skel) {
			if (buf_add(jb, instr ? "x" : "null",
			    instr ? 1 : 4) == -1)
				goto fail;
			continue;
		}
		lf_value(t, rec, &v);

		if (json && !instr) {
			/* a complete JSON value */
			if (v.v_kind == LFV_INT && v.v_int == 0 &&
			    v.v_nullzero)
				v.v_kind = LFV_ABSENT;
			switch (v.v_kind) {
			case LFV_ABSENT:
				rv = buf_add(jb, "null", 4);
				break;
			case LFV_INT:
				len = fmt_u64(num, v.v_int);
				rv = buf_add(jb, num, len);
				break;
			case LFV_NUMTEXT:
				rv = buf_add(jb, v.v_str, v.v_len);
				break;
			case LFV_STR:
			default:
				/* %'ea: a helper's JSON stays JSON */
				if (t->lt_quote == LFQ_RAW && t->lt_explicit &&
				    v.v_json) {
					rv = buf_add(jb, v.v_str, v.v_len);
					break;
				}
				if (t->lt_explicit && (t->lt_quote == LFQ_URL ||
				    t->lt_quote == LFQ_MIMEBLOB)) {
					tmp.b_len = 0;
					if (lf_escape(&tmp, t->lt_quote,
					    v.v_str, v.v_len) == -1)
						goto fail;
					rv = json_buf_string(jb, tmp.b_data,
					    tmp.b_len);
				} else
					rv = json_buf_string(jb, v.v_str,
					    v.v_len);
				break;
			}
			if (rv == -1)
				goto fail;
			continue;
		}

		/* Squid rules, or inside a JSON string */
		zero = 0;
		switch (v.v_kind) {
		case LFV_ABSENT:
			if (buf_addc(jb, '-') == -1)
				goto fail;
			continue;
		case LFV_INT:
			len = fmt_u64(num, v.v_int);
			num[len] = '\0';
			s = num;
			zero = (t->lt_flags & LT_ZERO) != 0;
			break;
		case LFV_NUMTEXT:
			s = v.v_str;
			len = v.v_len;
			break;
		case LFV_STR:
		default:
			s = v.v_str;
			len = v.v_len;
			if (json) {
				if (!t->lt_explicit || (t->lt_quote != LFQ_URL &&
				    t->lt_quote != LFQ_MIMEBLOB))
					break;
			} else if (!(t->lt_flags & LT_SQUIDQ) &&
			    t->lt_quote == LFQ_NONE)
				break;
			tmp.b_len = 0;
			if (lf_escape(&tmp, t->lt_quote, s, len) == -1)
				goto fail;
			s = tmp.b_data != NULL ? tmp.b_data : "";
			len = tmp.b_len;
			break;
		}
		if (len == 0) {
			if (buf_addc(jb, '-') == -1)
				goto fail;
			continue;
		}
		if (lf_add_padded(jb, t, s, len, json, zero) == -1)
			goto fail;
	}
	buf_free(&tmp);
	return 0;
 fail:
	buf_free(&tmp);
	return -1;
}

/* ---------------------------------------------------------------- json */

static int
lf_json_key(struct buf *jb, const char *key)
{
	return buf_add(jb, key, strlen(key));
}

static int
lf_json_u64(struct buf *jb, const char *key, uint64_t v)
{
	char	 num[UTIL_U64_LEN];
	size_t	 n;

	n = fmt_u64(num, v);
	if (lf_json_key(jb, key) == -1 || buf_add(jb, num, n) == -1)
		return -1;
	return 0;
}

static int
lf_json_str(struct buf *jb, const char *key, const char *s)
{
	if (lf_json_key(jb, key) == -1)
		return -1;
	if (s == NULL)
		return buf_add(jb, "null", 4);
	return json_buf_string(jb, s, strlen(s));
}

static int
lf_json_addr(struct buf *jb, const char *ipkey, const char *portkey,
    const struct sockaddr_storage *ss, int have)
{
	char	 buf[INET6_ADDRSTRLEN];
	int	 port;

	if (!have || addr_ntop(ss, buf, sizeof(buf), &port) == -1)
		return lf_json_str(jb, ipkey, NULL) == -1 ||
		    lf_json_str(jb, portkey, NULL) == -1 ? -1 : 0;
	if (lf_json_str(jb, ipkey, buf) == -1 ||
	    lf_json_u64(jb, portkey, (uint64_t)port) == -1)
		return -1;
	return 0;
}

/*
 * A BigQuery TIMESTAMP: RFC 3339 in UTC with milliseconds, always, even
 * for a time out of range (BigQuery's is 0001-01-01 to 9999-12-31; ours
 * is clamped to 1970-01-01 .. 9999-12-31).
 */
static int
lf_json_time(struct buf *jb, const char *key, double t)
{
	char	 ts[TIMEFMT_RFC3339_LEN];

	if (!(t > 0))
		t = 0;
	if (t > LF_TIME_MAX)
		t = LF_TIME_MAX;
	if (timefmt_rfc3339(ts, sizeof(ts), t) == 0)
		snprintf(ts, sizeof(ts), "1970-01-01T00:00:00.000Z");
	return lf_json_str(jb, key, ts);
}

/*
 * The line's uid: the worker's random instance, the id and the line's
 * number among the lines of its tunnel, "4f1c9a0e2b7d6c35-7-1".  Unique
 * across processes and hosts, so that BigQuery can take it as insertId
 * or deduplicate on it.
 */
static int
lf_json_uid(struct buf *jb, const struct logrec *r)
{
	const char	*inst = r->lr_instance != NULL ? r->lr_instance :
			    "0000000000000000";
	char		 uid[LOGREC_INSTANCE_LEN + 2 * UTIL_U64_LEN + 3];
	size_t		 n;

	/* by hand: this is on every line, and snprintf costs */
	n = strlen(inst);
	if (n > LOGREC_INSTANCE_LEN - 1)
		n = LOGREC_INSTANCE_LEN - 1;
	memcpy(uid, inst, n);
	uid[n++] = '-';
	n += fmt_u64(uid + n, r->lr_id);
	uid[n++] = '-';
	n += fmt_u64(uid + n, (uint64_t)r->lr_seq + 1);
	uid[n] = '\0';
	return lf_json_str(jb, ",\"uid\":", uid);
}

/* A JSON value that json_valid() accepted: is it an object? */
static int
lf_json_is_object(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	return *s == '{';
}

/*
 * "pod" is an object or null, never anything else, so that it loads
 * into a BigQuery JSON column as a record's metadata: a helper value
 * that is not a JSON object goes to "pod_raw" (cut to
 * LOGREC_POD_RAW_MAX bytes, on a character boundary) and "pod_error"
 * says why.
 */
static int
lf_json_pod(struct buf *jb, const struct logrec *r)
{
	const char	*error = r->lr_pod_error;
	size_t		 len = 0;
	int		 object;

	object = r->lr_pod != NULL && r->lr_pod_json &&
	    lf_json_is_object(r->lr_pod);
	if (r->lr_pod != NULL && !object) {
		error = r->lr_pod_json ? "not_object" : "not_json";
		if ((len = strlen(r->lr_pod)) > LOGREC_POD_RAW_MAX) {
			len = LOGREC_POD_RAW_MAX;
			while (len > 0 &&
			    ((unsigned char)r->lr_pod[len] & 0xc0) == 0x80)
				len--;
		}
	}
	if (error != NULL && lf_json_str(jb, ",\"pod_error\":", error) == -1)
		return -1;
	if (r->lr_rule != NULL &&
	    lf_json_str(jb, ",\"rule\":", r->lr_rule) == -1)
		return -1;
	if (r->lr_pod != NULL && !object &&
	    (lf_json_key(jb, ",\"pod_raw\":") == -1 ||
	    json_buf_string(jb, r->lr_pod, len) == -1))
		return -1;
	if (lf_json_key(jb, ",\"pod\":") == -1)
		return -1;
	if (object)
		return buf_addstr(jb, r->lr_pod);
	return buf_add(jb, "null", 4);
}

/*
 * "policy": an object with exactly mode, verdict, rule, from and reason,
 * each a string or null (a BigQuery RECORD of five NULLABLE STRINGs), or
 * null.  A helper's policy was cut down to those when it arrived; the
 * stand-in for an on_failure= lookup without an answer has a verdict
 * and a reason only.
 */
static int
lf_json_policy(struct buf *jb, const struct logrec *r)
{
	const char	*v;
	int		 i;

	if (r->lr_policy == NULL && r->lr_policy_fail == NULL)
		return lf_json_str(jb, ",\"policy\":", NULL);
	if (lf_json_key(jb, ",\"policy\":{") == -1)
		return -1;
	for (i = 0; i < LP_NMEMBERS; i++) {
		if (r->lr_policy != NULL)
			v = logpolicy_get(r->lr_policy, i);
		else
			v = i == LP_VERDICT ? r->lr_policy_fail :
			    i == LP_REASON ? r->lr_policy_why : NULL;
		if ((i > 0 && buf_addc(jb, ',') == -1) ||
		    buf_addc(jb, '"') == -1 ||
		    buf_addstr(jb, logpolicy_name(i)) == -1 ||
		    lf_json_str(jb, "\":", v) == -1)
			return -1;
	}
	return buf_addc(jb, '}');
}

static int
lf_json_bool(struct buf *jb, const char *key, int v)
{
	if (lf_json_key(jb, key) == -1)
		return -1;
	return v ? buf_add(jb, "true", 4) : buf_add(jb, "false", 5);
}

/* The ClientHello's ALPN values (wire format), as a JSON array of strings. */
static int
lf_json_alpn(struct buf *jb, const struct logtls *t)
{
	const uint8_t	*a = t->lt_data + t->lt_sni_len;
	size_t		 off = 0, n;

	if (lf_json_key(jb, ",\"alpn\":[") == -1)
		return -1;
	while (off < t->lt_alpn_len) {
		n = a[off];
		if (off + 1 + n > t->lt_alpn_len)
			break;
		if ((off > 0 && buf_addc(jb, ',') == -1) ||
		    json_buf_string(jb, (const char *)a + off + 1, n) == -1)
			return -1;
		off += 1 + n;
	}
	return buf_addc(jb, ']');
}

/*
 * "tls": an object once a TLS ClientHello's read is over (connectd.conf(5)
 * lists its members and their types), else null.  The SNI and the ALPN
 * values are the client's bytes: escaped, invalid UTF-8 replaced.
 */
static int
lf_json_tls(struct buf *jb, const struct logrec *r)
{
	const struct logtls	*t = r->lr_tls;
	const char		*v;
	char			 vb[8];
	unsigned		 i;
	int			 rv;

	if (r->lr_proto != TLSHELLO_PROTO_TLS || t == NULL ||
	    t->lt_hello == PEEK_HELLO_NONE)
		return lf_json_str(jb, ",\"tls\":", NULL);
	if (lf_json_str(jb, ",\"tls\":{\"hello\":",
	    logrec_hello_name(t->lt_hello)) == -1 ||
	    lf_json_key(jb, ",\"sni\":") == -1)
		return -1;
	if (t->lt_has_sni)
		rv = json_buf_string(jb, (const char *)t->lt_data,
		    t->lt_sni_len);
	else
		rv = buf_add(jb, "null", 4);
	if (rv == -1 ||
	    lf_json_str(jb, ",\"sni_match\":", logrec_match_name(t->lt_match)) ==
	    -1 || lf_json_alpn(jb, t) == -1 ||
	    lf_json_key(jb, ",\"versions\":[") == -1)
		return -1;
	for (i = 0; i < t->lt_nversions; i++) {
		v = logrec_version_name(t->lt_versions[i], vb);
		if ((i > 0 && buf_addc(jb, ',') == -1) ||
		    json_buf_string(jb, v, strlen(v)) == -1)
			return -1;
	}
	if (buf_addc(jb, ']') == -1 ||
	    lf_json_str(jb, ",\"version\":", t->lt_server ?
	    logrec_version_name(t->lt_version, vb) : NULL) == -1)
		return -1;
	/* the cipher suite as IANA's registry numbers it: see connectd.conf(5) */
	snprintf(vb, sizeof(vb), "0x%04x", t->lt_cipher);
	if (lf_json_str(jb, ",\"cipher\":", t->lt_server ? vb : NULL) == -1 ||
	    lf_json_bool(jb, ",\"ech\":", t->lt_ech) == -1 ||
	    lf_json_bool(jb, ",\"pq\":", t->lt_pq) == -1 ||
	    lf_json_bool(jb, ",\"hrr\":", t->lt_hrr) == -1 ||
	    lf_json_str(jb, ",\"ja4\":", t->lt_ja4[0] != '\0' ? t->lt_ja4 :
	    NULL) == -1 ||
	    lf_json_u64(jb, ",\"hello_bytes\":", t->lt_hello_bytes) == -1 ||
	    buf_addc(jb, '}') == -1)
		return -1;
	return 0;
}

/*
 * The built-in json format: every field has one JSON type or is null,
 * as connectd.conf(5) lists them and conf/bigquery-schema.json declares
 * them (t/78 checks every line of the suite against it).
 */
static int
lf_render_json(const struct logrec *r, struct buf *jb)
{
	uint64_t	 up, down;
	int		 rv;

	up = r->lr_bytes_up > r->lr_up_logged ?
	    r->lr_bytes_up - r->lr_up_logged : 0;
	down = r->lr_bytes_down > r->lr_down_logged ?
	    r->lr_bytes_down - r->lr_down_logged : 0;
	if (lf_json_time(jb, "{\"ts\":", r->lr_end) == -1 ||
	    lf_json_time(jb, ",\"start\":", r->lr_start) == -1 ||
	    lf_json_u64(jb, ",\"duration_ms\":", lf_duration_ms(r)) == -1 ||
	    lf_json_u64(jb, ",\"id\":", r->lr_id) == -1 ||
	    lf_json_uid(jb, r) == -1 ||
	    lf_json_u64(jb, ",\"seq\":", (uint64_t)r->lr_seq + 1) == -1 ||
	    lf_json_str(jb, ",\"record\":", r->lr_interim ? "interim" :
	    "final") == -1 ||
	    lf_json_str(jb, ",\"proxy\":", r->lr_proxy != NULL ?
	    r->lr_proxy : "") == -1 ||
	    lf_json_addr(jb, ",\"client_ip\":", ",\"client_port\":",
	    &r->lr_client, 1) == -1 ||
	    lf_json_str(jb, ",\"method\":", r->lr_method) == -1 ||
	    lf_json_str(jb, ",\"scheme\":", r->lr_scheme) == -1 ||
	    lf_json_str(jb, ",\"authority\":", r->lr_authority) == -1 ||
	    lf_json_str(jb, ",\"url\":", r->lr_url) == -1 ||
	    lf_json_str(jb, ",\"host\":", r->lr_host) == -1)
		return -1;
	if (r->lr_port > 0 && r->lr_port <= 65535)
		rv = lf_json_u64(jb, ",\"port\":", (uint64_t)r->lr_port);
	else
		rv = lf_json_str(jb, ",\"port\":", NULL);
	if (rv == -1 ||
	    lf_json_str(jb, ",\"user_agent\":", r->lr_user_agent) == -1 ||
	    lf_json_str(jb, ",\"user\":", r->lr_user) == -1 ||
	    lf_json_addr(jb, ",\"server_ip\":", ",\"server_port\":",
	    &r->lr_server, r->lr_has_server) == -1)
		return -1;
	/* never null: 0 when nothing was sent, as Squid's %>Hs */
	if (lf_json_u64(jb, ",\"status\":", r->lr_status > 0 ?
	    (uint64_t)r->lr_status : 0) == -1)
		return -1;
	if (r->lr_http_status > 0)
		rv = lf_json_u64(jb, ",\"http_status\":",
		    (uint64_t)r->lr_http_status);
	else
		rv = lf_json_str(jb, ",\"http_status\":", NULL);
	if (rv == -1 ||
	    lf_json_u64(jb, ",\"bytes_up\":", r->lr_bytes_up) == -1 ||
	    lf_json_u64(jb, ",\"bytes_down\":", r->lr_bytes_down) == -1 ||
	    lf_json_u64(jb, ",\"bytes_up_delta\":", up) == -1 ||
	    lf_json_u64(jb, ",\"bytes_down_delta\":", down) == -1 ||
	    lf_json_u64(jb, ",\"request_in_connection\":",
	    r->lr_nreq > 0 ? r->lr_nreq : 1) == -1 ||
	    lf_json_str(jb, ",\"proto\":", logrec_proto_name(r->lr_proto)) ==
	    -1 || lf_json_tls(jb, r) == -1 ||
	    lf_json_str(jb, ",\"close\":", r->lr_interim ? NULL :
	    logrec_close_name(r->lr_close)) == -1)
		return -1;
	if (r->lr_detail != NULL &&
	    lf_json_str(jb, ",\"detail\":", r->lr_detail) == -1)
		return -1;
	if (lf_json_pod(jb, r) == -1 || lf_json_policy(jb, r) == -1 ||
	    buf_addc(jb, '}') == -1)
		return -1;
	return 0;
}
