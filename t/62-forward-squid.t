#!/usr/bin/env python3
"""62-forward-squid.t: the same plain-HTTP requests through Squid 5.7 and connectd.

Both log with one template, "%rm %>Hs %<Hs", and serve the same requests
to the same origin: GET, HEAD, POST, PUT, DELETE, statuses 200, 204, 304,
404, a chunked and a close-delimited body, a closed port, a server that
closes without a response.  For each request the status the client got
and the logged %>Hs must be the same through both; %<Hs (the server's
status) too where a server answered.
"""
import os
import socket
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import http_util as hu
from tap import ok, is_, diag, done, skip_all

h.need_connectd()
if not h.Squid.available():
    skip_all("squid (Debian package) is not installed")
h.watchdog(120)
web = hu.WebOrigin()
W = web.authority
dead = h.free_port()


class Mute(h.Origin):
    """Reads the request head and closes without a word."""

    def handle(self, c, rec):
        rec["got"] = h.recv_head(c)


mute = Mute()
REQUESTS = [
    ("GET 200", "GET http://%s/bytes/1000 HTTP/1.1\r\nHost: %s\r\n\r\n" % (W, W)),
    ("HEAD 200", "HEAD http://%s/bytes/1000 HTTP/1.1\r\nHost: %s\r\n\r\n" % (W, W)),
    ("POST 200", "POST http://%s/sha HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\n\r\nhello" % (W, W)),
    ("PUT chunked 200", "PUT http://%s/sha HTTP/1.1\r\nHost: %s\r\n"
     "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" % (W, W)),
    ("DELETE 404", "DELETE http://%s/nothing HTTP/1.1\r\nHost: %s\r\n\r\n" % (W, W)),
    ("GET 204", "GET http://%s/status/204 HTTP/1.1\r\nHost: %s\r\n\r\n" % (W, W)),
    ("GET 304", "GET http://%s/status/304 HTTP/1.1\r\nHost: %s\r\n\r\n" % (W, W)),
    ("GET 404", "GET http://%s/status/404 HTTP/1.1\r\nHost: %s\r\n\r\n" % (W, W)),
    ("GET chunked", "GET http://%s/chunked/5000 HTTP/1.1\r\nHost: %s\r\n\r\n" % (W, W)),
    ("GET close-delimited", "GET http://%s/close/5000 HTTP/1.1\r\nHost: %s\r\n\r\n" % (W, W)),
    ("GET a closed port", "GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\n\r\n" % dead),
    ("GET a server that says nothing",
     "GET http://%s/ HTTP/1.1\r\nHost: x\r\n\r\n" % mute.authority),
]

TEMPLATE = "logformat cmp %rm %>Hs %<Hs"


def run(port, log):
    out = []
    for name, req in REQUESTS:
        c = h.ProxyClient(port)
        st, reply, how = c.request((req.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1)
                                    ).encode(), timeout=20)
        c.close()
        out.append(st)
    lines = h.wait_for(lambda: (lambda x: x if len(x) >= len(REQUESTS) else None)(
        [l for l in h.read_text(log).splitlines() if l.strip()]), timeout=20) or []
    return out, lines


sq = h.Squid(TEMPLATE + "\naccess_log stdio:{dir}/cmp.log cmp\n"
             "acl lo src 127.0.0.0/8\nhttp_access allow lo\nhttp_access deny all\n")
squid_st, squid_lines = run(sq.port, os.path.join(sq.dir, "cmp.log"))
sq.stop()

log = os.path.join(h.tmpdir(), "cmp.log")
with h.Connectd(TEMPLATE + "\naccess_log stdio:%s cmp\n" % log +
                "acl lo src 127.0.0.0/8\nhttp_access allow lo\nhttp_access deny all\n") as cd:
    cd_st, cd_lines = run(cd.port, log)
    cd.finish()

is_(len(squid_lines), len(REQUESTS), "squid logged every request")
is_(len(cd_lines), len(REQUESTS), "connectd logged every request")
for i, (name, req) in enumerate(REQUESTS):
    is_(cd_st[i], squid_st[i], "%s: the client got %r from both" % (name, squid_st[i]))
    s = squid_lines[i].split() if i < len(squid_lines) else []
    c = cd_lines[i].split() if i < len(cd_lines) else []
    is_(c[:2], s[:2], "%s: %%rm %%>Hs the same (%s)" % (name, " ".join(s[:2])))
    if len(s) > 2 and s[2] not in ("-", "0", "000"):
        is_(c[2:3], s[2:3], "%s: %%<Hs the same (%s)" % (name, s[2]))
done()
