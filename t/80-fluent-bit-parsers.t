#!/usr/bin/env python3
"""80-fluent-bit-parsers.t: the shipped Fluent Bit configurations read real lines.

Fluent Bit cannot be installed here, so what it would do is done with the
shipped files, read at run time (nothing of them is copied here):
  - conf/fluent-bit/*.conf hold what each deployment needs: the host one
    tails the file with the connectd_json parser (Time_Key ts, Time_Keep
    On: ts is REQUIRED), the Kubernetes one reads CRI lines with the cri
    multiline parser, keeps stdout, parses "log" with connectd_json and
    keeps only its fields; both run the Lua filter and end in a bigquery
    output with project, dataset, table and credentials; every parser,
    script and function they name exists; type_int_key names exactly the
    schema's INTEGER columns;
  - real connectd lines (a pod with dotted keys and non-ASCII text, a
    line over 16 KiB, hostile request bytes, interim records) go through
    connectd_json: each is a JSON object and its time, by the parser's
    Time_Format (Fluent Bit's %L as fractional seconds), equals ts;
  - the same lines wrapped as containerd writes them
    ("<RFC 3339 nanoseconds> stdout F <line>", a long line split into
    P pieces of 16 KiB), through connectd_cri's regex and time format: the
    pieces joined give the line back, the time is the runtime's, and the
    grep filter's regex keeps stdout and drops stderr;
  - if LuaJIT (or Lua 5.1) is installed, the shipped connectd-pod.lua runs
    on each record as Fluent Bit hands it over (nulls dropped): "pod"
    comes out as JSON text equal to the object, nothing else changes, and
    the row fits the schema with pod as a JSON string, as BigQuery's
    streaming insert takes it."""
import datetime
import json
import os
import re
import shutil
import sys
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import helper_util as hu
from tap import ok, is_, diag, done, skip

h.need_connectd()
h.watchdog(90)
FB = os.path.join(h.topdir(), "conf", "fluent-bit")
SCHEMA = h.bigquery_schema()


def read_fb(path):
    """A classic-format Fluent Bit file: [(SECTION, {key lowercased: value})]."""
    out = []
    with open(path) as f:
        for ln in f:
            ln = ln.strip()
            if not ln or ln.startswith("#"):
                continue
            m = re.match(r"^\[(\w+)\]$", ln)
            if m:
                out.append((m.group(1).upper(), {}))
                continue
            k, _, v = ln.partition(" ")
            out[-1][1][k.lower()] = v.strip()
    return out


def sections(conf, kind, name=None):
    return [kv for s, kv in conf if s == kind and (name is None or kv.get("name", "").lower() == name)]


def one(conf, kind, name=None):
    s = sections(conf, kind, name)
    return s[0] if len(s) == 1 else {}


def ruby_regex(rx):
    """Fluent Bit's regexes are Onigmo's: (?<name>...) is Python's (?P<name>...)."""
    return re.sub(r"\(\?<(?![=!])", "(?P<", rx)


def fb_time(value, fmt):
    """Fluent Bit's strptime with its %L (fractional seconds, up to
    nanoseconds, only after %S) in Python: %L becomes %f, which takes at
    most 6 digits, so the fraction is cut to microseconds.  A format
    without %z is UTC (no Time_Offset, no Time_System_Timezone)."""
    assert "%S.%L" in fmt, fmt
    value = re.sub(r"(\.\d{6})\d+", r"\1", value, count=1)
    t = datetime.datetime.strptime(value, fmt.replace("%L", "%f"))
    return t if t.tzinfo else t.replace(tzinfo=datetime.timezone.utc)


def utc(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)


# --------------------------------------------------------- the shipped files

parsers = {}
for s, kv in read_fb(os.path.join(FB, "parsers-connectd.conf")):
    if s == "PARSER":
        parsers[kv.get("name")] = kv
host = read_fb(os.path.join(FB, "fluent-bit-host.conf"))
kube = read_fb(os.path.join(FB, "fluent-bit-kubernetes.conf"))
pj = parsers.get("connectd_json", {})
pc = parsers.get("connectd_cri", {})
is_((pj.get("format"), pj.get("time_key"), pj.get("time_keep", "").lower()), ("json", "ts", "on"),
    "connectd_json: Format json, Time_Key ts, Time_Keep On (ts is a REQUIRED column)")
ok(pc.get("format") == "regex" and pc.get("regex") and pc.get("time_format"),
   "connectd_cri: a regex parser with a time format")
CRI = re.compile(ruby_regex(pc.get("regex", "^$")).encode())
ok({"time", "stream", "_p", "log"} <= set(CRI.groupindex), "connectd_cri names time, stream, _p and log")
INTS = {c["name"] for c in SCHEMA if c["type"] == "INTEGER"}

for name, conf in (("host", host), ("kubernetes", kube)):
    svc = one(conf, "SERVICE")
    ok(svc.get("parsers_file") and os.path.exists(os.path.join(FB, svc["parsers_file"])),
       "%s: Parsers_File %s is shipped beside it" % (name, svc.get("parsers_file")))
    tail = one(conf, "INPUT", "tail")
    ok(tail.get("path") and tail.get("db") and tail.get("read_from_head", "").lower() == "on",
       "%s: a tail input with Path, DB and Read_from_Head" % name)
    lua = one(conf, "FILTER", "lua")
    script = os.path.join(FB, lua.get("script", "-"))
    ok(os.path.exists(script) and re.search(r"^function %s\(tag, timestamp, record\)" % re.escape(
        lua.get("call", "-")), h.read_text(script), re.M),
       "%s: the lua filter's script and function exist (%s)" % (name, lua.get("call")))
    is_(set(lua.get("type_int_key", "").split()), INTS, "%s: type_int_key is the schema's INTEGER columns" % name)
    out = one(conf, "OUTPUT", "bigquery")
    ok(all(out.get(k) for k in ("google_service_credentials", "project_id", "dataset_id", "table_id")),
       "%s: a bigquery output with credentials, project_id, dataset_id, table_id" % name)
    ok(out.get("match") == tail.get("tag") and all(f.get("match") == tail.get("tag")
                                                  for f in sections(conf, "FILTER")),
       "%s: the filters and the output match the input's tag (%s)" % (name, tail.get("tag")))
is_(one(host, "INPUT", "tail").get("parser"), "connectd_json", "host: the tail input parses with connectd_json")
ktail = one(kube, "INPUT", "tail")
is_(ktail.get("multiline.parser"), "cri", "kubernetes: the tail input reads CRI lines (multiline.parser cri)")
kparse = one(kube, "FILTER", "parser")
is_((kparse.get("key_name"), kparse.get("parser"), kparse.get("reserve_data", "").lower()),
    ("log", "connectd_json", "off"), "kubernetes: a parser filter reads log with connectd_json, keeps only it")
kgrep = one(kube, "FILTER", "grep")
gkey, _, grx = kgrep.get("regex", "").partition(" ")
is_(gkey, "stream", "kubernetes: a grep filter on stream")
names = [f.get("name") for f in sections(kube, "FILTER")]
is_(names, ["grep", "parser", "lua"], "kubernetes: grep, then parser, then lua")

# ------------------------------------------------------------ real lines

BIG = "x" * 20000
POD = {"namespace": "ci", "name": "runner-\u00e9\u6f22", "uid": "6f1c2a9e",
       "labels": {"app.kubernetes.io/name": "ci-runner", "tier": "a \"quoted\" \\ value"},
       "annotations": {"example.com/big": BIG}, "owner": {"kind": "Job", "name": "runner"},
       "host_network": False, "restarts": 3}
small = dict(POD, annotations={})
VALUES = {"127.0.1.1": small, "127.0.1.2": POD}
HELPER = r'''#!%s
import json, sys
V = json.loads(%r)
for line in sys.stdin:
    v = V.get(line.split()[0])
    if v is None:
        sys.stdout.write("ERR\n")
    else:
        t = json.dumps(v).replace("\\", "\\\\").replace('"', '\\"')
        sys.stdout.write('OK log="' + t + '"\n')
    sys.stdout.flush()
''' % (hu.PY, json.dumps(VALUES))
helper = hu.script("helper80.py", HELPER)
echo = h.EchoServer()
web = h.HttpOrigin()
with h.Connectd("access_log_interval 1 second\n"
                "external_acl_type meta log-wait=10 children-startup=2 %%SRC %s\n"
                "http_access allow all\n" % helper, name="fb") as cd:
    c = hu.Client(cd.port, echo.authority, src="127.0.1.1")
    c.echo(b"hello")
    cd.wait_lines(1, pred=lambda x: x.get("record") == "interim")
    c.close()
    c = hu.Client(cd.port, echo.authority, src="127.0.1.2")
    c.echo(b"big pod")
    c.close()
    r = h.ProxyClient(cd.port)
    r.request(b"CONNECT \"q\xff\xfe\":443 HTTP/1.1\r\nUser-Agent: a\"b\\c\xc3\r\n\r\n")
    r = h.ProxyClient(cd.port)
    r.request(b"GET http://%s/p?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % web.authority.encode())
    cd.wait_lines(4, pred=lambda x: x.get("record") == "final")
raw = cd.log.byte_lines()
ok(len(raw) >= 5, "connectd wrote %d lines" % len(raw))
ok(any(len(ln) > 16384 for ln in raw), "one line is over 16 KiB (%d bytes)" % max(len(ln) for ln in raw))

# the host: tail + connectd_json
recs = []
bad = []
for ln in raw:
    try:
        rec = json.loads(ln.decode("utf-8"))
        if not isinstance(rec, dict):
            raise ValueError("not a map")
        if fb_time(rec[pj["time_key"]], pj["time_format"]) != utc(rec["ts"]):
            raise ValueError("time %r" % rec[pj["time_key"]])
        recs.append(rec)
    except (ValueError, KeyError) as e:
        bad.append((ln[:200], e))
is_(bad, [], "host: every line parses with connectd_json and its time is ts (%d lines)" % len(raw))

# Kubernetes: containerd's CRI lines, long ones in 16 KiB pieces
now = time.time()
cri = []
for i, ln in enumerate(raw):
    t = datetime.datetime.fromtimestamp(now + i, datetime.timezone.utc)
    stamp = t.strftime("%Y-%m-%dT%H:%M:%S.") + "%09d" % (t.microsecond * 1000 + 123) + "Z"
    pieces = [ln[j:j + 16384] for j in range(0, len(ln), 16384)]
    for k, p in enumerate(pieces):
        cri.append((i, t, stamp.encode() + b" stdout " + (b"F " if k == len(pieces) - 1 else b"P ") + p))
cri.append((None, None, b"2026-12-01T17:43:49.331123456Z stderr F connectd: signal 15: shutting down"))
joined, errs, kept = {}, [], 0
for i, t, line in cri:
    m = CRI.match(line)
    if not m:
        errs.append(("no match", line[:120]))
        continue
    if not re.search(grx, m.group("stream").decode()):
        if i is not None:
            errs.append(("dropped by grep", line[:120]))
        continue
    if i is None:
        errs.append(("stderr kept by grep", line[:120]))
        continue
    kept += 1
    got = fb_time(m.group("time").decode(), pc["time_format"])
    if got != t:
        errs.append(("time", m.group("time"), t))
    joined[i] = joined.get(i, b"") + m.group("log")
is_(errs, [], "kubernetes: every CRI line matches connectd_cri, its time is the runtime's, "
    "grep keeps stdout only (%d pieces)" % kept)
is_([joined.get(i) for i in range(len(raw))], raw, "kubernetes: the pieces of each line join into the line")
bad = []
for i, ln in sorted(joined.items()):
    rec = json.loads(ln.decode("utf-8"))
    if fb_time(rec[pj["time_key"]], pj["time_format"]) != utc(rec["ts"]) or rec != recs[i]:
        bad.append(i)
is_(bad, [], "kubernetes: log parses with connectd_json as on the host, time ts")

# ---------------------------------------------------------------- the Lua


def lua_str(b):
    return '"' + "".join(chr(c) if 32 <= c < 127 and c not in (34, 92) else "\\%d" % c for c in b) + '"'


def lua_value(v):
    """A record as Fluent Bit hands it to Lua: a null is no key at all."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return lua_str(v.encode("utf-8"))
    if isinstance(v, list):
        return "{" + ",".join(lua_value(x) for x in v) + "}"
    return "{" + ",".join("[%s]=%s" % (lua_str(k.encode("utf-8")), lua_value(x))
                          for k, x in v.items() if x is not None) + "}"


def no_nulls(v):
    if isinstance(v, dict):
        return {k: no_nulls(x) for k, x in v.items() if x is not None}
    return v


LUA = shutil.which("luajit") or shutil.which("lua5.1") or shutil.which("lua")
if not LUA:
    skip("LuaJIT or Lua 5.1 not installed", 4)
else:
    script = os.path.join(FB, one(kube, "FILTER", "lua")["script"])
    call = one(kube, "FILTER", "lua")["call"]
    driver = h.tmpfile("driver.lua", "dofile(%s)\nlocal records = {%s}\n"
                       "for _, r in ipairs(records) do\n"
                       "  local code, ts, out = %s('connectd.access', 1.5, r)\n"
                       "  local keys = 0\n"
                       "  for _ in pairs(out) do keys = keys + 1 end\n"
                       "  io.write(code, '\\t', ts, '\\t', keys, '\\t', type(out.pod) == 'string' and out.pod or '-', '\\n')\n"
                       "end\n" % (lua_str(script.encode()), ",\n".join(lua_value(r) for r in recs), call))
    rc, out, err = h.run([LUA, driver], timeout=30)
    is_((rc, err), (0, ""), "%s runs connectd-pod.lua on %d records" % (os.path.basename(LUA), len(recs)))
    res = [ln.split("\t", 3) for ln in out.splitlines()]
    wrong = []
    rows = []
    for rec, r in zip(recs, res):
        want = no_nulls(rec)
        if isinstance(rec.get("pod"), dict):
            if r[0] != "2" or json.loads(r[3]) != want["pod"] or int(r[2]) != len(want):
                wrong.append((rec.get("uid"), r[:3]))
            rows.append(dict(want, pod=r[3]))
        else:
            if r[0] != "0":
                wrong.append((rec.get("uid"), r[:3]))
            rows.append(want)
    is_(len(res), len(recs), "one result per record")
    is_(wrong, [], "pod comes out as its JSON text (code 2), records without a pod untouched (code 0)")
    with_pod = [x for x in rows if "pod" in x]
    ok(len(with_pod) >= 3, "%d records had a pod object" % len(with_pod))
    errs = []
    for x in rows:
        pod = x.get("pod")
        if pod is not None and not (isinstance(pod, str) and isinstance(json.loads(pod), dict)):
            errs.append("pod is not JSON text of an object")
        errs += h.schema_errors(dict(x, pod=json.loads(pod) if isinstance(pod, str) else pod))
    is_(errs, [], "every row fits the schema, pod as a JSON string (streaming insert)")
done()
