#!/usr/bin/env python3
"""61-forward-hostile.t: bad and smuggling requests, and broken servers.

Each case is a raw request on its own connection to connectd, forwarding
to a real origin.  Requests whose length could be read two ways (RFC 9112
6.3, 11.2) are refused before anything reaches the origin; a server that
answers wrongly gets the client a 502.  Meanwhile a background client
keeps making good requests through the same connectd.

Expectations, for every case: the status below, a log line that is valid
JSON with that status, the connection closed afterwards; for a request
refused for its head, the origin saw nothing of it (a broken chunked body
is found as it streams, after its head went up: the server connection is
cut); and every background request succeeds.  Then an origin that
refuses (503, as Squid) and one that does not answer in time (504).
"""
import os
import socket
import sys
import threading
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import http_util as hu
from tap import ok, is_, diag, done

h.need_connectd()
h.watchdog(180)
web = hu.WebOrigin()
other = hu.WebOrigin()      # for the background client alone


class RawOrigin(h.Origin):
    """Reads a request head; answers the bytes RESPONSES[path] says."""
    RESPONSES = {
        "/bad-status": b"HTTP/1.1 abc OK\r\n\r\n",
        "/bad-version": b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        "/no-response": b"",
        "/switch": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
        "/fold": b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
        "/bad-length": b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
        "/two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "/huge-head": b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 70000 + b"\r\n\r\n",
        "/nul": b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 0\r\n\r\n",
    }

    def handle(self, c, rec):
        head = h.recv_head(c)
        rec["got"] = head
        path = head.split(b" ")[1].decode(errors="replace") if b" " in head else ""
        path = "/" + path.split("/", 3)[-1] if path.startswith("http") else path
        c.sendall(self.RESPONSES.get(path, b""))


raw = RawOrigin()
W = web.authority
R = raw.authority

CASES = [
    # name, request bytes, status
    ("Content-Length and Transfer-Encoding",
     b"POST http://W/sha HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("Transfer-Encoding then Content-Length",
     b"POST http://W/sha HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("two equal Content-Length fields",
     b"POST http://W/sha HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400),
    ("two different Content-Length fields",
     b"POST http://W/sha HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", 400),
    ("Content-Length with a sign", b"POST http://W/sha HTTP/1.1\r\nContent-Length: +1\r\n\r\nx", 400),
    ("Content-Length as a list", b"POST http://W/sha HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\nx", 400),
    ("Content-Length in hex", b"POST http://W/sha HTTP/1.1\r\nContent-Length: 0x1\r\n\r\nx", 400),
    ("Content-Length of 19 digits",
     b"POST http://W/sha HTTP/1.1\r\nContent-Length: 1000000000000000000\r\n\r\n", 400),
    ("gzip, chunked", b"POST http://W/sha HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("chunked, gzip", b"POST http://W/sha HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
    ("identity coding", b"POST http://W/sha HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", 400),
    ("two Transfer-Encoding fields",
     b"POST http://W/sha HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("xchunked", b"POST http://W/sha HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
    ("obs-fold", b"GET http://W/bytes/1 HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n", 400),
    ("CR inside a header value", b"GET http://W/bytes/1 HTTP/1.1\r\nX-A: a\rb\r\n\r\n", 400),
    ("NUL inside a header value", b"GET http://W/bytes/1 HTTP/1.1\r\nX-A: a\x00b\r\n\r\n", 400),
    ("space before the colon", b"GET http://W/bytes/1 HTTP/1.1\r\nHost : W\r\n\r\n", 400),
    ("two Host fields", b"GET http://W/bytes/1 HTTP/1.1\r\nHost: W\r\nHost: evil.test\r\n\r\n", 400),
    ("a bad header name", b"GET http://W/bytes/1 HTTP/1.1\r\nX(y): z\r\n\r\n", 400),
    ("a bad chunk size", b"POST http://W/sha HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nx\r\n0\r\n\r\n", 400),
    ("a 17-digit chunk size",
     b"POST http://W/sha HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n", 400),
    ("chunk data without its CRLF",
     b"POST http://W/sha HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX0\r\n\r\n", 400),
    ("a chunk extension too long",
     b"POST http://W/sha HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * 5000 + b"\r\nx\r\n0\r\n\r\n", 400),
    ("an https:// URL", b"GET https://W/ HTTP/1.1\r\n\r\n", 501),
    ("an ftp:// URL", b"GET ftp://W/ HTTP/1.1\r\n\r\n", 501),
    ("origin-form", b"GET / HTTP/1.1\r\nHost: W\r\n\r\n", 400),
    ("userinfo in the URL", b"GET http://u:p@W/ HTTP/1.1\r\n\r\n", 400),
    ("a fragment in the URL", b"GET http://W/a#frag HTTP/1.1\r\n\r\n", 400),
    ("HTTP/2.0", b"GET http://W/ HTTP/2.0\r\n\r\n", 505),
    ("port 0", b"GET http://127.0.0.1:0/ HTTP/1.1\r\n\r\n", 400),
    ("a broken IPv6 host", b"GET http://[::1/ HTTP/1.1\r\n\r\n", 400),
    ("an empty host", b"GET http:///x HTTP/1.1\r\n\r\n", 400),
    ("101 header fields", b"GET http://W/bytes/1 HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431),
    ("a head over the limit", b"GET http://W/bytes/1 HTTP/1.1\r\nX: " + b"y" * 17000 + b"\r\n\r\n", 431),
    # servers that answer wrongly
    ("a server: a bad status line", b"GET http://R/bad-status HTTP/1.1\r\n\r\n", 502),
    ("a server: HTTP/2.0", b"GET http://R/bad-version HTTP/1.1\r\n\r\n", 502),
    ("a server: closes without a response", b"GET http://R/no-response HTTP/1.1\r\n\r\n", 502),
    ("a server: 101 Switching Protocols", b"GET http://R/switch HTTP/1.1\r\n\r\n", 502),
    ("a server: obs-fold", b"GET http://R/fold HTTP/1.1\r\n\r\n", 502),
    ("a server: a bad Content-Length", b"GET http://R/bad-length HTTP/1.1\r\n\r\n", 502),
    ("a server: two Content-Length values", b"GET http://R/two-lengths HTTP/1.1\r\n\r\n", 502),
    ("a server: a head of 70 KB", b"GET http://R/huge-head HTTP/1.1\r\n\r\n", 502),
    ("a server: NUL in a field", b"GET http://R/nul HTTP/1.1\r\n\r\n", 502),
]

stop = threading.Event()
good = {"ok": 0, "bad": []}


def background(port):
    while not stop.is_set():
        try:
            c = h.ProxyClient(port)
            st, reply, how = c.request(("GET http://%s/bytes/100 HTTP/1.1\r\n"
                                        "Connection: close\r\n\r\n" %
                                        other.authority).encode(), timeout=10)
            c.close()
            if st == 200 and reply.endswith(h.pattern(100)):
                good["ok"] += 1
            else:
                good["bad"].append(st)
        except OSError as e:
            good["bad"].append(repr(e))


with h.Connectd({}) as cd:
    t = threading.Thread(target=background, args=(cd.port,), daemon=True)
    t.start()
    for i, (name, data, want) in enumerate(CASES):
        data = data.replace(b"http://W", b"http://" + W.encode()).replace(
            b"Host: W", b"Host: " + W.encode()).replace(b"http://R", b"http://" + R.encode())
        # a marker field names the case, so a head that reached the
        # origin is found whenever the origin got round to logging it
        data = data.replace(b"\r\n", b"\r\nX-Case: %d\r\n" % i, 1)
        c = h.ProxyClient(cd.port)
        st, reply, how = c.request(data, timeout=15)
        port = c.local_port
        c.close()
        is_(st, want, "%s: %r" % (name, want))
        ok(how in ("eof", "reset"), "%s: the connection is closed after (%s)" % (name, how))
        rec = cd.wait_client(port, timeout=10)
        ok(rec is not None and rec.get("status") == want,
           "%s: its line says %r (%r)" % (name, want, rec and rec.get("status")))
        # a broken body shows only once the head went up: that one is cut
        if (want < 500 or want == 501) and "chunk" not in name:
            is_([r for r in web.requests if r[2].get("X-Case") == str(i)], [],
                "%s: the origin saw nothing" % name)
    stop.set()
    t.join(30)
    ok(good["ok"] > 0 and not good["bad"],
       "the background client was never disturbed (%d good, bad %r)" % (good["ok"], good["bad"][:5]))
    h.all_valid_json(cd.log)

# An origin that is not there gives 503 (Squid 5.7's ERR_CONNECT_FAIL; t/62
# compares), one that does not answer within read_timeout 504; neither
# line has an http_status, since no origin said anything.
with h.Connectd({"read_timeout": "2 seconds"}) as cd:
    dead = h.free_port()
    for name, url, want in (
            ("a refused connection", "http://127.0.0.1:%d/" % dead, 503),
            ("no response within read_timeout", "http://%s/slow/30" % W, 504)):
        c = h.ProxyClient(cd.port)
        st, reply, how = c.request(("GET %s HTTP/1.1\r\n\r\n" % url).encode(),
                                   timeout=20)
        port = c.local_port
        c.close()
        is_(st, want, "%s: %d" % (name, want))
        rec = cd.wait_client(port, timeout=10)
        ok(rec is not None and rec.get("status") == want and
           rec.get("http_status") is None and rec.get("method") == "GET" and
           rec.get("scheme") == "http",
           "%s: its line says %d, http_status null (%r)" % (name, want, rec))
    h.all_valid_json(cd.log)
done()
