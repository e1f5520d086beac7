#!/usr/bin/env python3
"""43-limits.t: connection limits and the tunnel lifetime.

Expectations:
- client_ip_max_connections 2: a third connection from the same IP gets
  503 at once, logged with close=limit and a detail naming the directive;
  another client IP is not affected; once one closes, the IP may connect
  again.
- max_connections 3: the fourth client is not refused but waits (not
  accepted) until one of the three closes, then it is served; stderr says
  the limit was reached.
- client_lifetime 2 seconds: a busy tunnel (a byte every 0.2 s) is closed
  at that age, logged with close=lifetime.
- connectd -t -v prints the three directives."""
import os
import select
import socket
import sys
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
from tap import ok, is_, like, diag, done

h.need_connectd()
h.watchdog(90)
echo = h.EchoServer()
ALLOW = pu.LOOPBACK_ALLOW

# --- per client IP
with h.Connectd("client_ip_max_connections 2\n" + ALLOW) as cd:
    a = pu.Client(cd.port)
    b = pu.Client(cd.port)
    c = pu.Client(cd.port)
    st, head = c.connect(echo.authority)
    is_(st, 503, "the third connection from 127.0.0.1 gets 503")
    rec = cd.wait_client(c.local_port) or {}
    is_(rec.get("close"), "limit", "... logged with close=limit")
    like(rec.get("detail") or "", r"client_ip_max_connections 2", "... and the directive in detail")
    pu.check(cd, echo.authority, "allow", "127.0.0.2 is not limited by 127.0.0.1",
             source="127.0.0.2")
    a.close()
    h.wait_for(lambda: cd.wait_client(a.local_port, timeout=0.2))
    d = pu.Client(cd.port)
    st, head = d.connect(echo.authority)
    is_(st, 200, "after one closes, 127.0.0.1 may connect again")
    for x in (b, c, d):
        x.close()

# --- total
with h.Connectd("max_connections 3\n" + ALLOW) as cd:
    idle = [pu.Client(cd.port) for _ in range(3)]
    h.wait_for(lambda: h.connections(cd.port) >= 3)
    time.sleep(0.2)
    w = pu.Client(cd.port)          # completes in the kernel's queue
    w.sock.sendall(h.make_connect(echo.authority))
    r, _, _ = select.select([w.sock], [], [], 1.0 * h.SLOW)
    ok(not r, "at max_connections a fourth client waits (no answer in 1 s)")
    ok(cd.wait_stderr(r"max_connections 3 reached"), "stderr says the limit was reached")
    idle[0].close()
    r, _, _ = select.select([w.sock], [], [], 5.0 * h.SLOW)
    head = w.sock.recv(4096) if r else b""
    is_(h.parse_status(head), 200, "once one closes, the waiting client is served")
    w.close()
    for x in idle[1:]:
        x.close()

# --- lifetime
with h.Connectd("client_lifetime 2 seconds\n" + ALLOW) as cd:
    c = pu.Client(cd.port)
    st, _ = c.connect(echo.authority)
    is_(st, 200, "tunnel open")
    t0 = time.monotonic()
    closed = False
    while time.monotonic() - t0 < 8 * h.SLOW:
        if c.echo(b"y") != b"y":
            closed = True
            break
        time.sleep(0.2)
    ok(closed, "a busy tunnel is closed by client_lifetime")
    rec = cd.wait_client(c.local_port) or {}
    is_(rec.get("close"), "lifetime", "... logged with close=lifetime")
    ok(rec.get("duration_ms", 0) >= 1900, "... at about 2 s (%r ms)" % rec.get("duration_ms"))
    c.close()

path = h.tmpfile("limits.conf", "http_port 127.0.0.1:3128\nmax_connections 100\n"
                 "client_ip_max_connections -1\nclient_lifetime 1 hour\n")
rc, out, err = h.run([h.connectd_bin(), "-t", "-v", "-f", path], timeout=10)
ok(rc == 0 and "max_connections 100" in out and "client_ip_max_connections 0" in out
   and "client_lifetime 1 hour" in out, "-t -v prints the limits (-1 is Squid's none)")

done()
