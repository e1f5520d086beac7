#!/usr/bin/env python3
"""49-privdrop.t: started as root, connectd binds its port and opens its
logs, then becomes cache_effective_user.

Expectations (run as root; skipped otherwise):
- with cache_effective_user nobody: real, effective and saved uid and gid
  are nobody's, no supplementary group is root's; the port (bound before
  the drop) serves a tunnel; the log file opened before the drop gets the
  line; SIGTERM exits 0;
- an unknown user: connectd refuses to start, naming the user;
- without cache_effective_user: it runs, and warns on stderr that it runs
  as root."""
import os
import pwd
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
from tap import ok, is_, like, diag, done, skip_all

h.need_connectd()
if os.geteuid() != 0:
    skip_all("needs root to test dropping privileges")
try:
    nobody = pwd.getpwnam("nobody")
except KeyError:
    skip_all("no user 'nobody'")
h.watchdog(60)
echo = h.EchoServer()


def ids(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            k, _, v = ln.partition(":")
            if k in ("Uid", "Gid", "Groups"):
                out[k] = [int(x) for x in v.split()]
    return out


logf = os.path.join(h.tmpdir(), "access.log")
with h.Connectd("cache_effective_user nobody\naccess_log stdio:%s json\n" % logf +
                pu.LOOPBACK_ALLOW) as cd:
    ok(cd.wait_stderr(r"running as nobody"), "stderr says it runs as nobody")
    st = ids(cd.proc.pid)
    is_(st.get("Uid"), [nobody.pw_uid] * 4, "real, effective, saved, fs uid: nobody")
    is_(st.get("Gid"), [nobody.pw_gid] * 4, "real, effective, saved, fs gid: nobody's group")
    ok(0 not in st.get("Groups", []), "no supplementary group 0 (%r)" % st.get("Groups"))
    c = pu.Client(cd.port)
    s, _ = c.connect(echo.authority)
    is_(s, 200, "the port bound before the drop serves a tunnel")
    is_(c.echo(b"q"), b"q", "... and relays")
    c.close()
    lines = h.JsonLog(logf).wait_lines(1)
    is_(len(lines), 1, "the log opened before the drop gets the line")

path = h.tmpfile("nouser.conf", "http_port 127.0.0.1:%d\ncache_effective_user "
                 "no_such_user_x\n" % h.free_port())
p = h.Proc([h.connectd_bin(), "-f", path], stderr=os.path.join(h.tmpdir(), "nouser.err"))
rc = p.wait(10)
ok(rc not in (0, None), "an unknown cache_effective_user: connectd does not start (rc %r)" % rc)
like(p.read_stderr(), r"no_such_user_x", "... and names the user")

with h.Connectd(pu.LOOPBACK_ALLOW) as cd:
    ok(cd.wait_stderr(r"running as root"), "without cache_effective_user: a warning")
    is_(ids(cd.proc.pid).get("Uid", [None])[0], 0, "... and it stays root")

done()
