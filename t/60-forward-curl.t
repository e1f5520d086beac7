#!/usr/bin/env python3
"""60-forward-curl.t: plain-HTTP requests through connectd with curl -x.

An HTTP/1.1 origin (t/lib/http_util.py) serves fixed, chunked and
close-delimited bodies, echoes the headers it got, and hashes request
bodies.  Through connectd, with curl as the client:

- GET of 1 MB (Content-Length), of a chunked body, of a body that ends
  with the connection: the bytes arrive intact; HEAD gets the head only;
- POST of 10 MiB (curl sends Expect: 100-continue) and PUT of a chunked
  body: the origin hashes exactly what was sent;
- an HTTP/1.0 client (curl -0) gets a chunked body de-chunked;
- --proxy1.0 works;
- three URLs on one curl command use one client connection and one
  server connection: request_in_connection 1, 2, 3 on the same client
  port, the origin sees a single TCP connection;
- 204 and 304 have no body and the connection goes on;
- hop-by-hop fields do not reach the origin (Connection and what it names,
  Keep-Alive, Proxy-Authorization), Via gets "1.1 connectd", the request
  line is origin-form HTTP/1.1 and Host is the URL's;
- every line: method, scheme "http", url without its query (and with it
  under strip_query_terms off), status and http_status, bytes_up and
  bytes_down that match what curl counted, close "done"; the credential
  of Proxy-Authorization appears in no output.
"""
import hashlib
import json
import os
import subprocess
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import http_util as hu
from tap import ok, is_, like, diag, done, skip_all

h.need_connectd()
if not h.have("curl"):
    skip_all("curl is needed")
h.watchdog(120)
web = hu.WebOrigin()
SECRET = "cHJveHktc2VjcmV0LTE3Yjk="


def curl(cd, *args, data=None):
    """curl through cd; returns (rc, stdout bytes, -w fields dict)."""
    w = "\n%{http_code} %{size_header} %{size_download} %{size_request} %{size_upload} %{num_connects}"
    p = subprocess.run(["curl", "-sS", "-x", "http://127.0.0.1:%d" % cd.port, "-w", w,
                        "--max-time", str(int(60 * h.SLOW))] + list(args),
                       input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, _, tail = p.stdout.rpartition(b"\n")
    f = dict(zip(("code", "header", "download", "request", "upload", "connects"),
                 (int(x) for x in tail.split())))
    if p.returncode:
        diag("curl %r: %s" % (args, p.stderr.decode(errors="replace")))
    return p.returncode, out, f


conf = h.Connectd({})
with conf as cd:
    n = 0

    def line():
        global n
        n += 1
        return cd.wait_lines(n)[n - 1]

    # --- GET, three ways of ending a body
    for path, size in (("/bytes/1000000", 1000000), ("/chunked/50000", 50000),
                       ("/close/20000", 20000)):
        rc, body, f = curl(cd, web.url(path))
        ok(rc == 0 and body == h.pattern(size), "GET %s: the body arrives intact" % path)
        rec = line()
        h.check_record(rec, {"method": "GET", "scheme": "http", "url": web.url(path),
                             "authority": web.authority, "host": "127.0.0.1",
                             "port": web.port, "status": 200, "http_status": 200,
                             "close": "done", "request_in_connection": 1},
                       prefix="GET %s: " % path)
        # on the wire a chunked body has its framing: 1000-byte chunks
        framing = (size // 1000) * len("3e8\r\n\r\n") + len("0\r\n\r\n") \
            if path.startswith("/chunked") else 0
        is_(rec.get("bytes_down"), f.get("header", 0) + f.get("download", 0) + framing,
            "GET %s: bytes_down is the response message curl got" % path)
        is_(rec.get("bytes_up"), f.get("request", 0) + f.get("upload", 0),
            "GET %s: bytes_up is the request curl sent" % path)

    rc, body, f = curl(cd, "-I", web.url("/bytes/1000"))
    ok(rc == 0 and b"Content-Length: 1000" in body and f["download"] == 0,
       "HEAD: the head, its Content-Length, no body")
    h.check_record(line(), {"method": "HEAD", "status": 200, "close": "done"}, "HEAD: ")

    # --- bodies up
    big = h.pattern(10 * 1024 * 1024, seed=b"post")
    path = h.tmpfile("big.bin", big)
    rc, body, f = curl(cd, "--data-binary", "@" + path, web.url("/sha"))
    got = json.loads(body or b"{}")
    ok(rc == 0 and got.get("len") == len(big) and
       got.get("sha256") == hashlib.sha256(big).hexdigest(),
       "POST 10 MiB (Expect: 100-continue): the origin got every byte")
    rec = line()
    is_(rec.get("bytes_up"), f["request"] + f["upload"], "POST: bytes_up is the whole request")
    ok(rec.get("bytes_up", 0) > len(big), "... more than the 10 MiB body")
    small = h.pattern(70000, seed=b"put")
    rc, body, f = curl(cd, "-T", "-", "-H", "Transfer-Encoding: chunked", web.url("/sha"),
                       data=small)
    got = json.loads(body or b"{}")
    ok(rc == 0 and got.get("sha256") == hashlib.sha256(small).hexdigest(),
       "PUT with a chunked body: the origin got it whole")
    h.check_record(line(), {"method": "PUT", "status": 200, "http_status": 200}, "PUT: ")

    # --- HTTP/1.0
    rc, body, f = curl(cd, "-0", web.url("/chunked/30000"))
    ok(rc == 0 and body == h.pattern(30000), "HTTP/1.0 client: a chunked body de-chunked")
    line()
    rc, body, f = curl(cd, "--proxy1.0", "127.0.0.1:%d" % cd.port, web.url("/bytes/5000"))
    ok(rc == 0 and body == h.pattern(5000), "--proxy1.0: works")
    line()

    # --- keep-alive, both sides
    before = web.connections
    rc, body, f = curl(cd, web.url("/bytes/100"), web.url("/status/204"),
                       web.url("/bytes/200"))
    ok(rc == 0 and body.startswith(h.pattern(100)), "three URLs on one command")
    recs = [line(), line(), line()]
    is_([r.get("request_in_connection") for r in recs], [1, 2, 3],
        "request_in_connection 1, 2, 3")
    is_(len(set(r.get("client_port") for r in recs)), 1, "... on one client connection")
    is_([r.get("status") for r in recs], [200, 204, 200], "... 204 has no body, the rest goes on")
    ok(web.connections - before <= 1,
       "... and at most one new server connection (%d)" % (web.connections - before))
    ok(len(set(r.get("id") for r in recs)) == 3, "... each with its own id")

    # --- what the origin sees
    rc, body, f = curl(cd, "-H", "Connection: X-Drop-Me", "-H", "X-Drop-Me: gone",
                       "-H", "Keep-Alive: timeout=300", "-H", "Via: 1.0 upstream",
                       "-H", "Proxy-Authorization: Basic " + SECRET,
                       "-H", "X-Kept: yes", web.url("/headers?token=q-secret"))
    got = json.loads(body or b"{}")
    names = [k.lower() for k, v in got.get("headers", [])]
    hdr = {k.lower(): v for k, v in got.get("headers", [])}
    is_(got.get("line"), "GET /headers?token=q-secret HTTP/1.1",
        "the origin gets an origin-form HTTP/1.1 request line")
    is_(hdr.get("host"), web.authority, "Host is the URL's")
    ok("x-drop-me" not in names and "keep-alive" not in names and
       "proxy-authorization" not in names and "proxy-connection" not in names,
       "hop-by-hop fields and what Connection names are not passed on (%r)" % names)
    is_(hdr.get("via"), "1.0 upstream, 1.1 connectd", "Via: 1.1 connectd is appended")
    is_(hdr.get("x-kept"), "yes", "other fields are passed on")
    rec = line()
    is_(rec.get("url"), web.url("/headers?"), "the logged URL has no query")

    # --- 304
    rc, body, f = curl(cd, web.url("/status/304"))
    ok(rc == 0 and f["code"] == 304 and f["download"] == 0, "304: no body")
    line()
    h.all_valid_json(cd.log)
    cd.finish()

out = h.read_text(cd.stdout_path) + h.read_text(cd.stderr_path)
ok(SECRET not in out and "q-secret" not in out,
   "neither the Proxy-Authorization credential nor the query appears in the log")

# --- many requests on kept-alive connections, under valgrind's memcheck
# (the ASan build checks the same without it): each request's record and
# buffers are its own, none is read after it is freed, none is lost
mc = h.memcheck()
if mc is None:
    ok(True, "# SKIP memcheck: a sanitizer build, or no valgrind")
else:
    with h.Connectd({}, wrapper=mc) as cd:
        urls = [web.url("/bytes/%d" % (100 + i)) for i in range(20)]
        rc, body, f = curl(cd, *urls)
        is_(rc, 0, "memcheck: 20 requests on one connection")
        recs = cd.wait_lines(20, timeout=60)
        is_([r.get("request_in_connection") for r in recs], list(range(1, 21)),
            "memcheck: request_in_connection 1 to 20")
        ok(all(r.get("client_ip") == "127.0.0.1" and r.get("status") == 200 for r in recs),
           "memcheck: every line has the client's address and 200 (%r)" %
           sorted(set((r.get("client_ip"), r.get("status")) for r in recs)))

# --- strip_query_terms off
with h.Connectd({"strip_query_terms": "off"}) as cd:
    rc, body, f = curl(cd, web.url("/bytes/10?a=1&b=2"))
    rec = cd.wait_lines(1)[0]
    is_(rec.get("url"), web.url("/bytes/10?a=1&b=2"), "strip_query_terms off: the whole URL")
done()
