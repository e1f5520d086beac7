#!/usr/bin/env python3
"""46-credentials.t: credentials never reach a log or an error page.

Requests carry Proxy-Authorization, Authorization and Cookie headers with
secrets: an allowed tunnel, a denied one (403), a malformed request (400),
one too large (431), one cut off by the header timeout (408), one to a
port where nothing listens (503).  connectd runs with -d (debug output)
and logs to stdout in json, to a file in the squid format, and to a file
with a template that uses every code.

Expectations:
- each request gets its expected status;
- no secret (nor its base64 form) appears in any reply sent to the client,
  on stdout, on stderr or in any log file."""
import base64
import os
import sys
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
from tap import ok, is_, like, diag, done

h.need_connectd()
h.watchdog(60)
echo = h.EchoServer()
dead = h.free_port()

S1, S2, S3 = "s3cr3t-proxy-pw-7f3a", "bearer-token-91c2e", "cookie-secret-5d1b"
BASIC = base64.b64encode(("alice:" + S1).encode()).decode()
HEADERS = [("Host", "x"), ("Proxy-Authorization", "Basic " + BASIC),
           ("Authorization", "Bearer " + S2), ("Cookie", "session=" + S3),
           ("User-Agent", "cred-test/1")]
SECRETS = [S1, S2, S3, BASIC]

d = h.tmpdir()
squid_log = os.path.join(d, "squid.log")
all_log = os.path.join(d, "all.log")
conf = (("logformat all %ts %tu %tl %tr %>a %>p %<a %<p %la %lp %ru %rm %>st %<st "
        "%>Hs %Ss %Sh %ea %un %mt %{User-Agent}>h\n"
        "access_log stdio:/dev/stdout json\n"
        "access_log stdio:{SQ} squid\n"
        "access_log stdio:{ALL} all\n"
        "request_header_timeout 1 second\n"
        "request_header_max_size 1 KB\n"
        "acl denied_port port {DP}\n"
        "http_access deny denied_port\n").replace("{SQ}", squid_log).replace(
            "{ALL}", all_log).replace("{DP}", str(echo.port)) + (
        pu.LOOPBACK_ALLOW))
echo2 = h.EchoServer()
replies = []
with h.Connectd(conf, args=["-d"]) as cd:
    def send(raw, want, name):
        c = h.ProxyClient(cd.port)
        st, reply, how = c.request(raw, timeout=5)
        replies.append(reply)
        is_(st, want, name)

    # allowed tunnel
    c = h.ProxyClient(cd.port)
    st, head = c.connect_tunnel(echo2.authority, headers=HEADERS)
    replies.append(head)
    is_(st, 200, "a tunnel with credentials works")
    c.sendall(b"x")
    c.recv_exact(1)
    c.close()
    send(h.make_connect(echo.authority, HEADERS), 403, "denied: 403")
    send(h.make_connect("127.0.0.1:%d" % dead, HEADERS), 503, "nothing listening: 503")
    send(h.make_connect("bad host:1", HEADERS), 400, "malformed: 400")
    send(h.make_connect(echo2.authority, HEADERS + [("X-Pad", "p" * 2000)]), 431,
         "too large: 431")
    # cut off by the header timeout, secret already sent
    c = h.ProxyClient(cd.port)
    c.sendall(h.make_connect(echo2.authority, HEADERS)[:-2])
    reply, how = c.read_to_eof(timeout=5)
    replies.append(reply)
    is_(h.parse_status(reply), 408, "header timeout: 408")
    c.close()
    h.wait_for(lambda: len(cd.lines()) >= 6)
    cd.usr1()
    time.sleep(0.3)
    cd.finish()

is_(len(cd.lines()), 6, "six json log lines")
outputs = {"stdout": h.read_text(cd.stdout_path), "stderr": h.read_text(cd.stderr_path),
           "squid log": h.read_text(squid_log), "all-codes log": h.read_text(all_log),
           "replies": b"".join(replies).decode("latin-1")}
ok(len(outputs["stderr"]) > 0 and len(outputs["squid log"]) > 0,
   "stderr (debug) and the file logs are not empty")
for where, text in outputs.items():
    leaked = [s for s in SECRETS if s in text]
    ok(not leaked, "no secret in %s" % where)
    if leaked:
        diag("leaked %r" % leaked)

done()
