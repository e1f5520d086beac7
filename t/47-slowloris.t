#!/usr/bin/env python3
"""47-slowloris.t: 2,000 connections each sending one byte of a request
head per second, with request_header_timeout 3 seconds.

Expectations:
- while they trickle, a normal client tunnels (200 and an echoed byte) at
  about 1 s and about 4 s into the run;
- every slow connection is closed by connectd within the run (about 3 s
  after it opened) and logged with close=header_timeout and status 408;
- connectd's CPU time stays well under the run's wall time.
The run is bounded: about 8 s of trickling."""
import os
import resource
import socket
import sys
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
from tap import ok, is_, like, diag, done

N = 2000
h.need_connectd()
h.watchdog(90)
pu.raise_nofile(N + 500)
echo = h.EchoServer()
SOURCES = ["127.0.0.%d" % i for i in range(20, 24)]
HEAD = b"CONNECT slow.example:443 HTTP/1.1\r\nHost: slow.example:443\r\n" + b"X: y\r\n" * 10

with h.Connectd("request_header_timeout 3 seconds\n" + pu.LOOPBACK_ALLOW) as cd:
    pid = cd.proc.pid
    cpu0 = pu.cpu_seconds(pid)
    t0 = time.monotonic()
    slow = [pu.nonblocking_client(cd.port, SOURCES[i % len(SOURCES)]) for i in range(N)]
    pos = [0] * N
    alive = set(range(N))
    normal = []
    checks = [1.0, 4.0]
    tick = 0
    while time.monotonic() - t0 < 8.0 * h.SLOW and alive:
        for i in list(alive):
            try:
                slow[i].send(HEAD[pos[i]:pos[i] + 1])
                pos[i] += 1
            except BlockingIOError:
                pass
            except OSError:
                alive.discard(i)
            else:
                try:
                    if slow[i].recv(4096, socket.MSG_DONTWAIT) == b"":
                        alive.discard(i)
                except BlockingIOError:
                    pass
                except OSError:
                    alive.discard(i)
        now = time.monotonic() - t0
        while checks and now >= checks[0]:
            checks.pop(0)
            t1 = time.monotonic()
            c = pu.Client(cd.port)
            st, _ = c.connect(echo.authority)
            good = st == 200 and c.echo(b"z") == b"z"
            normal.append((now, good, time.monotonic() - t1))
            c.close()
        tick += 1
        time.sleep(max(0.0, min(1.0, tick - (time.monotonic() - t0))))
    for t, good, took in normal:
        ok(good, "a normal client tunnels at %.1f s (took %.2f s)" % (t, took))
    is_(len(normal), 2, "two normal clients were tried during the trickle")
    is_(len(alive), 0, "every slow connection was closed by connectd (%d left)" % len(alive))
    recs = cd.wait_lines(N + 2, timeout=15)
    to = [x for x in recs if x.get("close") == "header_timeout"]
    is_(len(to), N, "%d log lines with close=header_timeout" % N)
    ok(all(x.get("status") == 408 for x in to), "... all with status 408")
    ok(all(2500 <= x.get("duration_ms", 0) <= 6000 for x in to),
       "... each after about 3 s (%d..%d ms)" % (
           min(x.get("duration_ms", 0) for x in to) if to else 0,
           max(x.get("duration_ms", 0) for x in to) if to else 0))
    cpu = pu.cpu_seconds(pid) - cpu0
    ok(cpu < 4.0, "connectd used %.2f s of CPU over the run" % cpu)
    for s in slow:
        s.close()

done()
