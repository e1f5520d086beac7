#!/usr/bin/env python3
"""92-splice.t: bulk by splice(2) (relay_splice, relay_splice_min,
relay_splice_pipes in connectd.conf(5)) keeps every promise of the copy
relay.

With `relay_splice_min 0` (splice from the first byte the hello readers
let go) and with a small threshold (16 KB):
  - large transfers both ways: exact bytes at both ends, the json line's
    bytes_up and bytes_down, and connectd_relay_splice_bytes_total moved;
  - half-close each way: the FIN is passed on once the pipe is drained;
  - an RST each way, on a spliced direction: the same close reasons;
  - TCP urgent data each way (tcp_splice_read() stops at its mark): the
    bytes after it still arrive, as with the copy relay;
  - backpressure: a client that stops reading, and an origin that stops
    reading: the pipe holds the bytes (connectd_relay_pipes_in_use 1),
    the sender is stopped, connectd's memory stays bounded, and every
    byte arrives once the reader reads again;
  - interim records: their deltas add up to the spliced totals;
  - the TLS hello fields of a spliced tunnel (Python's ssl through the
    proxy to openssl s_server);
  - pipes go back when a tunnel is idle and when it closes
    (connectd_relay_pipes_in_use 0; connectd's pipe fds in /proc are the
    pooled pipes' only);
  - the threshold: a tunnel that carries less never splices.
With `relay_splice_pipes 1`: a second tunnel finds the pool exhausted,
copies instead (counted), and still moves every byte exactly; a tunnel
reset with bytes in its pipe closes the pipe rather than pooling it.
With `relay_splice off`: no pipe at all, whatever relay_splice_min says.
Nothing is timed: every wait is for a state, bounded by a deadline."""
import hashlib
import os
import re
import socket
import ssl
import sys
import threading
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import metrics_util as mu
from tap import ok, is_, diag, done

CD = h.need_connectd()
h.watchdog(240)

KiB = 1024
MiB = 1024 * KiB


def metric(cd, name):
    sc, _, _ = mu.scrape(cd.metrics_port)
    v = sc.value(name)
    return int(v) if v is not None else None


def fds(cd):
    return len(os.listdir("/proc/%d/fd" % cd.proc.p.pid))


def pipe_fds(cd):
    """connectd's pipe descriptors (the pool's, and any of its own)."""
    d = "/proc/%d/fd" % cd.proc.p.pid
    n = 0
    for f in os.listdir(d):
        try:
            n += os.readlink(os.path.join(d, f)).startswith("pipe:")
        except OSError:
            pass
    return n


def rss_kib(cd):
    with open("/proc/%d/status" % cd.proc.p.pid) as f:
        m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) if m else 0


def final(cd, port):
    """The last line of the tunnel from client port (not an interim record)."""
    ls = cd.wait_lines(1, timeout=30, pred=lambda x: x.get("client_port") == port and
                       x.get("record", "final") == "final")
    return ls[0] if ls else None


def sha(b):
    return hashlib.sha256(b).hexdigest()


class Pusher(h.Origin):
    """Sends `down` bytes of pattern(down) at once, counting what the
    kernel took; then reads to EOF (or `up` bytes) and closes."""

    def __init__(self, down, up=None, **kw):
        self.down = down
        self.up = up
        super().__init__(**kw)

    def handle(self, c, rec):
        data = h.pattern(self.down)
        rec["sent"] = 0
        view = memoryview(data)
        while rec["sent"] < len(data):
            rec["sent"] += c.send(view[rec["sent"]:rec["sent"] + 256 * KiB])
        got = h.recv_all(c, self.up)
        rec["got"] = got
        rec["got_sha"] = sha(got)
        c.shutdown(socket.SHUT_WR)


class Sleeper(h.Origin):
    """Reads nothing until told (self.go), then reads to EOF."""

    def __init__(self, **kw):
        self.go = threading.Event()
        super().__init__(**kw)

    def handle(self, c, rec):
        self.go.wait(60 * h.SLOW)
        got = h.recv_all(c)
        rec["got"] = got
        rec["got_sha"] = sha(got)


class SendThenReset(h.Origin):
    """Sends `first` bytes, reads `before` bytes, then resets."""

    def __init__(self, first, before, **kw):
        self.first = first
        self.before = before
        super().__init__(**kw)

    def handle(self, c, rec):
        c.sendall(h.pattern(self.first))
        got = h.recv_all(c, self.before)
        rec["got"] = got
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()


class UrgentSender(h.Origin):
    """100000 bytes, one urgent byte (MSG_OOB), 100000 more; then reads to EOF."""

    def handle(self, c, rec):
        c.sendall(b"c" * 100000)
        c.send(b"!", socket.MSG_OOB)
        c.sendall(b"d" * 100000)
        rec["got"] = h.recv_all(c)


def urgent(cd, tag):
    """TCP urgent data stops tcp_splice_read() at its mark with EAGAIN
    while epoll says readable: the relay must step over it as read(2)
    does (the urgent byte is not relayed, as ever), not spin there."""
    rc = h.Recorder()
    c = h.tunnel(cd.port, rc.authority)
    c.send(b"a" * 100000)
    h.wait_for(lambda: rc.conns and len(rc.conns[0]["got"]) == 100000, 20)
    c.sock.send(b"!", socket.MSG_OOB)
    c.send(b"b" * 100000)
    ok(h.wait_for(lambda: rc.conns and len(rc.conns[0]["got"]) >= 200000, 20) and
       rc.conns[0]["got"] == b"a" * 100000 + b"b" * 100000,
       "%s: urgent data from the client: the bytes after it arrive" % tag)
    c.shut_wr()
    rc.wait_done(timeout=20)
    c.close()
    h.check_record(final(cd, c.local_port), {"bytes_up": 200000}, prefix=tag + ": client urgent: ")
    rc.close()
    us = UrgentSender()
    c = h.tunnel(cd.port, us.authority)
    got = c.recv_exact(200000, timeout=20)
    ok(got == b"c" * 100000 + b"d" * 100000, "%s: urgent data from the origin: the bytes after it arrive" % tag)
    c.shut_wr()
    c.read_to_eof(timeout=20)
    c.close()
    h.check_record(final(cd, c.local_port), {"bytes_down": 200000}, prefix=tag + ": origin urgent: ")
    us.close()


def bulk(cd, tag, up, down):
    """up bytes client -> origin, then down bytes back; both checked."""
    origin = h.SinkSource(down=down, up=up)
    c = h.tunnel(cd.port, origin.authority)
    payload = h.pattern(up, seed=tag.encode())
    t = threading.Thread(target=c.send, args=(payload,), daemon=True)
    t.start()
    got = c.recv_exact(down, timeout=60)
    t.join(60 * h.SLOW)
    rest, how = c.read_to_eof(timeout=20)
    c.close()
    rec = origin.wait_done(timeout=30)
    is_(rec and rec["got_len"], up, "%s: the origin got %d bytes" % (tag, up))
    ok(rec and rec["got_sha"] == sha(payload), "%s: ... the exact bytes" % tag)
    ok(len(got) == down and got == h.pattern(down), "%s: the client got the exact %d bytes" % (tag, down))
    is_((rest, how), (b"", "eof"), "%s: then the origin's EOF" % tag)
    line = final(cd, c.local_port)
    h.check_record(line, {"status": 200, "bytes_up": up, "bytes_down": down}, prefix=tag + ": ")
    origin.close()


def half_close(cd, tag):
    # the client's FIN, after 1 MiB, reaches the origin; the reply follows
    origin = h.SinkSource(down=2 * MiB + 17)
    c = h.tunnel(cd.port, origin.authority)
    req = h.pattern(MiB + 5, seed=b"hc")
    c.send(req)
    c.shut_wr()
    reply, how = c.read_to_eof(timeout=30)
    rec = origin.wait_done(timeout=30)
    ok(rec and rec["got_sha"] == sha(req) and rec["eof"], "%s: client half-close: the origin got it all, then EOF" % tag)
    ok(reply == h.pattern(2 * MiB + 17) and how == "eof",
       "%s: client half-close: the whole reply after the client's FIN, then EOF (%d, %s)" % (tag, len(reply), how))
    c.close()
    h.check_record(final(cd, c.local_port),
                   {"bytes_up": MiB + 5, "bytes_down": 2 * MiB + 17}, prefix=tag + ": client half-close: ")
    origin.close()
    # the origin's FIN first; the client goes on sending 1 MiB
    hc = h.HalfCloser(hello=h.pattern(100 * KiB))
    c = h.tunnel(cd.port, hc.authority)
    hello, how = c.read_to_eof(timeout=20)
    ok(hello == h.pattern(100 * KiB) and how == "eof", "%s: server half-close: the client got its bytes and EOF" % tag)
    after = h.pattern(MiB, seed=b"after")
    c.send(after)
    c.shut_wr()
    rec = hc.wait_done(timeout=30)
    ok(rec and rec["got"] == after, "%s: server half-close: the origin got all the client sent after its FIN" % tag)
    c.close()
    h.check_record(final(cd, c.local_port),
                   {"bytes_up": MiB, "bytes_down": 100 * KiB}, prefix=tag + ": server half-close: ")
    hc.close()


def resets(cd, tag):
    # the origin sends (so that its direction splices), reads, resets
    rs = SendThenReset(first=256 * KiB, before=MiB)
    c = h.tunnel(cd.port, rs.authority)
    got = c.recv_exact(256 * KiB, timeout=20)
    c.send(h.pattern(MiB))
    data, how = c.read_to_eof(timeout=20)
    is_((len(got), how), (256 * KiB, "reset"), "%s: the origin's RST reaches the client as a reset" % tag)
    h.check_record(final(cd, c.local_port),
                   {"close": "server_reset", "bytes_up": MiB, "bytes_down": 256 * KiB},
                   prefix=tag + ": origin reset: ")
    c.close()
    rs.close()
    # the client resets mid-tunnel
    rc = h.Recorder(hello=h.pattern(256 * KiB))
    c = h.tunnel(cd.port, rc.authority)
    c.recv_exact(256 * KiB, timeout=20)
    c.send(h.pattern(MiB))
    h.wait_for(lambda: rc.conns and len(rc.conns[0]["got"]) == MiB, 20)
    c.abort()
    rec = rc.wait_done(timeout=20)
    is_(rec and rec.get("how"), "reset", "%s: the client's RST reaches the origin as a reset" % tag)
    h.check_record(final(cd, c.local_port),
                   {"close": "client_reset", "bytes_up": MiB, "bytes_down": 256 * KiB},
                   prefix=tag + ": client reset: ")
    rc.close()


def backpressure(cd, tag):
    total = 64 * MiB
    # a client that stops reading
    base = rss_kib(cd)
    origin = Pusher(down=total)
    c = h.tunnel(cd.port, origin.authority)
    ok(h.wait_for(lambda: metric(cd, "connectd_relay_pipes_in_use") == 1, 20),
       "%s: a client that stops reading: its bytes wait in a pipe" % tag)
    rec = origin.wait_conn()
    h.wait_for(lambda: False, 0.5)      # let the sender fill what it can
    ok(rec["sent"] < total, "%s: ... the origin is held back (%d of %d bytes taken)" % (tag, rec["sent"], total))
    grew = rss_kib(cd) - base
    ok(grew < 8 * 1024, "%s: ... connectd's memory stays bounded (RSS +%d KiB)" % (tag, grew))
    got = c.recv_exact(total, timeout=120)
    c.shut_wr()
    rest, how = c.read_to_eof(timeout=30)
    ok(len(got) == total and got == h.pattern(total) and how == "eof",
       "%s: ... then the client reads every byte, exactly (%d)" % (tag, len(got)))
    c.close()
    h.check_record(final(cd, c.local_port), {"bytes_down": total, "bytes_up": 0},
                   prefix=tag + ": stopped client: ")
    origin.close()
    # an origin that stops reading
    base = rss_kib(cd)
    sl = Sleeper()
    c = h.tunnel(cd.port, sl.authority)
    payload = h.pattern(total, seed=b"up")
    sent = [0]

    def push():
        v = memoryview(payload)
        try:
            while sent[0] < total:
                sent[0] += c.sock.send(v[sent[0]:sent[0] + 256 * KiB])
            c.shut_wr()
        except OSError as e:
            diag("push: %r" % e)
    c.sock.settimeout(120 * h.SLOW)
    t = threading.Thread(target=push, daemon=True)
    t.start()
    ok(h.wait_for(lambda: metric(cd, "connectd_relay_pipes_in_use") == 1, 20),
       "%s: an origin that stops reading: the bytes wait in a pipe" % tag)
    h.wait_for(lambda: False, 0.5)
    ok(sent[0] < total, "%s: ... the client is held back (%d of %d bytes taken)" % (tag, sent[0], total))
    grew = rss_kib(cd) - base
    ok(grew < 8 * 1024, "%s: ... connectd's memory stays bounded (RSS +%d KiB)" % (tag, grew))
    sl.go.set()
    rec = sl.wait_done(timeout=120)
    t.join(30 * h.SLOW)
    ok(rec and len(rec["got"]) == total and rec["got_sha"] == sha(payload),
       "%s: ... then the origin reads every byte, exactly" % tag)
    rest, how = c.read_to_eof(timeout=30)
    c.close()
    h.check_record(final(cd, c.local_port), {"bytes_up": total, "bytes_down": 0},
                   prefix=tag + ": stopped origin: ")
    sl.close()


def idle_pipes(cd, tag):
    """An open, idle tunnel after 2 MiB each way holds no pipe."""
    h.wait_for(lambda: metric(cd, "connectd_relay_pipes_in_use") == 0, 10)
    pooled0 = metric(cd, "connectd_relay_pipes_pooled")
    base = pipe_fds(cd)
    echo = h.EchoServer()
    c = h.tunnel(cd.port, echo.authority)
    data = h.pattern(2 * MiB, seed=b"idle")
    t = threading.Thread(target=c.send, args=(data,), daemon=True)
    t.start()
    back = c.recv_exact(2 * MiB, timeout=60)
    t.join(30 * h.SLOW)
    ok(back == data, "%s: 2 MiB echoed exactly" % tag)
    is_(metric(cd, "connectd_relay_pipes_in_use"), 0, "%s: the idle tunnel holds no pipe" % tag)
    pooled = metric(cd, "connectd_relay_pipes_pooled")
    is_(pipe_fds(cd), base + 2 * (pooled - pooled0),
        "%s: ... connectd's pipe fds are the pooled pipes' (%d pooled)" % (tag, pooled))
    c.shut_wr()
    c.read_to_eof(timeout=10)
    c.close()
    final(cd, c.local_port)
    is_((metric(cd, "connectd_relay_pipes_in_use"), pipe_fds(cd)), (0, base + 2 * (pooled - pooled0)),
        "%s: closed: no pipe in use, the pipe fds unchanged" % tag)
    echo.close()


def interim(cd, tag):
    echo = h.EchoServer()
    c = h.tunnel(cd.port, echo.authority)
    sent = 0
    for i in range(3):
        chunk = h.pattern(200 * KiB, seed=b"%d" % i)
        c.send(chunk)
        sent += len(chunk)
        ok(c.recv_exact(len(chunk), timeout=20) == chunk, "%s: chunk %d echoed" % (tag, i + 1))
        cd.wait_lines(1, timeout=15, pred=lambda x: x.get("client_port") == c.local_port and
                      x.get("record") == "interim" and x.get("seq", 0) > i)
    c.shut_wr()
    c.read_to_eof(timeout=10)
    c.close()
    last = final(cd, c.local_port)
    ls = sorted((x for x in cd.lines() if x.get("client_port") == c.local_port), key=lambda x: x["seq"])
    ok(len(ls) >= 4 and ls[-1] is not None and ls[-1].get("record") == "final",
       "%s: interim records, then the final line (%d lines)" % (tag, len(ls)))
    is_((sum(x["bytes_up_delta"] for x in ls), sum(x["bytes_down_delta"] for x in ls)),
        (sent, sent), "%s: the deltas add up to the bytes that went each way" % tag)
    is_((last or {}).get("bytes_up"), sent, "%s: final bytes_up" % tag)
    echo.close()


def tls(cd, tag, origin, spliced):
    before = metric(cd, "connectd_relay_splice_tunnels_total")
    ctx = ssl.create_default_context(cafile=origin.cert)
    ctx.set_alpn_protocols(["http/1.1"])
    c = h.tunnel(cd.port, "127.0.0.1:%d" % origin.port)
    body = b""
    try:
        s = ctx.wrap_socket(c.sock, server_hostname="localhost")
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        while True:
            d = s.recv(65536)
            if not d:
                break
            body += d
        s.close()
    except (OSError, ssl.SSLError) as e:
        diag("python ssl: %r" % e)
    c.close()
    ok(b"200 ok" in body.lower(), "%s: TLS through the tunnel: s_server answered (%d bytes)" % (tag, len(body)))
    line = final(cd, c.local_port) or {}
    t = line.get("tls") or {}
    is_((line.get("proto"), t.get("hello"), t.get("sni"), t.get("sni_match"), t.get("alpn")),
        ("tls", "complete", "localhost", "ip_target", ["http/1.1"]),
        "%s: the line's hello fields" % tag)
    ok(t.get("version") and t.get("cipher"), "%s: ... and the ServerHello's (%s %s)" % (
        tag, t.get("version"), t.get("cipher")))
    if spliced:
        ok(metric(cd, "connectd_relay_splice_tunnels_total") > before,
           "%s: the TLS tunnel went by splice after its hellos" % tag)
    else:
        is_(metric(cd, "connectd_relay_splice_tunnels_total"), before,
            "%s: a TLS tunnel under the threshold both ways does not splice" % tag)


# ------------------------------------------------------------- configuration

conf = h.tmpfile("sp.conf", "http_port 127.0.0.1:%d\nrelay_splice_min 16 KB\n" % h.free_port())
rc, out, err = h.run([CD, "-t", "-v", "-f", conf], timeout=10)
ok(rc == 0 and "relay_splice on\n" in out and "relay_splice_min 16 KB\n" in out and
   re.search(r"^relay_splice_pipes \d+$", out, re.M),
   "connectd -t -v prints relay_splice, relay_splice_min, relay_splice_pipes")
for line, good in (("relay_splice off", True), ("relay_splice maybe", False),
                   ("relay_splice_min 0", True), ("relay_splice_min 1 MB", True),
                   ("relay_splice_min -1", False), ("relay_splice_min 64KB", False),
                   ("relay_splice_pipes 1", True), ("relay_splice_pipes x", False)):
    conf = h.tmpfile("sp.conf", "http_port 127.0.0.1:%d\n%s\n" % (h.free_port(), line))
    rc, out, err = h.run([CD, "-t", "-f", conf], timeout=10)
    is_(rc == 0, good, "connectd -t: %s is %s" % (line, "accepted" if good else "refused"))

# ------------------------------------------------- splice on: two thresholds

tlsorigin = h.TlsOrigin(names=["localhost"])
for tag, minimum in (("min 0", "0"), ("min 16 KB", "16 KB")):
    with h.Connectd({"relay_splice_min": minimum, "read_timeout": "60 seconds",
                     "access_log_interval": "1 second"}, metrics=True) as cd:
        s0 = metric(cd, "connectd_relay_splice_bytes_total")
        t0 = metric(cd, "connectd_relay_splice_tunnels_total")
        bulk(cd, tag + ", 3 MiB up, 5 MiB down", 3 * MiB + 7, 5 * MiB + 3)
        s1 = metric(cd, "connectd_relay_splice_bytes_total")
        ok(s1 - s0 > 7 * MiB, "%s: most of the 8 MiB went by splice (%d bytes)" % (tag, s1 - s0))
        is_(metric(cd, "connectd_relay_splice_tunnels_total"), t0 + 1, "%s: one spliced tunnel counted" % tag)
        bulk(cd, tag + ", 1 byte each way", 1, 1)
        if minimum != "0":
            is_(metric(cd, "connectd_relay_splice_tunnels_total"), t0 + 1,
                "%s: a tunnel under the threshold does not splice" % tag)
        half_close(cd, tag)
        resets(cd, tag)
        urgent(cd, tag)
        backpressure(cd, tag)
        interim(cd, tag)
        tls(cd, tag, tlsorigin, minimum == "0")
        idle_pipes(cd, tag)
        is_(metric(cd, "connectd_relay_pipes_in_use"), 0, "%s: no pipe in use at the end" % tag)
        ok(metric(cd, "connectd_relay_pipes_pooled") <= 256, "%s: the pool within its bound" % tag)
        cd.usr1()
        ok(cd.wait_stderr(r"stats: splice: tunnels \d+, bytes \d+, pipes in use 0"),
           "%s: SIGUSR1 stats say what splice did" % tag)
        h.all_valid_json(cd.log)
tlsorigin.stop()

# ----------------------------------------------------------- pool exhaustion

with h.Connectd({"relay_splice_min": "0", "relay_splice_pipes": "1",
                 "read_timeout": "60 seconds"}, metrics=True) as cd:
    total = 32 * MiB
    held = Pusher(down=total)
    a = h.tunnel(cd.port, held.authority)
    ok(h.wait_for(lambda: metric(cd, "connectd_relay_pipes_in_use") == 1, 20),
       "pool of 1: a stopped client's tunnel holds the one pipe")
    e0 = metric(cd, "connectd_relay_pipe_pool_exhausted_total")
    bulk(cd, "pool of 1, second tunnel", 2 * MiB + 1, 6 * MiB + 1)
    ok(metric(cd, "connectd_relay_pipe_pool_exhausted_total") > e0,
       "pool of 1: the second tunnel found the pool exhausted and copied (%d)" %
       metric(cd, "connectd_relay_pipe_pool_exhausted_total"))
    got = a.recv_exact(total, timeout=120)
    a.shut_wr()
    rest, how = a.read_to_eof(timeout=30)
    ok(got == h.pattern(total) and how == "eof", "pool of 1: the first tunnel's bytes all arrive, exactly")
    a.close()
    h.check_record(final(cd, a.local_port), {"bytes_down": total}, prefix="pool of 1, first tunnel: ")
    ok(h.wait_for(lambda: metric(cd, "connectd_relay_pipes_in_use") == 0, 10), "pool of 1: the pipe is back")
    ok(metric(cd, "connectd_relay_pipes_pooled") <= 1, "pool of 1: never more than one pipe")
    # a tunnel that closes with bytes in its pipe: the pipe is closed, not pooled
    base = pipe_fds(cd)
    held = Pusher(down=total)
    a = h.tunnel(cd.port, held.authority)
    ok(h.wait_for(lambda: metric(cd, "connectd_relay_pipes_in_use") == 1, 20),
       "pool of 1: a stopped client holds the pipe again")
    a.abort()
    ok(h.wait_for(lambda: metric(cd, "connectd_relay_pipes_in_use") == 0, 20) and
       metric(cd, "connectd_relay_pipes_pooled") == 0,
       "pool of 1: the client reset: the full pipe is closed, not pooled")
    h.check_record(final(cd, a.local_port), {"close": "client_reset"}, prefix="pool of 1, reset with a full pipe: ")
    is_(pipe_fds(cd), base - 2, "pool of 1: ... its two fds are gone")
    h.all_valid_json(cd.log)

# ---------------------------------------------------------------- splice off

with h.Connectd({"relay_splice": "off", "relay_splice_min": "0"}, metrics=True) as cd:
    base = pipe_fds(cd)
    bulk(cd, "splice off", 2 * MiB, 4 * MiB)
    is_((metric(cd, "connectd_relay_splice_bytes_total"), metric(cd, "connectd_relay_splice_tunnels_total"),
         metric(cd, "connectd_relay_pipes_pooled"), metric(cd, "connectd_relay_pipes_in_use"),
         metric(cd, "connectd_relay_pipe_pool_exhausted_total")), (0, 0, 0, 0, 0),
        "relay_splice off: no pipe, no spliced byte")
    is_(pipe_fds(cd), base, "relay_splice off: no pipe fd was opened")
done()
