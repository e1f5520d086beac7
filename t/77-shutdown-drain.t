#!/usr/bin/env python3
"""77-shutdown-drain.t: SIGTERM drains for up to shutdown_lifetime.

As Squid 5.7 does (tried: its ports close, its tunnels carry on until
shutdown_lifetime, 30 seconds by default):

- shutdown_lifetime 30 seconds, a tunnel open, a kept-alive connection idle
  between requests: on SIGTERM /readyz says 503 "shutting down" and
  /healthz 200, the idle connection is closed (no line), a new connection
  to the proxy port is refused, the tunnel still echoes; closing it lets
  connectd exit 0 well before the 30 seconds, its line says client_eof;
- a forwarded request in flight at SIGTERM gets its whole response, then
  the connection closes (close "done");
- shutdown_lifetime 1 second and a tunnel nobody closes: connectd closes
  it, logs it with close "shutdown" and its bytes, and exits 0;
- a second signal (SIGTERM, then SIGINT) ends the drain at once: the
  tunnel's line says "shutdown";
- with nothing open, SIGTERM exits at once."""
import os
import signal
import socket
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import http_util as hu
import metrics_util as mu
from tap import ok, is_, like, diag, done

h.need_connectd()
h.watchdog(120)
echo = h.EchoServer()
web = hu.WebOrigin()
LONG = {"shutdown_lifetime": "30 seconds"}
EXIT_WAIT = 15          # seconds: well under shutdown_lifetime 30


def readyz(port):
    try:
        st, _, body = mu.get(port, "/readyz")
        return st, body.decode().strip()
    except OSError:
        return None, ""


def refused(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
    except (ConnectionRefusedError, ConnectionResetError):
        # a reset: the connection was in the listen queue when the
        # listener closed (the port closed under it, on a busy machine)
        return True
    s.close()
    return False


# --- a drain that ends when the last tunnel closes
with h.Connectd(LONG, metrics=True) as cd:
    M = cd.metrics_port
    t = h.tunnel(cd.port, echo.authority)
    t.send(b"before")
    is_(t.recv_exact(6), b"before", "a tunnel echoes before SIGTERM")
    k = h.ProxyClient(cd.port)
    k.send(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (web.url("/bytes/3"), web.authority)).encode())
    is_(h.parse_status(k.read_until(b"\r\n\r\n")), 200, "a kept-alive request: 200")
    k.recv_exact(3)
    ok(h.wait_for(lambda: len(cd.lines()) == 1), "its line is written")
    cd.term()
    ok(h.wait_for(lambda: readyz(M) == (503, "not ready: shutting down")),
       "SIGTERM: /readyz 503 not ready: shutting down")
    st, _, body = mu.get(M, "/healthz")
    is_((st, body), (200, b"ok\n"), "... /healthz still 200")
    sc, _, _ = mu.scrape(M)
    is_(sc.value("connectd_ready"), 0.0, "... connectd_ready 0")
    rest, how = k.read_to_eof(timeout=10)
    ok(how in ("eof", "reset") and rest == b"", "the idle kept-alive connection is closed (%s)" % how)
    k.close()
    ok(refused(cd.port), "a new connection to the proxy port is refused")
    t.send(b"during")
    is_(t.recv_exact(6), b"during", "the open tunnel still echoes during the drain")
    ok(cd.proc.poll() is None, "connectd is still running while the tunnel is open")
    like(cd.stderr(), r"draining for up to 30 seconds", "stderr says it drains, and for how long")
    t.close()
    is_(cd.wait_exit(timeout=EXIT_WAIT), 0,
        "closing the last tunnel lets connectd exit 0 before shutdown_lifetime")
    line = cd.wait_client(t.local_port, timeout=2)
    h.check_record(line, {"close": "client_eof", "status": 200, "bytes_up": 12, "bytes_down": 12},
                   prefix="the drained tunnel: ")
    is_(len([x for x in cd.lines() if x.get("client_port") == k.local_port]), 1,
        "the idle kept-alive connection has only its request's line")

# --- a forwarded request in flight finishes
with h.Connectd(LONG) as cd:
    c = h.ProxyClient(cd.port)
    c.send(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (web.url("/slow/1"), web.authority)).encode())
    ok(h.wait_for(lambda: any("/slow/1" in r[1] for r in web.requests)), "the request reached the origin")
    cd.term()
    ok(h.wait_for(lambda: refused(cd.port)), "SIGTERM: the proxy port closes")
    reply, how = c.read_to_eof(timeout=15)
    is_(h.parse_status(reply), 200, "the request in flight gets its response: 200")
    is_(len(reply.partition(b"\r\n\r\n")[2]), 10, "... with its whole body (10 bytes)")
    is_(how, "eof", "... then the connection closes")
    c.close()
    is_(cd.wait_exit(timeout=EXIT_WAIT), 0, "then connectd exits 0")
    line = cd.wait_client(c.local_port, timeout=2)
    h.check_record(line, {"close": "done", "status": 200}, prefix="the request in flight: ")

# --- shutdown_lifetime 1 second: a stuck tunnel is closed and logged
with h.Connectd({"shutdown_lifetime": "1 second"}) as cd:
    t = h.tunnel(cd.port, echo.authority)
    t.send(b"stuck")
    is_(t.recv_exact(5), b"stuck", "a tunnel that will not close")
    cd.term()
    is_(cd.wait_exit(timeout=EXIT_WAIT), 0, "shutdown_lifetime 1 second: connectd exits 0 by itself")
    rest, how = t.read_to_eof(timeout=5)
    ok(how in ("eof", "reset"), "the stuck tunnel's client sees the close (%s)" % how)
    line = cd.wait_client(t.local_port, timeout=2)
    h.check_record(line, {"close": "shutdown", "status": 200, "bytes_up": 5, "bytes_down": 5},
                   prefix="the stuck tunnel: ")
    t.close()

# --- a second signal ends the drain
for second in (signal.SIGTERM, signal.SIGINT):
    with h.Connectd(LONG, metrics=True) as cd:
        t = h.tunnel(cd.port, echo.authority)
        t.send(b"z")
        t.recv_exact(1)
        cd.term()
        ok(h.wait_for(lambda: readyz(cd.metrics_port)[0] == 503), "SIGTERM: draining")
        cd.proc.signal(second)
        is_(cd.wait_exit(timeout=EXIT_WAIT), 0, "then %s: exit 0 at once" % second.name)
        line = cd.wait_client(t.local_port, timeout=2)
        h.check_record(line, {"close": "shutdown", "bytes_up": 1},
                       prefix="SIGTERM then %s: the tunnel: " % second.name)
        t.close()

# --- nothing open: no wait
with h.Connectd(LONG) as cd:
    cd.term()
    is_(cd.wait_exit(timeout=EXIT_WAIT), 0, "nothing open: SIGTERM exits 0 at once")
done()
