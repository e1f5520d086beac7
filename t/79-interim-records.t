#!/usr/bin/env python3
"""79-interim-records.t: access_log_interval writes interim records whose
deltas add up to the totals.

With `access_log_interval 1 second`:
  - a tunnel that stays open over several intervals, with traffic between
    them (the origin answers every chunk with twice as many bytes), gets
    records seq 1, 2, ... "interim" and a last one "final"; each line's
    bytes_up/bytes_down are the totals so far, its deltas the bytes since
    the previous line, the deltas of all lines add up exactly to the final
    totals, which are what the client sent and received; id is the same,
    uid differs, close is null until the final line;
  - a tunnel that moves nothing still gets interim records (deltas 0);
  - a plain-HTTP request whose response trickles over several intervals
    gets interim records of its own (scheme http), the next request on
    the same connection starts again at seq 1;
  - a tunnel open at SIGTERM gets its final line ("shutdown"), and the
    arithmetic holds for it too;
  - a second access_log in the squid format gets only the final lines.
The counts are reached by waiting for lines, never by timing.  Also: a
sub-second interval is refused by connectd -t, 0 turns it off."""
import os
import re
import sys
import threading
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, diag, done

CD = h.need_connectd()
h.watchdog(120)


class Doubler(h.Origin):
    """Answers every chunk it reads with twice as many bytes."""

    def handle(self, c, rec):
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d * 2)
        c.shutdown(h.socket.SHUT_WR)


class Trickle(h.Origin):
    """HTTP/1.1 with keep-alive: GET /slow gets a Content-Length body in
    `parts` pieces, each sent once the test says so (self.go); any other
    path a short body at once."""

    def __init__(self, parts=4, piece=1000, **kw):
        self.parts = parts
        self.piece = piece
        self.go = threading.Semaphore(0)
        super().__init__(**kw)

    def handle(self, c, rec):
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            head, _, buf = buf.partition(b"\r\n\r\n")
            if head.split(b" ")[1].endswith(b"/slow"):
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (self.parts * self.piece))
                for i in range(self.parts):
                    self.go.acquire(timeout=30 * h.SLOW)
                    c.sendall(b"s" * self.piece)
            else:
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nquick")


def lines_of(cd, port):
    return sorted((x for x in cd.lines() if x.get("client_port") == port), key=lambda x: x["seq"])


def wait_interims(cd, port, n, after=0):
    """Wait until the record of client port has n interim lines."""
    return cd.wait_lines(n, timeout=15, pred=lambda x: x.get("client_port") == port and
                         x.get("record") == "interim" and x.get("seq", 0) > after)


def check_arith(name, ls, up=None, down=None):
    """The lines of one tunnel or request, in seq order."""
    ok(ls, "%s: has lines" % name)
    if not ls:
        return
    is_([x["seq"] for x in ls], list(range(1, len(ls) + 1)), "%s: seq 1..%d" % (name, len(ls)))
    is_([x["record"] for x in ls], ["interim"] * (len(ls) - 1) + ["final"],
        "%s: interim records, then one final line" % name)
    is_(len({x["id"] for x in ls}), 1, "%s: one id on every line" % name)
    is_(len({x["uid"] for x in ls}), len(ls), "%s: a uid per line" % name)
    ok(all(x["close"] is None for x in ls[:-1]) and ls[-1]["close"] is not None,
       "%s: close null until the final line (%s)" % (name, ls[-1]["close"]))
    for d, t in (("bytes_up_delta", "bytes_up"), ("bytes_down_delta", "bytes_down")):
        run, cum = 0, []
        for x in ls:
            run += x[d]
            cum.append(run)
        is_(cum, [x[t] for x in ls], "%s: every line's %s is the sum of the %s so far" % (name, t, d))
        is_(sum(x[d] for x in ls), ls[-1][t], "%s: the %s add up to the final %s (%d)" % (
            name, d, t, ls[-1][t]))
    if up is not None:
        is_((ls[-1]["bytes_up"], ls[-1]["bytes_down"]), (up, down),
            "%s: the totals are the bytes that went each way" % name)
    ok(all(a["ts"] <= b["ts"] for a, b in zip(ls, ls[1:])), "%s: ts never goes back" % name)
    ok(all(x["start"] == ls[0]["start"] for x in ls), "%s: one start" % name)


# ------------------------------------------------------------ configuration

for value, good in (("1 second", True), ("0 seconds", True), ("5 minutes", True),
                    ("500 milliseconds", False), ("-1 seconds", False)):
    path = h.tmpfile("iv.conf", "http_port 127.0.0.1:%d\naccess_log_interval %s\n" % (h.free_port(), value))
    rc, out, err = h.run([CD, "-t", "-f", path], timeout=10)
    is_(rc == 0, good, "connectd -t: access_log_interval %s is %s" % (value, "accepted" if good else "refused"))
    if not good:
        ok(re.search(r"iv\.conf:2: ", err), "... with FILE:LINE (%s)" % err.strip())

# -------------------------------------------------------------------- lines

dbl = Doubler()
echo = h.EchoServer()
web = Trickle(parts=4, piece=1000)
SQ = os.path.join(h.tmpdir(), "squid.log")
with h.Connectd("access_log_interval 1 second\n"
                "access_log stdio:/dev/stdout json\n"
                "access_log stdio:%s squid\n" % SQ, name="interim") as cd:
    # a tunnel with traffic between the records
    c = h.tunnel(cd.port, dbl.authority)
    sent = 0
    for i in range(4):
        n = 100 * (i + 1)
        c.send(b"u" * n)
        is_(len(c.recv_exact(2 * n)), 2 * n, "tunnel: %d bytes up, %d back" % (n, 2 * n))
        sent += n
        wait_interims(cd, c.local_port, 1, after=i)
    c.send(b"end")
    c.recv_exact(6)
    sent += 3
    port = c.local_port
    c.close()
    cd.wait_lines(1, pred=lambda x: x.get("client_port") == port and x.get("record") == "final")

    # a silent tunnel
    quiet = h.tunnel(cd.port, echo.authority)
    wait_interims(cd, quiet.local_port, 2)
    quiet.close()
    cd.wait_lines(1, pred=lambda x: x.get("client_port") == quiet.local_port and
                  x.get("record") == "final")

    # a forwarded request whose response trickles, then a quick one on the
    # same connection
    fc = h.ProxyClient(cd.port)
    req1 = b"GET http://%s/slow HTTP/1.1\r\nHost: %s\r\n\r\n" % ((web.authority.encode(),) * 2)
    fc.send(req1)
    for i in range(web.parts):
        web.go.release()
        wait_interims(cd, fc.local_port, 1, after=i)
    head = fc.read_until(b"\r\n\r\n")
    body = fc.recv_exact(web.parts * web.piece)
    is_(len(body), web.parts * web.piece, "slow response: the whole body came")
    fc.send(b"GET http://%s/quick HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
            % ((web.authority.encode(),) * 2))
    rest, how = fc.read_to_eof()
    ok(rest.endswith(b"quick"), "quick response on the same connection")
    fc.close()
    cd.wait_lines(2, pred=lambda x: x.get("client_port") == fc.local_port and x.get("record") == "final")

    # open at SIGTERM
    last = h.tunnel(cd.port, dbl.authority)
    last.send(b"z" * 10)
    last.recv_exact(20)
    wait_interims(cd, last.local_port, 1)
    last.send(b"z" * 7)
    last.recv_exact(14)

all_lines = cd.lines()
check_arith("tunnel", lines_of(cd, port), up=sent, down=2 * sent)
ls = lines_of(cd, port)
ok(len([x for x in ls if x["record"] == "interim"]) >= 2, "tunnel: at least 2 interim records (%d)"
   % len([x for x in ls if x["record"] == "interim"]))
ok(len([x for x in ls if x["bytes_up_delta"] > 0]) >= 3, "tunnel: traffic counted in at least 3 lines")
is_(ls[-1]["close"] if ls else None, "client_eof", "tunnel: the final line says client_eof")

ql = lines_of(cd, quiet.local_port)
check_arith("silent tunnel", ql, up=0, down=0)
ok(len(ql) >= 3 and all(x["bytes_up_delta"] == 0 and x["bytes_down_delta"] == 0 for x in ql),
   "silent tunnel: interim records with deltas 0")

fl = [x for x in all_lines if x.get("client_port") == fc.local_port]
slow = sorted((x for x in fl if x.get("request_in_connection") == 1), key=lambda x: x["seq"])
quick = [x for x in fl if x.get("request_in_connection") == 2]
check_arith("slow request", slow, up=len(req1), down=len(head) + len(body))
ok(len(slow) >= 3 and all(x["scheme"] == "http" and x["url"].endswith("/slow") for x in slow),
   "slow request: interim records of the request (%d lines)" % len(slow))
is_(slow[-1]["http_status"] if slow else None, 200, "slow request: http_status 200 on the final line")
is_([(x["seq"], x["record"], x["bytes_up_delta"] == x["bytes_up"]) for x in quick], [(1, "final", True)],
    "quick request: its own seq 1, one final line, delta = total")
ok(quick and slow and quick[0]["id"] != slow[0]["id"], "the two requests have their own ids")

tl = lines_of(cd, last.local_port)
check_arith("tunnel open at SIGTERM", tl, up=17, down=34)
is_(tl[-1]["close"] if tl else None, "shutdown", "tunnel open at SIGTERM: its final line says shutdown")

finals = [x for x in all_lines if x.get("record") == "final"]
sq = [ln for ln in h.read_text(SQ).splitlines() if ln.strip()]
is_(len(sq), len(finals), "the squid-format log has the %d final lines only" % len(finals))
ok(len(all_lines) > len(finals), "the json log has the interim records too (%d lines)" % len(all_lines))
done()
