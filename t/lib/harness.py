"""harness.py: start connectd, Squid and origin servers on loopback for t/*.t.

Everything here is Python 3 stdlib.  Every wait has a deadline and every
process or thread started here is torn down at exit (atexit, context
managers, SIGTERM/SIGALRM handlers), so no test can hang or leak.

Typical use:

    import harness as h
    from tap import ok, is_, diag, done
    h.watchdog(60)
    echo = h.EchoServer()
    with h.Connectd() as cd:
        c = h.ProxyClient(cd.port)
        status, head = c.connect_tunnel("127.0.0.1:%d" % echo.port)
        c.sendall(b"x"); is_(c.recv_exact(1), b"x")
        c.close()
        rec = cd.wait_lines(1)[0]
"""
import atexit
import errno
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import tap

DEFAULT_WAIT = 10.0          # seconds, for anything that should be quick
SLOW = float(os.environ.get("T_SLOW", "1"))  # scale waits (ASan, valgrind)

_cleanups = []               # LIFO of callables
_cleanup_lock = threading.Lock()


def at_cleanup(fn):
    """Run fn at exit (LIFO).  Returns fn."""
    with _cleanup_lock:
        _cleanups.append(fn)
    return fn


def cleanup():
    while True:
        with _cleanup_lock:
            if not _cleanups:
                return
            fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # never let teardown fail the teardown
            sys.stderr.write("harness: cleanup: %r\n" % (e,))


atexit.register(cleanup)


def _on_term(signum, frame):
    cleanup()
    os._exit(128 + signum)


signal.signal(signal.SIGTERM, _on_term)
signal.signal(signal.SIGHUP, _on_term)


class Watchdog(Exception):
    pass


def watchdog(seconds):
    """Fail the whole test if it runs longer than seconds (never hang)."""
    seconds = int(seconds * SLOW) + 1

    def on_alarm(signum, frame):
        raise Watchdog("test exceeded %d s" % seconds)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)

    # last resort if the main thread is stuck somewhere signals cannot reach
    def hard():
        tap.ok(False, "watchdog: test killed after %d s" % (seconds + 15))
        cleanup()
        os._exit(1)
    t = threading.Timer(seconds + 15, hard)
    t.daemon = True
    t.start()


def deadline(seconds):
    return time.monotonic() + seconds * SLOW


def runnable_copy(path):
    """A copy of the executable path that every user can run.  Squid
    started as root runs its helpers as `proxy`, which cannot reach a
    build under a 0700 home directory (Debian 12's default)."""
    import shutil
    d = os.path.join(tmpdir(), "bin")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    dst = os.path.join(d, os.path.basename(path))
    if not os.path.exists(dst):
        shutil.copy2(path, dst)
    os.chmod(dst, 0o755)
    return dst


def wait_for(pred, timeout=DEFAULT_WAIT, interval=0.02):
    """Poll pred() until it returns a true value or the deadline passes."""
    end = deadline(timeout)
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            return v
        time.sleep(interval)


# ------------------------------------------------------------------ paths


def srcdir():
    return os.environ.get("T_SRCDIR",
                          os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def topdir():
    return os.path.dirname(os.path.abspath(srcdir()))


def connectd_bin():
    return os.environ.get("CONNECTD") or os.path.join(topdir(), "connectd", "connectd")


def need_connectd():
    b = connectd_bin()
    if not os.access(b, os.X_OK):
        tap.skip_all("connectd not built (CONNECTD=%s)" % b)
    return b


_tmp = None


def tmpdir():
    """One temp dir per test process, removed at exit."""
    global _tmp
    if _tmp is None:
        _tmp = tempfile.mkdtemp(prefix="connectd-t-")
        os.chmod(_tmp, 0o755)
        path = _tmp
        at_cleanup(lambda: shutil.rmtree(path, ignore_errors=True))
    return _tmp


def tmpfile(name, content=None, mode=0o644):
    p = os.path.join(tmpdir(), name)
    if content is not None:
        with open(p, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
        os.chmod(p, mode)
    return p


def which(prog):
    return shutil.which(prog)


def have(*progs):
    return all(which(p) for p in progs)


# ------------------------------------------------------------------ ports


def free_port(host="127.0.0.1"):
    """A port that was free a moment ago (bind port 0, close)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def free_wildcard_port():
    """A port free on every address a moment ago, outside the kernel's
    ephemeral range, so that no client connection of a test running in
    parallel holds it: for a test that binds the wildcard address."""
    import random
    try:
        lo, hi = (int(x) for x in read_text(
            "/proc/sys/net/ipv4/ip_local_port_range").split())
    except ValueError:
        lo, hi = 32768, 60999
    pool = [p for p in range(10000, 65000) if not lo <= p <= hi]
    for _ in range(200):
        port = random.choice(pool)
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind(("::", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    return free_port()


def have_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def port_open(port, host="127.0.0.1", timeout=0.5):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _tcp_sockets():
    """(local port, state) of every TCP socket, from /proc/net/tcp*
    (state "0A" is LISTEN, "06" TIME_WAIT)."""
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(f) as fh:
                next(fh)
                rows = [ln.split() for ln in fh]
        except (OSError, StopIteration):
            continue
        for parts in rows:
            yield int(parts[1].rsplit(":", 1)[1], 16), parts[3]


def listening(port):
    """True if some socket listens on this TCP port (from /proc/net/tcp*),
    without connecting to it (a probe connection would be logged)."""
    return any(p == port and st == "0A" for p, st in _tcp_sockets())


def connections(port):
    """TCP connections (any state but LISTEN and TIME_WAIT) whose local
    port is port, from /proc/net/tcp*."""
    return sum(1 for p, st in _tcp_sockets() if p == port and st not in ("0A", "06"))


def proc_stat(pid):
    """The fields of /proc/PID/stat after the command name: [0] is the
    state, [1] the parent pid, [3] the session, [11] and [12] utime and
    stime in clock ticks.  None if there is no such process."""
    try:
        with open("/proc/%s/stat" % pid) as f:
            st = f.read()
    except OSError:
        return None
    return st[st.rindex(")") + 2:].split()


def session_pids(sid):
    """Every process in session sid (a leader started with
    start_new_session and whatever it forked)."""
    return [int(d) for d in os.listdir("/proc")
            if d.isdigit() and (proc_stat(d) or [None] * 4)[3] == str(sid)]


def cpu_seconds(pid):
    """utime + stime of a process (its threads included), in seconds."""
    f = proc_stat(pid)
    return (int(f[11]) + int(f[12])) / float(os.sysconf("SC_CLK_TCK")) if f else 0.0


def wait_port(port, host="127.0.0.1", timeout=DEFAULT_WAIT, proc=None, probe=False):
    """Wait until port listens (probe=True: until a connect() succeeds)."""
    end = deadline(timeout)
    use_proc = not probe and os.path.exists("/proc/net/tcp")
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        if (listening(port) if use_proc else port_open(port, host)):
            return True
        time.sleep(0.05)
    return False


# ------------------------------------------------------------ processes


class Proc:
    """A child process in its own session; killed (TERM, then KILL) at exit."""

    def __init__(self, argv, stdout=None, stderr=None, stdin=subprocess.DEVNULL,
                 env=None, cwd=None):
        self.argv = list(argv)
        self.stdout_path = stdout
        self.stderr_path = stderr
        out = open(stdout, "ab") if stdout else subprocess.DEVNULL
        err = open(stderr, "ab") if stderr else subprocess.DEVNULL
        try:
            self.p = subprocess.Popen(self.argv, stdin=stdin, stdout=out,
                                      stderr=err, env=env, cwd=cwd,
                                      start_new_session=True)
        finally:
            if stdout:
                out.close()
            if stderr:
                err.close()
        self.pid = self.p.pid
        at_cleanup(self.stop)

    def poll(self):
        return self.p.poll()

    def signal(self, sig):
        if self.p.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout=DEFAULT_WAIT):
        """Exit code, or None if still running at the deadline."""
        try:
            return self.p.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace=5.0):
        """SIGTERM, wait up to grace, then SIGKILL the process group."""
        if self.p.poll() is None:
            self.signal(signal.SIGTERM)
            if self.wait(grace) is None:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                self.p.wait()
        # helpers left in our own process group (e.g. squid's children)
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.p.returncode

    def read_stderr(self):
        return read_text(self.stderr_path)

    def read_stdout(self):
        return read_text(self.stdout_path)


def recv_head(sock, limit=1 << 20):
    """Bytes from sock up to and including the first empty line (an HTTP
    head), and whatever came with it; less at EOF."""
    buf = b""
    while b"\r\n\r\n" not in buf and len(buf) < limit:
        d = sock.recv(65536)
        if not d:
            break
        buf += d
    return buf


def send_echo(sock, data, got=b""):
    """Send data and read until as many bytes came back (got: what already
    came), or EOF.  Returns what came back."""
    sock.sendall(data)
    while len(got) < len(data):
        d = sock.recv(65536)
        if not d:
            break
        got += d
    return got


def read_text(path):
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def callgrind(out):
    """The argv prefix that runs a program under valgrind's callgrind,
    which counts the instructions it executes into the file out: a cost
    that does not depend on the machine's speed or load."""
    return ["valgrind", "--tool=callgrind", "--callgrind-out-file=%s" % out]


def memcheck():
    """The argv prefix that runs a program under valgrind's memcheck: an
    invalid access or a definite leak makes it exit 99 and leaves its
    report on stderr (sanitizer_report() finds it).  None in a build with
    sanitizers, which valgrind cannot run, and which check the same."""
    if os.environ.get("ASAN_OPTIONS") or not have("valgrind"):
        return None
    return ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
            "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite"]


def callgrind_total(out):
    """Instructions counted in a callgrind output file, or None."""
    m = re.search(r"^summary: (\d+)", read_text(out), re.M)
    return int(m.group(1)) if m else None


def instructions(argv, timeout=300):
    """Run argv under callgrind to the end; the instructions it took."""
    out = os.path.join(tmpdir(), "callgrind.%d" % len(os.listdir(tmpdir())))
    rc, _, err = run(callgrind(out) + list(argv), timeout=timeout)
    return callgrind_total(out) if rc is not None else None


def run(argv, timeout=60, input=None, env=None, cwd=None):
    """Run a command to completion with a deadline.

    Returns (rc, stdout, stderr) as str; rc is None on timeout (killed)."""
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None
                         else subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, cwd=cwd,
                         start_new_session=True)

    def kill():
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    at_cleanup(kill)
    try:
        out, err = p.communicate(input=input.encode() if isinstance(input, str)
                                 else input, timeout=timeout * SLOW)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        kill()
        out, err = p.communicate()
        rc = None
    return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


# ----------------------------------------------------------------- logs


class JsonLog:
    """Complete lines of a log file, parsed as JSON (or kept raw)."""

    def __init__(self, path):
        self.path = path

    def byte_lines(self):
        """Complete lines (ending in LF) as bytes."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        return [ln for ln in data.split(b"\n")[:-1] if ln.strip()]

    def raw_lines(self):
        return [ln.decode("utf-8", "surrogateescape") for ln in self.byte_lines()]

    def lines(self):
        """Every complete line parsed; a line that is not a JSON object in
        strict UTF-8 becomes {"_invalid_json": raw}."""
        out = []
        for ln in self.byte_lines():
            try:
                v = json.loads(ln.decode("utf-8"))
                if not isinstance(v, dict):
                    raise ValueError("not an object")
                out.append(v)
            except ValueError:
                out.append({"_invalid_json": ln.decode("utf-8", "backslashreplace")})
        return out

    def wait_lines(self, n, timeout=DEFAULT_WAIT, pred=None):
        """Wait until at least n lines (matching pred, if given) are there."""
        def get():
            ls = self.lines()
            if pred:
                ls = [x for x in ls if pred(x)]
            return ls if len(ls) >= n else None
        return wait_for(get, timeout) or (
            [x for x in self.lines() if not pred or pred(x)])

    def wait_raw(self, n, timeout=DEFAULT_WAIT):
        return wait_for(lambda: (lambda ls: ls if len(ls) >= n else None)(
            self.raw_lines()), timeout) or self.raw_lines()


def all_valid_json(log):
    """tap.ok for every line being a JSON object; returns the parsed lines."""
    bad = [x["_invalid_json"] for x in log.lines() if "_invalid_json" in x]
    tap.ok(not bad, "every log line is valid JSON")
    for b in bad[:5]:
        tap.diag("invalid JSON line: %r" % b[:300])
    return [x for x in log.lines() if "_invalid_json" not in x]


RFC3339_MS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


# --------------------------------------------------------- BigQuery schema


_schema = None


def bigquery_schema():
    """conf/bigquery-schema.json: the BigQuery table schema of the json
    format, a list of {name, type, mode, description}."""
    global _schema
    if _schema is None:
        with open(os.path.join(topdir(), "conf", "bigquery-schema.json")) as f:
            _schema = json.load(f)
    return _schema


def _bq_timestamp(v):
    import datetime
    if not isinstance(v, str) or not re.match(RFC3339_MS, v):
        return False
    try:
        datetime.datetime.strptime(v, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return False
    return True


# what a value of each BigQuery type must be, as json.loads gives it
BQ_TYPES = {
    "STRING": lambda v: isinstance(v, str),
    # bool is an int in Python; BigQuery's INT64 range
    "INTEGER": lambda v: isinstance(v, int) and not isinstance(v, bool) and -2**63 <= v < 2**63,
    "BOOLEAN": lambda v: isinstance(v, bool),
    "TIMESTAMP": _bq_timestamp,
    # a JSON column, here always an object (pod)
    "JSON": lambda v: isinstance(v, dict),
    # a nested record (policy): its fields are checked by record_errors()
    "RECORD": lambda v: isinstance(v, dict),
}


# the "tls" object (a JSON column): its members and their types, as
# connectd.conf(5) lists them; None: may be null
_STR = lambda v: isinstance(v, str)
TLS_SHAPE = {
    "hello": lambda v: v in ("complete", "malformed", "truncated", "too_big", "timeout"),
    "sni": lambda v: v is None or _STR(v),
    "sni_match": lambda v: v is None or v in ("match", "mismatch", "no_sni", "ech_outer", "ip_target"),
    "alpn": lambda v: isinstance(v, list) and all(_STR(x) for x in v),
    "versions": lambda v: isinstance(v, list) and all(_STR(x) for x in v),
    "version": lambda v: v is None or _STR(v),
    "cipher": lambda v: v is None or (_STR(v) and re.match(r"^0x[0-9a-f]{4}$", v) is not None),
    "ech": lambda v: isinstance(v, bool),
    "pq": lambda v: isinstance(v, bool),
    "hrr": lambda v: isinstance(v, bool),
    "ja4": lambda v: v is None or (_STR(v) and re.match(r"^[ts]\w{9}_[0-9a-f]{12}_[0-9a-f]{12}$", v) is not None),
    "hello_bytes": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
}


# the "policy" object: exactly these members, each a string or null
# (connectd.conf(5)); the schema's RECORD lets them be absent, connectd
# always writes all five
POLICY_MEMBERS = ("mode", "verdict", "rule", "from", "reason")


def policy_errors(policy):
    """Why a line's "policy" value is not what connectd.conf(5) says: a list."""
    if policy is None:
        return []
    if not isinstance(policy, dict):
        return ["policy is not an object: %r" % (policy,)]
    errs = ["policy.%s is missing" % k for k in POLICY_MEMBERS if k not in policy]
    errs += ["policy.%s is not in the manual" % k for k in policy if k not in POLICY_MEMBERS]
    errs += ["policy.%s is not a string or null: %r" % (k, policy[k]) for k in POLICY_MEMBERS
             if k in policy and not (policy[k] is None or isinstance(policy[k], str))]
    return errs


def tls_errors(tls):
    """Why a line's "tls" value is not what connectd.conf(5) says: a list."""
    if tls is None:
        return []
    if not isinstance(tls, dict):
        return ["tls is not an object: %r" % (tls,)]
    errs = ["tls.%s is missing" % k for k in TLS_SHAPE if k not in tls]
    errs += ["tls.%s is not in the manual" % k for k in tls if k not in TLS_SHAPE]
    errs += ["tls.%s has a wrong value: %r" % (k, tls[k]) for k in TLS_SHAPE
             if k in tls and not TLS_SHAPE[k](tls[k])]
    return errs


def record_errors(rec, fields, prefix=""):
    """schema_errors() for one object against a list of columns, nested
    RECORD columns (mode NULLABLE or REQUIRED, not REPEATED) included."""
    errs = []
    names = set()
    for col in fields:
        name, typ, mode = col["name"], col["type"], col.get("mode", "NULLABLE")
        names.add(name)
        if rec.get(name) is None:
            if mode == "REQUIRED":
                errs.append("%s%s is REQUIRED but %s" % (prefix, name,
                                                         "null" if name in rec else "missing"))
            continue
        if not BQ_TYPES[typ](rec[name]):
            errs.append("%s%s is not a %s: %r" % (prefix, name, typ, rec[name]))
        elif typ == "RECORD":
            errs += record_errors(rec[name], col.get("fields", []), prefix + name + ".")
    errs += ["%s%s is not in the schema" % (prefix, k) for k in rec if k not in names]
    return errs


def schema_errors(rec, schema=None):
    """Why the parsed line rec would not load into a table of the schema:
    a list of texts, empty if it fits.  A REQUIRED field must be there
    and not null; a NULLABLE one may be null or absent; every value must
    have its column's type (a RECORD's fields theirs); no field may be
    outside the schema."""
    schema = schema or bigquery_schema()
    if not isinstance(rec, dict) or "_invalid_json" in rec:
        return ["not a JSON object: %r" % (rec.get("_invalid_json", rec)
                                           if isinstance(rec, dict) else rec,)]
    errs = record_errors(rec, schema)
    names = set(col["name"] for col in schema)
    if "policy" in names:
        errs += policy_errors(rec.get("policy"))
    if "tls" in names:
        errs += tls_errors(rec.get("tls"))
    return errs


def conf_json_logs(text, stdout_path):
    """The files that a connectd configuration (text) writes in the built-in
    json format: its access_log lines with that format (the default), or
    stdout_path without any.  /dev/stdout is stdout_path; /dev/stderr,
    network outputs and other formats are left out."""
    logs = []
    seen = False
    for ln in text.splitlines():
        w = ln.split()
        if not w or w[0] != "access_log" or len(w) < 2:
            continue
        seen = True
        if w[1] == "none":
            return []
        path = w[1][len("stdio:"):] if w[1].startswith("stdio:") else w[1]
        if ":" in path.split("/")[0]:
            continue            # tcp://, udp://, syslog:, daemon: ...
        fmt = "json"
        for i, opt in enumerate(w[2:]):
            if opt.startswith("logformat="):
                fmt = opt.split("=", 1)[1]
            elif i == 0 and "=" not in opt:
                fmt = opt
        if fmt != "json" or path == "/dev/stderr":
            continue
        logs.append(stdout_path if path == "/dev/stdout" else os.path.abspath(path))
    if not seen:
        logs.append(stdout_path)
    return logs


def check_schema(path, name=None, schema=None):
    """tap.ok that every line of the json-format log at path fits the
    BigQuery schema (nothing if the file has no line, or is not a regular
    file: a FIFO is read by its test).  Returns the number of lines."""
    if not os.path.isfile(path):
        return 0
    recs = JsonLog(path).lines()
    if not recs:
        return 0
    bad = [(i + 1, e) for i, r in enumerate(recs) for e in schema_errors(r, schema)[:1]]
    tap.ok(not bad, "%s: its %d json line%s fit conf/bigquery-schema.json" % (
        name or os.path.basename(path), len(recs), "" if len(recs) == 1 else "s"))
    for i, e in bad[:5]:
        tap.diag("line %d: %s" % (i, e))
    return len(recs)


# ------------------------------------------------------------- connectd


def conf_text(conf):
    """conf: text, or a dict directive -> value or list of values
    (None means: leave the directive out)."""
    if conf is None:
        return ""
    if isinstance(conf, str):
        return conf
    out = []
    for k, v in conf.items():
        if v is None:
            continue
        for one in (v if isinstance(v, (list, tuple)) else [v]):
            out.append("%s %s" % (k, one))
    return "\n".join(out) + "\n"


# What every test config gets unless it says otherwise: loopback clients
# may tunnel anywhere (the origins are on loopback too), and no DNS query
# leaves the machine.
TEST_POLICY = [
    ("acl", "test_clients src 127.0.0.0/8 ::1"),
    ("http_access", "allow test_clients"),
    ("http_access", "deny all"),
]
TEST_DNS = ("dns_nameservers", "127.0.0.1")
# SIGTERM exits at once unless a test wants a drain: stop() and finish()
# must not wait for shutdown_lifetime (30 seconds by default, as Squid).
TEST_SHUTDOWN = ("shutdown_lifetime", "0 seconds")


def with_test_conf(text):
    """text plus each line of $CONNECTD_TEST_CONF whose directive the text
    does not name already: `make check-variant` runs part of the suite
    again with, say, `workers 2` in every conf, while a test that sets the
    directive itself keeps its own value."""
    extra = os.environ.get("CONNECTD_TEST_CONF", "")
    for line in extra.split(";"):
        line = line.strip()
        if not line:
            continue
        name = line.split()[0]
        if not re.search(r"^\s*%s\b" % re.escape(name), text, re.M):
            if not text.endswith("\n"):
                text += "\n"
            text += line + "\n"
    return text


class Connectd:
    """connectd on a free 127.0.0.1 port.

    conf is a dict (directive -> value or list; None drops a default) or the
    whole text.  Unless it names one, `http_port 127.0.0.1:PORT` is added
    first; unless it has http_access lines, TEST_POLICY is added last,
    unless it names dns_nameservers, TEST_DNS, and unless it names
    shutdown_lifetime, TEST_SHUTDOWN.  With metrics=True, `metrics_port
    127.0.0.1:PORT` on another free port (self.metrics_port) is added
    unless the conf names one.  The access log goes to stdout (the
    default), which is captured in self.stdout_path; self.log is a
    JsonLog over it."""

    _n = 0

    def __init__(self, conf=None, name=None, start=True, args=(), env=None,
                 wrapper=(), port=None, metrics=False):
        Connectd._n += 1
        self.name = name or "connectd%d" % Connectd._n
        self.dir = os.path.join(tmpdir(), self.name)
        os.makedirs(self.dir, exist_ok=True)
        self.conf_path = os.path.join(self.dir, "connectd.conf")
        self.stdout_path = os.path.join(self.dir, "stdout")
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.log = JsonLog(self.stdout_path)
        self.conf = conf
        self.args = list(args)
        self.env = env
        self.wrapper = list(wrapper)    # e.g. callgrind(): runs connectd under it
        self.fixed_port = port          # else a free port, new on each try
        self.proc = None
        self.port = None
        self.metrics = metrics
        self.metrics_port = None
        if start:
            self.start()

    def render(self, conf=None, port=None):
        conf = self.conf if conf is None else conf
        port = self.port if port is None else port
        if isinstance(conf, str):
            text = conf.replace("{port}", str(port))
            if self.metrics_port:
                text = text.replace("{metrics_port}", str(self.metrics_port))
            if not re.search(r"^\s*http_port\b", text, re.M):
                text = "http_port 127.0.0.1:%d\n" % port + text
            if not text.endswith("\n"):
                text += "\n"
            if not re.search(r"^\s*dns_nameservers\b", text, re.M):
                text += "%s %s\n" % TEST_DNS
            if not re.search(r"^\s*http_access\b", text, re.M):
                text += "".join("%s %s\n" % kv for kv in TEST_POLICY)
            if not re.search(r"^\s*shutdown_lifetime\b", text, re.M):
                text += "%s %s\n" % TEST_SHUTDOWN
            if self.metrics_port and not re.search(r"^\s*metrics_port\b", text, re.M):
                text += "metrics_port 127.0.0.1:%d\n" % self.metrics_port
            return text
        d = dict(conf or {})
        lines = {}
        if "http_port" not in d:
            lines["http_port"] = "127.0.0.1:%d" % port
        lines.update(d)
        text = conf_text(lines)
        if "dns_nameservers" not in d:
            text += "%s %s\n" % TEST_DNS
        if "http_access" not in d:
            text += "".join("%s %s\n" % kv for kv in TEST_POLICY)
        if "shutdown_lifetime" not in d:
            text += "%s %s\n" % TEST_SHUTDOWN
        if self.metrics_port and "metrics_port" not in d:
            text += "metrics_port 127.0.0.1:%d\n" % self.metrics_port
        return text

    def write_conf(self, conf=None):
        if conf is not None:
            self.conf = conf
        with open(self.conf_path, "w") as f:
            f.write(with_test_conf(self.render()))

    def start(self, tries=3):
        binpath = need_connectd()
        for _ in range(tries):
            self.port = self.fixed_port or free_port()
            if self.metrics:
                self.metrics_port = free_port()
                while self.metrics_port == self.port:
                    self.metrics_port = free_port()
            self.write_conf()
            self.proc = Proc(self.wrapper + [binpath, "-f", self.conf_path] + self.args,
                             stdout=self.stdout_path, stderr=self.stderr_path,
                             env=self.env)
            if wait_port(self.port, proc=self.proc.p) and (
                    not self.metrics_port or wait_port(self.metrics_port, proc=self.proc.p)):
                return self
            rc = self.proc.stop()
            err = self.proc.read_stderr()
            if "in use" not in err.lower():
                break
        raise RuntimeError("connectd did not start (rc=%r): %s\nconf:\n%s" % (
            self.proc.p.returncode, self.proc.read_stderr()[-2000:],
            self.render()))

    # signals and exit
    def hup(self):
        self.proc.signal(signal.SIGHUP)

    def usr1(self):
        self.proc.signal(signal.SIGUSR1)

    def term(self):
        self.proc.signal(signal.SIGTERM)

    def wait_exit(self, timeout=DEFAULT_WAIT):
        return self.proc.wait(timeout)

    def stop(self):
        return self.proc.stop() if self.proc else None

    def stderr(self):
        return read_text(self.stderr_path)

    def wait_stderr(self, pattern, timeout=DEFAULT_WAIT):
        return wait_for(lambda: re.search(pattern, self.stderr()), timeout)

    def lines(self):
        return self.log.lines()

    def wait_lines(self, n, timeout=DEFAULT_WAIT, pred=None):
        return self.log.wait_lines(n, timeout, pred)

    def wait_idle(self, timeout=DEFAULT_WAIT):
        """Wait until no client connection to the proxy port is left, then
        until the log has stopped growing.  Returns the log lines."""
        wait_for(lambda: connections(self.port) == 0, timeout)
        last = [-1]

        def stable():
            n = len(self.log.byte_lines())
            if n == last[0]:
                return True
            last[0] = n
            return False
        wait_for(stable, timeout, interval=0.3)
        return self.lines()

    def wait_client(self, client_port, timeout=DEFAULT_WAIT):
        """The log line of the connection from this client port, or None."""
        ls = self.wait_lines(1, timeout, pred=lambda x: x.get("client_port") == client_port)
        return ls[0] if ls else None

    def sanitizer_report(self):
        """ASan/UBSan/LeakSanitizer/TSan text on stderr, or ''."""
        err = self.stderr()
        m = re.search(r"(==\d+==ERROR: \w+Sanitizer.*|WARNING: ThreadSanitizer:.*|"
                      r"\S+:\d+:\d+: runtime error:.*|"
                      r"==\d+== (?:Invalid (?:read|write|free)|Conditional jump|"
                      r"Syscall param|\d[\d,]* bytes in [\d,]+ blocks are definitely lost).*)", err, re.S)
        return m.group(0)[:3000] if m else ""

    # every test's json lines are checked against the BigQuery schema
    check_schema = True

    def json_logs(self):
        """The files this connectd writes in the json format, from its
        configuration file as it is now."""
        return conf_json_logs(read_text(self.conf_path), self.stdout_path)

    def finish(self):
        """Stop it (SIGTERM) and assert a clean exit: status 0 and no
        sanitizer report on stderr; then that every line of its json-format
        access logs fits conf/bigquery-schema.json (types and modes)."""
        if self.proc is None:
            return
        already = self.proc.poll() is not None
        rc = self.stop()
        if not already:
            tap.is_(rc, 0, "%s exits 0 on SIGTERM" % self.name)
        rep = self.sanitizer_report()
        tap.ok(not rep, "%s: no sanitizer report on stderr" % self.name)
        if rep:
            tap.diag(rep)
        if self.check_schema:
            for path in self.json_logs():
                check_schema(path, "%s: %s" % (self.name, "stdout" if path == self.stdout_path
                                                else os.path.basename(path)))

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.finish()


# ---------------------------------------------------------------- squid


def squid_conf_lines(d, port):
    """squid.conf for a Squid in directory d on 127.0.0.1:port: no cache,
    no DNS off the machine, a quick shutdown, every request allowed."""
    return [
        "http_port 127.0.0.1:%d" % port,
        "pid_filename %s/squid.pid" % d,
        "cache_log %s/cache.log" % d,
        "coredump_dir %s" % d,
        "cache deny all",
        "pinger_enable off",
        "shutdown_lifetime 0 seconds",
        "dns_nameservers 127.0.0.1",
        "netdb_filename none",
        "logfile_rotate 0",
        "http_access allow all",
    ]


class Squid:
    """/usr/sbin/squid -N on a free 127.0.0.1 port, in its own temp dir.

    conf: extra text appended (logformat, access_log ...); `{dir}` and
    `{port}` are replaced.  Unless conf names an access_log, Squid's log
    goes to {dir}/access.log (self.access_log)."""

    BIN = "/usr/sbin/squid"
    _n = 0

    def __init__(self, conf="", start=True):
        Squid._n += 1
        self.dir = os.path.join(tmpdir(), "squid%d" % Squid._n)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o777)
        self.extra = conf
        self.conf_path = os.path.join(self.dir, "squid.conf")
        self.access_log = os.path.join(self.dir, "access.log")
        self.cache_log = os.path.join(self.dir, "cache.log")
        self.proc = None
        self.port = None
        if start:
            self.start()

    @staticmethod
    def available():
        return os.access(Squid.BIN, os.X_OK)

    def render(self):
        extra = self.extra.replace("{dir}", self.dir).replace("{port}", str(self.port))
        lines = squid_conf_lines(self.dir, self.port)
        if os.geteuid() == 0:
            lines.append("cache_effective_user proxy")
        if not re.search(r"^\s*access_log\b", extra, re.M):
            lines.append("access_log stdio:%s" % self.access_log)
        return "\n".join(lines) + "\n" + extra + "\n"

    def start(self, tries=3):
        if not self.available():
            raise RuntimeError("squid not installed")
        for _ in range(tries):
            self.port = free_port()
            with open(self.conf_path, "w") as f:
                f.write(self.render())
            self.proc = Proc([self.BIN, "-N", "-f", self.conf_path],
                             stdout=os.path.join(self.dir, "stdout"),
                             stderr=os.path.join(self.dir, "stderr"))
            if wait_port(self.port, proc=self.proc.p, timeout=20):
                return self
            self.proc.stop()
        raise RuntimeError("squid did not start: %s %s" % (
            read_text(os.path.join(self.dir, "stderr"))[-1500:],
            read_text(self.cache_log)[-1500:]))

    def stop(self):
        return self.proc.stop(grace=3) if self.proc else None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()


# --------------------------------------------------------------- origins


class Origin:
    """A TCP server in a thread: one handler thread per connection.

    self.conns is a list of dicts, one per accepted connection, filled by
    the handler: at least "peer", "got" (bytes received, if recorded),
    "done" (set when the handler finished)."""

    def __init__(self, host="127.0.0.1", port=0, backlog=64):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.host = host
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        self.closed = False
        self.accepted = threading.Semaphore(0)
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()
        at_cleanup(self.close)

    @property
    def authority(self):
        return ("[%s]:%d" if ":" in self.host else "%s:%d") % (self.host, self.port)

    def _accept_loop(self):
        while not self.closed:
            try:
                r, _, _ = select.select([self.sock], [], [], 0.2)
                if not r:
                    continue
                c, peer = self.sock.accept()
            except OSError:
                return
            rec = {"peer": peer, "got": b"", "done": threading.Event(), "sock": c}
            with self.lock:
                self.conns.append(rec)
            self.accepted.release()
            threading.Thread(target=self._run, args=(c, rec), daemon=True).start()

    def _run(self, c, rec):
        c.settimeout(30 * SLOW)
        try:
            self.handle(c, rec)
        except OSError as e:
            rec["error"] = e
        finally:
            try:
                c.close()
            except OSError:
                pass
            rec["done"].set()

    def handle(self, c, rec):
        raise NotImplementedError

    def wait_conn(self, n=1, timeout=DEFAULT_WAIT):
        """The n-th connection record (1-based) once it is accepted."""
        ok = wait_for(lambda: len(self.conns) >= n, timeout)
        return self.conns[n - 1] if ok else None

    def wait_done(self, n=1, timeout=DEFAULT_WAIT):
        rec = self.wait_conn(n, timeout)
        if rec and rec["done"].wait(timeout * SLOW):
            return rec
        return None

    def close(self):
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for rec in conns:
            try:
                rec["sock"].close()
            except OSError:
                pass


def recv_all(c, limit=None):
    """Read until EOF (or limit bytes); returns bytes."""
    buf = bytearray()
    while limit is None or len(buf) < limit:
        d = c.recv(min(262144, (limit - len(buf)) if limit else 262144))
        if not d:
            break
        buf += d
    return bytes(buf)


class EchoServer(Origin):
    """Echo every byte back; on EOF, half-close back and finish."""

    def handle(self, c, rec):
        got = bytearray()
        while True:
            d = c.recv(65536)
            if not d:
                break
            got += d
            rec["got"] = bytes(got)
            c.sendall(d)
        rec["got"] = bytes(got)
        rec["eof"] = True
        c.shutdown(socket.SHUT_WR)


class SinkSource(Origin):
    """Read up (to EOF, or exactly `up` bytes), then send `down` bytes of
    pattern(down) and close.  Records got, its length and sha256."""

    def __init__(self, down=0, up=None, **kw):
        self.down = down
        self.up = up
        super().__init__(**kw)

    def handle(self, c, rec):
        got = recv_all(c, self.up)
        rec["got"] = got
        rec["got_len"] = len(got)
        rec["got_sha"] = hashlib.sha256(got).hexdigest()
        rec["eof"] = self.up is None or len(got) < self.up
        if self.down:
            c.sendall(pattern(self.down))
        rec["sent"] = self.down
        c.shutdown(socket.SHUT_WR)
        # drain whatever the client still sends, so close() does not RST
        try:
            c.settimeout(5 * SLOW)
            while c.recv(65536):
                pass
        except OSError:
            pass


class HalfCloser(Origin):
    """Send `hello`, then shutdown(SHUT_WR) at once, then keep reading
    until the client's EOF, recording everything."""

    def __init__(self, hello=b"bye\n", **kw):
        self.hello = hello
        super().__init__(**kw)

    def handle(self, c, rec):
        c.sendall(self.hello)
        c.shutdown(socket.SHUT_WR)
        rec["got"] = recv_all(c)
        rec["eof"] = True


class Resetter(Origin):
    """Read `before` bytes (default: whatever comes first), then close with
    SO_LINGER {1,0}: an RST."""

    def __init__(self, before=1, **kw):
        self.before = before
        super().__init__(**kw)

    def handle(self, c, rec):
        got = b""
        while len(got) < self.before:
            d = c.recv(65536)
            if not d:
                break
            got += d
        rec["got"] = got
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()


class Recorder(Origin):
    """Optionally send `hello`, then read until EOF or reset; records
    got and how ("eof" or "reset")."""

    def __init__(self, hello=b"", **kw):
        self.hello = hello
        super().__init__(**kw)

    def handle(self, c, rec):
        if self.hello:
            c.sendall(self.hello)
        got = bytearray()
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    rec["how"] = "eof"
                    break
                got += d
                rec["got"] = bytes(got)
        except ConnectionResetError:
            rec["how"] = "reset"
        except socket.timeout:
            rec["how"] = "timeout"
        rec["got"] = bytes(got)


class Ticker(Origin):
    """Send one byte every `interval` seconds, `count` times, then close."""

    def __init__(self, interval=0.3, count=10, **kw):
        self.interval = interval
        self.count = count
        super().__init__(**kw)

    def handle(self, c, rec):
        for _ in range(self.count):
            c.sendall(b".")
            time.sleep(self.interval)
        c.shutdown(socket.SHUT_WR)
        rec["got"] = recv_all(c)


class HttpOrigin(Origin):
    """A tiny HTTP/1.1 server: reads one request head, records it raw,
    answers `body` with Content-Length and Connection: close."""

    def __init__(self, body=b"hello from origin\n", **kw):
        self.body = body
        super().__init__(**kw)

    def response(self):
        return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(self.body)
                ) + self.body

    def handle(self, c, rec):
        rec["got"] = recv_head(c)
        rec["sent"] = self.response()
        c.sendall(rec["sent"])
        c.shutdown(socket.SHUT_WR)
        try:
            c.settimeout(5 * SLOW)
            while True:
                d = c.recv(65536)
                if not d:
                    break
                rec["got"] += d
        except OSError:
            pass


def pattern(n, seed=b"connectd"):
    """n deterministic, non-repeating-looking bytes."""
    block = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest()
                     for i in range(2048))          # 64 KiB
    reps = n // len(block) + 1
    return (block * reps)[:n]


class BlackHole:
    """A 127.0.0.1 port whose accept queue is full: a new connect() to it
    gets no SYN-ACK and times out (listen(0), never accept, fill it)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        at_cleanup(self.close)
        for _ in range(16):
            s, done = self._attempt(0.3)
            self.fillers.append(s)
            if not done:
                break           # this one did not complete: queue is full
        self.verified = self._verify()

    def _attempt(self, wait):
        """A non-blocking connect() to the port: (the socket, whether it
        completed within wait seconds)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        _, w, _ = select.select([], [s], [], wait)
        return s, bool(w)

    def _verify(self):
        s, done = self._attempt(1.0)
        s.close()
        return not done

    def close(self):
        for s in self.fillers:
            s.close()
        self.sock.close()


# ------------------------------------------------------------------ TLS


def make_cert(names=("localhost",), ips=("127.0.0.1",), cn=None, prefix="origin"):
    """Self-signed cert + key in the temp dir; returns (cert, key)."""
    cert = tmpfile(prefix + ".crt")
    key = tmpfile(prefix + ".key")
    san = ",".join(["DNS:%s" % n for n in names] + ["IP:%s" % i for i in ips])
    rc, out, err = run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-days", "2", "-keyout", key, "-out", cert,
                        "-subj", "/CN=%s" % (cn or names[0]),
                        "-addext", "subjectAltName=%s" % san,
                        "-addext", "basicConstraints=critical,CA:TRUE"],
                       timeout=60)
    if rc != 0:
        raise RuntimeError("openssl req failed: %s" % err)
    return cert, key


class TlsOrigin:
    """openssl s_server -www on 127.0.0.1 (or host) with a self-signed cert."""

    def __init__(self, names=("localhost",), host="127.0.0.1"):
        self.cert, self.key = make_cert(names=names)
        self.host = host
        d = tmpdir()
        for _ in range(3):
            self.port = free_port(host)
            acc = ("[%s]:%d" if ":" in host else "%s:%d") % (host, self.port)
            self.proc = Proc(["openssl", "s_server", "-www", "-accept", acc,
                              "-cert", self.cert, "-key", self.key, "-quiet"],
                             stdout=os.path.join(d, "s_server.out"),
                             stderr=os.path.join(d, "s_server.err"),
                             stdin=subprocess.DEVNULL)
            if wait_port(self.port, host, proc=self.proc.p):
                return
            self.proc.stop()
        raise RuntimeError("openssl s_server did not start")

    def stop(self):
        self.proc.stop()


# --------------------------------------------------------- proxy client


class ProxyClient:
    """A raw client socket to a proxy, with deadlines on every read."""

    def __init__(self, port, host="127.0.0.1", timeout=DEFAULT_WAIT):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout * SLOW)
        self.sock.connect((host, port))
        self.timeout = timeout
        self.buf = b""          # read but not yet consumed
        self.local_port = self.sock.getsockname()[1]
        at_cleanup(self.close)

    def send(self, data):
        self.sock.sendall(data)

    sendall = send

    def shut_wr(self):
        self.sock.shutdown(socket.SHUT_WR)

    def _fill(self, end):
        left = end - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline")
        self.sock.settimeout(left)
        d = self.sock.recv(262144)
        return d

    def read_until(self, marker, timeout=None, limit=1 << 20):
        """Bytes up to and including marker; raises on EOF/timeout."""
        end = deadline(timeout or self.timeout)
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("no %r in %d bytes" % (marker, len(self.buf)))
            d = self._fill(end)
            if not d:
                raise EOFError("EOF before %r (got %r)" % (marker, self.buf[:200]))
            self.buf += d
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def recv_exact(self, n, timeout=None):
        end = deadline(timeout or self.timeout)
        while len(self.buf) < n:
            d = self._fill(end)
            if not d:
                break
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_eof(self, timeout=None):
        """Everything until EOF.  Returns (data, how) where how is "eof",
        "reset" or "timeout"."""
        end = deadline(timeout or self.timeout)
        out = bytearray(self.buf)
        self.buf = b""
        while True:
            try:
                d = self._fill(end)
            except (socket.timeout, TimeoutError):
                return bytes(out), "timeout"
            except ConnectionResetError:
                return bytes(out), "reset"
            if not d:
                return bytes(out), "eof"
            out += d

    def request(self, data, timeout=None):
        """Send data, read until the proxy closes: (status or None, reply, how)."""
        try:
            self.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply, how = self.read_to_eof(timeout)
        return parse_status(reply), reply, how

    def connect_tunnel(self, authority, headers=(), version="HTTP/1.1", extra=b""):
        """Send CONNECT, read the reply head: (status, head bytes)."""
        head = make_connect(authority, headers, version)
        self.request_head = head
        self.send(head + extra)
        try:
            h = self.read_until(b"\r\n\r\n")
        except (EOFError, ValueError) as e:
            return None, str(e).encode()
        return parse_status(h), h

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Close with an RST."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.close()


def make_connect(authority, headers=(), version="HTTP/1.1"):
    if isinstance(authority, str):
        authority = authority.encode()
    lines = [b"CONNECT " + authority + b" " + version.encode()]
    if headers is None:
        headers = ()
    elif not headers:
        headers = [("Host", authority)]
    for k, v in headers:
        lines.append((k.encode() if isinstance(k, str) else k) + b": " +
                     (v.encode() if isinstance(v, str) else v))
    return b"\r\n".join(lines) + b"\r\n\r\n"


def parse_status(reply):
    m = re.match(rb"HTTP/1\.[01] (\d{3})[ \r]", reply or b"")
    return int(m.group(1)) if m else None


def tunnel(proxy_port, authority, **kw):
    """Open a tunnel; returns the client, or raises if the reply is not 200."""
    c = ProxyClient(proxy_port)
    st, head = c.connect_tunnel(authority, **kw)
    if st != 200:
        c.close()
        raise RuntimeError("CONNECT %s: %r" % (authority, head[:200]))
    return c


# -------------------------------------------------------------- namespaces


_NS_ERROR = ""


def _ns_cmd():
    """The unshare prefix that gives us a private mount namespace, or None
    (and _NS_ERROR says why: in a chroot, `/` is no mount point, and
    unshare cannot make the mounts private)."""
    global _NS_ERROR
    if not which("unshare"):
        _NS_ERROR = "no unshare"
        return None
    base = ["unshare", "-m"]
    if os.geteuid() != 0:
        base = ["unshare", "-r", "-m"]
    rc, out, err = run(base + ["sh", "-c", "mount --bind /dev/null /dev/null 2>/dev/null || "
                               "mount --bind \"$0\" \"$0\"", tmpdir()], timeout=10)
    _NS_ERROR = (err or out or "").strip().splitlines()[-1:] if rc != 0 else ""
    _NS_ERROR = _NS_ERROR[0] if _NS_ERROR else ""
    return base if rc == 0 else None


def private_files(files, reason="needs a private mount namespace", optional=False):
    """Re-exec this test inside `unshare -m` with each {target: content}
    bind-mounted over target (e.g. /etc/hosts, /etc/resolv.conf), without
    touching the system files.  Returns True in the re-executed child; if
    the namespace cannot be made, skips the whole test (or, with
    optional=True, returns False and the test goes on without it)."""
    if os.environ.get("T_PRIVATE_NS") == "1":
        d = os.environ.get("T_PRIVATE_TMP")
        if d:
            at_cleanup(lambda: shutil.rmtree(d, ignore_errors=True))
        return True
    if os.environ.get("T_PRIVATE_NS") == "0":
        return False
    base = _ns_cmd()
    if not base:
        if optional:
            os.environ["T_PRIVATE_NS"] = "0"
            return False
        tap.skip_all("%s: unshare -m fails here (%s)" % (reason, _NS_ERROR or "no reason given"))
    d = tempfile.mkdtemp(prefix="connectd-ns-")
    os.chmod(d, 0o755)
    script = []
    for i, (target, content) in enumerate(sorted(files.items())):
        p = os.path.join(d, "f%d" % i)
        with open(p, "w") as f:
            f.write(content)
        os.chmod(p, 0o644)
        script.append("mount --bind %s %s" % (p, target))
    script.append('exec "$@"')
    env = dict(os.environ, T_PRIVATE_NS="1", T_PRIVATE_TMP=d)
    argv = base + ["sh", "-ec", "; ".join(script), "sh",
                   sys.executable] + [os.path.abspath(sys.argv[0])] + sys.argv[1:]
    sys.stdout.flush()
    sys.stderr.flush()
    signal.alarm(0)
    # our own temp dir is not needed in the child
    cleanup()
    os.execvpe(argv[0], argv, env)


def hosts_file(*entries):
    """Text for /etc/hosts: the system's lines plus entries like
    ("127.0.0.1", "name")."""
    base = read_text("/etc/hosts")
    if base and not base.endswith("\n"):
        base += "\n"
    return base + "".join("%s %s\n" % e for e in entries)


# resolv.conf that keeps every DNS query on loopback (nothing listens on
# 127.0.0.1:53 here, so a lookup fails fast instead of leaving the machine)
LOOPBACK_RESOLV = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"


def curl_ua():
    rc, out, _ = run(["curl", "--version"], timeout=10)
    m = re.match(r"curl (\S+)", out)
    return "curl/" + m.group(1) if m else None


def check_record(rec, want, prefix=""):
    """tap.is_ for every key of want; a callable value is a predicate."""
    for k, v in want.items():
        got = rec.get(k, "<missing>") if rec else "<no record>"
        if callable(v):
            res = tap.ok(v(got), "%s%s ok (%r)" % (prefix, k, got))
        else:
            tap.is_(got, v, "%s%s == %r" % (prefix, k, v))
