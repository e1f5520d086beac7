#!/usr/bin/env python3
"""15-log-stall.t: the log writer never stalls the relay.

The access log is a FIFO that nobody reads: once the pipe (64 KiB) and the
queue bound (buffer-size=16KB) are full, lines must be dropped and counted
(reported on stderr), and every tunnel must keep working.  When the reader
comes back, new lines flow again, and every line that did arrive is whole,
valid JSON."""
import concurrent.futures
import json
import os
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, like, diag, done

N = 400            # tunnels while nobody reads: ~400 B a line, well over 64 KiB + 16 KiB

h.need_connectd()
h.watchdog(90)
fifo = os.path.join(h.tmpdir(), "access.fifo")
os.mkfifo(fifo)
rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)     # a reader that never reads (yet)
h.at_cleanup(lambda: os.close(rfd))
echo = h.EchoServer(backlog=256)


def one(_):
    try:
        c = h.tunnel(cd.port, echo.authority)
        c.send(b"s")
        got = c.recv_exact(1, timeout=10)
        c.close()
        return got == b"s"
    except Exception as e:
        return repr(e)


def drain():
    out = b""
    while True:
        try:
            d = os.read(rfd, 65536)
        except BlockingIOError:
            return out
        if not d:
            return out
        out += d


with h.Connectd({"access_log": "stdio:%s json buffer-size=16KB" % fifo}) as cd:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        res = list(pool.map(one, range(N)))
    bad = [r for r in res if r is not True]
    is_(len(bad), 0, "all %d tunnels worked while the log pipe was full" % N)
    for b in bad[:3]:
        diag(b)
    m = cd.wait_stderr(r"dropped", timeout=20)
    ok(m, "the dropped lines are counted on stderr")
    like(cd.stderr(), r"\d+ lines? dropped", "... with a number")

    data = drain()
    # the reader is back: a new tunnel's line must come through
    ok(one(0) is True, "a tunnel after the reader came back works")
    before = len(data)

    def more():
        global data
        data += drain()
        return len(data) > before and data.endswith(b"\n")
    ok(h.wait_for(more, timeout=10), "lines flow again once the pipe is read")
    lines = data.split(b"\n")
    tail = lines.pop()
    valid = 0
    for ln in lines:
        try:
            json.loads(ln.decode("utf-8"))
            valid += 1
        except ValueError:
            ok(False, "a line from the FIFO is valid JSON: %r" % ln[:200])
    is_(valid, len(lines), "every line that arrived is whole, valid JSON (%d of %d tunnels)" % (valid, N + 1))
    is_(tail, b"", "no partial line")
    ok(valid < N + 1, "some lines were dropped (%d arrived)" % valid)
done()
