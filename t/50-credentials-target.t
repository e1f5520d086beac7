#!/usr/bin/env python3
"""50-credentials-target.t: userinfo in the request target never reaches an output.

A request target may carry a user name and password (RFC 3986 userinfo,
"alice:s3cr3t@host:443").  connectd refuses such a CONNECT, but the
refusal itself must not log the secret.  Every path that records a target
is tried, with connectd in debug mode, logging json to stdout, the squid
format to a file and a template with %ru to another:

- a well-formed CONNECT with userinfo (400 "userinfo in target");
- the same without an HTTP version (400 "missing version");
- an absolute-form GET with userinfo and a query (400: connectd does not
  forward userinfo);
- an absolute-form CONNECT with userinfo (400);
- a target with userinfo that is still arriving when the head grows too
  large (431): a target cut short is not logged at all;
- a control byte in the password (400, the parser stops inside the target);
- a hostile target with several '@' and a tab in the version (400).

Expectations: each gets its status; no secret (user name, password,
query value) appears in any reply, on stdout, on stderr or in any log
file; the json line's authority keeps the host with the userinfo shown
as "***", and an absolute-form target loses its query after the "?", as
Squid's strip_query_terms does.  A CONNECT without userinfo is logged as
sent.
"""
import os
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
from tap import ok, is_, diag, done

h.need_connectd()
h.watchdog(60)
echo = h.EchoServer()

USER, PW, TOK = "alice-user-4c1d", "s3cr3t-pw-90ab", "query-token-77e2"
SECRETS = [USER, PW, TOK]
UI = "%s:%s@" % (USER, PW)

d = h.tmpdir()
squid_log = os.path.join(d, "squid.log")
tpl_log = os.path.join(d, "tpl.log")
conf = ("logformat tpl %ru %>ru %rm %>Hs\n"
        "access_log stdio:/dev/stdout json\n"
        "access_log stdio:" + squid_log + " squid\n"
        "access_log stdio:" + tpl_log + " tpl\n"
        "request_header_max_size 1 KB\n") + pu.LOOPBACK_ALLOW

CASES = [
    # name, raw request, status, expected authority in the json line
    ("CONNECT with userinfo",
     "CONNECT %sexample.com:443 HTTP/1.1\r\nHost: x\r\n\r\n" % UI, 400,
     "***@example.com:443"),
    ("no version",
     "CONNECT %sexample.com:443\r\n\r\n" % UI, 400,
     "***@example.com:443"),
    ("absolute-form GET",
     "GET http://%sexample.com/p?token=%s HTTP/1.1\r\nHost: x\r\n\r\n" % (UI, TOK), 400,
     "http://***@example.com/p?"),
    ("absolute-form CONNECT",
     "CONNECT https://%sexample.com:443/ HTTP/1.1\r\n\r\n" % UI, 400,
     "https://***@example.com:443/"),
    ("too large, target cut",
     "GET http://%sexample.com/%s" % (UI, "p" * 2000), 431, None),
    ("a control byte in the password",
     "CONNECT %s\x01@example.com:443 HTTP/1.1\r\n\r\n" % UI[:-1], 400,
     "***@example.com:443"),
    ("several @ and a bad version",
     "CONNECT a@%s@example.com:443 HTTP/1.1\t\r\n\r\n" % UI, 400,
     "***@example.com:443"),
]

replies = []
with h.Connectd(conf, args=["-d"]) as cd:
    for name, raw, want, _ in CASES:
        c = h.ProxyClient(cd.port)
        st, reply, how = c.request(raw.encode(), timeout=5)
        replies.append(reply)
        is_(st, want, "%s: %d" % (name, want))
        c.close()
    c = h.ProxyClient(cd.port)
    st, head = c.connect_tunnel(echo.authority)
    is_(st, 200, "a CONNECT without userinfo works")
    c.close()
    lines = cd.wait_lines(len(CASES) + 1)
    cd.usr1()
    cd.finish()

is_(len(lines), len(CASES) + 1, "one json line per request")
for (name, raw, want, auth), line in zip(CASES, lines):
    is_(line.get("status"), want, "%s: the line's status" % name)
    is_(line.get("authority"), auth, "%s: authority with the userinfo as ***" % name)
is_(lines[-1].get("authority") if lines else None, echo.authority,
    "a target without userinfo is logged as sent")

outputs = {"stdout": h.read_text(cd.stdout_path), "stderr": h.read_text(cd.stderr_path),
           "squid log": h.read_text(squid_log), "template log": h.read_text(tpl_log),
           "replies": b"".join(replies).decode("latin-1")}
ok(outputs["squid log"].count("\n") == len(CASES) + 1 and
   outputs["template log"].count("\n") == len(CASES) + 1,
   "the squid and template logs have every line")
for where, text in outputs.items():
    leaked = [s for s in SECRETS if s in text]
    ok(not leaked, "no user name, password or query value in %s" % where)
    if leaked:
        diag("leaked %r" % leaked)

done()
