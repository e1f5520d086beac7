#!/usr/bin/env python3
"""13-reset.t: an RST is passed on, in both directions (relay.md: abort
both sides, SO_LINGER {1,0} on the other one).

- the origin resets after reading the request: the client sees a reset,
  not a clean EOF; close server_reset.
- the client resets (SO_LINGER 0) mid-tunnel: the origin sees a reset;
  close client_reset.
- for contrast, a clean FIN each way is not turned into a reset."""
import os
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, diag, done

REQUEST = b"hello\n"
HELLO = b"welcome\n"

h.need_connectd()
h.watchdog(60)

with h.Connectd({}) as cd:
    # origin resets
    rst = h.Resetter(before=len(REQUEST))
    c = h.tunnel(cd.port, rst.authority)
    c.send(REQUEST)
    data, how = c.read_to_eof(timeout=10)
    is_(how, "reset", "origin's RST reaches the client as a reset")
    rec = rst.wait_done()
    is_(rec and rec["got"], REQUEST, "origin got the request before resetting")
    line = cd.wait_client(c.local_port)
    h.check_record(line, {"close": "server_reset", "status": 200, "bytes_up": len(REQUEST),
                          "bytes_down": 0}, prefix="origin reset: ")
    c.close()

    # client resets
    recd = h.Recorder(hello=HELLO)
    c = h.tunnel(cd.port, recd.authority)
    is_(c.recv_exact(len(HELLO)), HELLO, "client got the origin's hello")
    c.send(REQUEST)
    h.wait_for(lambda: recd.conns and recd.conns[0]["got"] == REQUEST, 10)
    c.abort()
    rec = recd.wait_done(timeout=10)
    is_(rec and rec.get("how"), "reset", "client's RST reaches the origin as a reset")
    line = cd.wait_client(c.local_port)
    h.check_record(line, {"close": "client_reset", "status": 200, "bytes_up": len(REQUEST),
                          "bytes_down": len(HELLO)}, prefix="client reset: ")

    # clean close for contrast
    recd2 = h.Recorder(hello=HELLO)
    c = h.tunnel(cd.port, recd2.authority)
    is_(c.recv_exact(len(HELLO)), HELLO, "clean: client got the hello")
    c.send(REQUEST)
    c.shut_wr()
    rec = recd2.wait_done(timeout=10)
    is_(rec and rec.get("how"), "eof", "clean: the client's FIN reaches the origin as EOF")
    data, how = c.read_to_eof(timeout=10)
    is_(how, "eof", "clean: the origin's close reaches the client as EOF")
    c.close()
    line = cd.wait_client(c.local_port)
    h.check_record(line, {"close": lambda v: v in ("client_eof", "server_eof")}, prefix="clean: ")
    h.all_valid_json(cd.log)
done()
