#!/usr/bin/env python3
"""52-log-full-disk.t: a full disk drops whole lines, never tears one.

The test re-runs itself in a private mount namespace (unshare -m) with a
64 KiB tmpfs for the access log, nearly filled by another file.  Tunnels
are made until the log runs out of room; then the filler is removed and
more tunnels are made (issue 9, defect 3).

Expectations:
- every line in the log is a whole JSON object on its own line: the part
  of a line that fit before ENOSPC is taken back, so no fragment is glued
  to the next line once there is room again;
- the lines written after space came back are all there;
- the lost lines are counted: stderr says "lines lost to write errors"
  (No space left on device), and SIGUSR1 counts them as write errors;
  written plus lost is every line.
"""
import json
import os
import re
import subprocess
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
from tap import ok, is_, diag, done, skip_all

MNT = "/mnt"
if os.environ.get("T_TMPFS") != "1":
    if not h.which("unshare"):
        skip_all("no unshare")
    base = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-r", "-m"]
    d = h.tmpdir()
    probe = subprocess.run(base + ["sh", "-c", "mount -t tmpfs -o size=64k tmpfs %s" % d],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if probe.returncode != 0:
        why = probe.stderr.decode(errors="replace").strip().splitlines()
        skip_all("cannot mount a tmpfs in a private mount namespace here (%s)" %
                 (why[-1] if why else "exit %d" % probe.returncode))
    sys.stdout.flush()
    h.cleanup()
    env = dict(os.environ, T_TMPFS="1")
    os.execvpe(base[0], base + ["sh", "-ec", "mount --make-rprivate / 2>/dev/null || true; "
                                "mount -t tmpfs -o size=64k,mode=755 tmpfs %s; exec \"$@\"" % MNT,
                                "sh", sys.executable, os.path.abspath(sys.argv[0])], env)

h.need_connectd()
h.watchdog(90)
echo = h.EchoServer()
log = os.path.join(MNT, "access.log")
filler = os.path.join(MNT, "filler")
with open(filler, "wb") as f:
    f.write(b"f" * (56 * 1024))

FIRST, SECOND = 80, 20
with h.Connectd("access_log stdio:%s json\n" % log + pu.LOOPBACK_ALLOW) as cd:
    def tunnels(n):
        for _ in range(n):
            c = pu.Client(cd.port)
            st, _ = c.connect(echo.authority)
            if st != 200:
                return False
            c.close()
        return True
    ok(tunnels(FIRST), "%d tunnels while the disk fills" % FIRST)
    ok(cd.wait_stderr(r"lines lost to write errors \(No space left on device\)", timeout=15),
       "stderr counts the lines lost to the full disk")
    os.unlink(filler)
    ok(tunnels(SECOND), "%d more tunnels once there is room" % SECOND)
    # the writer thread catches up: the file stops growing
    sizes = []
    h.wait_for(lambda: sizes.append(os.path.getsize(log)) or
               (len(sizes) > 3 and sizes[-1] == sizes[-4]), timeout=10, interval=0.2)
    cd.usr1()
    stats = cd.wait_stderr(r"access log %s: (\d+) lines written, (\d+) dropped, "
                           r"(\d+) write errors" % re.escape(log))

raw = open(log, "rb").read()
lines = raw.split(b"\n")
ok(raw.endswith(b"\n"), "the log ends with a whole line")
bad = []
recs = []
for ln in lines[:-1]:
    try:
        recs.append(json.loads(ln))
    except ValueError:
        bad.append(ln[:80])
ok(not bad, "every line is a whole JSON object (%d lines)" % len(recs))
for b in bad[:3]:
    diag("torn: %r" % b)
ids = [r.get("id") for r in recs]
ok(set(range(FIRST + 1, FIRST + SECOND + 1)) <= set(ids),
   "the %d lines written after space came back are all there" % SECOND)
ok(len(recs) < FIRST + SECOND, "some lines were lost to the full disk (%d written)" % len(recs))
if stats:
    written, dropped, errors = (int(x) for x in stats.groups())
    ok(errors > 0, "SIGUSR1 counts the lines lost as write errors (%d)" % errors)
    is_(written + dropped + errors, FIRST + SECOND, "written + dropped + lost is every line")
    is_(written, len(recs), "the written count is the lines in the file")
else:
    ok(False, "SIGUSR1 printed the access log's counts")
done()
