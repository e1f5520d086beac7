#!/usr/bin/env python3
"""70-log-tcp.t: access_log tcp://HOST:PORT sends lines to a real TCP receiver.

- Every line arrives whole and newline-delimited, each one JSON object
  (what Fluent Bit's in_tcp reads with Format json), the same lines as in
  the file log beside it.
- The receiver restarts (a half-close, reading until connectd closes too,
  its port closed a while) while tunnels are made: nothing is torn, the
  lines made meanwhile wait in the queue or are dropped and counted, and
  received + dropped == produced, exactly.  connectd reconnects with
  backoff and says so on stderr.
- The receiver is killed (RST) while lines flow: every line it got whole
  is valid JSON, no fragment is glued to a later line, and the lines made
  after it is back arrive.
- A receiver that never reads: the queue bound (buffer-size=16KB) holds,
  drops are counted, tunnels keep working; once it reads, lines flow again.
- SIGHUP with the same destination keeps the connection.
- An unresolvable host: connectd runs, tunnels work, stderr says why,
  lines are dropped and counted.
- connectd -t refuses bad tcp:// specs with FILE:LINE, and connects to
  nothing.
"""
import concurrent.futures
import json
import os
import re
import socket
import sys
import threading
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import logrecv as lr
from tap import ok, is_, like, diag, done

# name lookups stay on loopback (nothing answers on 127.0.0.1:53): an
# unresolvable name fails at once instead of waiting for a real resolver
h.private_files({"/etc/resolv.conf": h.LOOPBACK_RESOLV}, optional=True)
h.need_connectd()
h.watchdog(170)
echo = h.EchoServer(backlog=256)


def one_tunnel(port):
    """A tunnel that echoes a byte: True, or what went wrong."""
    try:
        c = h.tunnel(port, echo.authority)
        c.send(b"e")
        got = c.recv_exact(1, timeout=10)
        c.close()
        return got == b"e" or "echo %r" % got
    except Exception as e:
        return repr(e)


def tunnels(port, n, workers=1):
    if workers == 1:
        return [one_tunnel(port) for _ in range(n)]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda _: one_tunnel(port), range(n)))


def all_true(res):
    return len([r for r in res if r is not True]) == 0


# ---------------------------------------------------------------- basics
rx = lr.LineReceiver()
name = "tcp://127.0.0.1:%d" % rx.port
filelog = os.path.join(h.tmpdir(), "file.log")
with h.Connectd("access_log %s\naccess_log stdio:%s\n" % (name, filelog)) as cd:
    ok(h.wait_for(lambda: rx.accepted >= 1, 10), "connectd connects to the receiver at start")
    ok(all_true(tunnels(cd.port, 20)), "20 tunnels")
    ok(h.wait_for(lambda: rx.count() >= 20, 10), "20 lines arrive (%d)" % rx.count())
    recs, bad = rx.parsed()
    is_(bad, [], "each is one valid JSON object on its own line")
    ids = sorted(r["id"] for r in recs)
    # one worker numbers 1..20; several interleave theirs (i + N, i + 2N ...)
    ok(len(ids) == 20 and len(set(ids)) == 20 and
       (ids == list(range(1, 21)) or "workers" in os.environ.get("CONNECTD_TEST_CONF", "")),
       "20 ids, once each (%s...)" % ids[:5])
    fl = h.JsonLog(filelog)
    h.wait_for(lambda: len(fl.lines()) >= 20, 5)
    is_(sorted(recs, key=lambda r: r["id"]), sorted(fl.lines(), key=lambda r: r["id"]),
        "the same lines as the file log")
    st = lr.settled_stats(cd, name)
    ok(st and st["written"] == 20 and st["dropped"] == 0 and st["connected"],
       "SIGUSR1: 20 written, 0 dropped, connected (%r)" % (st,))

    # SIGHUP with the same tcp:// keeps the connection
    cd.hup()
    cd.wait_stderr(r"configuration reloaded", 10)
    ok(all_true(tunnels(cd.port, 3)), "3 tunnels after SIGHUP")
    ok(h.wait_for(lambda: rx.count() >= 23, 10), "their lines arrive")
    is_(rx.accepted, 1, "on the same connection: a reload keeps an output it still names")
rx.close()

# ------------------------------------------- a receiver restarts, cleanly
rx = lr.LineReceiver()
name = "tcp://127.0.0.1:%d" % rx.port
with h.Connectd("access_log %s json buffer-size=8KB\n" % name) as cd:
    made = [0]
    stop = threading.Event()
    bad_tunnels = []

    def traffic():
        while not stop.is_set():
            r = one_tunnel(cd.port)
            made[0] += 1
            if r is not True:
                bad_tunnels.append(r)
            time.sleep(0.01)
    t = threading.Thread(target=traffic, daemon=True)
    t.start()
    h.wait_for(lambda: rx.count() >= 30, 10)
    rx.stop(graceful=True)
    before = rx.count()
    # the receiver is away: 60 more tunnels, 27 KB of lines for 8 KB of queue
    res = tunnels(cd.port, 60)
    ok(all_true(res), "tunnels work while the receiver is away")
    time.sleep(1.0)
    rx.restart()
    ok(h.wait_for(lambda: rx.count() > before + 5, 15),
       "lines arrive again once the receiver is back (%d)" % (rx.count() - before))
    time.sleep(0.5)
    stop.set()
    t.join(20)
    is_(bad_tunnels, [], "tunnels made throughout all worked (%d)" % made[0])
    produced = made[0] + 60
    st = lr.settled_stats(cd, name, timeout=20)
    ok(h.wait_for(lambda: st and rx.count() >= st["written"], 10), "the receiver has read every line written")
    recs, bad = rx.parsed()
    is_(bad, [], "every line received is valid JSON (%d)" % len(recs))
    is_(rx.fragments, [], "no fragment: nothing torn")
    ids = [r["id"] for r in recs]
    is_(len(ids), len(set(ids)), "no line twice")
    if st:
        is_(st["written"] + st["dropped"] + st["errors"], produced,
            "SIGUSR1: written + dropped + errors == lines produced (%d)" % produced)
        ok(st["dropped"] > 0, "lines were dropped while the receiver was away (%d)" % st["dropped"])
        is_(len(recs) + st["dropped"], produced, "received + dropped == produced")
        is_(len(recs), st["written"], "received == written")
        ok(st["reconnects"] >= 1, "a reconnect is counted (%d)" % st["reconnects"])
        ok(st["failures"] >= 1, "connection failures are counted (%d)" % st["failures"])
    else:
        ok(False, "SIGUSR1 printed the output's counters")
    like(cd.stderr(), r"access log %s: \d+ lines dropped \(queue full\)" % re.escape(name),
         "stderr reports the drops")
    like(cd.stderr(), r"access log %s: \d+ connection failures \([^)]*(closed the connection|"
         r"Connection refused)" % re.escape(name), "stderr reports the connection failures")
rx.close()

# ------------------------------------------ a receiver killed (an RST)
rx = lr.LineReceiver()
name = "tcp://127.0.0.1:%d" % rx.port
with h.Connectd("access_log %s json buffer-size=1MB\n" % name) as cd:
    made = [0]
    stop = threading.Event()

    def traffic2():
        while not stop.is_set():
            one_tunnel(cd.port)
            made[0] += 1
    t = threading.Thread(target=traffic2, daemon=True)
    t.start()
    h.wait_for(lambda: rx.count() >= 50, 10)
    rx.stop(graceful=False)
    killed_at = rx.count()
    time.sleep(0.7)
    rx.restart()
    ok(h.wait_for(lambda: rx.count() > killed_at + 20, 15), "lines flow after the killed receiver is back")
    stop.set()
    t.join(20)
    st = lr.settled_stats(cd, name, timeout=20)
    h.wait_for(lambda: st and rx.count() >= st["written"] - 50, 10)
    time.sleep(0.5)
    recs, bad = rx.parsed()
    is_(bad, [], "every whole line received is valid JSON (%d): no fragment glued to a line" % len(recs))
    for f in rx.fragments:
        ok(not f.lstrip().startswith(b"{") or b"\n" not in f, "a fragment is only the end of a killed connection")
    ids = set(r["id"] for r in recs)
    ok(st and len(ids) + st["dropped"] + st["errors"] <= made[0],
       "received (distinct) + dropped <= produced: a receiver killed may take what it read down with it")
    ok(st and st["reconnects"] >= 1, "the reconnect is counted")
    ok(max(ids) >= made[0] - 5, "the last lines arrived")
rx.close()

# ------------------- a receiver half-closes with lines unacknowledged
# Its window is full (it stopped reading), so lines wait unacknowledged in
# connectd's socket when it half-closes; it then reads until connectd's
# EOF, as Fluent Bit does on a clean restart.  Those lines reach it from
# the old connection: connectd must not send them again on the next one
# (the man page: such a receiver "gets every line once").
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(8)
name = "tcp://127.0.0.1:%d" % ls.getsockname()[1]


def read_to_eof(c, into):
    c.settimeout(30 * h.SLOW)
    try:
        while True:
            b = c.recv(65536)
            if not b:
                return True
            into.extend(b)
    except OSError:
        return False


with h.Connectd("access_log %s json buffer-size=1MB\n" % name) as cd:
    ls.settimeout(10 * h.SLOW)
    c1, _ = ls.accept()
    N2 = 150
    ok(all_true(tunnels(cd.port, N2, workers=4)), "%d tunnels while the receiver reads nothing" % N2)
    st = lr.sink_stats(cd, name)
    ok(st and st["written"] < N2,
       "lines wait unacknowledged in connectd's socket (%s written of %d)" % (st and st["written"], N2))
    c1.shutdown(socket.SHUT_WR)
    time.sleep(0.3)
    got = bytearray()
    ok(read_to_eof(c1, got), "the receiver reads the old connection until connectd's EOF")
    c1.close()
    c2, _ = ls.accept()
    c2.setblocking(False)
    more = bytearray()

    def drained():
        try:
            while True:
                b = c2.recv(65536)
                if not b:
                    break
                more.extend(b)
        except BlockingIOError:
            pass
        s2 = lr.sink_stats(cd, name)
        return s2 and s2["queued"] == 0 and s2["written"] + s2["dropped"] + s2["errors"] == N2 and s2
    st = h.wait_for(drained, 20)
    ok(st, "connectd settles on the new connection (%r)" % (st,))
    lines = [x for x in (bytes(got) + bytes(more)).split(b"\n") if x]
    ids = [json.loads(x)["id"] for x in lines]
    is_(len(ids) - len(set(ids)), 0, "no line twice across the two connections (%d lines, %d distinct)"
        % (len(ids), len(set(ids))))
    is_(sorted(set(ids)), sorted(set(ids)) if len(set(ids)) == N2 else list(range(1, N2 + 1)),
        "every line arrives (%d of %d)" % (len(set(ids)), N2))
    c2.close()
ls.close()

# ------------------------------------------- a receiver that never reads
rx = lr.LineReceiver(read=False, rcvbuf=4096)
name = "tcp://127.0.0.1:%d" % rx.port
N = 600
with h.Connectd("access_log %s json buffer-size=16KB\n" % name) as cd:
    ok(h.wait_for(lambda: rx.accepted >= 1, 10), "connected to a receiver that never reads")
    res = tunnels(cd.port, N, workers=8)
    bad = [r for r in res if r is not True]
    is_(len(bad), 0, "all %d tunnels worked while the receiver read nothing" % N)
    for b in bad[:3]:
        diag(b)
    ok(cd.wait_stderr(r"access log %s: \d+ lines dropped \(queue full\)" % re.escape(name), 20),
       "stderr counts the dropped lines")
    st = lr.sink_stats(cd, name)
    ok(st and st["dropped"] > 0, "SIGUSR1 counts them (%s)" % (st and st["dropped"]))
    ok(st and st["queued_bytes"] <= 16 * 1024, "the queue bound holds: %s bytes queued or in flight"
       % (st and st["queued_bytes"]))
    ok(one_tunnel(cd.port) is True, "a tunnel still echoes")
    rx.go_read.set()
    st = lr.settled_stats(cd, name, timeout=20)
    ok(h.wait_for(lambda: st and rx.count() >= st["written"], 10), "once it reads, the lines flow")
    recs, bad = rx.parsed()
    is_(bad, [], "every line received is valid JSON (%d)" % len(recs))
    ok(st and st["written"] + st["dropped"] + st["errors"] == N + 1,
       "written + dropped + errors == %d (%r)" % (N + 1, st))
rx.close()

# ------------------------------------------------- an unresolvable host
name = "tcp://connectd-log.invalid:5170"
with h.Connectd("access_log %s json buffer-size=1KB\n" % name) as cd:
    ok(all_true(tunnels(cd.port, 6)), "tunnels work while the log host cannot be resolved")
    like(h.wait_for(lambda: re.search(r"access log %s: \d+ connection failures \(cannot resolve "
                                      r"connectd-log\.invalid: [^)]+\)" % re.escape(name),
                                      cd.stderr()), 15) and cd.stderr(),
         r"cannot resolve connectd-log\.invalid", "stderr says the name cannot be resolved")
    st = lr.sink_stats(cd, name)
    ok(st and not st["connected"] and st["failures"] >= 1,
       "SIGUSR1: not connected, %s failures" % (st and st["failures"]))
    ok(st and st["dropped"] >= 1 and st["written"] == 0, "lines beyond the 1 KB queue are dropped and counted")

# ------------------------------------------------------------ connectd -t
CD = h.connectd_bin()
listener = lr.LineReceiver()
for spec in ("tcp://nohost", "tcp://127.0.0.1:99999", "tcp://127.0.0.1:0", "tcp://[::1:5170",
             "tcp://::1:5170", "tcp://b@d:1", "tcp://:5170", "tcp://127.0.0.1:5170 datagram-size=2KB"):
    path = h.tmpfile("bad.conf", "# bad\nhttp_port 127.0.0.1:%d\naccess_log %s\n" % (h.free_port(), spec))
    rc, out, err = h.run([CD, "-t", "-f", path], timeout=10)
    ok(rc not in (0, None) and re.search(r"%s:3: " % re.escape(path), err),
       "-t refuses 'access_log %s' with FILE:3 (%s)" % (spec, err.strip()[-100:]))
path = h.tmpfile("good.conf", "http_port 127.0.0.1:%d\naccess_log tcp://127.0.0.1:%d squid\n"
                 "access_log tcp:localhost:%d\naccess_log tcp://[::1]:%d logformat=json\n"
                 % (h.free_port(), listener.port, listener.port, listener.port))
rc, out, err = h.run([CD, "-t", "-v", "-f", path], timeout=10)
is_(rc, 0, "-t accepts tcp://HOST:PORT, tcp:HOST:PORT and tcp://[v6]:PORT")
like(out, r"access_log tcp://127\.0\.0\.1:%d logformat=squid buffer-size=4MB" % listener.port,
     "-t -v prints the output back")
time.sleep(0.3)
is_(listener.accepted, 0, "-t connects to nothing")
done()
