#!/usr/bin/env python3
"""bench.py: connectd side by side with Squid and tinyproxy, on loopback.

    python3 bench/bench.py --connectd /tmp/b-bench/connectd/connectd
    python3 bench/bench.py --connectd build/connectd/connectd --parts http
    python3 bench/bench.py --connectd NEW --connectd-before OLD --parts tunnel

Builds bench/loadgen.c into bench/out/loadgen, starts every target at once
(direct, connectd with its access log to a file, to /dev/null and off,
optionally an older connectd, squid, tinyproxy), each on a free 127.0.0.1
port with an origin of its own, and measures (--parts picks them)

  idle      RSS per idle tunnel (all of the proxy's processes, after a
            warm-up), once per proxy, first
  bulk      one stream origin -> client through a tunnel, MB/s
  short     CONNECT + 1-byte echo + close, --concurrency in flight, tunnels/s
  rps       plain HTTP: --http-concurrency keep-alive connections, each
            sending absolute-form GETs one after another (no pipelining)
            for a --http-body-byte body, requests/s
  httpbulk  plain HTTP: one GET for a --http-bulk-bytes body, MB/s

with all but idle repeated for --rounds rounds, targets interleaved (the
order rotates), reported as median (min-max); plus the proxy's CPU time
(user+sys, from /proc) during each, and how busy the rest of the machine
was.  Every HTTP response is checked (status 200, Content-Length, every
body byte); a run with errors shows the errors, not a figure.  Prints
Markdown tables and writes them to bench/out/results.md (and the raw
figures to bench/out/results.json).  See bench/README.md.

Python 3 stdlib only, and t/lib/harness.py.  Every wait has a deadline;
every process started here is killed at exit; all traffic stays on
127.0.0.0/8.
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "t", "lib"))
import harness as h  # noqa: E402  (the test suite's process and /proc helpers)

OUT = os.path.join(HERE, "out")
SQUID = "/usr/sbin/squid"
TINYPROXY = "/usr/bin/tinyproxy"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# ------------------------------------------------------------ processes

_procs = []                  # Popen objects, each the leader of its session
_tmpdirs = []


def spawn(argv, log=None, stdin=subprocess.DEVNULL, stdout=None):
    """Start argv in a session of its own (so it and its children can be
    found and killed); stderr (and stdout unless given) go to log."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        p = subprocess.Popen(argv, stdin=stdin,
                             stdout=stdout if stdout is not None else out,
                             stderr=out, start_new_session=True)
    finally:
        if log:
            out.close()
    _procs.append(p)
    return p


def stop(p, grace=3.0):
    """SIGTERM the leader, wait up to grace, then SIGKILL its session."""
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        except OSError:
            pass
    for pid in [p.pid] + h.session_pids(p.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        pass
    if p in _procs:
        _procs.remove(p)


def cleanup():
    while _procs:
        stop(_procs[-1], grace=1.0)
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)
    _tmpdirs.clear()


class Abort(BaseException):
    pass


def on_signal(signum, frame):
    raise Abort(signum)


# ------------------------------------------------------------ /proc


def cpu_seconds(sid):
    """user+sys CPU of all processes in the session (threads included)."""
    return sum(h.cpu_seconds(pid) for pid in h.session_pids(sid))


def rss_kb(sid):
    """Sum of VmRSS over all processes in the session, KiB."""
    total = 0
    for pid in h.session_pids(sid):
        try:
            with open("/proc/%d/status" % pid) as f:
                for ln in f:
                    if ln.startswith("VmRSS:"):
                        total += int(ln.split()[1])
                        break
        except OSError:
            continue
    return total


def run(argv, timeout):
    """Run to completion (killed at the deadline): (rc, stdout, stderr)."""
    return h.run(argv, timeout=timeout)


def read_line(p, timeout):
    """One line from p.stdout within timeout, or ''."""
    r, _, _ = select.select([p.stdout], [], [], timeout)
    return p.stdout.readline().decode(errors="replace") if r else ""


# ------------------------------------------------------------ load generator


def build_loadgen():
    src = os.path.join(HERE, "loadgen.c")
    exe = os.path.join(OUT, "loadgen")
    if os.path.exists(exe) and os.path.getmtime(exe) >= os.path.getmtime(src):
        return exe
    cc = os.environ.get("CC", "cc")
    rc, out, err = run([cc, "-O2", "-Wall", "-o", exe, src], timeout=60)
    if rc != 0:
        sys.exit("bench: building loadgen failed:\n%s%s" % (out, err))
    return exe


def loadgen_json(argv, timeout):
    rc, out, err = run(argv, timeout)
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "loadgen %s: rc=%r %s" % (argv[1], rc, err.strip()[-300:])}


class Origin:
    """loadgen origin: an echo port, a source port (sends BYTES per
    connection) and an HTTP port (GET /bytes/N: N bytes, keep-alive).  It
    exits when we close its stdin."""

    def __init__(self, lg, nbytes, logdir):
        self.p = spawn([lg, "origin", str(nbytes)], log=os.path.join(logdir, "origin.err"),
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = read_line(self.p, 10)
        if not line:
            raise RuntimeError("origin did not start")
        ports = json.loads(line)
        self.echo, self.source, self.http = ports["echo"], ports["source"], ports["http"]

    def stop(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        stop(self.p, grace=2)


# ------------------------------------------------------------ proxies


class Proxy:
    name = "?"
    grace = 3.0

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, self.name)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o777)
        self.port = None
        self.p = None

    def argv(self):
        raise NotImplementedError

    def write_conf(self):
        raise NotImplementedError

    def write_lines(self, name, lines):
        """Write lines as the config file name in the proxy's directory."""
        self.conf_path = os.path.join(self.dir, name)
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, tries=3):
        for _ in range(tries):
            self.port = h.free_port()
            self.write_conf()
            self.p = spawn(self.argv(), log=os.path.join(self.dir, "stderr"))
            if h.wait_for(lambda: h.listening(self.port) or self.p.poll() is not None, 20,
                          interval=0.05) \
                    and self.p.poll() is None:
                # squid listens in its kid; give the rest of it a moment
                time.sleep(0.3)
                return
            stop(self.p)
        raise RuntimeError("%s did not start:\n%s" % (self.name, self.errors()))

    def errors(self):
        try:
            with open(os.path.join(self.dir, "stderr"), errors="replace") as f:
                return f.read()[-1500:]
        except OSError:
            return ""

    def stop(self):
        if self.p:
            stop(self.p, grace=self.grace)
            self.p = None


class Connectd(Proxy):
    """log: "file" (its real configuration), "devnull" or "none".  Every
    directive beyond http_port and access_log is probed with `connectd -t`
    first, so an older binary (--connectd-before) gets what it understands."""

    def __init__(self, workdir, binpath, log="file", name="connectd", lines=()):
        self.name = name
        self.bin = binpath
        self.log = log
        super().__init__(workdir)
        self.conf_path = os.path.join(self.dir, "connectd.conf")
        self.extra = self.probe_extra()
        # a variant (workers 2, relay_splice off, tls_peek off): a build
        # that does not know the directive has no such target
        for line in lines:
            if not self.probe(line):
                raise RuntimeError("this build does not take `%s`" % line)
            self.extra.append(line)

    def probe(self, line):
        """True if `connectd -t` accepts a config with this line in it."""
        path = os.path.join(self.dir, "probe.conf")
        with open(path, "w") as f:
            f.write("http_port 127.0.0.1:%d\n%s\n" % (h.free_port(), line))
        rc, _, _ = run([self.bin, "-t", "-f", path], timeout=10)
        return rc == 0

    def probe_extra(self):
        # With ACL support, allow everything (as squid and tinyproxy are
        # configured); without it, connectd lets loopback clients go
        # anywhere when there is no http_access line.
        extra = []
        if self.probe("http_access allow all"):
            extra.append("http_access allow all")
        if os.geteuid() == 0 and self.probe("cache_effective_user nobody"):
            extra.append("cache_effective_user nobody")
        return extra

    def write_conf(self):
        log = {"file": "access_log stdio:%s json" % os.path.join(self.dir, "access.log"),
               "devnull": "access_log stdio:/dev/null json",
               "none": "access_log none"}[self.log]
        lines = ["http_port 127.0.0.1:%d" % self.port, log] + self.extra
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def argv(self):
        return [self.bin, "-f", self.conf_path]


class Squid(Proxy):
    name = "squid"

    def write_conf(self):
        # as t/lib/harness.py's Squid runner (no "deny CONNECT !SSL_ports":
        # CONNECT to any port is allowed), plus the kid process model
        # Debian's squid.service uses (squid --foreground).  For plain HTTP:
        # "http_access allow all" and no Safe_ports rule, so a GET to the
        # origin's port is allowed; "cache deny all", so every response
        # comes from the origin; persistent connections to clients and
        # servers are Squid's defaults (on).
        d = self.dir
        lines = h.squid_conf_lines(d, self.port) + [
            "access_log stdio:%s/access.log squid" % d,
            # Squid looks up every client address in DNS (PTR); 127.0.0.1 is
            # answered by /etc/hosts, the other source addresses would go to
            # dns_nameservers, where nothing answers on this machine, and
            # the pending queries pile up (CPU and ~8 KB each).  A resolver
            # would answer at once: so does this hosts file.
            "hosts_file %s/hosts" % d,
        ]
        with open(os.path.join(d, "hosts"), "w") as f:
            f.write("127.0.0.1 localhost\n")
            f.write("".join("127.0.0.%d bench-src%d\n" % (i, i)
                            for i in range(2, 251)))
        if os.geteuid() == 0:
            lines.append("cache_effective_user proxy")
        self.write_lines("squid.conf", lines)

    def argv(self):
        return [SQUID, "--foreground", "-YC", "-f", self.conf_path]

    def errors(self):
        txt = super().errors()
        try:
            with open(os.path.join(self.dir, "cache.log"), errors="replace") as f:
                txt += f.read()[-1500:]
        except OSError:
            pass
        return txt


class Tinyproxy(Proxy):
    name = "tinyproxy"

    def write_conf(self):
        d = self.dir
        lines = [
            "Port %d" % self.port,
            "Listen 127.0.0.1",
            "Timeout 600",
            'LogFile "%s/tinyproxy.log"' % d,
            # Connect: one line per connection and its request, the nearest
            # thing tinyproxy has to an access log
            "LogLevel Connect",
            'PidFile "%s/tinyproxy.pid"' % d,
            # the default (100) is below the idle-tunnel count
            "MaxClients 8192",
            # plain HTTP (GET http://127.0.0.1:PORT/...) from these clients
            # is forwarded to any port; tinyproxy caches nothing
            "Allow 127.0.0.0/8",
            # no ConnectPort line: CONNECT to any port is allowed
        ]
        if os.geteuid() == 0:
            lines[:0] = ["User nobody", "Group nogroup"]
        self.write_lines("tinyproxy.conf", lines)

    def argv(self):
        return [TINYPROXY, "-d", "-c", self.conf_path]


# ------------------------------------------------------------ CPU accounting


def machine_busy():
    """CPU-seconds the whole machine has been busy (and stolen), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = v
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def own_cpu():
    """CPU-seconds used by this script and everything it started: reaped
    children from getrusage, live ones (proxies, origins) from /proc."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    live = sum(cpu_seconds(p.pid) for p in list(_procs) if p.poll() is None)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime + live


class Background:
    """How busy the rest of the machine was between start() and stop():
    percent of all CPUs used by processes this script did not start."""

    def __init__(self):
        self.t = time.monotonic()
        self.busy, self.steal = machine_busy()
        self.own = own_cpu()

    def pct(self):
        dt = time.monotonic() - self.t
        busy, steal = machine_busy()
        other = (busy - self.busy) - (own_cpu() - self.own)
        cap = dt * (os.cpu_count() or 1)
        return {"other_pct": round(max(0.0, other) / cap * 100, 1) if cap > 0 else None,
                "steal_pct": round((steal - self.steal) / cap * 100, 1) if cap > 0 else None}


# ------------------------------------------------------------ measurements


class Target:
    def __init__(self, name, proxy):
        self.name = name
        self.proxy = proxy
        self.origin = None
        self.res = {"name": name, "bulk": [], "short": [], "rps": [], "httpbulk": [],
                    "multi": [], "hello": []}

    @property
    def sid(self):
        return self.proxy.p.pid if self.proxy and self.proxy.p else None

    @property
    def port(self):
        return self.proxy.port if self.proxy else 0

    def alive(self):
        if "error" in self.res:
            return False
        if self.proxy and self.proxy.p.poll() is not None:
            self.res["error"] = "%s exited with status %r during the bench; stderr: %s" % (
                self.name, self.proxy.p.returncode, self.proxy.errors()[-400:].strip())
            return False
        return True

    def drain(self, timeout=10):
        if self.proxy:
            h.wait_for(lambda: h.connections(self.proxy.port) == 0, timeout, interval=0.05)


def measure_idle(lg, t, a):
    """RSS of all the proxy's processes before and with a.idle idle tunnels
    open (after a warm-up of 200 short tunnels)."""
    warm = loadgen_json([lg, "tunnels", str(t.port), str(t.origin.echo), "200",
                         "16", str(a.sources), "20"], timeout=30)
    t.drain()
    time.sleep(0.5)
    before = rss_kb(t.sid)
    p = spawn([lg, "idle", str(t.port), str(t.origin.echo), str(a.idle),
               "64", str(a.sources), "60"], log=os.path.join(t.proxy.dir, "idle.err"),
              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        line = read_line(p, 60)
        res = json.loads(line) if line else {"error": "idle: no result from loadgen"}
        last = [-1]

        def settled():          # two equal readings in a row, at most 5 s
            v = rss_kb(t.sid)
            same = v == last[0]
            last[0] = v
            return same
        h.wait_for(settled, 5, interval=0.3)
        during = rss_kb(t.sid)
    finally:
        try:
            p.stdin.close()
        except OSError:
            pass
        stop(p, grace=5)
    t.drain(15)
    n = res.get("ok", 0)
    return {"warmup_errors": warm.get("errors"), "ok": n,
            "errors": res.get("errors"), "first_error": res.get("first_error"),
            "error": res.get("error"),
            "rss_before_kb": before, "rss_idle_kb": during,
            "bytes_per_tunnel": (during - before) * 1024 / n if n else None}


def measure_bulk(lg, t, a, streams=1):
    bg = Background()
    c0 = cpu_seconds(t.sid) if t.sid else 0
    each = a.bulk_bytes if streams == 1 else a.bulk_bytes // streams
    argv = [lg, "bulk", str(t.port), str(t.origin.source), str(each), "60"]
    if streams > 1:
        argv.append(str(streams))
    r = loadgen_json(a.pin + argv, timeout=70)
    if t.sid and r.get("bytes"):
        r["cpu_s_per_gb"] = (cpu_seconds(t.sid) - c0) / (r["bytes"] / 1e9)
    r.update(bg.pct())
    t.drain(5)
    return r


def measure_multi(lg, t, a):
    """a.streams bulk streams at once, a.bulk_bytes in all."""
    return measure_bulk(lg, t, a, streams=a.streams)


def measure_short(lg, t, a, payload=None):
    bg = Background()
    c0 = cpu_seconds(t.sid) if t.sid else 0
    argv = [lg, "tunnels", str(t.port), str(t.origin.echo), str(a.tunnels),
            str(a.concurrency), str(a.sources), "90"]
    if payload:
        argv.append(payload)
    r = loadgen_json(a.pin + argv, timeout=100)
    if t.sid and r.get("ok"):
        r["cpu_us_per_tunnel"] = (cpu_seconds(t.sid) - c0) / r["ok"] * 1e6
    r.update(bg.pct())
    t.drain(10)
    return r


def measure_syscalls(lg, t, a, n=2000):
    """System calls per tunnel: `strace -c -f` attached to the proxy for n
    short tunnels (16 in flight, one source address).  {name: calls per
    tunnel}, and "total"."""
    if not shutil.which("strace"):
        return {"error": "strace is not installed"}
    out = os.path.join(t.proxy.dir, "strace.txt")
    st = spawn(["strace", "-c", "-f", "-o", out, "-p", str(t.sid)],
               log=os.path.join(t.proxy.dir, "strace.err"))
    time.sleep(1.0)             # attached to every thread
    r = loadgen_json([lg, "tunnels", str(t.port), str(t.origin.echo), str(n), "16", "1",
                      "60"], timeout=70)
    t.drain(10)
    time.sleep(0.5)
    st.send_signal(signal.SIGINT)
    try:
        st.wait(timeout=20)
    except subprocess.TimeoutExpired:
        stop(st)
    calls = {}
    try:
        with open(out) as f:
            for ln in f:
                m = re.match(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", ln)
                if m and m.group(2) != "total":
                    calls[m.group(2)] = int(m.group(1))
    except OSError as e:
        return {"error": "strace output: %s" % e}
    ok = r.get("ok") or 0
    if not ok or not calls:
        return {"error": "no tunnels or no strace summary (%s)" % r.get("first_error")}
    per = {k: v / ok for k, v in sorted(calls.items(), key=lambda kv: -kv[1])}
    per["total"] = sum(calls.values()) / ok
    return {"tunnels": ok, "per_tunnel": per}


def measure_hello(lg, t, a):
    """Short tunnels whose client sends a real ClientHello (a.hello, a
    captured Chrome hello from t/fixtures/ja4/) and reads it back from the
    echo: connectd's hello reader parses it and works out its JA4."""
    return measure_short(lg, t, a, payload=a.hello)


def measure_http_warm(lg, t, a):
    """A short warm-up of the HTTP path (fills the proxy's server
    connection pool).  Returns an error text if no request got through:
    the target does not forward plain HTTP, and the http parts skip it."""
    n = min(1000, a.http_requests)
    r = loadgen_json([lg, "http", str(t.port), str(t.origin.http), str(n), "16",
                      str(a.http_body), "0", "30"], timeout=40)
    t.drain(5)
    t.res["http_warmup"] = r
    if r.get("error"):
        return r["error"]
    if not r.get("ok"):
        return "no request got through (first error: %s)" % r.get("first_error")
    return None


def measure_rps(lg, t, a):
    bg = Background()
    c0 = cpu_seconds(t.sid) if t.sid else 0
    o0 = h.cpu_seconds(t.origin.p.pid)
    m0 = rss_kb(t.sid) if t.sid else 0
    r = loadgen_json([lg, "http", str(t.port), str(t.origin.http), str(a.http_requests),
                      str(a.http_concurrency), str(a.http_body), str(a.http_seconds),
                      str(a.http_seconds + 60)], timeout=a.http_seconds + 70)
    if t.sid and r.get("ok"):
        r["cpu_s_per_10k"] = (cpu_seconds(t.sid) - c0) / r["ok"] * 1e4
        # what the proxy's RSS grew by: flat once warm, unless it leaks
        r["rss_kb_before"], r["rss_kb_after"] = m0, rss_kb(t.sid)
        r["rss_kb_per_10k"] = (r["rss_kb_after"] - m0) / r["ok"] * 1e4
    r["origin_cpu_s"] = round(h.cpu_seconds(t.origin.p.pid) - o0, 2)
    r.update(bg.pct())
    t.drain(5)
    return r


def measure_httpbulk(lg, t, a):
    bg = Background()
    c0 = cpu_seconds(t.sid) if t.sid else 0
    r = loadgen_json([lg, "http", str(t.port), str(t.origin.http), "1", "1",
                      str(a.http_bulk_bytes), "0", "120"], timeout=130)
    if t.sid and r.get("body_bytes"):
        r["cpu_s_per_gb"] = (cpu_seconds(t.sid) - c0) / (r["body_bytes"] / 1e9)
    r.update(bg.pct())
    t.drain(5)
    return r


def http_clean(r):
    """An HTTP run whose every response was complete and correct."""
    return bool(r.get("ok")) and not r.get("error") and not r.get("errors") \
        and not r.get("unfinished")


def summarize(t):
    res = t.res
    good = [r for r in res["bulk"] if r.get("mbps") and not r.get("error")]
    if good:
        res["mbps"] = statistics.median(r["mbps"] for r in good)
        res["mbps_range"] = (min(r["mbps"] for r in good), max(r["mbps"] for r in good))
        cg = [r["cpu_s_per_gb"] for r in good if "cpu_s_per_gb" in r]
        res["cpu_s_per_gb"] = statistics.median(cg) if cg else None
    for part in ("multi", "hello"):
        good = [r for r in res[part] if not r.get("error") and (r.get("mbps") or r.get("ok"))]
        if not good:
            continue
        key = "mbps" if part == "multi" else "rate"
        res["%s_%s" % (part, key)] = statistics.median(r[key] for r in good)
        res["%s_%s_range" % (part, key)] = (min(r[key] for r in good), max(r[key] for r in good))
        cpu = "cpu_s_per_gb" if part == "multi" else "cpu_us_per_tunnel"
        cg = [r[cpu] for r in good if cpu in r]
        res["%s_%s" % (part, cpu)] = statistics.median(cg) if cg else None
    good = [r for r in res["short"] if r.get("ok")]
    if good:
        res["rate"] = statistics.median(r["rate"] for r in good)
        res["rate_range"] = (min(r["rate"] for r in good), max(r["rate"] for r in good))
        res["p99_ms"] = statistics.median(r["p99_ms"] for r in good)
        cu = [r["cpu_us_per_tunnel"] for r in good if "cpu_us_per_tunnel" in r]
        res["cpu_us_per_tunnel"] = statistics.median(cu) if cu else None
    # HTTP: figures only from runs without a single bad response; the
    # medians over every run, bad ones too, are kept as *_all for the record
    for part in ("rps", "httpbulk"):
        runs = res[part]
        if not runs:
            continue
        key = "rate" if part == "rps" else "mbps"
        everything = [r[key] for r in runs if r.get(key)]
        if everything:
            res["%s_%s_all" % (part, key)] = statistics.median(everything)
        bad = [r for r in runs if not http_clean(r)]
        res["%s_bad_runs" % part] = len(bad)
        if part == "rps":
            # memory is shown whatever the responses were
            mg = [r["rss_kb_per_10k"] for r in runs if "rss_kb_per_10k" in r]
            res["rps_rss_kb_per_10k"] = statistics.median(mg) if mg else None
            res["rss_after_http_kb"] = max(r.get("rss_kb_after", 0) for r in runs) or None
        if bad:
            continue
        res["%s_%s" % (part, key)] = statistics.median(r[key] for r in runs)
        res["%s_%s_range" % (part, key)] = (min(r[key] for r in runs),
                                            max(r[key] for r in runs))
        if part == "rps":
            res["rps_p99_ms"] = statistics.median(r["p99_ms"] for r in runs)
            res["rps_conns"] = statistics.median(r["conns"] for r in runs)
            cu = [r["cpu_s_per_10k"] for r in runs if "cpu_s_per_10k" in r]
            res["rps_cpu_s_per_10k"] = statistics.median(cu) if cu else None
        else:
            cg = [r["cpu_s_per_gb"] for r in runs if "cpu_s_per_gb" in r]
            res["httpbulk_cpu_s_per_gb"] = statistics.median(cg) if cg else None
    for parts, key in ((("bulk", "short", "multi", "hello"), "tunnel"),
                       (("rps", "httpbulk"), "http")):
        bgs = [r["other_pct"] for p in parts for r in res[p]
               if r.get("other_pct") is not None]
        res["other_pct_max_" + key] = max(bgs) if bgs else None
    bgs = [r["other_pct"] for r in res["bulk"] + res["short"] + res["rps"] + res["httpbulk"] +
           res["multi"] + res["hello"] if r.get("other_pct") is not None]
    res["other_pct_max"] = max(bgs) if bgs else None
    res["bytes_per_idle_tunnel"] = get(res, "idle", "bytes_per_tunnel")
    res["rss_before_kb"] = get(res, "idle", "rss_before_kb")


# ------------------------------------------------------------ report


def version_of(argv):
    try:
        rc, out, err = run(argv, timeout=10)
    except OSError:
        return "not installed"
    txt = (out + err).strip().splitlines()
    return txt[0].strip() if txt else "?"


def machine_info(a):
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    model = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "connectd": "%s (%s)" % (version_of([a.connectd, "-V"]), a.connectd),
        "connectd_before": "%s (%s)" % (version_of([a.connectd_before, "-V"]),
                                        a.connectd_before) if a.connectd_before else None,
        "squid": version_of([SQUID, "-v"]),
        "tinyproxy": version_of([TINYPROXY, "-v"]),
    }


def fmt(v, spec="%.0f"):
    return "-" if v is None else spec % v


def ratio(x, base):
    if x is None or not base:
        return "-"
    return "%.2fx" % (x / base)


def get(d, *path):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def with_range(v, rng):
    if v is None:
        return "-"
    if not rng or rng[0] == rng[1]:
        return "%.0f" % v
    return "%.0f (%.0f-%.0f)" % (v, rng[0], rng[1])


def part_load(results, parts):
    """Mean and max of the other load over the measurements of these parts."""
    v = [x["other_pct"] for r in results for p in parts
         for x in (r.get(p) if isinstance(r.get(p), list) else [])
         if x.get("other_pct") is not None]
    return (statistics.mean(v), max(v)) if v else (None, None)


def http_cell(r, part, key, spec="%.0f"):
    """A figure of an HTTP part, or what went wrong instead of it."""
    runs = r.get(part) or []
    if r.get("http_skip"):
        return "not forwarded"
    if not runs:
        return "-"
    bad = r.get("%s_bad_runs" % part)
    if bad:
        return "**errors** (%d of %d runs)" % (bad, len(runs))
    v = r.get("%s_%s" % (part, key))
    rng = r.get("%s_%s_range" % (part, key))
    if key in ("rate", "mbps"):
        return with_range(v, rng)
    return fmt(v, spec)


def report(results, info, a, bg):
    by = {r["name"]: r for r in results}
    sq = by.get("squid", {})
    dr = by.get("direct", {})
    tunnel = any(p in a.parts for p in ("idle", "bulk", "short"))
    extra = any(p in a.parts for p in ("multi", "hello"))
    http = any(p in a.parts for p in ("rps", "httpbulk"))
    L = []
    L.append("# connectd vs Squid vs tinyproxy, loopback")
    L.append("")
    L.append("- %s; %s CPUs (%s); Linux %s" % (info["date"], info["nproc"], info["cpu"],
                                               info["kernel"]))
    L.append("- %s; %s; %s" % (info["connectd"], info["squid"], info["tinyproxy"]))
    if info.get("connectd_before"):
        L.append("- connectd-before: %s" % info["connectd_before"])
    L.append("- parts: %s; %d rounds, targets interleaved, median (min-max) over rounds"
             % (",".join(a.parts), a.rounds))
    if tunnel:
        L.append("- bulk: %.2f GB origin -> client through one tunnel, 1 MB = 10^6 bytes; "
                 "short: %d x (CONNECT + 1-byte echo + close), %d in flight, from %d source "
                 "addresses; idle: %d tunnels" % (
                     a.bulk_bytes / 1e9, a.tunnels, a.concurrency, a.sources, a.idle))
    if http:
        L.append("- HTTP requests/s: %d keep-alive connections, each sending `GET "
                 "http://127.0.0.1:PORT/bytes/%d` (absolute-form; origin-form for direct), "
                 "one at a time, reading each whole %d-byte Content-Length response "
                 "before the next; up to %d requests or %g s per run. HTTP bulk: one GET "
                 "of a %.2f GB (%d-byte) body. Every response checked: status 200, "
                 "Content-Length, every body byte" % (
                     a.http_concurrency, a.http_body, a.http_body, a.http_requests,
                     a.http_seconds, a.http_bulk_bytes / 1e9, a.http_bulk_bytes))
    if extra:
        L.append("- multi: %d streams at once, %.2f GB in all, origin -> client, each through "
                 "a tunnel of its own (direct: %d plain connections); hello: as short, but "
                 "the client sends a captured %d-byte ClientHello (%s) instead of 1 byte and "
                 "reads it back" % (a.streams, a.bulk_bytes / 1e9, a.streams,
                                    os.path.getsize(a.hello), os.path.basename(a.hello)))
    if a.pin:
        L.append("- the load generator runs under `%s`" % " ".join(a.pin))
    L.append("- CPU = user+sys of all the proxy's processes (from /proc); RSS = sum of "
             "VmRSS of all its processes")
    L.append("- other load on the machine during the run: %s%% of all CPUs on average "
             "(max %s%% during one measurement); steal %s%%" % (
                 fmt(bg.get("other_pct"), "%.0f"),
                 fmt(max([r.get("other_pct_max") or 0 for r in results] or [0]), "%.0f"),
                 fmt(bg.get("steal_pct"), "%.0f")))
    for label, parts in (("tunnel", ("bulk", "short", "multi", "hello")),
                         ("HTTP", ("rps", "httpbulk"))):
        mean, mx = part_load(results, parts)
        if mean is not None:
            L.append("- other load during the %s measurements: %.0f%% on average, "
                     "%.0f%% at most" % (label, mean, mx))
    L.append("")
    if tunnel:
        L.append("## CONNECT tunnels")
        L.append("")
        L.append("| target | bulk MB/s | /direct | /squid | CPU s/GB | /squid | tunnels/s "
                 "| /direct | /squid "
                 "| p99 ms | CPU us/tunnel | /squid | RSS/idle tunnel | /squid | RSS at start |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in results:
            mem = r.get("bytes_per_idle_tunnel")
            base = r.get("rss_before_kb")
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s "
                     "| %s |" % (
                r["name"],
                with_range(r.get("mbps"), r.get("mbps_range")),
                ratio(r.get("mbps"), dr.get("mbps")),
                ratio(r.get("mbps"), sq.get("mbps")),
                fmt(r.get("cpu_s_per_gb"), "%.2f"),
                ratio(r.get("cpu_s_per_gb"), sq.get("cpu_s_per_gb")),
                with_range(r.get("rate"), r.get("rate_range")),
                ratio(r.get("rate"), dr.get("rate")),
                ratio(r.get("rate"), sq.get("rate")),
                fmt(r.get("p99_ms"), "%.1f"),
                fmt(r.get("cpu_us_per_tunnel")),
                ratio(r.get("cpu_us_per_tunnel"), sq.get("cpu_us_per_tunnel")),
                "-" if mem is None else "%.1f KB" % (mem / 1024),
                ratio(mem, sq.get("bytes_per_idle_tunnel")),
                "-" if base is None else "%.1f MB" % (base / 1024)))
        L.append("")
        L.append("/direct: the same figure without a proxy (bulk: one plain TCP stream; "
                 "tunnels/s: plain connections with the same 1-byte echo). A tunnel needs two "
                 "TCP connections, so 0.5x direct is the naive ceiling for tunnels/s.")
        L.append("")
    if extra:
        L.append("## %d streams at once, and short tunnels carrying a ClientHello" % a.streams)
        L.append("")
        L.append("| target | %d-stream MB/s | /direct | /squid | CPU s/GB | /squid | hello "
                 "tunnels/s | /direct | /squid | CPU us/tunnel | /squid |" % a.streams)
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in results:
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["name"],
                with_range(r.get("multi_mbps"), r.get("multi_mbps_range")),
                ratio(r.get("multi_mbps"), dr.get("multi_mbps")),
                ratio(r.get("multi_mbps"), sq.get("multi_mbps")),
                fmt(r.get("multi_cpu_s_per_gb"), "%.2f"),
                ratio(r.get("multi_cpu_s_per_gb"), sq.get("multi_cpu_s_per_gb")),
                with_range(r.get("hello_rate"), r.get("hello_rate_range")),
                ratio(r.get("hello_rate"), dr.get("hello_rate")),
                ratio(r.get("hello_rate"), sq.get("hello_rate")),
                fmt(r.get("hello_cpu_us_per_tunnel")),
                ratio(r.get("hello_cpu_us_per_tunnel"), sq.get("hello_cpu_us_per_tunnel"))))
        L.append("")
    if http:
        L.append("## Plain HTTP (forwarded GETs)")
        L.append("")
        L.append("| target | requests/s | /squid | p99 ms | CPU s/10k req | /squid "
                 "| client conns | RSS growth/10k req | RSS after | bulk MB/s | /squid "
                 "| CPU s/GB | /squid |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in results:
            grow, after = r.get("rps_rss_kb_per_10k"), r.get("rss_after_http_kb")
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["name"],
                http_cell(r, "rps", "rate"),
                ratio(r.get("rps_rate"), sq.get("rps_rate")),
                fmt(r.get("rps_p99_ms"), "%.1f"),
                fmt(r.get("rps_cpu_s_per_10k"), "%.2f"),
                ratio(r.get("rps_cpu_s_per_10k"), sq.get("rps_cpu_s_per_10k")),
                fmt(r.get("rps_conns")),
                "-" if grow is None else "%.0f KB" % grow,
                "-" if after is None else "%.1f MB" % (after / 1024),
                http_cell(r, "httpbulk", "mbps"),
                ratio(r.get("httpbulk_mbps"), sq.get("httpbulk_mbps")),
                fmt(r.get("httpbulk_cpu_s_per_gb"), "%.2f"),
                ratio(r.get("httpbulk_cpu_s_per_gb"), sq.get("httpbulk_cpu_s_per_gb"))))
        L.append("")
        L.append("client conns: TCP connections the client opened per run (%d means every "
                 "connection was kept alive to the end; more means the proxy closed "
                 "connections and the client opened new ones). RSS growth: how much the "
                 "proxy's RSS grew during a requests/s run, per 10,000 requests (about 0 "
                 "once warm, unless memory leaks); RSS after: the most after any of "
                 "them." % a.http_concurrency)
        L.append("")
    L.append("/squid: above 1x is better for MB/s, tunnels/s and requests/s, below 1x for "
             "CPU and memory. KB = 1024 bytes.")
    L.append("")
    cd = by.get("connectd", {})
    if cd and sq and tunnel:
        L.append("connectd/squid: bulk %s, tunnels/s %s, CPU per GB %s, CPU per tunnel %s, "
                 "memory per idle tunnel %s." % (
                     ratio(cd.get("mbps"), sq.get("mbps")),
                     ratio(cd.get("rate"), sq.get("rate")),
                     ratio(cd.get("cpu_s_per_gb"), sq.get("cpu_s_per_gb")),
                     ratio(cd.get("cpu_us_per_tunnel"), sq.get("cpu_us_per_tunnel")),
                     ratio(cd.get("bytes_per_idle_tunnel"), sq.get("bytes_per_idle_tunnel"))))
    if cd and sq and http:
        L.append("connectd/squid, plain HTTP: requests/s %s (issue 10's target: at least "
                 "2x), CPU per request %s, bulk %s, CPU per GB %s." % (
                     ratio(cd.get("rps_rate"), sq.get("rps_rate")),
                     ratio(cd.get("rps_cpu_s_per_10k"), sq.get("rps_cpu_s_per_10k")),
                     ratio(cd.get("httpbulk_mbps"), sq.get("httpbulk_mbps")),
                     ratio(cd.get("httpbulk_cpu_s_per_gb"), sq.get("httpbulk_cpu_s_per_gb"))))
        if cd.get("rps_bad_runs") and cd.get("rps_rate_all") and sq.get("rps_rate_all"):
            L.append("(connectd's requests/s runs had errors; counting those runs anyway, "
                     "requests/s %.0f vs Squid's %.0f: %s.)" % (
                         cd["rps_rate_all"], sq["rps_rate_all"],
                         ratio(cd["rps_rate_all"], sq["rps_rate_all"])))
    old = by.get("connectd-before", {})
    if cd and old and tunnel:
        L.append("connectd vs connectd-before: bulk %s vs %s MB/s, tunnels/s %s vs %s, "
                 "CPU per tunnel %s vs %s us, memory per idle tunnel %s vs %s KB." % (
                     fmt(cd.get("mbps")), fmt(old.get("mbps")),
                     fmt(cd.get("rate")), fmt(old.get("rate")),
                     fmt(cd.get("cpu_us_per_tunnel")), fmt(old.get("cpu_us_per_tunnel")),
                     fmt(cd.get("bytes_per_idle_tunnel") and
                         cd["bytes_per_idle_tunnel"] / 1024, "%.1f"),
                     fmt(old.get("bytes_per_idle_tunnel") and
                         old["bytes_per_idle_tunnel"] / 1024, "%.1f")))
    for other, what in (("connectd-devnull", "to /dev/null"), ("connectd-nolog",
                                                                "off (access_log none)")):
        o = by.get(other, {})
        if tunnel and cd.get("rate") and o.get("rate"):
            L.append("connectd access log to a file vs %s: tunnels/s %.0f vs %.0f, "
                     "CPU per tunnel %s vs %s us." % (
                         what, cd["rate"], o["rate"], fmt(cd.get("cpu_us_per_tunnel")),
                         fmt(o.get("cpu_us_per_tunnel"))))
        if http and cd.get("rps_rate") and o.get("rps_rate"):
            L.append("connectd access log to a file vs %s: requests/s %.0f vs %.0f, "
                     "CPU per 10k requests %s vs %s s." % (
                         what, cd["rps_rate"], o["rps_rate"],
                         fmt(cd.get("rps_cpu_s_per_10k"), "%.2f"),
                         fmt(o.get("rps_cpu_s_per_10k"), "%.2f")))
    for other, what in (("connectd-w2", "workers 2"), ("connectd-nosplice", "relay_splice off"),
                        ("connectd-nopeek", "tls_peek off")):
        o = by.get(other, {})
        if cd and o and (tunnel or extra) and not o.get("error"):
            L.append("connectd vs %s: bulk %s vs %s MB/s, CPU per GB %s vs %s s, "
                     "%d streams %s vs %s MB/s, tunnels/s %s vs %s, CPU per tunnel %s vs %s us, "
                     "hello tunnels/s %s vs %s, CPU per hello tunnel %s vs %s us." % (
                         what, fmt(cd.get("mbps")), fmt(o.get("mbps")),
                         fmt(cd.get("cpu_s_per_gb"), "%.2f"), fmt(o.get("cpu_s_per_gb"), "%.2f"),
                         a.streams, fmt(cd.get("multi_mbps")), fmt(o.get("multi_mbps")),
                         fmt(cd.get("rate")), fmt(o.get("rate")),
                         fmt(cd.get("cpu_us_per_tunnel")), fmt(o.get("cpu_us_per_tunnel")),
                         fmt(cd.get("hello_rate")), fmt(o.get("hello_rate")),
                         fmt(cd.get("hello_cpu_us_per_tunnel")),
                         fmt(o.get("hello_cpu_us_per_tunnel"))))
    sc = [r for r in results if isinstance(r.get("syscalls"), dict) and
          r["syscalls"].get("per_tunnel")]
    if sc:
        names = []
        for r in sc:
            for k in r["syscalls"]["per_tunnel"]:
                if k != "total" and k not in names and r["syscalls"]["per_tunnel"][k] >= 0.05:
                    names.append(k)
        L.append("")
        L.append("## System calls per tunnel (strace -c -f, %d short tunnels)" %
                 sc[0]["syscalls"]["tunnels"])
        L.append("")
        L.append("| syscall | " + " | ".join(r["name"] for r in sc) + " |")
        L.append("|---|" + "---:|" * len(sc))
        for k in names + ["total"]:
            L.append("| %s | %s |" % (k, " | ".join(
                "%.2f" % r["syscalls"]["per_tunnel"].get(k, 0) for r in sc)))
        L.append("")
    notes = []
    for r in results:
        if r.get("error"):
            notes.append("%s: %s" % (r["name"], r["error"]))
        if r.get("http_skip"):
            notes.append("%s http: skipped, %s" % (r["name"], r["http_skip"]))
        for part in ("idle", "bulk", "short", "multi", "hello", "http_warmup", "rps",
                     "httpbulk", "syscalls"):
            runs = r.get(part)
            runs = runs if isinstance(runs, list) else [runs or {}]
            for i, x in enumerate(runs):
                where = "%s %s%s" % (r["name"], part,
                                     " round %d" % (i + 1) if len(runs) > 1 else "")
                if x.get("error"):
                    notes.append("%s: %s" % (where, x["error"]))
                if x.get("errors"):
                    notes.append("%s: %d errors of %d (first: %s)" % (
                        where, x["errors"], x.get("ok", 0) + x["errors"],
                        x.get("first_error")))
                if x.get("unfinished"):
                    notes.append("%s: %d unfinished at the deadline" % (
                        where, x["unfinished"]))
    if notes:
        L.append("")
        L.append("Notes:")
        for n in notes[:40]:
            L.append("- " + n)
    return "\n".join(L) + "\n"


# ------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connectd", default=os.environ.get("CONNECTD"),
                    help="connectd binary (default: $CONNECTD)")
    ap.add_argument("--bulk-bytes", type=int, default=2 << 30,
                    help="bytes per bulk stream (default 2 GiB)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="bulk and short runs per target, interleaved (default 3)")
    ap.add_argument("--tunnels", type=int, default=20000,
                    help="short tunnels per round (default 20000)")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--sources", type=int, default=8,
                    help="client source addresses 127.0.0.1..127.0.0.N (default 8)")
    ap.add_argument("--http-requests", type=int, default=40000,
                    help="HTTP requests per requests/s run (default 40000)")
    ap.add_argument("--http-seconds", type=float, default=8,
                    help="... or this many seconds, whichever comes first (default 8)")
    ap.add_argument("--http-concurrency", type=int, default=64,
                    help="keep-alive client connections for requests/s (default 64)")
    ap.add_argument("--http-body", type=int, default=100,
                    help="response body bytes for requests/s (default 100)")
    ap.add_argument("--http-bulk-bytes", type=int, default=1 << 30,
                    help="response body bytes for HTTP bulk (default 1 GiB)")
    ap.add_argument("--connectd-before", metavar="PATH",
                    help="an older connectd binary, run beside --connectd as the target "
                         "connectd-before (log to a file, as connectd)")
    ap.add_argument("--only", default="",
                    help="comma-separated subset of targets: " + ",".join(TARGETS))
    ap.add_argument("--parts", default="all",
                    help="comma-separated measurements: %s, or the groups %s "
                         "(default all)" % (",".join(PARTS), ", ".join(
                             "%s=%s" % (k, "+".join(v)) for k, v in PART_GROUPS.items())))
    ap.add_argument("--quick", action="store_true",
                    help="small counts, for a smoke test (seconds)")
    ap.add_argument("--streams", type=int, default=8,
                    help="parallel streams for the multi part (default 8)")
    ap.add_argument("--hello", default=os.path.join(HERE, "..", "t", "fixtures", "ja4",
                                                    "foxio-chrome-grease.bin"),
                    help="the ClientHello the hello part sends (default: a captured "
                         "Chrome hello from t/fixtures/ja4/)")
    ap.add_argument("--pin-loadgen", metavar="CPUS", default="",
                    help="run the load generator under taskset -c CPUS (e.g. 1)")
    ap.add_argument("--time-limit", type=float, default=900,
                    help="abort and report what was measured after this many s "
                         "(default 900)")
    a = ap.parse_args()
    if not a.connectd or not os.access(a.connectd, os.X_OK):
        ap.error("give the connectd binary: --connectd PATH or CONNECTD=PATH")
    a.connectd = os.path.abspath(a.connectd)
    if a.connectd_before:
        if not os.access(a.connectd_before, os.X_OK):
            ap.error("--connectd-before %s: not an executable" % a.connectd_before)
        a.connectd_before = os.path.abspath(a.connectd_before)
    if a.quick:
        a.bulk_bytes, a.rounds, a.tunnels, a.idle = 100 << 20, 1, 2000, 200
        a.http_requests, a.http_seconds, a.http_bulk_bytes = 5000, 3, 100 << 20
    # bounds, whatever the arguments say
    a.bulk_bytes = max(1 << 20, min(a.bulk_bytes, 8 << 30))
    a.rounds = max(1, min(a.rounds, 9))
    a.tunnels = max(1, min(a.tunnels, 100000))
    a.concurrency = max(1, min(a.concurrency, 1024))
    a.idle = max(1, min(a.idle, 8000))     # RLIMIT_NOFILE here is 20000
    a.sources = max(1, min(a.sources, 250))
    a.http_requests = max(1, min(a.http_requests, 1000000))
    a.http_seconds = max(0.5, min(a.http_seconds, 120))
    a.http_concurrency = max(1, min(a.http_concurrency, 1024))
    a.http_body = max(0, min(a.http_body, 1 << 20))
    a.http_bulk_bytes = max(1 << 20, min(a.http_bulk_bytes, 8 << 30))
    a.streams = max(2, min(a.streams, 64))
    a.hello = os.path.abspath(a.hello)
    a.pin = ["taskset", "-c", a.pin_loadgen] if a.pin_loadgen else []
    parts = []
    for x in a.parts.split(","):
        x = x.strip()
        if not x:
            continue
        if x not in PARTS and x not in PART_GROUPS:
            ap.error("unknown part %r (parts: %s; groups: %s)" % (
                x, ",".join(PARTS), ",".join(PART_GROUPS)))
        parts += PART_GROUPS.get(x, [x])
    a.parts = [p for p in PARTS if p in parts]
    if not a.parts:
        ap.error("--parts: nothing to measure")
    only = [x for x in a.only.split(",") if x]
    for x in only:
        if x not in TARGETS:
            ap.error("unknown target %r" % x)
    if "connectd-before" in only and not a.connectd_before:
        ap.error("target connectd-before needs --connectd-before PATH")

    os.makedirs(OUT, exist_ok=True)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
        signal.signal(s, on_signal)
    signal.alarm(int(a.time_limit))

    t0 = time.monotonic()
    lg = build_loadgen()
    workdir = tempfile.mkdtemp(prefix="connectd-bench-")
    os.chmod(workdir, 0o755)
    _tmpdirs.append(workdir)
    info = machine_info(a)
    makers = {
        "direct": lambda: None,
        "connectd": lambda: Connectd(workdir, a.connectd, "file"),
        "connectd-before": lambda: Connectd(workdir, a.connectd_before, "file",
                                            name="connectd-before"),
        "connectd-devnull": lambda: Connectd(workdir, a.connectd, "devnull",
                                             name="connectd-devnull"),
        "connectd-nolog": lambda: Connectd(workdir, a.connectd, "none",
                                           name="connectd-nolog"),
        "connectd-w2": lambda: Connectd(workdir, a.connectd, "file", name="connectd-w2",
                                        lines=["workers 2"]),
        "connectd-nosplice": lambda: Connectd(workdir, a.connectd, "file",
                                              name="connectd-nosplice",
                                              lines=["relay_splice off"]),
        "connectd-nopeek": lambda: Connectd(workdir, a.connectd, "file",
                                            name="connectd-nopeek", lines=["tls_peek off"]),
        "squid": lambda: Squid(workdir),
        "tinyproxy": lambda: Tinyproxy(workdir),
    }
    installed = {"squid": SQUID, "tinyproxy": TINYPROXY}
    targets = []
    bg_all = Background()
    aborted = None
    try:
        # every proxy up at once, each with an origin of its own (its own
        # ports, so TIME_WAIT of one cannot starve another)
        for name in TARGETS:
            if only and name not in only:
                continue
            if name == "connectd-before" and not a.connectd_before:
                continue
            t = Target(name, None)
            targets.append(t)
            if name in installed and not os.access(installed[name], os.X_OK):
                t.res["error"] = "not installed (%s)" % installed[name]
                continue
            try:
                t.proxy = makers[name]()
                t.origin = Origin(lg, a.bulk_bytes, t.proxy.dir if t.proxy else workdir)
                if t.proxy:
                    t.proxy.start()
                    with open(t.proxy.conf_path) as f:
                        t.res["config"] = f.read()
            except Exception as e:
                t.res["error"] = "start: %s" % e
        log = lambda m: sys.stderr.write("bench: %5.1fs %s\n" % (time.monotonic() - t0, m))
        # memory first, on fresh proxies
        if "idle" in a.parts:
            for t in targets:
                if t.proxy and t.alive():
                    log("%s: %d idle tunnels" % (t.name, a.idle))
                    t.res["idle"] = measure_idle(lg, t, a)
        # an HTTP warm-up; a target that forwards nothing is left out of it
        if "rps" in a.parts or "httpbulk" in a.parts:
            for t in targets:
                if t.alive():
                    log("%s: HTTP warm-up" % t.name)
                    err = measure_http_warm(lg, t, a)
                    if err:
                        t.res["http_skip"] = err
        # then rounds; the order rotates so no target always goes first
        steps = [("bulk", "bulk", measure_bulk), ("multi", "multi-stream bulk", measure_multi),
                 ("short", "short tunnels", measure_short),
                 ("hello", "short tunnels with a ClientHello", measure_hello),
                 ("rps", "HTTP requests/s", measure_rps),
                 ("httpbulk", "HTTP bulk", measure_httpbulk)]
        for rnd in range(a.rounds):
            order = targets[rnd % len(targets):] + targets[:rnd % len(targets)] \
                if targets else []
            for t in order:
                for part, what, fn in steps:
                    if part not in a.parts or not t.alive():
                        continue
                    if part in ("rps", "httpbulk") and t.res.get("http_skip"):
                        continue
                    log("round %d: %s %s" % (rnd + 1, t.name, what))
                    t.res[part].append(fn(lg, t, a))
                t.alive()
        # last, as it slows the proxy down: system calls per tunnel
        if "syscalls" in a.parts:
            for t in targets:
                if t.name.startswith("connectd") and t.proxy and t.alive():
                    log("%s: system calls per tunnel (strace -c)" % t.name)
                    t.res["syscalls"] = measure_syscalls(lg, t, a)
    except Abort as e:
        aborted = ("time limit (--time-limit %.0f s) reached" % a.time_limit
                   if e.args[0] == signal.SIGALRM else "stopped by signal %d" % e.args[0])
    finally:
        signal.alarm(0)
        bg = bg_all.pct()
        for t in targets:
            if t.proxy:
                t.proxy.stop()
            if t.origin:
                t.origin.stop()
        cleanup()

    results = []
    for t in targets:
        summarize(t)
        results.append(t.res)
    if aborted:
        results.append({"name": "(aborted)", "error": aborted})
    text = report(results, info, a, bg)
    sys.stdout.write(text)
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"machine": info, "args": vars(a), "background": bg,
                   "results": results}, f, indent=1)
    sys.stderr.write("bench: %.0f s; wrote %s\n" % (time.monotonic() - t0,
                                                   os.path.join(OUT, "results.md")))
    return 0 if not aborted else 1


TARGETS = ["direct", "connectd", "connectd-before", "connectd-devnull", "connectd-nolog",
           "connectd-w2", "connectd-nosplice", "connectd-nopeek", "squid", "tinyproxy"]
PARTS = ["idle", "bulk", "multi", "short", "hello", "rps", "httpbulk", "syscalls"]
PART_GROUPS = {"all": PARTS, "tunnel": ["idle", "bulk", "multi", "short", "hello", "syscalls"],
               "http": ["rps", "httpbulk"]}

if __name__ == "__main__":
    sys.exit(main())
