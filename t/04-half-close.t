#!/usr/bin/env python3
"""04-half-close.t: a client that sends its request and then shuts down
writing (printf req | nc) must still receive the whole reply.

The origin reads to EOF (so it only answers once the client's FIN came
through the proxy), then sends a large reply and closes.  The same
traffic through Squid 5.7 is recorded with diag: Squid tears the tunnel
down at the client's EOF (see ../shared/notes/relay.md), connectd must not.
The reverse direction is checked too: an origin that half-closes first
must still receive everything the client sends afterwards."""
import hashlib
import os
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, diag, done

REQUEST = b"GET /big HTTP/1.0\r\nHost: origin\r\n\r\n"   # client -> origin, then FIN
REPLY = 2 * 1024 * 1024 + 17                              # origin -> client after FIN
AFTER_SERVER_FIN = b"client keeps talking after the origin's FIN\n" * 1000
PROXY = {"read_timeout": "30 seconds"}


def client_half_close(port, origin):
    """client: request, SHUT_WR, read to EOF.  Returns (reply, how, origin rec)."""
    c = h.ProxyClient(port)
    st, head = c.connect_tunnel(origin.authority)
    if st != 200:
        return None, "status %r" % st, None, c
    c.send(REQUEST)
    c.shut_wr()
    reply, how = c.read_to_eof(timeout=20)
    c.close()
    return reply, how, origin.wait_done(timeout=20), c


def server_half_close(port, origin):
    """origin: hello, SHUT_WR, read to EOF; client reads the hello and EOF,
    then sends more and shuts down."""
    c = h.ProxyClient(port)
    st, head = c.connect_tunnel(origin.authority)
    if st != 200:
        return None, None, c
    hello, how = c.read_to_eof(timeout=10)
    try:
        c.send(AFTER_SERVER_FIN)
        c.shut_wr()
    except OSError as e:
        diag("client write after the origin's FIN: %r" % e)
    rec = origin.wait_done(timeout=20)
    c.close()
    return hello, rec, c


h.need_connectd()
h.watchdog(90)

with h.Connectd(PROXY) as cd:
    origin = h.SinkSource(down=REPLY)
    reply, how, rec, c = client_half_close(cd.port, origin)
    ok(rec is not None and rec["got"] == REQUEST, "origin got the request and then EOF")
    is_(len(reply or b""), REPLY, "client got the whole %d-byte reply after its SHUT_WR" % REPLY)
    ok(reply == h.pattern(REPLY), "reply bytes are exact")
    is_(how, "eof", "client then sees the origin's EOF")
    line = cd.wait_client(c.local_port)
    h.check_record(line, {"status": 200, "bytes_up": len(REQUEST), "bytes_down": REPLY,
                          "close": lambda v: v in ("client_eof", "server_eof")},
                   prefix="client half-close: ")

    hc = h.HalfCloser(hello=b"bye\n")
    hello, rec2, c2 = server_half_close(cd.port, hc)
    is_(hello, b"bye\n", "client got the origin's data and its EOF")
    ok(rec2 is not None and rec2.get("eof"), "origin saw the client's EOF")
    is_(len(rec2["got"]) if rec2 else None, len(AFTER_SERVER_FIN),
        "origin got everything the client sent after the origin's FIN")
    line2 = cd.wait_client(c2.local_port)
    h.check_record(line2, {"status": 200, "bytes_up": len(AFTER_SERVER_FIN), "bytes_down": 4,
                           "close": lambda v: v in ("client_eof", "server_eof")},
                   prefix="server half-close: ")
    h.all_valid_json(cd.log)

# Squid, for the record: not asserted
if h.Squid.available():
    try:
        with h.Squid() as sq:
            origin = h.SinkSource(down=REPLY)
            reply, how, rec, _ = client_half_close(sq.port, origin)
            diag("squid 5.7, client half-close: client got %d of %d bytes (%s)%s" % (
                len(reply or b""), REPLY, how,
                "" if len(reply or b"") == REPLY else " -- Squid fails half-close, as expected"))
            hc = h.HalfCloser(hello=b"bye\n")
            hello, rec2, _ = server_half_close(sq.port, hc)
            diag("squid 5.7, server half-close: origin got %d of %d bytes after its FIN" % (
                len(rec2["got"]) if rec2 else -1, len(AFTER_SERVER_FIN)))
    except Exception as e:
        diag("squid comparison not run: %r" % e)
else:
    diag("squid not installed: comparison not run")
done()
