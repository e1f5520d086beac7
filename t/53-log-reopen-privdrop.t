#!/usr/bin/env python3
"""53-log-reopen-privdrop.t: SIGUSR1 reopens the logs after the privilege drop.

connectd starts as root with cache_effective_user nobody and its access
log in a directory only root may write, as the shipped configuration
suggests (/var/log/connectd).  Rotation must still work (issue 9,
defect 4).  Run as root; skipped otherwise.

Expectations:
- mv access.log access.log.1, then SIGUSR1: the next line goes to a new
  access.log, none to access.log.1;
- logrotate with "create" and a postrotate SIGUSR1: the next line goes to
  the new file logrotate created;
- logrotate with "copytruncate": the next line goes to the truncated file;
- stderr never says a reopen failed.
"""
import os
import pwd
import signal
import subprocess
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
from tap import ok, is_, diag, done, skip_all

h.need_connectd()
if os.geteuid() != 0:
    skip_all("needs root to test dropping privileges")
try:
    pwd.getpwnam("nobody")
except KeyError:
    skip_all("no user 'nobody'")
if not h.which("logrotate"):
    skip_all("no logrotate")
h.watchdog(90)
echo = h.EchoServer()

logdir = os.path.join(h.tmpdir(), "log")
os.mkdir(logdir, 0o755)            # root's, like /var/log/connectd
log = os.path.join(logdir, "access.log")
state = os.path.join(h.tmpdir(), "logrotate.state")


def lines(path):
    try:
        return open(path, "rb").read().count(b"\n")
    except OSError:
        return 0


def logrotate(style, pid):
    conf = h.tmpfile("logrotate-%s.conf" % style,
                     "%s {\n  rotate 3\n  %s\n  missingok\n  nocompress\n"
                     "  postrotate\n    kill -USR1 %d\n  endscript\n}\n" % (log, style, pid))
    rc, out, err = h.run(["logrotate", "-s", state, "-f", conf], timeout=20)
    ok(rc == 0, "logrotate (%s) ran (%s)" % (style, err.strip()[:200]))


with h.Connectd("cache_effective_user nobody\naccess_log stdio:%s json\n" % log +
                pu.LOOPBACK_ALLOW) as cd:
    ok(cd.wait_stderr(r"running as nobody"), "connectd runs as nobody")

    def tunnel_line(path, before):
        c = pu.Client(cd.port)
        st, _ = c.connect(echo.authority)
        c.close()
        return st == 200 and h.wait_for(lambda: lines(path) > before, timeout=10)

    ok(tunnel_line(log, 0), "the log gets a line")

    # mv + SIGUSR1
    os.rename(log, log + ".moved")
    cd.usr1()
    h.wait_for(lambda: os.path.exists(log), timeout=10)
    ok(os.path.exists(log), "mv + SIGUSR1: a new access.log")
    ok(tunnel_line(log, 0), "... gets the next line")
    is_(lines(log + ".moved"), 1, "... and the moved file no more")

    # logrotate create
    n = lines(log)
    logrotate("create", cd.proc.pid)
    ok(h.wait_for(lambda: os.path.exists(log + ".1"), timeout=5), "logrotate create: rotated")
    ok(tunnel_line(log, 0), "logrotate create: the new file gets the next line")
    is_(lines(log + ".1"), n, "... and the rotated one no more")

    # logrotate copytruncate
    n = lines(log)
    logrotate("copytruncate", cd.proc.pid)
    ok(tunnel_line(log, 0), "logrotate copytruncate: the truncated file gets the next line")

    bad = [l for l in cd.stderr().splitlines() if "reopen failed" in l]
    ok(not bad, "no reopen failed on stderr")
    for b in bad[:3]:
        diag(b)

done()
