"""podmeta_util.py: drive podmeta (and other child processes) from a test.

Every read has a deadline and every process started here is killed at exit.

    api = start_api()                    # a K8sAPI serving the fixture pods
    pm = start_podmeta(api, "--delete-grace", "2")
    r = pm.lookup("10.244.0.3")          # -> Reply(id, status, kv, log, raw)
    tap.is_(r.log, expected_json(pod, "10.244.0.3"))
"""
import atexit
import json
import os
import queue
import re
import signal
import subprocess
import tempfile
import threading
import time
from urllib.parse import unquote

from k8sapi.control import K8sAPI
from k8sapi.fixtures import make_pod

PODMETA = os.environ.get("PODMETA", "")
_procs = []                  # running (not yet killed) children
_started = []                # every Podmeta, in order: Scenario finds its own


def _kill_all():
    for p in list(_procs):
        p.kill()


atexit.register(_kill_all)


def _on_signal(signum, frame):
    _kill_all()
    os._exit(128 + signum)


for _s in (signal.SIGTERM, signal.SIGHUP):
    try:
        signal.signal(_s, _on_signal)
    except (ValueError, OSError):
        pass


class Proc(object):
    """A child with line-oriented stdout read by a thread (no read ever blocks
    the test longer than its timeout).  stderr goes to a temp file."""

    def __init__(self, argv, env=None, stdin=True, cwd=None):
        self.argv = [str(a) for a in argv]
        self.errf = tempfile.NamedTemporaryFile(prefix="t-stderr-", delete=False)
        e = dict(os.environ)
        if env:
            e.update(env)
        self.p = subprocess.Popen(self.argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=self.errf, env=e, cwd=cwd,
                                  bufsize=0, start_new_session=True)
        self.q = queue.Queue()
        self.buf = b""
        self.eof = False
        self.t = threading.Thread(target=self._reader, daemon=True)
        self.t.start()
        _procs.append(self)

    def _reader(self):
        f = self.p.stdout
        while True:
            try:
                data = f.read1(65536) if hasattr(f, "read1") else os.read(f.fileno(), 65536)
            except (OSError, ValueError):
                data = b""
            if not data:
                self.q.put(None)
                return
            self.q.put(data)

    def _fill(self, deadline):
        """Pull one piece into self.buf; False on timeout or EOF."""
        if self.eof:
            return False
        left = deadline - time.time()
        if left <= 0:
            return False
        try:
            data = self.q.get(timeout=left)
        except queue.Empty:
            return False
        if data is None:
            self.eof = True
            return False
        self.buf += data
        return True

    def readline(self, timeout=5.0):
        """One line (str, without the newline) or None on timeout/EOF."""
        deadline = time.time() + timeout
        while b"\n" not in self.buf:
            if not self._fill(deadline):
                return None
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("utf-8", "replace")

    def read_until(self, pred, timeout=5.0):
        """Read until pred(all_text_so_far) is true; returns the text (or None)."""
        deadline = time.time() + timeout
        while not pred(self.buf.decode("utf-8", "replace")):
            if not self._fill(deadline):
                return None
        return self.buf.decode("utf-8", "replace")

    def take_output(self):
        out, self.buf = self.buf, b""
        return out.decode("utf-8", "replace")

    def write(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        try:
            self.p.stdin.write(data)
            self.p.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def alive(self):
        return self.p.poll() is None

    def stderr(self):
        try:
            with open(self.errf.name, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def signal(self, sig):
        if self.alive():
            os.kill(self.p.pid, sig)

    def close(self, timeout=5.0):
        """Close stdin (EOF), wait up to timeout, then kill.  Returns the exit
        status (negative: killed by that signal)."""
        try:
            if self.p.stdin:
                self.p.stdin.close()
        except OSError:
            pass
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except OSError:
                try:
                    self.p.kill()
                except OSError:
                    pass
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for f in (self.p.stdin, self.p.stdout):
            try:
                if f:
                    f.close()
            except OSError:
                pass
        if self in _procs:
            _procs.remove(self)
        try:
            os.unlink(self.errf.name)
        except OSError:
            pass


# --------------------------------------------------------------------------
# Squid helper reply lines

def squid_unquote(s):
    """Decode a Squid "..." value (backslash escapes \\" \\\\ \\n \\r; any other
    \\X is X) -- s is the text between the quotes."""
    out = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            out.append("\n" if n == "n" else "\r" if n == "r" else n)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


class Reply(object):
    def __init__(self, raw):
        self.raw = raw
        self.id = None
        self.status = None
        self.kv = {}
        self.order = []
        self.log = None
        self.log_error = None
        self.bad_syntax = None
        if raw is None:
            return
        rest = raw
        m = re.match(r"^(\d+) ", rest)
        if m:
            self.id = m.group(1)
            rest = rest[m.end():]
        m = re.match(r"^(OK|ERR|BH)(?= |$)", rest)
        if not m:
            self.bad_syntax = "no OK/ERR/BH in %r" % raw
            return
        self.status = m.group(1)
        rest = rest[m.end():]
        while rest:
            m = re.match(r'^ +([A-Za-z0-9_.-]+)=("((?:[^"\\]|\\.)*)"|[^ "]*)(?= |$)', rest)
            if not m:
                self.bad_syntax = "cannot parse %r" % rest[:200]
                break
            key = m.group(1)
            val = squid_unquote(m.group(3)) if m.group(3) is not None else unquote(m.group(2))
            self.kv[key] = val
            self.order.append(key)
            rest = rest[m.end():]
        if "log" in self.kv:
            try:
                self.log = json.loads(self.kv["log"])
            except ValueError as e:
                self.log_error = str(e)

    def __repr__(self):
        return "Reply(%r)" % self.raw


# --------------------------------------------------------------------------
# Expected JSON (issue 3)

def squid_quote(s):
    """Squid's "..." quoting (what podmeta must send for log=)."""
    return '"' + (s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                  .replace("\r", "\\r")) + '"'


TRUNCATED = "\u2026(truncated)"


def cap_value(v, max_value=256):
    """A label/annotation value as podmeta caps it: at most max_value bytes of
    UTF-8 (cut on a character boundary) and then the truncation mark."""
    b = v.encode("utf-8")
    if not max_value or len(b) <= max_value:
        return v
    n = max_value
    while n > 0 and (b[n] & 0xC0) == 0x80:
        n -= 1
    return b[:n].decode("utf-8") + TRUNCATED


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def owner_of(pod):
    refs = pod["metadata"].get("ownerReferences") or []
    ctl = [r for r in refs if r.get("controller")]
    r = (ctl or refs or [None])[0]
    return {"kind": r["kind"], "name": r["name"]} if r else None


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _filtered(m, regex, max_value):
    out = {}
    for k, v in (m or {}).items():
        if k == LAST_APPLIED or not isinstance(v, str):
            continue
        if regex is not None and not re.search(regex, k):
            continue
        out[k] = cap_value(v, max_value)
    return out


def expected_json(pod, ip, labels_re=None, annotations_re=None, max_value=256, labels=None,
                  annotations=None):
    """The log= JSON podmeta should send for `ip` owned by `pod`: by default
    all labels, no annotations (annotations_re: keys matching it, as
    --annotations), values capped at max_value bytes."""
    md = pod["metadata"]
    if labels is None:
        labels = _filtered(md.get("labels"), labels_re, max_value)
    if annotations is None:
        annotations = _filtered(md.get("annotations"), annotations_re, max_value) \
            if annotations_re is not None else {}
    return {
        "ip": ip,
        "namespace": md["namespace"],
        "name": md["name"],
        "uid": md["uid"],
        "node": (pod.get("spec") or {}).get("nodeName"),
        "labels": labels,
        "annotations": annotations,
        "owner": owner_of(pod),
        "host_network": bool((pod.get("spec") or {}).get("hostNetwork")),
    }


def expected_line(pod, ip, id=None, **kw):
    """The exact reply line: key order as in the issue, labels sorted."""
    j = expected_json(pod, ip, **kw)
    j["labels"] = dict(sorted(j["labels"].items()))
    j["annotations"] = dict(sorted(j["annotations"].items()))
    md = pod["metadata"]
    return "%sOK log=%s namespace=%s pod=%s" % ("" if id is None else "%s " % id, squid_quote(compact(j)),
                                                md["namespace"], md["name"])


def ambiguous_json(ip, node):
    """hostNetwork address: the node, never a pod."""
    return {"ip": ip, "node": node, "host_network": True, "ambiguous": True}


def unknown_json(ip):
    return {"ip": ip, "pod": None}


def check_ambiguous(tap, r, ip, node, name=None, id=None):
    name = name or "%s -> node %s, ambiguous" % (ip, node)
    ok = (r.raw is not None and r.status == "OK" and r.log == ambiguous_json(ip, node)
          and r.kv.get("node") == node and "pod" not in r.kv and r.id == id)
    tap.ok(ok, name)
    if not ok:
        tap.diag("reply: %r" % r.raw)
        tap.diag("want log: %s" % compact(ambiguous_json(ip, node)))
    return ok


def check_known(tap, r, pod, ip, name=None, id=None, **kw):
    """Assert that reply r is the exact answer for ip -> pod."""
    name = name or "%s -> %s/%s" % (ip, pod["metadata"]["namespace"], pod["metadata"]["name"])
    want = expected_json(pod, ip, **kw)
    ok = (r.raw is not None and r.status == "OK" and r.bad_syntax is None and r.log == want and r.id == id
          and r.kv.get("namespace") == pod["metadata"]["namespace"]
          and r.kv.get("pod") == pod["metadata"]["name"])
    tap.ok(ok, name)
    if not ok:
        tap.diag("reply: %r" % (r.raw[:2000] if r.raw else r.raw))
        if r.log_error:
            tap.diag("log= is not JSON: %s" % r.log_error)
        tap.diag("want log: %s" % json.dumps(want, sort_keys=True))
        if r.log is not None:
            tap.diag(" got log: %s" % json.dumps(r.log, sort_keys=True)[:2000])
        if r.bad_syntax:
            tap.diag("syntax: %s" % r.bad_syntax)
    return ok


def check_unknown(tap, r, ip, name=None, id=None):
    name = name or "%s -> unknown" % ip
    ok = r.raw is not None and r.status == "OK" and r.log == unknown_json(ip) and r.id == id
    tap.ok(ok, name)
    if not ok:
        tap.diag("reply: %r" % r.raw)
    return ok


# --------------------------------------------------------------------------
# podmeta

class Podmeta(Proc):
    def __init__(self, args, env=None):
        if not PODMETA:
            raise RuntimeError("PODMETA is not set")
        e = {"NODE_NAME": ""}
        # never fall into in-cluster mode by accident
        for k in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
            e[k] = ""
        if env:
            e.update(env)
        Proc.__init__(self, [PODMETA] + list(args), env=e)
        self._next_id = 0
        # --policy takes %SRC %DST %PORT [%ssl::>sni]: lookup() sends a
        # destination that no list has, and no SNI
        self.policy = "--policy" in args
        _started.append(self)

    def ask(self, line, timeout=8.0):
        """Send one request line, return the raw reply line (or None)."""
        if not self.write(line + "\n"):
            return None
        return self.readline(timeout)

    def lookup(self, ip, id=None, data="-", timeout=8.0):
        """Ask for ip ('<id> <ip> -'); returns a Reply."""
        if self.policy and data == "-":
            data = "- 0 -"
        line = ("%s " % id if id is not None else "") + ip + (" " + data if data is not None else "")
        return Reply(self.ask(line, timeout))

    def wait_reply(self, ip, pred, timeout=10.0, interval=0.1):
        """Ask repeatedly until pred(Reply) holds; returns the last Reply."""
        deadline = time.time() + timeout
        while True:
            r = self.lookup(ip, timeout=max(0.5, min(8.0, deadline - time.time() + 1)))
            if r.raw is not None and pred(r):
                return r
            if time.time() >= deadline or not self.alive():
                return r
            time.sleep(interval)

    def wait_known(self, ip, name, timeout=10.0):
        return self.wait_reply(ip, lambda r: r.log is not None and r.log.get("name") == name, timeout)

    def wait_unknown(self, ip, timeout=10.0):
        return self.wait_reply(ip, lambda r: r.log is not None and r.log.get("pod", 1) is None, timeout)


def have_podmeta():
    return bool(PODMETA) and os.access(PODMETA, os.X_OK)


def require_podmeta(tap):
    if not have_podmeta():
        tap.skip_all("podmeta not built (PODMETA=%r)" % PODMETA)


def start_api(pods="fixture", **kw):
    return K8sAPI(pods=pods, **kw).start()


def start_podmeta(api, *args, env=None, sync_wait=None):
    a = list(api.podmeta_args()) if api is not None else []
    if sync_wait is not None:
        a += ["--sync-wait", str(sync_wait)]
    a += list(args)
    return Podmeta(a, env=env)


def restart_podmeta(api, old, *args, sync_wait=None):
    """Close old (if any) and wait until its watch is gone from the API,
    then start a new podmeta (fresh backoff state) on api.  Returns it and
    api.mark() from just before it started."""
    if old is not None:
        old.close()
        api.wait_for(lambda: api.open_watches() == 0, 3)
    m = api.mark()
    return start_podmeta(api, *args, sync_wait=sync_wait), m


def name_is(n):
    """A Reply predicate: the answer names pod n."""
    return lambda r: r.log is not None and r.log.get("name") == n


def unknown(r):
    """A Reply predicate: the answer says no pod has the address."""
    return r.log is not None and "pod" in r.log and r.log["pod"] is None


class PodSequence(object):
    """New pods with names PREFIX-N and addresses counting up in NET.x.y
    (net: the first two octets), one per call:

        fresh_pod = PodSequence("10.60")
        p = fresh_pod("after")               # after-1 on 10.60.0.2
    """

    def __init__(self, net):
        self.net = net
        self.n = 0

    def __call__(self, prefix, node="node-1", ns="ci"):
        self.n += 1
        return make_pod("%s-%d" % (prefix, self.n),
                        "%s.%d.%d" % (self.net, self.n // 250, self.n % 250 + 1),
                        namespace=ns, node=node)


class Scenario(object):
    """One test's API server and the podmeta processes started for it,
    torn down together:

        api = pu.start_api()
        with pu.Scenario(api):
            pm = pu.start_podmeta(api)
            ...
        tap.done()

    On leaving the block, normally or by an exception: if a test point
    failed (or the block raised), the API's summary and the stderr of the
    podmeta started last (of those the test did not kill itself) as
    diagnostics; then every podmeta started in the block is killed and the
    API is stopped.  An exception goes on up (the test then has no plan)."""

    def __init__(self, api):
        self.api = api
        self._first = None

    def __enter__(self):
        self._first = len(_started)
        return self

    def __exit__(self, typ, value, tb):
        import tap
        mine = _started[self._first:]
        try:
            if tap._failed or typ is not None:
                live = [p for p in mine if p in _procs]
                diag(tap, live[-1] if live else None, self.api)
        finally:
            for p in mine:
                p.kill()
            self.api.stop()
        return False


def stats_from_stderr(text):
    """Last 'key=value' numbers podmeta printed in its stats (best effort)."""
    out = {}
    for k, v in re.findall(r"\b([a-z_]+)[=:] ?(\d+)\b", text):
        out[k] = int(v)
    return out


def diag(tap, pm=None, api=None):
    """What the API saw and podmeta's stderr, as TAP diagnostics."""
    if api is not None:
        tap.diag("api: " + api.summary())
        for e in api.errors()[-5:]:
            tap.diag("api error: " + e)
    if pm is not None:
        err = pm.stderr()
        tap.diag("podmeta stderr (tail):\n" + err[-3000:])


def diag_on_fail(tap, pm=None, api=None):
    if tap._failed:
        diag(tap, pm, api)
