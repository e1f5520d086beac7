"""metrics_util.py: talk to connectd's metrics_port and read what it says.

- get(port, path): one raw HTTP/1.1 request; (status, headers, body).
- strict_parse(text): a strict reader of the Prometheus text exposition
  format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/),
  written from the specification: it raises ParseError on anything the
  format does not allow (a sample before its TYPE, a family split in two,
  a duplicate series, a bad escape, a histogram whose buckets are not
  cumulative or lack +Inf ...).  Returns a Scrape.
- client_parse(text): the same text through python3-prometheus-client's
  parser (Debian's package), or None if it is not installed.
- promtool_check(text): `promtool check metrics` (Debian's prometheus
  package), or None if it is not installed.
"""
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class ParseError(Exception):
    pass


def get(port, path, method="GET", raw=None, timeout=10.0, host="127.0.0.1"):
    """Send one request (or the bytes raw) and read to EOF.  Returns
    (status or None, {lower-case name: value}, body bytes)."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(raw if raw is not None else
                  ("%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                   "User-Agent: t/metrics_util\r\n\r\n" % (method, path, port)).encode())
        data = b""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            data += d
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.1 (\d{3}) ", lines[0]) if lines else None
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    return (int(m.group(1)) if m else None), headers, body


class Scrape:
    """What strict_parse() read: families and their samples."""

    def __init__(self):
        self.types = {}         # family -> type
        self.helps = {}         # family -> help text
        self.samples = {}       # (name, frozenset(labels)) -> float
        self.order = []         # families, in order

    def value(self, name, **labels):
        """The sample's value, or None if there is no such series."""
        return self.samples.get((name, frozenset(labels.items())))

    def series(self, name):
        """[(labels dict, value)] of every sample named name."""
        return [(dict(k[1]), v) for k, v in self.samples.items() if k[0] == name]

    def total(self, name, **match):
        """The sum of name's samples whose labels include match."""
        return sum(v for lab, v in self.series(name)
                   if all(lab.get(k) == w for k, w in match.items()))


def _unescape_label(s, lineno):
    out = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            if i + 1 >= len(s) or s[i + 1] not in '\\"n':
                raise ParseError("line %d: bad escape in a label value" % lineno)
            out.append({"\\": "\\", '"': '"', "n": "\n"}[s[i + 1]])
            i += 2
            continue
        if c == "\n":
            raise ParseError("line %d: raw newline in a label value" % lineno)
        out.append(c)
        i += 1
    return "".join(out)


def _float(s, lineno):
    # Go's ParseFloat, as Prometheus reads values: decimal, NaN, +Inf, -Inf
    if s in ("NaN", "+Inf", "-Inf", "Inf"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", s):
        raise ParseError("line %d: bad value %r" % (lineno, s))
    return float(s)


def _family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            base = name[:-len(suffix)]
            if types.get(base) in ("histogram", "summary"):
                return base
    return name


def strict_parse(text):
    """Parse text strictly; raises ParseError.  Returns a Scrape."""
    sc = Scrape()
    if not text.endswith("\n"):
        raise ParseError("the text does not end with a newline")
    seen_samples = set()      # families whose samples began
    closed = set()            # families whose samples ended
    current = None
    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        if line == "":
            continue
        if line.startswith("#"):
            m = re.fullmatch(r"# (HELP|TYPE) (%s) ?(.*)" % NAME, line)
            if not m:
                if re.match(r"# (HELP|TYPE)\b", line):
                    raise ParseError("line %d: bad %r" % (lineno, line))
                continue                # a plain comment
            kind, name, rest = m.groups()
            if name in seen_samples:
                raise ParseError("line %d: %s for %s after its samples" % (lineno, kind, name))
            if kind == "TYPE":
                if name in sc.types:
                    raise ParseError("line %d: second TYPE for %s" % (lineno, name))
                if rest not in TYPES:
                    raise ParseError("line %d: unknown type %r" % (lineno, rest))
                sc.types[name] = rest
            else:
                if name in sc.helps:
                    raise ParseError("line %d: second HELP for %s" % (lineno, name))
                if re.search(r"\\(?![\\n])", rest):
                    raise ParseError("line %d: bad escape in HELP" % lineno)
                sc.helps[name] = rest.replace("\\n", "\n").replace("\\\\", "\\")
            if name not in sc.order:
                sc.order.append(name)
            continue
        m = re.fullmatch(r"(%s)(\{(.*)\})? (\S+)( -?\d+)?" % NAME, line)
        if not m:
            raise ParseError("line %d: not a sample: %r" % (lineno, line))
        name, _, body, value, _ts = m.groups()
        labels = {}
        if body:
            pos = 0
            while pos < len(body):
                lm = re.match(r'(%s)="((?:[^"\\]|\\.)*)"(,|$)' % LABEL, body[pos:])
                if not lm:
                    raise ParseError("line %d: bad labels %r" % (lineno, body))
                lname = lm.group(1)
                if lname.startswith("__"):
                    raise ParseError("line %d: reserved label %s" % (lineno, lname))
                if lname in labels:
                    raise ParseError("line %d: label %s twice" % (lineno, lname))
                labels[lname] = _unescape_label(lm.group(2), lineno)
                pos += lm.end()
                if lm.group(3) == "" and pos < len(body):
                    raise ParseError("line %d: bad labels %r" % (lineno, body))
        fam = _family_of(name, sc.types)
        if fam not in sc.types:
            raise ParseError("line %d: sample %s before a TYPE line" % (lineno, name))
        if fam in closed:
            raise ParseError("line %d: family %s is split" % (lineno, fam))
        if current is not None and current != fam:
            closed.add(current)
        current = fam
        seen_samples.add(fam)
        key = (name, frozenset(labels.items()))
        if key in sc.samples:
            raise ParseError("line %d: duplicate series %s%r" % (lineno, name, labels))
        sc.samples[key] = _float(value, lineno)
    _check_families(sc)
    return sc


def _check_families(sc):
    """What the types promise: counters end in _total and do not go
    negative, histograms have cumulative buckets ending in +Inf that
    equal _count, and a _sum."""
    for fam, typ in sc.types.items():
        if typ == "counter":
            if not fam.endswith("_total"):
                raise ParseError("counter %s does not end in _total" % fam)
            for k, v in sc.samples.items():
                if k[0] == fam and (v < 0 or math.isnan(v)):
                    raise ParseError("counter %s is %r" % (fam, v))
        if typ != "histogram":
            continue
        groups = {}
        for (name, labs), v in sc.samples.items():
            if name == fam + "_bucket":
                d = dict(labs)
                le = d.pop("le", None)
                if le is None:
                    raise ParseError("%s_bucket without le" % fam)
                groups.setdefault(frozenset(d.items()), []).append((_float(le, 0), v))
        if not groups:
            raise ParseError("histogram %s has no buckets" % fam)
        for labs, buckets in groups.items():
            buckets.sort()
            if buckets[-1][0] != math.inf:
                raise ParseError("histogram %s has no +Inf bucket" % fam)
            for (a, x), (b, y) in zip(buckets, buckets[1:]):
                if y < x:
                    raise ParseError("histogram %s is not cumulative at le=%r" % (fam, b))
            count = sc.samples.get((fam + "_count", labs))
            if count is None or (fam + "_sum", labs) not in sc.samples:
                raise ParseError("histogram %s lacks _count or _sum" % fam)
            if count != buckets[-1][1]:
                raise ParseError("histogram %s: _count %r != +Inf bucket %r" % (
                    fam, count, buckets[-1][1]))


def _client_parser():
    try:
        from prometheus_client.parser import text_string_to_metric_families
        return text_string_to_metric_families
    except ImportError:
        pass
    # Debian's package is in the system Python's path, which a pyenv or
    # venv python3 does not search; it is pure Python
    for d in ("/usr/lib/python3/dist-packages",):
        if os.path.isdir(os.path.join(d, "prometheus_client")) and d not in sys.path:
            sys.path.append(d)
    try:
        from prometheus_client.parser import text_string_to_metric_families
        return text_string_to_metric_families
    except ImportError:
        return None


def client_parse(text):
    """{(sample name, frozenset(labels)): value} as prometheus_client reads
    text, or None without the package.  Raises what the parser raises."""
    parse = _client_parser()
    if parse is None:
        return None
    out = {}
    for fam in parse(text):
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            if key in out:
                raise ValueError("prometheus_client: duplicate %r" % (key,))
            out[key] = s.value
    return out


def promtool_check(text):
    """(rc, output) of `promtool check metrics`, or None without it."""
    tool = shutil.which("promtool")
    if tool is None:
        return None
    p = subprocess.run([tool, "check", "metrics"], input=text.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def scrape(port, timeout=10.0):
    """GET /metrics, parsed strictly.  Returns (Scrape, text, headers)."""
    st, headers, body = get(port, "/metrics", timeout=timeout)
    if st != 200:
        raise ParseError("GET /metrics: status %r: %r" % (st, body[:200]))
    text = body.decode("utf-8")
    return strict_parse(text), text, headers
