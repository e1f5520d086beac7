#!/usr/bin/env python3
"""72-log-syslog.t: access_log syslog[:FACILITY.PRIORITY] writes RFC 5424.

The test re-runs itself in a private mount namespace (unshare -m) with a
/dev of its own, where its socket stands in for /dev/log; without one it
checks only server=unix:PATH and server=udp://.

- Each message is one datagram, <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID
  MSGID - MSG (RFC 5424 6): PRI is facility * 8 + severity of the names
  given (syslog:local4.info: 166), Squid's LOG_ names and "|" too; with
  none, user.info (14), what Squid 5.7 sends for them; TIMESTAMP is
  RFC 3339, HOSTNAME the host's name, APP-NAME connectd, PROCID its pid,
  MSGID access; MSG is the log line without its newline, valid JSON, the
  same as the file log's.  Fluent Bit's syslog-rfc5424 parser (its regex
  and time format) reads every message.
- A syslog daemon that is not there yet: connectd runs, counts and
  reports the failures; SIGUSR1 makes it try again at once, and lines
  flow.  A daemon that restarts (its socket made anew): no line is lost.
- A line too long for datagram-size=2KB: the message fits, its MSG is
  valid JSON with "truncated":true.
- A daemon that does not read: the queue bound holds, drops are counted,
  tunnels keep working; once it reads, the queued lines arrive.
- connectd -t refuses bad syslog specs with FILE:LINE.
"""
import concurrent.futures
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import helper_util as hu
import logrecv as lr
from tap import ok, is_, like, diag, done

# a private /dev: a tmpfs with the device nodes bound in, moved over /dev
DEVSCRIPT = r'''
set -e
mount --make-rprivate / 2>/dev/null || true
N="$T_DEVDIR/dev"
mkdir -p "$N"
mount -t tmpfs -o mode=755,size=1m tmpfs "$N"
for n in null zero full random urandom tty; do
	if [ -e /dev/$n ]; then touch "$N/$n"; mount --bind /dev/$n "$N/$n"; fi
done
ln -s /proc/self/fd "$N/fd"
ln -s /proc/self/fd/0 "$N/stdin"
ln -s /proc/self/fd/1 "$N/stdout"
ln -s /proc/self/fd/2 "$N/stderr"
mkdir "$N/shm" "$N/pts"
mount --move "$N" /dev
exec "$@"
'''
if os.environ.get("T_DEVLOG") is None:
    base = None
    if h.which("unshare"):
        base = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-r", "-m"]
        probe = subprocess.run(base + ["sh", "-c", "mount -t tmpfs tmpfs %s" % h.tmpdir()],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if probe.returncode != 0:
            base = None
    if base:
        d = tempfile.mkdtemp(prefix="connectd-devlog-")
        sys.stdout.flush()
        h.cleanup()
        env = dict(os.environ, T_DEVLOG="1", T_DEVDIR=d)
        os.execvpe(base[0], base + ["sh", "-ec", DEVSCRIPT, "sh", sys.executable,
                                    os.path.abspath(sys.argv[0])], env)
    os.environ["T_DEVLOG"] = "0"
DEVLOG = os.environ.get("T_DEVLOG") == "1"
if DEVLOG:
    h.at_cleanup(lambda: os.rmdir(os.path.join(os.environ["T_DEVDIR"], "dev")) or
                 os.rmdir(os.environ["T_DEVDIR"]))

h.need_connectd()
h.watchdog(90)
echo = h.EchoServer()

# Fluent Bit's parsers.conf, [PARSER] syslog-rfc5424, in Python's spelling
FLB_5424 = re.compile(r"^\<(?P<pri>[0-9]{1,5})\>1 (?P<time>[^ ]+) (?P<host>[^ ]+) (?P<ident>[^ ]+) "
                      r"(?P<pid>[-0-9]+) (?P<msgid>[^ ]+) (?P<extradata>(\[(.*?)\]|-)) "
                      r"(?P<message>.+)$", re.S)
FLB_TIME = "%Y-%m-%dT%H:%M:%S.%f%z"          # Time_Format %Y-%m-%dT%H:%M:%S.%L%z

HELPER = r'''#!%s
import json, sys
for line in sys.stdin:
    ip = line.split()[0]
    pod = {"ip": ip, "namespace": "ci", "name": "runner"}
    if ip == "127.0.1.2":
        pod["labels"] = dict(("label-%%03d" %% i, "v" * 200) for i in range(100))
    v = json.dumps(pod, separators=(",", ":")).replace("\\", "\\\\").replace('"', '\\"')
    sys.stdout.write('OK log="%%s"\n' %% v)
    sys.stdout.flush()
''' % hu.PY
helper = hu.script("pods.py", HELPER)
STANZA = "external_acl_type pods ttl=60 %%SRC %s\n" % helper


def tunnel_from(port, src="127.0.1.1"):
    c = hu.Client(port, echo.authority, src=src)
    good = c.echo(b"s") == b"s"
    c.close()
    return good


def parse(gram, pid, want_pri, label):
    """Checks one datagram; returns its MSG parsed, or None."""
    m = re.match(rb"^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) - (.*)$", gram, re.S)
    if not ok(m, "%s: an RFC 5424 header (%r)" % (label, gram[:90])):
        return None
    pri, ts, host, app, procid, msgid, msg = m.groups()
    is_(int(pri), want_pri, "%s: PRI %d" % (label, want_pri))
    try:
        datetime.strptime(ts.decode(), FLB_TIME)
        tsok = True
    except ValueError:
        tsok = False
    ok(tsok and ts.endswith(b"Z"), "%s: TIMESTAMP is RFC 3339 UTC (%s)" % (label, ts.decode()))
    is_((host.decode(), app, procid, msgid), (socket.gethostname(), b"connectd", str(pid).encode(),
                                              b"access"),
        "%s: HOSTNAME, APP-NAME connectd, PROCID the pid, MSGID access" % label)
    ok(not msg.endswith(b"\n"), "%s: MSG without a newline" % label)
    f = FLB_5424.match(gram.decode("utf-8", "replace"))
    ok(f and f.group("message") == msg.decode() and int(f.group("pri")) == want_pri,
       "%s: Fluent Bit's syslog-rfc5424 parser reads it" % label)
    try:
        return json.loads(msg)
    except ValueError:
        ok(False, "%s: MSG is valid JSON: %r" % (label, msg[:200]))
        return None


# ---------------------------------------------- server=unix:PATH, server=udp
sockpath = os.path.join(h.tmpdir(), "log.sock")
rx = lr.DgramReceiver(path=sockpath)
urx = lr.DgramReceiver()
filelog = os.path.join(h.tmpdir(), "file.log")
conf = (STANZA + "access_log syslog:local4.info server=unix:%s\n"
        "access_log syslog:LOG_DAEMON|LOG_ERR server=udp://127.0.0.1:%d\n"
        "access_log stdio:%s\n" % (sockpath, urx.port, filelog))
with h.Connectd(conf) as cd:
    ok(all(tunnel_from(cd.port) for _ in range(5)), "5 tunnels")
    grams = rx.wait(5)
    is_(len(grams), 5, "5 messages on the unix socket, one line each")
    fl = h.JsonLog(filelog)
    h.wait_for(lambda: len(fl.lines()) >= 5, 5)
    byid = dict((x["id"], x) for x in fl.lines())
    msgs = [parse(g, cd.proc.pid, 20 * 8 + 6, "local4.info") for g in grams[:1]]
    msgs += [json.loads(g.split(b" - ", 1)[1]) for g in grams[1:]]
    ok(all(m is not None and byid.get(m["id"]) == m for m in msgs), "each MSG is the file log's line")
    ugrams = urx.wait(5)
    is_(len(ugrams), 5, "5 messages over UDP (server=udp://)")
    m = parse(ugrams[0], cd.proc.pid, 3 * 8 + 3, "LOG_DAEMON|LOG_ERR over UDP")
    ok(m is not None and byid.get(m["id"]) == m, "... the file log's line")

    # a 20 KB pod: the 8 KB message holds a shorter line
    ok(tunnel_from(cd.port, "127.0.1.2"), "a tunnel from the pod with 20 KB of labels")
    grams = rx.wait(6)
    big = grams[5] if len(grams) > 5 else b""
    ok(0 < len(big) <= 8192, "its message fits in 8 KB (%d bytes)" % len(big))
    t = parse(big, cd.proc.pid, 166, "truncated") if big else None
    ok(t and t.get("truncated") is True and t["pod"] is None and t["status"] == 200,
       "its MSG: \"truncated\":true, pod null, the rest kept")
    st = lr.sink_stats(cd, "syslog:local4.info server=unix:%s" % sockpath)
    ok(st and st["written"] == 6 and st["truncated"] == 1, "SIGUSR1: 6 written, 1 truncated (%r)" % (st,))

    # the daemon restarts: its socket is made anew
    rx.close()
    rx = lr.DgramReceiver(path=sockpath)
    ok(all(tunnel_from(cd.port) for _ in range(5)), "5 tunnels after the daemon restarted")
    grams = rx.wait(5)
    is_(len(grams), 5, "all 5 arrive: the first send fails, connectd connects anew and sends it again")
rx.close()
urx.close()

# ------------------------------------- a syslog daemon that does not read
stallpath = os.path.join(h.tmpdir(), "stall.sock")
stall = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
stall.bind(stallpath)
name = "syslog:local4.info server=unix:%s" % stallpath
N = 300
with h.Connectd("access_log %s buffer-size=16KB\n" % name) as cd:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        res = list(pool.map(lambda _: tunnel_from(cd.port), range(N)))
    is_(res.count(True), N, "all %d tunnels worked while the daemon read nothing" % N)
    ok(cd.wait_stderr(r"access log %s: \d+ lines dropped \(queue full\)" % re.escape(name), 20),
       "stderr counts the dropped lines")
    st = lr.sink_stats(cd, name)
    ok(st and st["dropped"] > 0 and st["queued_bytes"] <= 16 * 1024,
       "SIGUSR1: drops counted, the 16 KB bound holds (%r)" % (st,))
    got = []
    stall.settimeout(0.5)

    def drain():
        try:
            while True:
                got.append(stall.recv(65536))
        except OSError:
            pass
    st = None
    for _ in range(40):
        drain()
        st = lr.sink_stats(cd, name)
        if st and st["queued"] == 0:
            break
    drain()
    ok(st and st["queued"] == 0 and st["written"] == len(got),
       "once it reads, every queued line arrives (%d)" % len(got))
    ok(st and st["written"] + st["dropped"] + st["errors"] == N,
       "written + dropped + errors == %d (%r)" % (N, st))
stall.close()

# ------------------------------------------------------- /dev/log itself
if DEVLOG:
    CASES = [("syslog", 14), ("syslog:info", 14), ("syslog:local4", 166), ("syslog:daemon.err", 27),
             ("syslog:LOG_LOCAL7|LOG_DEBUG", 191), ("syslog:notice.authpriv", 85)]
    conf = "".join("access_log %s datagram-size=2KB\n" % c for c, _ in CASES) + STANZA
    with h.Connectd(conf) as cd:
        # no syslog daemon yet
        ok(tunnel_from(cd.port), "a tunnel while nobody listens on /dev/log")
        ok(cd.wait_stderr(r"access log syslog:user\.info: \d+ connection failures \(connect to "
                          r"/dev/log: No such file or directory\)", 10),
           "stderr says /dev/log cannot be reached")
        rx = lr.DgramReceiver(path="/dev/log")
        cd.usr1()       # try again now, not in a backoff's time
        ok(tunnel_from(cd.port), "a tunnel once /dev/log is there")
        # the first tunnel's lines waited in the queues: two of each
        grams = rx.wait(2 * len(CASES), timeout=15)
        is_(len(grams), 2 * len(CASES), "every line of both tunnels arrives, one message each")
        pris = sorted(int(re.match(rb"<(\d+)>", g).group(1)) for g in grams)
        is_(pris, sorted(2 * [p for _, p in CASES]), "PRI as the names say: %s" %
            ", ".join("%s %d" % c for c in CASES))
        parse(grams[0], cd.proc.pid, int(re.match(rb"<(\d+)>", grams[0]).group(1)), "/dev/log")
        ok(tunnel_from(cd.port, "127.0.1.2"), "a tunnel with a 20 KB pod")
        grams = rx.wait(3 * len(CASES))[2 * len(CASES):]
        ok(len(grams) == len(CASES) and all(len(g) <= 2048 for g in grams),
           "datagram-size=2KB: every message fits")
        ok(all(json.loads(g.split(b" - ", 1)[1]).get("truncated") is True for g in grams),
           "... each MSG valid JSON, truncated")
else:
    ok(True, "# SKIP /dev/log: no private mount namespace here")

# ------------------------------------------------------------ connectd -t
CD = h.connectd_bin()
for spec in ("syslog:bogus.info", "syslog:local4.bogus", "syslog:local4.local5", "syslog:info.err",
             "syslog:local4.", "syslog:.info", "syslog:kern.info", "syslog:local4.info server=log.sock",
             "syslog:local4.info server=udp://h:99999", "syslog server=unix:/a server=unix:/b",
             "syslog datagram-size=512", "tcp://127.0.0.1:5170 server=unix:/dev/log"):
    path = h.tmpfile("bad.conf", "# bad\nhttp_port 127.0.0.1:%d\naccess_log %s\n" % (h.free_port(), spec))
    rc, out, err = h.run([CD, "-t", "-f", path], timeout=10)
    ok(rc not in (0, None) and re.search(r"%s:3: " % re.escape(path), err),
       "-t refuses 'access_log %s' with FILE:3 (%s)" % (spec, err.strip()[-80:]))
path = h.tmpfile("good.conf", "http_port 127.0.0.1:%d\naccess_log syslog\naccess_log syslog:LOG_LOCAL4\n"
                 "access_log syslog:authpriv.debug squid server=unix:/run/fluent.sock\n"
                 "access_log syslog:err server=udp://[::1]:5140 datagram-size=1400\n" % h.free_port())
rc, out, err = h.run([CD, "-t", "-v", "-f", path], timeout=10)
is_(rc, 0, "-t accepts syslog, syslog:LOG_LOCAL4, server=unix: and server=udp://")
for want in (r"access_log syslog:user\.info logformat=json buffer-size=4MB datagram-size=8KB",
             r"access_log syslog:local4\.info logformat=json",
             r"access_log syslog:authpriv\.debug logformat=squid buffer-size=4MB datagram-size=8KB "
             r"server=unix:/run/fluent\.sock",
             r"access_log syslog:user\.err logformat=json buffer-size=4MB datagram-size=1400bytes "
             r"server=udp://\[::1\]:5140"):
    like(out, want, "-t -v prints %s" % want.replace("\\", "")[:60])
done()
