#!/usr/bin/env python3
"""10-timeouts.t: read_timeout, and connect_timeout to a black hole.

- read_timeout 1 second: an idle tunnel is closed, logged close
  idle_timeout, and both ends see the close.
- activity resets it: a client that sends a byte every 0.3 s, and an
  origin that sends one every 0.3 s while the client only reads, keep
  their tunnels for well over the timeout.
- connect_timeout 1 second to a local port whose accept queue is full
  (listen(0), never accept(), filled): 504, close connect_timeout.  No
  packet leaves the machine.
- half_closed_timeout 1 second (read_timeout 1 minute): once the origin
  has sent its FIN and the client neither sends nor closes, the tunnel is
  closed anyway (close idle_timeout), so a half-open peer cannot pin it.

Only behaviour is asserted, never durations."""
import os
import sys
import threading
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, diag, done

PROXY = {"read_timeout": "1 second", "connect_timeout": "1 second",
         "request_header_timeout": "5 seconds"}
ACTIVE_FOR = 3.0       # seconds of activity, > 2 x read_timeout
TICK = 0.3

h.need_connectd()
h.watchdog(60)

echo = h.EchoServer()
ticker = h.Ticker(interval=TICK, count=int(ACTIVE_FOR / TICK))
hole = h.BlackHole()

with h.Connectd(PROXY) as cd:
    # idle tunnel
    idle = h.tunnel(cd.port, echo.authority)
    idle.send(b"x")
    is_(idle.recv_exact(1), b"x", "idle tunnel: works at first")

    # client-side activity
    def chatty(res):
        try:
            c = h.tunnel(cd.port, echo.authority)
            res["port"] = c.local_port
            n = 0
            end = time.monotonic() + ACTIVE_FOR
            while time.monotonic() < end:
                c.send(b"c")
                if c.recv_exact(1, timeout=5) != b"c":
                    break
                n += 1
                time.sleep(TICK)
            res["n"] = n
            c.send(b"!")
            res["last"] = c.recv_exact(1, timeout=5)
            c.close()
        except Exception as e:
            res["error"] = repr(e)
    res_up = {}
    th = threading.Thread(target=chatty, args=(res_up,), daemon=True)
    th.start()

    # origin-side activity: the client only reads
    down = h.tunnel(cd.port, ticker.authority)
    got, how = down.read_to_eof(timeout=ACTIVE_FOR + 10)
    is_(len(got), ticker.count, "origin sending every %.1fs: the client got every byte" % TICK)
    is_(how, "eof", "... and the origin's own EOF, not a timeout")
    down.close()

    th.join(ACTIVE_FOR + 15)
    ok("error" not in res_up and res_up.get("last") == b"!",
       "client sending every %.1fs: the tunnel stays up (%s)" % (TICK, res_up.get("error", "%d echoes" % res_up.get("n", 0))))

    rest, how = idle.read_to_eof(timeout=10)
    is_(how, "eof", "idle tunnel: closed by the proxy")
    rec = echo.wait_done(1, timeout=5)
    ok(rec is not None, "idle tunnel: the origin side is closed too")
    line = cd.wait_client(idle.local_port)
    h.check_record(line, {"close": "idle_timeout", "status": 200,
                          "bytes_up": 1, "bytes_down": 1}, prefix="idle: ")
    line = cd.wait_client(down.local_port)
    h.check_record(line, {"close": lambda v: v in ("server_eof", "client_eof"),
                          "bytes_down": ticker.count}, prefix="origin ticks: ")
    line = cd.wait_client(res_up.get("port", -1))
    h.check_record(line, {"close": lambda v: v in ("server_eof", "client_eof"),
                          "bytes_up": res_up.get("n", 0) + 1}, prefix="client ticks: ")

    # connect timeout
    if not hole.verified:
        ok(True, "# SKIP could not make a black-hole port here")
    else:
        c = h.ProxyClient(cd.port)
        st, reply, how = c.request(h.make_connect("127.0.0.1:%d" % hole.port), timeout=15)
        is_(st, 504, "CONNECT to a black hole: 504")
        line = cd.wait_client(c.local_port)
        h.check_record(line, {"close": "connect_timeout", "status": 504,
                              "server_ip": None, "bytes_up": 0, "bytes_down": 0},
                       prefix="black hole: ")
    h.all_valid_json(cd.log)

# half-closed state has its own, shorter bound
HALF = {"read_timeout": "1 minute", "half_closed_timeout": "1 second"}
with h.Connectd(HALF, name="halfclosed") as cd:
    hc = h.HalfCloser(hello=b"bye\n")
    c = h.tunnel(cd.port, hc.authority)
    got, how = c.read_to_eof(timeout=10)
    ok(got == b"bye\n" and how == "eof", "half-closed: client got the origin's data and FIN")
    rec = hc.wait_done(timeout=15)
    ok(rec is not None, "half-closed: the proxy closed the origin side without waiting for read_timeout")
    line = cd.wait_client(c.local_port, timeout=5)
    h.check_record(line, {"close": "idle_timeout", "status": 200, "bytes_down": 4, "bytes_up": 0},
                   prefix="half-closed: ")
    c.close()
    h.all_valid_json(cd.log)
done()
