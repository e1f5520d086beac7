#!/usr/bin/env python3
"""56-head-trickle.t: a request head that trickles in costs what it adds.

The parser used to start again from the first byte on every read, so a
client sending its head a byte at a time cost the square of its length:
with request_header_max_size 1 MB, 20 such clients held connectd at 95%
CPU (issue 9, defect 7).  Each read now resumes where the last stopped.
The cost is counted in instructions by valgrind's callgrind, not timed.

connectd runs under callgrind three times; a client sends a CONNECT head
whose one header grows a byte per send (2 ms apart, so that nearly every
byte is a read of its own): 0, 1,000 and 2,000 bytes of it.

Expectations:
- the second 1,000 bytes cost at most 1.8 times the first 1,000 (resumed:
  about 1; parsed from the start every read: about 3);
- the head is still parsed: the tunnel gets its 200 and its line.
"""
import os
import socket
import sys
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
from tap import ok, is_, diag, done, skip_all, sanitized

h.need_connectd()
if not h.have("valgrind") or sanitized(h.connectd_bin()):
    skip_all("needs valgrind and a build without sanitizers")
h.watchdog(240)
echo = h.EchoServer()


def run(n):
    out = os.path.join(h.tmpdir(), "trickle.%d" % n)
    with h.Connectd("request_header_max_size 64 KB\n" + pu.LOOPBACK_ALLOW,
                    wrapper=h.callgrind(out)) as cd:
        s = socket.create_connection(("127.0.0.1", cd.port), timeout=30 * h.SLOW)
        s.sendall(("CONNECT %s HTTP/1.1\r\nX-Long: " % echo.authority).encode())
        for _ in range(n):
            s.send(b"a")
            time.sleep(0.002)
        s.sendall(b"\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            d = s.recv(4096)
            if not d:
                break
            head += d
        st = h.parse_status(head)
        s.close()
        rec = cd.wait_lines(1, timeout=30)
        cd.finish()
    return st, rec, h.callgrind_total(out)


res = {n: run(n) for n in (0, 1000, 2000)}
for n, (st, rec, cost) in sorted(res.items()):
    is_(st, 200, "%d trickled bytes: the tunnel gets its 200" % n)
    ok(rec and rec[0].get("status") == 200, "... and its line")
c0, c1, c2 = (res[n][2] or 0 for n in (0, 1000, 2000))
diag("instructions: %d, %d, %d" % (c0, c1, c2))
ok(c1 > c0 and c2 - c1 <= 1.8 * (c1 - c0),
   "the second 1,000 bytes cost at most 1.8 times the first (%.2f)" %
   ((c2 - c1) / float((c1 - c0) or 1)))
done()
