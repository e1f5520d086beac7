#!/usr/bin/env python3
"""94-tls-hold.t: the hold of issue 13 at its edges, and git as a client.

Expectations:
- git (libcurl with GnuTLS, as Debian builds git-remote-https) clones a
  repository over HTTPS through connectd while an ssl::server_name rule
  holds its hello: the clone completes, and each tunnel's line has
  proto tls, the SNI, the ALPN list and a JA4.  With a rule that does
  not allow the SNI, the clone fails, every line says close denied with
  the rule, and the HTTPS server got no request.
- The server ends or resets while the client's bytes are held: the
  client sees the end, the line says why (server_eof, server_reset), no
  held byte went up, and connectd goes on serving.
- A client that sends 40 KiB while held: the reader's 16 KiB bound ends
  the hold (hello too_big), the rules decide without a hello, and every
  byte reaches the origin in order (tls_hello_required off); with
  tls_hello_required on, none does.
- A helper answer is the connection's own once given: the helper killed
  during the hold, the hello then decides with the answer it gave.
- connectd_tls_holds_total counts released, denied and aborted holds as
  the lines say."""
import http.server
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import sys
import threading
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import metrics_util as mu
from tap import ok, is_, like, diag, done

if not h.have("openssl", "git"):
    h.tap.skip_all("openssl and git are needed")
h.need_connectd()
h.watchdog(150)


from tls_util import u16, ext, hello, through  # noqa: E402


# ------------------------------------------------- a git server over HTTPS
# git's "dumb" HTTP protocol: static files of a bare repository after
# `git update-server-info`; git asks for info/refs?service=git-upload-pack
# first and falls back when the answer is not the smart protocol's.
D = h.tmpdir()
work = os.path.join(D, "work")
bare = os.path.join(D, "srv", "repo.git")
GENV = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", HOME=D, GIT_AUTHOR_NAME="t",
            GIT_AUTHOR_EMAIL="t@example.test", GIT_COMMITTER_NAME="t",
            GIT_COMMITTER_EMAIL="t@example.test")
for k in ("http_proxy", "https_proxy", "HTTPS_PROXY", "HTTP_PROXY", "all_proxy", "ALL_PROXY",
          "no_proxy", "NO_PROXY"):
    GENV.pop(k, None)
for argv in (["git", "init", "-q", "-b", "main", work],
             ["git", "-C", work, "commit", "-q", "--allow-empty", "-m", "held hello"],
             ["git", "clone", "-q", "--bare", work, bare],
             ["git", "-C", bare, "update-server-info"]):
    rc, out, err = h.run(argv, env=GENV, timeout=60)
    if rc != 0:
        h.tap.skip_all("git setup failed: %s %s" % (" ".join(argv), err))
with open(os.path.join(work, "README"), "w") as f:
    f.write("through a held hello\n")
h.run(["git", "-C", work, "add", "README"], env=GENV)
h.run(["git", "-C", work, "commit", "-q", "-m", "readme"], env=GENV)
h.run(["git", "-C", work, "push", "-q", bare, "main"], env=GENV)
h.run(["git", "-C", bare, "update-server-info"], env=GENV)

cert, key = h.make_cert(names=["localhost"], prefix="git")
requests = []


class GitFiles(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=os.path.join(D, "srv"), **kw)

    def do_GET(self):
        requests.append(self.path)
        super().do_GET()

    def log_message(self, *a):
        pass


httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GitFiles)
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
sctx.load_cert_chain(cert, key)
httpd.socket = sctx.wrap_socket(httpd.socket, server_side=True)
threading.Thread(target=httpd.serve_forever, daemon=True).start()
h.at_cleanup(httpd.shutdown)
GIT_URL = "https://localhost:%d/repo.git" % httpd.server_address[1]


def clone(cd, dest):
    shutil.rmtree(dest, ignore_errors=True)
    # GIT_SSL_CAINFO, not http.sslCAInfo: the environment's wins over -c
    return h.run(["git", "-c", "http.proxy=http://127.0.0.1:%d" % cd.port,
                  "clone", "-q", GIT_URL, dest],
                 env=dict(GENV, GIT_SSL_CAINFO=cert), timeout=60)


def metric_holds(cd):
    s, text, _ = mu.scrape(cd.metrics_port)
    return {o: s.value("connectd_tls_holds_total", outcome=o) for o in
            ("released", "denied", "aborted")}


RULES = ("acl test_clients src 127.0.0.0/8\n"
         "acl gitsni ssl::server_name localhost\n"
         "acl other ssl::server_name .other.test\n"
         "tls_peek_timeout 2 seconds\n")

# ------------------------------------------------------------------ git
with h.Connectd(RULES + "http_access allow test_clients gitsni\nhttp_access deny all\n",
                metrics=True) as cd:
    dest = os.path.join(D, "clone1")
    rc, out, err = clone(cd, dest)
    ok(rc == 0, "git clone over HTTPS through a held hello (ssl::server_name localhost)")
    try:
        with open(os.path.join(dest, "README")) as f:
            is_(f.read(), "through a held hello\n", "... the clone has the file")
    except OSError as e:
        ok(False, "... the clone has the file (%s)" % e)
    lines = cd.wait_idle()
    ok(len(lines) >= 1 and all(x.get("method") == "CONNECT" and x.get("status") == 200 and
                               x.get("close") != "denied" for x in lines),
       "git's tunnels: CONNECT, 200, none denied (%d)" % len(lines))
    t = [x.get("tls") if isinstance(x.get("tls"), dict) else {} for x in lines]
    ok(lines and all(x.get("proto") == "tls" for x in lines), "... proto tls")
    ok(t and all(y.get("sni") == "localhost" and y.get("sni_match") == "match" for y in t),
       "... SNI localhost, match")
    ok(t and all(isinstance(y.get("alpn"), list) and "http/1.1" in y.get("alpn") for y in t),
       "... git's ALPN list offers http/1.1 (%s)" % (t[0].get("alpn") if t else None))
    ok(t and all(re.match(r"^t1[23]d\d{4}(h2|h1)_[0-9a-f]{12}_[0-9a-f]{12}$", y.get("ja4") or "")
                 for y in t), "... a JA4 (%s)" % (t[0].get("ja4") if t else None))
    like(str(lines[0].get("user_agent") if lines else ""), r"^git/", "... git's user agent")
    n_req = len(requests)
    ok(n_req >= 2, "the HTTPS server served the clone (%d requests)" % n_req)
    m = metric_holds(cd)
    is_(m["released"], len(lines), "connectd_tls_holds_total{outcome=released} counts git's tunnels")

with h.Connectd(RULES + "http_access allow test_clients other\nhttp_access deny all\n",
                metrics=True) as cd:
    before = len(requests)
    rc, out, err = clone(cd, os.path.join(D, "clone2"))
    ok(rc != 0, "git clone with only .other.test allowed: fails")
    lines = cd.wait_idle()
    ok(lines and all(x.get("close") == "denied" and x.get("rule") == "http_access deny all" and
                     x.get("status") == 200 for x in lines),
       "... every line: status 200 (the tunnel opened), close denied, the rule (%s)" %
       sorted(set((str(x.get("close")), str(x.get("rule"))) for x in lines)))
    ok(lines and all((x.get("tls") or {}).get("sni") == "localhost" and x.get("bytes_up") == 0
                     for x in lines), "... the SNI on the line, no byte up")
    is_(len(requests), before, "... the HTTPS server got no request")
    m = metric_holds(cd)
    is_((m["denied"], m["released"]), (len(lines), 0), "connectd_tls_holds_total: denied, none released")

# ----------------------------------------------- the server ends the hold
class Closer(h.Origin):
    """Closes (FIN), or resets when reset is set, once `go` is set: after
    the client's bytes are held, whatever the machine's load."""

    def __init__(self, reset=False, **kw):
        self.reset = reset
        self.go = threading.Event()
        super().__init__(**kw)

    def handle(self, c, rec):
        self.go.wait(30)
        if self.reset:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        rec["got"] = b""


def readers(cd):
    s, _, _ = mu.scrape(cd.metrics_port)
    return s.value("connectd_tls_peek_readers") or 0


rec = h.Recorder()
with h.Connectd(RULES + "http_access allow test_clients gitsni\nhttp_access deny all\n",
                metrics=True) as cd:
    hv = hello(b"localhost")
    for reset, why in ((False, "server_eof"), (True, "server_reset")):
        srv = Closer(reset=reset)
        c = h.tunnel(cd.port, "localhost:%d" % srv.port)
        c.send(hv[:20])                 # a hello cut short: held, the reader waits
        h.wait_for(lambda: readers(cd) >= 1)
        srv.go.set()
        srv.wait_done(1)
        data, how = c.read_to_eof(timeout=10)
        ok(how in ("eof", "reset"), "the server %s while the hello is held: the client sees "
           "the end (%s)" % ("resets" if reset else "closes", how))
        port = c.local_port
        c.close()
        line = cd.wait_client(port) or {}
        is_(line.get("close"), why, "... close %s" % why)
        if reset:
            is_(line.get("bytes_up"), 0, "... no held byte went up")
        else:
            # a FIN ends only the server's direction: the client's end
            # then decides the hold without a hello (CONNECT localhost
            # matches), and its bytes go on as in any half-closed relay
            is_(line.get("bytes_up"), 20, "... the client's end decides the hold: allowed, "
                "its 20 held bytes go on (a FIN ends only the server's direction)")
    # still serving
    line, got = None, None
    n = len(rec.conns)
    c = h.tunnel(cd.port, "localhost:%d" % rec.port)
    c.send(hv)
    c.shut_wr()
    c.read_to_eof(timeout=10)
    c.close()
    r = rec.wait_done(n + 1)
    is_(r.get("got") if r else None, hv, "after both, a held hello is released to the next origin")
    cd.wait_idle()
    m = metric_holds(cd)
    is_((m["aborted"], m["released"]), (1, 2),
        "connectd_tls_holds_total: 1 aborted (the reset), 2 released")

# -------------------------------------------- 40 KiB while held: bounded
big = b"\x16\x03\x01" + u16(16384) + b"\x01" + struct.pack(">I", 40000)[1:]
big += bytes((i * 7) & 0xff for i in range(40 * 1024 - len(big)))
for required, want in (("off", big), ("on", b"")):
    with h.Connectd(RULES + "tls_hello_required %s\n" % required +
                    "http_access allow test_clients gitsni\nhttp_access deny all\n") as cd:
        line, got = through(cd, rec, "localhost:%d" % rec.port, big)
        tls = line.get("tls") if isinstance(line.get("tls"), dict) else {}
        is_(tls.get("hello"), "too_big", "40 KiB held, tls_hello_required %s: hello too_big" % required)
        if want:
            ok(got == want, "... decided without a hello (CONNECT localhost): all %d bytes reach "
               "the origin in order (%s)" % (len(want), None if got is None else len(got)))
            is_(line.get("bytes_up"), len(want), "... bytes_up %d" % len(want))
        else:
            is_((line.get("close"), line.get("rule"), line.get("bytes_up")),
                ("denied", "tls_hello_required on", 0),
                "... close denied by tls_hello_required on, no byte up")
            is_(got, b"", "... the origin (connected before the 200) got zero bytes")

# ------------------------------------- a helper answer survives the hold
hpid = os.path.join(D, "helper.pid")
helper = h.tmpfile("okhelper", "#!/bin/sh\necho $$ > %s\n"
                   "while read line; do echo OK; done\n" % hpid, mode=0o755)
with h.Connectd(RULES + "external_acl_type ok ttl=1 negative_ttl=1 children-max=1 "
                "children-startup=1 concurrency=0 %%SRC %s\n" % helper +
                "acl helper_ok external ok\n"
                "http_access allow test_clients helper_ok gitsni\nhttp_access deny all\n") as cd:
    n = len(rec.conns)
    c = h.tunnel(cd.port, "localhost:%d" % rec.port)
    ok(h.wait_for(lambda: os.path.exists(hpid)), "the helper answered before the tunnel opened")
    try:
        with open(hpid) as f:
            os.kill(int(f.read().strip()), signal.SIGKILL)
    except (OSError, ValueError) as e:
        diag("kill helper: %s" % e)
    c.send(hv)
    c.shut_wr()
    c.read_to_eof(timeout=10)
    port = c.local_port
    c.close()
    line = cd.wait_client(port) or {}
    r = rec.wait_done(n + 1)
    is_((line.get("close"), r.get("got") if r else None), ("client_eof", hv),
        "the helper killed during the hold: the hello is decided with its answer, released")

done()
