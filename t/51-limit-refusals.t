#!/usr/bin/env python3
"""51-limit-refusals.t: refused connections do not hold max_connections slots.

A connection refused with 503 for client_ip_max_connections lingers up to
2 s after its reply (so that closing does not reset the reply away).  It
must not count against max_connections, nor against its client's
per-IP count, once the reply is written: otherwise one address opening
connections fast keeps the proxy full for everyone (issue 9, defect 2).

With max_connections 20 and client_ip_max_connections 2, 127.0.0.2 holds
two tunnels and opens 40 more, which get 503 and are left open (so each
lingers).  Expectations, while they linger:
- every one of the 40 gets 503;
- stderr never says max_connections was reached;
- 127.0.0.3 is served at once (its tunnel works);
- once 127.0.0.2 closes one of its tunnels, it may open another.
"""
import os
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
from tap import ok, is_, done

h.need_connectd()
h.watchdog(60)
echo = h.EchoServer()

with h.Connectd("max_connections 20\nclient_ip_max_connections 2\n" +
                pu.LOOPBACK_ALLOW) as cd:
    held = [pu.Client(cd.port, source="127.0.0.2") for _ in range(2)]
    for c in held:
        st, _ = c.connect(echo.authority)
        is_(st, 200, "127.0.0.2: a tunnel within its limit")
    refused = []
    for i in range(40):
        c = pu.Client(cd.port, source="127.0.0.2")
        st, _ = c.connect(echo.authority)
        refused.append(st)
        # left open on purpose: connectd lingers on it
    is_(refused.count(503), 40, "127.0.0.2: the 40 over its limit get 503")
    other = pu.Client(cd.port, source="127.0.0.3")
    st, _ = other.connect(echo.authority)
    is_(st, 200, "127.0.0.3 is served while the refused connections linger")
    is_(other.echo(b"z"), b"z", "... and its tunnel carries bytes")
    held[0].close()
    h.wait_for(lambda: cd.wait_client(held[0].local_port, timeout=0.2))
    again = pu.Client(cd.port, source="127.0.0.2")
    st, _ = again.connect(echo.authority)
    is_(st, 200, "127.0.0.2 may open a tunnel again once one of its two closes")
    ok(not [l for l in cd.stderr().splitlines() if "max_connections 20 reached" in l],
       "max_connections was never reached: refusals do not hold slots")
    for c in [other, again] + held[1:]:
        c.close()

done()
