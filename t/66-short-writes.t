#!/usr/bin/env python3
"""66-short-writes.t: bytes stay in order whatever a socket write takes.

connectd runs with t/lib/shortio.c preloaded: every write to a TCP socket
takes at most 7 bytes and every third one fails with EAGAIN, as a slow
peer with a full socket buffer would make it.  What a proxy then keeps
for later must go out before anything it writes after, on every path:

- a CONNECT tunnel echoing 100 KB, and an error reply (400);
- forwarded GETs: Content-Length, chunked passed through to an HTTP/1.1
  client, chunked decoded for an HTTP/1.0 client (a write per chunk), a
  body that ends with the connection;
- a POST of 100 KB, whose request head and body go up in pieces;
- five requests on one kept-alive connection.

Each body is compared byte for byte; each line is valid JSON with the
status the client got.
"""
import hashlib
import json
import os
import subprocess
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import http_util as hu
from tap import ok, is_, diag, done, skip_all

h.need_connectd()
if not h.have("cc"):
    skip_all("cc is needed to build the shim")
h.watchdog(300)

shim = os.path.join(h.tmpdir(), "shortio.so")
rc, out, err = h.run(["cc", "-shared", "-fPIC", "-o", shim,
                      os.path.join(h.srcdir(), "lib", "shortio.c"), "-ldl"], timeout=60)
if rc != 0:
    skip_all("the shim does not build: %s" % err.strip()[-300:])

env = dict(os.environ, LD_PRELOAD=shim)
if env.get("ASAN_OPTIONS"):
    # the sanitizer runtime is linked in; the shim comes before it
    env["ASAN_OPTIONS"] += ":verify_asan_link_order=0"

web = hu.WebOrigin()
echo = h.EchoServer()


def response(c, head_only=False):
    """One response from the client c: (status, head, body)."""
    head = c.read_until(b"\r\n\r\n", timeout=60)
    st = h.parse_status(head)
    low = head.lower()
    if head_only or st in (204, 304):
        return st, head, b""
    if b"transfer-encoding: chunked" in low:
        body = bytearray()
        while True:
            size = int(c.read_until(b"\r\n", timeout=60).split(b";")[0], 16)
            if size == 0:
                c.read_until(b"\r\n", timeout=60)
                return st, head, bytes(body)
            body += c.recv_exact(size, timeout=60)
            c.read_until(b"\r\n", timeout=60)
    for ln in head.split(b"\r\n"):
        if ln.lower().startswith(b"content-length:"):
            return st, head, c.recv_exact(int(ln.split(b":")[1]), timeout=60)
    data, how = c.read_to_eof(timeout=60)
    return st, head, data


with h.Connectd({}, env=env) as cd:
    n = 0

    # --- a tunnel, both ways
    data = h.pattern(100000)
    c = h.tunnel(cd.port, echo.authority)
    got = h.send_echo(c.sock, data, c.buf)
    ok(got == data, "tunnel: 100 KB echoed in order (%d bytes)" % len(got))
    c.close()
    n += 1

    # --- an error reply, cut into pieces
    c = h.ProxyClient(cd.port)
    st, reply, how = c.request(b"CONNECT no-port HTTP/1.1\r\n\r\n", timeout=60)
    is_(st, 400, "a CONNECT without a port: 400")
    ok(reply.endswith(b"\n") and b"\r\n\r\n" in reply,
       "the error reply arrives whole (%d bytes, %s)" % (len(reply), how))
    c.close()
    n += 1

    # --- forwarded requests, each on its own connection
    cases = [
        ("Content-Length", b"HTTP/1.1", "/bytes/30000", h.pattern(30000)),
        ("chunked to HTTP/1.1", b"HTTP/1.1", "/chunked/30000", h.pattern(30000)),
        ("chunked decoded for HTTP/1.0", b"HTTP/1.0", "/chunked/30000", h.pattern(30000)),
        ("until close", b"HTTP/1.1", "/close/30000", h.pattern(30000)),
    ]
    for name, ver, path, want in cases:
        c = h.ProxyClient(cd.port)
        c.send(b"GET %s %s\r\nConnection: close\r\n\r\n" % (web.url(path).encode(), ver))
        st, head, body = response(c)
        is_(st, 200, "%s: 200" % name)
        ok(body == want, "%s: the body in order (%d of %d bytes)" % (name, len(body), len(want)))
        c.close()
        n += 1

    # --- a POST whose head and body go up in pieces
    up = h.pattern(100000, seed=b"upload")
    c = h.ProxyClient(cd.port)
    c.send(b"POST %s HTTP/1.1\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" %
           (web.url("/sha").encode(), len(up)) + up)
    st, head, body = response(c)
    is_(st, 200, "POST 100 KB: 200")
    try:
        res = json.loads(body)
    except ValueError:
        res = {}
    ok(res.get("len") == len(up) and res.get("sha256") == hashlib.sha256(up).hexdigest(),
       "POST 100 KB: the origin got every byte in order (%r)" % res)
    c.close()
    n += 1

    # --- five requests on one connection
    c = h.ProxyClient(cd.port)
    good = 0
    for i in range(5):
        c.send(b"GET %s HTTP/1.1\r\n\r\n" % web.url("/bytes/%d" % (5000 + i)).encode())
        st, head, body = response(c)
        good += st == 200 and body == h.pattern(5000 + i)
    is_(good, 5, "keep-alive: five responses, each whole and in order")
    c.close()
    n += 5

    recs = cd.wait_lines(n, timeout=60)
    is_(len(recs), n, "one line per tunnel and request")
    ok(all(isinstance(r.get("status"), int) for r in recs), "every line has its status")
    h.all_valid_json(cd.log)
done()
