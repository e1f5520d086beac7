#!/usr/bin/env python3
"""57-reload-rebind.t: a reload may move a port between an address and the wildcard.

http_port 127.0.0.1:P and http_port 0.0.0.0:P cannot both be bound, so a
reload from one to the other used to be refused with EADDRINUSE (issue 9,
defect 8).  The old socket now lets go before the new one is bound.

Expectations:
- 127.0.0.1:P -> 0.0.0.0:P: reloaded, "listening on 0.0.0.0:P", tunnels
  through 127.0.0.1:P work;
- and back to 127.0.0.1:P: reloaded, tunnels work;
- a reload that cannot bind (0.0.0.0:P plus a port another process
  holds) is refused with the error, and 127.0.0.1:P, let go for the
  attempt, is bound again and serves.
"""
import os
import socket
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
from tap import ok, is_, like, diag, done

h.need_connectd()
h.watchdog(60)
echo = h.EchoServer()
taken = socket.socket()
taken.bind(("127.0.0.1", 0))
taken.listen(1)
busy = taken.getsockname()[1]


def tunnel(port):
    c = pu.Client(port)
    st, _ = c.connect(echo.authority)
    good = st == 200 and c.echo(b"p") == b"p"
    c.close()
    return good


# a port no client connection of a parallel test can hold: the wildcard
# bind below would fail on it
with h.Connectd("http_port 127.0.0.1:{port}\n" + pu.LOOPBACK_ALLOW,
                port=h.free_wildcard_port()) as cd:
    ok(tunnel(cd.port), "127.0.0.1:P serves")
    n = cd.stderr().count("configuration reloaded")

    cd.write_conf("http_port 0.0.0.0:{port}\n" + pu.LOOPBACK_ALLOW)
    cd.hup()
    ok(h.wait_for(lambda: cd.stderr().count("configuration reloaded") > n),
       "127.0.0.1:P -> 0.0.0.0:P: reloaded")
    like(cd.stderr(), r"listening on 0\.0\.0\.0:%d" % cd.port, "... listening on 0.0.0.0:P")
    ok(tunnel(cd.port), "... and serving")
    n = cd.stderr().count("configuration reloaded")

    cd.write_conf("http_port 127.0.0.1:{port}\n" + pu.LOOPBACK_ALLOW)
    cd.hup()
    ok(h.wait_for(lambda: cd.stderr().count("configuration reloaded") > n),
       "0.0.0.0:P -> 127.0.0.1:P: reloaded")
    ok(tunnel(cd.port), "... and serving")

    cd.write_conf("http_port 0.0.0.0:{port}\nhttp_port 127.0.0.1:%d\n" % busy +
                  pu.LOOPBACK_ALLOW)
    cd.hup()
    ok(cd.wait_stderr(r"reload refused.*127\.0\.0\.1:%d: Address already in use" % busy),
       "a reload that cannot bind is refused with the error")
    ok(tunnel(cd.port), "127.0.0.1:P is bound again and serves")
    ok("cannot bind it again" not in cd.stderr(), "... no listener was lost")
taken.close()
done()
