#!/usr/bin/env python3
"""75-health.t: /healthz and /readyz with curl, and the metrics_port directive.

- No helper: /healthz 200 "ok", /readyz 200 "ready" (curl, as a kubelet's
  httpGet probe would ask).
- A helper that holds its first answer until the test says so: /readyz is
  503 "not ready: helper slow has not answered yet" (connectd asked it
  itself: no client did), connectd_ready 0, /healthz 200, tunnels work;
  once it answers, /readyz is 200 and connectd_ready 1.
- A helper that says BH until the test says so: connectd asks again (the
  helper sees more than one request) and /readyz turns 200 once it says OK.
- A helper that says ERR: it answered, so /readyz is 200.
- metrics_port: -t -v prints it (and "none" when unset); one clashing with
  an http_port, a bad one, or two lines are errors with FILE:LINE; a reload
  moves it (the old port is refused, the new one answers) or turns it off."""
import os
import re
import subprocess
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import metrics_util as mu
from tap import ok, is_, like, diag, done, skip_all

h.need_connectd()
if not h.have("curl"):
    skip_all("curl is needed")
h.watchdog(120)
PY = sys.executable or "python3"
echo = h.EchoServer()


def probe(port, path):
    """curl as a kubelet's httpGet probe: (HTTP code, body)."""
    p = subprocess.run(["curl", "-sS", "--max-time", str(int(10 * h.SLOW)), "-w", "\n%{http_code}",
                        "http://127.0.0.1:%d%s" % (port, path)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    body, _, code = p.stdout.decode("utf-8", "replace").rpartition("\n")
    # curl says 000 when it got no response (connection refused)
    return (int(code) if code.isdigit() and int(code) > 0 else None), body.strip()


def ready_metric(port):
    try:
        sc, _, _ = mu.scrape(port)
        return sc.value("connectd_ready")
    except Exception as e:
        diag("scrape: %r" % (e,))
        return None


def helper_script(name, before, after):
    """A helper that logs each request line to a file, and answers
    `before` until the file `go` exists (None: holds the answer until
    then), `after` from then on.  Returns (path, go, log)."""
    go = h.tmpfile(name + ".go")
    log = h.tmpfile(name + ".log")
    text = ("import os, sys, time\n"
            "go, log = %r, %r\n"
            "for line in sys.stdin:\n"
            "    with open(log, 'a') as f:\n"
            "        f.write(line)\n"
            "    if %r is None:\n"
            "        while not os.path.exists(go):\n"
            "            time.sleep(0.05)\n"
            "    sys.stdout.write((%r if os.path.exists(go) else %r) + '\\n')\n"
            "    sys.stdout.flush()\n") % (go, log, before, after, before)
    return h.tmpfile(name + ".py", text), go, log


def requests_seen(log):
    return len(h.read_text(log).splitlines())


# --- no helper
with h.Connectd({}, metrics=True) as cd:
    is_(probe(cd.metrics_port, "/healthz"), (200, "ok"), "no helper: /healthz 200 ok")
    is_(probe(cd.metrics_port, "/readyz"), (200, "ready"), "no helper: /readyz 200 ready")
    is_(ready_metric(cd.metrics_port), 1.0, "no helper: connectd_ready 1")

# --- a helper that holds its first answer
script, go, log = helper_script("slow", None, "OK")
conf = "external_acl_type slow timeout=60 %%SRC %s %s\n" % (PY, script)
with h.Connectd(conf, metrics=True) as cd:
    M = cd.metrics_port
    ok(h.wait_for(lambda: requests_seen(log) >= 1), "connectd asked the helper itself, before any client")
    code, body = probe(M, "/readyz")
    is_(code, 503, "the helper has not answered: /readyz 503")
    is_(body, "not ready: helper slow has not answered yet", "... saying why")
    is_(probe(M, "/healthz"), (200, "ok"), "... /healthz 200 meanwhile")
    is_(ready_metric(M), 0.0, "... connectd_ready 0")
    c = h.tunnel(cd.port, echo.authority)
    c.send(b"ping")
    is_(c.recv_exact(4), b"ping", "... a tunnel works all the same")
    c.close()
    is_(probe(M, "/readyz")[0], 503, "... and /readyz is still 503")
    open(go, "w").close()
    ok(h.wait_for(lambda: probe(M, "/readyz") == (200, "ready")),
       "the helper answered: /readyz 200 ready")
    is_(ready_metric(M), 1.0, "... connectd_ready 1")
    is_(len(cd.wait_lines(1)), 1, "the tunnel has its line")

# --- a helper that says BH, then OK
script, go, log = helper_script("broken", "BH", "OK")
conf = "external_acl_type broken timeout=60 %%SRC %s %s\n" % (PY, script)
with h.Connectd(conf, metrics=True) as cd:
    M = cd.metrics_port
    ok(h.wait_for(lambda: requests_seen(log) >= 2),
       "BH: connectd asks again (%d requests)" % requests_seen(log))
    code, body = probe(M, "/readyz")
    is_((code, body), (503, "not ready: helper broken has not answered yet"),
        "while the helper says BH: /readyz 503")
    open(go, "w").close()
    ok(h.wait_for(lambda: probe(M, "/readyz")[0] == 200), "once it says OK: /readyz 200")

# --- a helper that says ERR has answered
script, go, log = helper_script("err", "ERR", "ERR")
conf = "external_acl_type err timeout=60 %%SRC %s %s\n" % (PY, script)
with h.Connectd(conf, metrics=True) as cd:
    ok(h.wait_for(lambda: probe(cd.metrics_port, "/readyz")[0] == 200),
       "a helper that says ERR has answered: /readyz 200")

# --- the directive
def check(text):
    path = h.tmpfile("check.conf", text)
    rc, out, err = h.run([h.connectd_bin(), "-t", "-v", "-f", path], timeout=10)
    return rc, out, err, path


rc, out, err, _ = check("http_port 127.0.0.1:3128\nmetrics_port 127.0.0.1:9128\n")
ok(rc == 0 and re.search(r"^metrics_port 127\.0\.0\.1:9128$", out, re.M),
   "-t -v prints metrics_port 127.0.0.1:9128")
rc, out, err, _ = check("http_port 127.0.0.1:3128\n")
ok(rc == 0 and re.search(r"^metrics_port none$", out, re.M), "-t -v prints metrics_port none when unset")
ok(re.search(r"^shutdown_lifetime 30 seconds$", out, re.M), "-t -v: shutdown_lifetime defaults to 30 seconds")
rc, out, err, _ = check("http_port 127.0.0.1:3128\nmetrics_port none\n")
ok(rc == 0 and re.search(r"^metrics_port none$", out, re.M), "metrics_port none is accepted")
for text, what, lineno in (
        ("http_port 3128\nmetrics_port 127.0.0.1:3128\n", "clashes with http_port", 2),
        ("http_port 127.0.0.1:3128\nmetrics_port 127.0.0.1:99999\n", "bad port", 2),
        ("http_port 127.0.0.1:3128\nmetrics_port localhost:9128\n", "not a numeric", 2),
        ("http_port 127.0.0.1:3128\nmetrics_port 9128\nmetrics_port 9129\n", "already set", 3),
        ("http_port 127.0.0.1:3128\nmetrics_port\n", "usage", 2)):
    rc, out, err, path = check(text)
    ok(rc not in (0, None) and ("%s:%d:" % (path, lineno)) in err and what in err,
       "metrics_port error %r at line %d: %s" % (what, lineno, err.strip()[-160:]))

# --- a reload moves it, or turns it off
with h.Connectd({}, metrics=True) as cd:
    old = cd.metrics_port
    new = h.free_port()
    while new in (old, cd.port):
        new = h.free_port()
    cd.write_conf({"metrics_port": "127.0.0.1:%d" % new})
    cd.hup()
    ok(h.wait_for(lambda: probe(new, "/healthz")[0] == 200), "after a reload, metrics_port answers on its new port")
    is_(probe(old, "/healthz")[0], None, "... and the old port is closed")
    cd.write_conf({"metrics_port": "none"})
    cd.hup()
    ok(h.wait_for(lambda: probe(new, "/healthz")[0] is None), "metrics_port none on reload: the port closes")
    c = h.tunnel(cd.port, echo.authority)
    c.send(b"x")
    is_(c.recv_exact(1), b"x", "tunnels work through it all")
    c.close()
done()
