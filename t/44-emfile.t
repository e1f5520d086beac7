#!/usr/bin/env python3
"""44-emfile.t: running out of file descriptors (EMFILE on accept) sheds
load without a busy loop.

connectd runs with max_connections far above what its RLIMIT_NOFILE,
lowered to 64 with prlimit, allows.  The test holds 150 idle connections
and keeps more arriving.

Expectations:
- connectd stays up; it accepts what fits, the excess clients are closed
  (EOF or reset), not left hanging;
- its CPU time (utime+stime from /proc) over 2 s of steady overload stays
  under 0.5 s: no spinning on a readable listener it cannot accept from;
- stderr warns about accept failing;
- once the clients are gone and the limit is raised again, a tunnel works
  and connectd exits 0."""
import os
import socket
import sys
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
from tap import ok, is_, like, diag, done

h.need_connectd()
if not h.which("prlimit"):
    import tap
    tap.skip_all("prlimit (util-linux) is not installed")
h.watchdog(90)
pu.raise_nofile(4096)
echo = h.EchoServer()

socks = []


def open_some(port, n):
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            continue
        socks.append(s)


def closed_count():
    n = 0
    for s in socks:
        try:
            d = s.recv(1, socket.MSG_PEEK)
            if d == b"":
                n += 1
        except BlockingIOError:
            pass
        except OSError:
            n += 1
    return n


with h.Connectd("max_connections 100000\n" + pu.LOOPBACK_ALLOW) as cd:
    pid = cd.proc.pid
    ok(pu.prlimit_nofile(pid, 64), "RLIMIT_NOFILE of connectd lowered to 64")
    open_some(cd.port, 150)
    time.sleep(1.0)
    ok(cd.proc.poll() is None, "connectd is still running")
    ok(cd.wait_stderr(r"accept on .*(Too many open files|open files)", timeout=5),
       "stderr warns that accept fails")
    shed = h.wait_for(lambda: closed_count() > 0, timeout=5)
    ok(shed, "excess clients are closed, not left hanging (%d closed)" % closed_count())
    ok(pu.fds(pid) <= 64, "connectd holds at most 64 fds (%d)" % pu.fds(pid))

    cpu0 = pu.cpu_seconds(pid)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0:
        open_some(cd.port, 10)
        time.sleep(0.1)
    cpu = pu.cpu_seconds(pid) - cpu0
    ok(cpu < 0.5, "CPU time over 2 s of overload: %.2f s (< 0.5)" % cpu)

    for s in socks:
        s.close()
    del socks[:]
    h.wait_for(lambda: pu.fds(pid) < 30, timeout=10)
    ok(pu.prlimit_nofile(pid, 4096), "RLIMIT_NOFILE raised again")
    time.sleep(0.3)
    pu.check(cd, echo.authority, "allow", "a tunnel works after the overload")

done()
