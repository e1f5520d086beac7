#!/usr/bin/env python3
"""99-policy-learn.t: connectd-learn (issue 15), an egress.connectd.io/allow
list per workload from connectd's json lines.

connectd runs with podmeta (--source file:) naming the pods of 127.0.9.x:
two pods of Deployment shop/web (ReplicaSet web-5c8d7f9b6d, label
pod-template-hash 5c8d7f9b6d), StatefulSet shop/db, a bare pod tools/debug,
a pod of ReplicaSet shop/batch-abc12 whose hash label does not match its
name, and an address no pod has.  They make tunnels (an echo origin, names
from a hosts file), plain-HTTP requests, a tunnel with a TLS hello whose SNI
names another host, one denied by a rule, and one long enough for interim
records.  Expectations, on connectd-learn's output for that log (and a file
of made-up lines beside it):
  - --json: one object per workload, sorted; exact destinations and counts
    (tunnels and requests, denied, would_deny from a policy field), the
    Deployment named from its ReplicaSet, the mismatched ReplicaSet left
    as it is, the bare pod as kind Pod, IP literals as /32 and /128 CIDRs
    (IPv6 bracketed), the SNI listed (via sni), interim lines not counted;
    first and last ts; the suggested value sorted, without what was only
    denied; a command that a shell splits into kubectl patch of the pod
    template (a JSON body naming the value) or kubectl annotate of a pod;
  - --collapse N: N names under one parent of two labels or more become
    *.PARENT:PORT, N+1 leaves them;
  - the text output: a block per workload, the value, the command, and the
    namespace's annotate line;
  - every suggested value passes a check of the spec's grammar;
  - hostile lines (not JSON, not an object, pod null, pod a string, a huge
    host, missing fields, wrong types, a line over --max-line, NUL bytes,
    deep nesting) are counted under their reason in the stderr summary,
    never used, never a crash; stdin works as a file does;
  - --since/--until/--namespace filter, --max-entries caps (counted as
    over_cap); exit 1 for a file that cannot be read, 2 for a usage error;
  - conf/learn.sql, the man page's BigQuery SQL, parses as BigQuery SQL
    (sqlfluff, else sqlglot; skipped without either) and is the man page's.
"""
import ipaddress
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import helper_util as hu
import tap
from k8sapi import fixtures as kf
from tap import ok, is_, like, diag, done
from tls_util import hello

h.need_connectd()
PM = hu.need_podmeta(tap)
LEARN = os.environ.get("CONNECTD_LEARN") or os.path.join(
    os.path.dirname(os.path.dirname(h.connectd_bin())), "learn", "connectd-learn")
if not os.access(LEARN, os.X_OK):
    tap.skip_all("connectd-learn not built (CONNECTD_LEARN=%r)" % LEARN)
h.watchdog(240)
ANN = "egress.connectd.io/allow"
HASH = "5c8d7f9b6d"
SRC = {"web1": "127.0.9.1", "web2": "127.0.9.2", "db": "127.0.9.3", "debug": "127.0.9.4",
       "batch": "127.0.9.5", "nobody": "127.0.9.99"}

# ---------------------------------------------------------------- the pods
pods = [
    kf.make_pod("web-%s-x2k4p" % HASH, ip=SRC["web1"], namespace="shop", owner="ReplicaSet",
                owner_name="web-" + HASH, labels={"app": "web", "pod-template-hash": HASH}, slim=True),
    kf.make_pod("web-%s-q7r8s" % HASH, ip=SRC["web2"], namespace="shop", owner="ReplicaSet",
                owner_name="web-" + HASH, labels={"app": "web", "pod-template-hash": HASH}, slim=True),
    kf.make_pod("db-0", ip=SRC["db"], namespace="shop", owner="StatefulSet", owner_name="db",
                labels={"app": "db"}, slim=True),
    kf.make_pod("debug", ip=SRC["debug"], namespace="tools", owner=None, labels={"run": "debug"},
                slim=True),
    kf.make_pod("batch-abc12-zz9yy", ip=SRC["batch"], namespace="shop", owner="ReplicaSet",
                owner_name="batch-abc12", labels={"pod-template-hash": "ffff0"}, slim=True),
]
pods_path = hu.write_pods(h.tmpfile("pods.json"), pods)

NAMES = ["a.cdn.test", "b.cdn.test", "c.cdn.test", "registry.test", "api.shop.test",
         "blocked.test", "tls.test"]
hosts = h.tmpfile("hosts", "".join("127.0.0.1 %s\n" % n for n in NAMES))

echo = h.EchoServer()
web = h.HttpOrigin()
E, W = echo.port, web.port
V6 = h.have_ipv6_loopback()
echo6 = h.EchoServer(host="::1") if V6 else None

conf = ("external_acl_type podmeta ttl=60 children-max=1 concurrency=20 "
        "%%SRC %s --source file:%s\n" % (PM, pods_path) +
        "hosts_file %s\n" % hosts +
        "tls_peek on\n"
        "access_log_interval 1 second\n"
        "acl blocked dstdomain blocked.test\n"
        "acl test_clients src 127.0.0.0/8 ::1\n"
        "http_access deny blocked\n"
        "http_access allow test_clients\n"
        "http_access deny all\n")


def tunnel(cd, who, authority, data=b"ping", want=200):
    c = hu.Client(cd.port, authority, src=SRC[who])
    is_(c.status, want, "%s: CONNECT %s -> %s" % (who, authority, want))
    if c.status == 200 and data:
        is_(c.echo(data), data, "... echoed")
    c.close()
    return c


def get(cd, who, host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10 * h.SLOW)
    s.bind((SRC[who], 0))
    s.connect(("127.0.0.1", cd.port))
    s.sendall(("GET http://%s:%d/ HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n" %
               (host, port, host, port)).encode())
    got = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
    except OSError:
        pass
    s.close()
    like(got[:40].decode("latin-1"), r"^HTTP/1\.1 200", "%s: GET http://%s:%d/ -> 200" % (who, host, port))


finals = 0
with h.Connectd(conf, name="learn") as cd:
    # web (two pods of one Deployment): three names under cdn.test, a registry, an API
    tunnel(cd, "web1", "a.cdn.test:%d" % E)
    tunnel(cd, "web1", "b.cdn.test:%d" % E)
    tunnel(cd, "web1", "c.cdn.test:%d" % E)
    tunnel(cd, "web1", "registry.test:%d" % E)
    tunnel(cd, "web1", "Registry.TEST:%d" % E)          # the same destination, differently written
    get(cd, "web1", "api.shop.test", W)
    tunnel(cd, "web2", "a.cdn.test:%d" % E)
    tunnel(cd, "web2", "registry.test:%d" % E)
    finals += 8
    # db: an IP literal with a hello naming tls.test, tls.test itself, one denied,
    # one long tunnel (interim records), IPv6
    tunnel(cd, "db", "127.0.0.1:%d" % E, data=hello(b"tls.test"))
    tunnel(cd, "db", "tls.test:%d" % E, data=hello(b"TLS.test"))
    tunnel(cd, "db", "blocked.test:%d" % E, want=403)
    finals += 3
    c = hu.Client(cd.port, "127.0.0.1:%d" % E, src=SRC["db"])
    is_(c.status, 200, "db: a long tunnel")
    c.echo(b"one")
    ok(h.wait_for(lambda: len([x for x in cd.lines() if x.get("record") == "interim" and
                               x.get("client_port") == c.local_port]) >= 2, 20),
       "... it has interim records")
    c.echo(b"two")
    c.close()
    finals += 1
    if V6:
        tunnel(cd, "db", "[::1]:%d" % echo6.port)
        finals += 1
    # the bare pod, the mismatched ReplicaSet, no pod
    tunnel(cd, "debug", "registry.test:%d" % E)
    get(cd, "debug", "api.shop.test", W)
    tunnel(cd, "batch", "api.shop.test:%d" % E)
    tunnel(cd, "nobody", "registry.test:%d" % E)
    finals += 4
    lines = cd.wait_lines(finals, timeout=20, pred=lambda x: x.get("record") == "final")
    is_(len(lines), finals, "%d final lines" % finals)
    interims = [x for x in cd.lines() if x.get("record") == "interim"]
    ok(len(interims) >= 2, "and %d interim lines" % len(interims))
    ok(all(isinstance(x.get("pod"), dict) for x in lines if x.get("client_ip") != SRC["nobody"]),
       "every pod's line names its pod")
    log_path = cd.stdout_path
with open(log_path) as f:
    log_text = f.read()
log_lines = [json.loads(x) for x in log_text.splitlines() if x.strip()]
n_interim = sum(1 for x in log_lines if x.get("record") == "interim")
n_final = len(log_lines) - n_interim
sample = next(x for x in log_lines if x.get("record") == "final" and isinstance(x.get("pod"), dict)
              and x["pod"].get("name", "").startswith("web-"))
diag("a line: %s" % json.dumps(sample)[:600])


# ---------------------------------------------------------------- running it
def learn(*args, input=None):
    rc, out, err = h.run([LEARN] + [str(a) for a in args], timeout=60, input=input)
    return rc, out, err


def summary(err):
    m = re.search(r"connectd-learn: (\d+) lines read, (\d+) used, (\d+) skipped \(([^)]*)\), "
                  r"(\d+) filtered, (\d+) over_cap \(--max-entries (\d+)\), (\d+) bad_sni; "
                  r"(\d+) workloads, (\d+) destinations", err)
    if not m:
        return None
    reasons = dict((k, int(v)) for k, v in (p.rsplit(" ", 1) for p in m.group(4).split(", ")))
    return {"read": int(m.group(1)), "used": int(m.group(2)), "skipped": int(m.group(3)),
            "reasons": reasons, "filtered": int(m.group(5)), "over_cap": int(m.group(6)),
            "bad_sni": int(m.group(8)), "workloads": int(m.group(9)), "dests": int(m.group(10))}


def by_key(out):
    objs = [json.loads(x) for x in out.splitlines() if x.strip()]
    return objs, {(o["namespace"], o["kind"], o["name"]): o for o in objs}


NAME_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)"
                     r"(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$")


def valid_allow(value):
    """The spec's grammar for egress.connectd.io/allow: (error or None, entries)."""
    entries = [e for e in re.split(r"[,\s]+", value) if e]
    if len(entries) > 4096:
        return "more than 4096 entries", entries
    for i, e in enumerate(entries, 1):
        m = re.match(r"^\[([^\]]+)\](?::([^:]+))?$", e)
        if m:
            host, port = m.group(1), m.group(2)
            try:
                if ipaddress.ip_network(host, strict=True).version != 6:
                    return "entry %d %r: brackets around a non-IPv6" % (i, e), entries
            except ValueError:
                return "entry %d %r: not an IPv6 address or CIDR" % (i, e), entries
        else:
            host, _, port = e.partition(":") if e.count(":") == 1 else (e, "", None)
            if e.count(":") > 1:
                return "entry %d %r: an IPv6 entry with a port must be bracketed" % (i, e), entries
            port = port or None
            if host == "*":
                pass
            elif re.match(r"^[0-9./]+$", host):
                try:
                    ipaddress.ip_network(host, strict=True)
                except ValueError:
                    return "entry %d %r: not an IPv4 address or CIDR" % (i, e), entries
            else:
                name = host[2:] if host.startswith("*.") else host
                if not NAME_RE.match(name.rstrip(".").lower()):
                    return "entry %d %r: not a host name" % (i, e), entries
        if port is not None and port != "*":
            if not re.match(r"^[0-9]+$", port) or not 1 <= int(port) <= 65535:
                return "entry %d %r: bad port" % (i, e), entries
    return None, entries


def check_allow(value, what):
    err, entries = valid_allow(value)
    ok(err is None, "%s: the suggested value passes the spec's grammar (%d entries)%s" %
       (what, len(entries), "" if err is None else ": " + err))
    is_(entries, sorted(entries), "%s: ... its entries sorted" % what)


# ---------------------------------------------------------------- --json
rc, out, err = learn("--json", log_path)
is_(rc, 0, "connectd-learn --json LOG: exit 0")
s = summary(err)
ok(s is not None, "... a summary on stderr: %s" % err.strip()[-400:])
objs, wl = by_key(out)
is_([k for k in wl], sorted(wl), "one object per workload, sorted")
want_keys = {("shop", "Deployment", "web"), ("shop", "StatefulSet", "db"),
             ("tools", "Pod", "debug"), ("shop", "ReplicaSet", "batch-abc12")}
is_(set(wl), want_keys, "the workloads: Deployment web (from ReplicaSet web-%s), StatefulSet db, "
    "Pod debug, ReplicaSet batch-abc12 (hash label does not match)" % HASH)
if s:
    is_(s["read"], n_final + n_interim, "summary: every line read")
    is_(s["reasons"].get("interim"), n_interim, "summary: the %d interim lines skipped" % n_interim)
    is_(s["reasons"].get("no_pod"), 1, "summary: the line of no pod skipped")
    is_(s["used"], n_final - 1, "summary: every other final line used")
    is_((s["workloads"], s["filtered"], s["over_cap"]), (4, 0, 0), "summary: 4 workloads")


def dests(o):
    return {d["entry"]: (d["count"], d["denied"], d["would_deny"], d["via"]) for d in o["destinations"]}


w = wl.get(("shop", "Deployment", "web"), {})
is_(dests(w), {"a.cdn.test:%d" % E: (2, 0, 0, "host"), "b.cdn.test:%d" % E: (1, 0, 0, "host"),
               "c.cdn.test:%d" % E: (1, 0, 0, "host"), "registry.test:%d" % E: (3, 0, 0, "host"),
               "api.shop.test:%d" % W: (1, 0, 0, "host")},
    "web: both pods' tunnels and the request, counted by host:port (Registry.TEST is registry.test)")
is_(w.get("lines"), 8, "web: 8 lines")
is_(w.get("suggested"), sorted(["a.cdn.test:%d" % E, "b.cdn.test:%d" % E, "c.cdn.test:%d" % E,
                                 "api.shop.test:%d" % W, "registry.test:%d" % E]),
    "web: the suggestion, sorted, no collapse by default")
is_(w.get("annotation"), ",".join(w.get("suggested", [])), "web: the annotation is the entries joined")
web_ts = sorted(x["ts"] for x in log_lines if x.get("record") == "final" and
                isinstance(x.get("pod"), dict) and x["pod"].get("name", "").startswith("web-"))
is_((w.get("first"), w.get("last")), (web_ts[0], web_ts[-1]), "web: first and last ts")

d = wl.get(("shop", "StatefulSet", "db"), {})
want = {"127.0.0.1/32:%d" % E: (2, 0, 0, "host"), "tls.test:%d" % E: (2, 0, 0, "host+sni"),
        "blocked.test:%d" % E: (1, 1, 0, "host")}
if V6:
    want["[::1/128]:%d" % echo6.port] = (1, 0, 0, "host")
is_(dests(d), want, "db: the IP literal as a /32 (the long tunnel once: no interim counted), the SNI "
    "listed (host+sni), the denied one%s" % (", IPv6 as a bracketed /128" if V6 else ""))
is_((d.get("lines"), d.get("denied")), (4 + V6, 1), "db: lines and denied")
ok("blocked.test:%d" % E not in d.get("suggested", []), "db: what was only denied is not suggested")
is_(d.get("suggested"), sorted(e for e in want if not e.startswith("blocked")), "db: the suggestion")

p = wl.get(("tools", "Pod", "debug"), {})
is_(dests(p), {"registry.test:%d" % E: (1, 0, 0, "host"), "api.shop.test:%d" % W: (1, 0, 0, "host")},
    "debug (a bare pod): its two destinations")
b = wl.get(("shop", "ReplicaSet", "batch-abc12"), {})
is_(dests(b), {"api.shop.test:%d" % E: (1, 0, 0, "host")}, "batch-abc12: its destination")

for key, o in sorted(wl.items()):
    check_allow(o["annotation"], "%s/%s/%s" % key)
    argv = shlex.split(o["command"])
    if key[1] == "Pod":
        is_(argv[:5], ["kubectl", "annotate", "--overwrite", "-n", key[0]], "%s: kubectl annotate" % key[2])
        is_(argv[5:], ["pod/" + key[2], "%s=%s" % (ANN, o["annotation"])], "... the pod and the value")
    else:
        is_(argv[:5], ["kubectl", "patch", "-n", key[0], "%s/%s" % (key[1].lower(), key[2])],
            "%s/%s: kubectl patch of the controller" % (key[1], key[2]))
        body = json.loads(argv[-1]) if argv[-2:-1] == ["-p"] else None
        is_(body, {"spec": {"template": {"metadata": {"annotations": {ANN: o["annotation"]}}}}},
            "... its pod template's annotation, a JSON merge patch")

# ---------------------------------------------------------------- --collapse
rc, out, err = learn("--json", "--collapse", "3", log_path)
_, c3 = by_key(out)
w3 = c3.get(("shop", "Deployment", "web"), {})
is_(w3.get("suggested"), sorted(["*.cdn.test:%d" % E, "api.shop.test:%d" % W, "registry.test:%d" % E]),
    "--collapse 3: a., b., c.cdn.test become *.cdn.test")
is_(dests(w3), dests(w), "--collapse 3: the counts are the same")
check_allow(w3.get("annotation", ""), "--collapse 3")
rc, out, err = learn("--json", "--collapse", "4", log_path)
_, c4 = by_key(out)
is_(c4.get(("shop", "Deployment", "web"), {}).get("suggested"), w.get("suggested"),
    "--collapse 4: three names stay as they are")
rc, out, err = learn("--json", "--collapse", "2", log_path)
_, c2 = by_key(out)
is_(c2.get(("shop", "StatefulSet", "db"), {}).get("suggested"), d.get("suggested"),
    "--collapse 2: tls.test (two labels) is never collapsed, nor an IP")

# ---------------------------------------------------------------- text
rc, out, err = learn("--collapse", "3", log_path)
is_(rc, 0, "text output: exit 0")
blocks = {}
for blk in out.split("\n\n"):
    m = re.match(r"^(\S+)/(\S+)/(\S+): (\d+) lines, (\d+) denied, (\d+) would_deny", blk)
    if m:
        blocks[m.group(1, 2, 3)] = blk
is_(set(blocks), want_keys, "text: a block per workload")
tw = blocks.get(("shop", "Deployment", "web"), "")
like(tw, r"(?m)^shop/Deployment/web: 8 lines, 0 denied, 0 would_deny, ", "text: web's header")
like(tw, r"(?m)^\s+registry\.test:%d\s+host\s+3\s+0\s+0\s" % E, "text: web's table row for registry.test")
like(tw, r"(?m)^\s+%s=\*\.cdn\.test:%d,api\.shop\.test:%d,registry\.test:%d$" % (re.escape(ANN), E, W, E),
     "text: web's suggested annotation")
like(tw, r"(?m)^\s+kubectl patch -n shop deployment/web --type merge -p '\{\"spec\":\{\"template\":",
     "text: web's kubectl patch of the pod template")
like(blocks.get(("shop", "StatefulSet", "db"), ""), r"(?m)^\s+tls\.test:%d\s+host\+sni\s+2\s" % E,
     "text: db's SNI row")
like(blocks.get(("tools", "Pod", "debug"), ""),
     r"(?m)^\s+kubectl annotate --overwrite -n tools pod/debug %s='" % re.escape(ANN),
     "text: debug's kubectl annotate")
m = re.search(r"(?m)^\s+kubectl annotate --overwrite namespace shop %s='([^']*)'$" % re.escape(ANN), out)
ok(m, "text: the namespace's annotate line")
if m:
    check_allow(m.group(1), "namespace shop")
    ok("*.cdn.test:%d" % E in m.group(1).split(",") and "tls.test:%d" % E in m.group(1).split(","),
       "... the union of its workloads")

# ---------------------------------------------------------------- stdin
rc, out_stdin, err = learn("--json", "-", input=log_text)
rc2, out_file, _ = learn("--json", log_path)
ok(rc == 0 and out_stdin == out_file and out_file, "stdin (-) gives what the file gives")
rc, out_stdin, err = learn("--json", input=log_text)
ok(rc == 0 and out_stdin == out_file, "no file: stdin")

# ---------------------------------------------------------------- hostile lines
web_line = next(x for x in log_lines if x.get("record") == "final" and isinstance(x.get("pod"), dict)
                and x["pod"].get("name", "").startswith("web-") and x.get("host") == "a.cdn.test")


def variant(**kw):
    x = json.loads(json.dumps(web_line))
    for k, v in kw.items():
        if v is Ellipsis:
            x.pop(k, None)
        else:
            x[k] = v
    return json.dumps(x)


skip_lines = {
    "not_json": ["not json at all", "{", '{"ts": 1,,}', "\x00\x01\x02garbage\x00", "[" * 100000,
                 '{"a":"\\ud800"}' + "x"],
    "not_object": ["[1,2,3]", "42", '"a string"', "null"],
    "no_pod": [variant(pod=None), variant(pod=Ellipsis), variant(pod={"ip": "10.0.0.9", "pod": None})],
    "host_network": [variant(pod={"ip": "172.18.0.3", "node": "node-a", "host_network": True,
                                  "ambiguous": True})],
    "bad_pod": [variant(pod="shop/web"), variant(pod=[1]), variant(pod={}),
                variant(pod={"namespace": 5, "name": "x"}),
                variant(pod=dict(web_line["pod"], name="a b; rm -rf /")),
                variant(pod=dict(web_line["pod"], namespace="n" * 300)),
                variant(pod=dict(web_line["pod"], namespace="-n")),
                variant(pod=dict(web_line["pod"], name="--all"))],
    "bad_host": [variant(host="h" * 100000), variant(host="a..b"), variant(host="bad host"),
                 variant(host="x'y"), variant(host=""),
                 variant(host="-a.test"), variant(host="a-.test"), variant(host="a.test-"),
                 variant(host="a" * 64 + ".test"), variant(host="1.2.3.4.5")],
    "no_destination": [variant(host=Ellipsis), variant(host=None), variant(host=7),
                       variant(port="443"), variant(port=Ellipsis), variant(port=70000),
                       variant(port=0), variant(port=-1), variant(port=1.5)],
    "bad_ts": [variant(ts=Ellipsis), variant(ts=12345), variant(ts="yesterday"),
               variant(ts="2026-13-01T00:00:00Z")],
    "not_final": [variant(record=Ellipsis), variant(record=1), variant(record="FINAL")],
    "interim": [variant(record="interim")],
    "blank": ["", "   "],
}
# made-up lines that are used: a would_deny verdict, wrong types where a value is optional,
# an IPv6 literal, an old line, a name's SNI that is an IP
used_lines = [
    variant(host="new.test", port=443, policy={"mode": "report", "verdict": "would_deny",
                                                "rule": None, "from": "pod", "reason": "host_not_listed"}),
    variant(host="x.test", port=443, status="403", close=5, tls="tls", policy="policy"),
    variant(host="y.test", port=443, tls={"sni": 5}),
    variant(host="z.test", port=443, tls={"sni": "bad sni!"}),
    variant(host="2001:DB8::7", port=8443),
    variant(host="[2001:db8::8]", port=8443),
    variant(host="old.test", port=443, ts="2020-01-01T01:00:00.5+02:00"),
    variant(host="10.1.2.3", port=443, close="denied", status=200),
    variant(host="Dot.Test.", port=443),
    variant(host="owner.test", port=443, pod=dict(web_line["pod"], name="odd-pod",
                                                  owner={"kind": "-x", "name": "--all"})),
]
too_long = "{" + " " * (2 * 1024 * 1024) + "}"
hostile = h.tmpfile("hostile.jsonl")
with open(hostile, "wb") as f:
    for r, ls in skip_lines.items():
        for x in ls:
            f.write(x.encode("utf-8", "surrogatepass") + b"\n")
    for x in used_lines:
        f.write(x.encode() + b"\n")
    f.write(too_long.encode() + b"\n")
    f.write(b"\xff\xfe not utf-8 \xc0\x80\n")
    f.write(variant(host="last.test").encode())          # no newline at the end
n_hostile = sum(len(v) for v in skip_lines.values()) + len(used_lines) + 3
rc, out, err = learn("--json", hostile)
is_(rc, 0, "hostile lines: exit 0")
ok("Sanitizer" not in err and "runtime error" not in err, "... no sanitizer report")
s = summary(err)
ok(s is not None, "... a summary: %s" % err.strip()[-600:])
if s:
    is_(s["read"], n_hostile, "... every line read (%d)" % n_hostile)
    want_r = {r: len(v) for r, v in skip_lines.items()}
    want_r["not_json"] += 1                               # the bytes that are not UTF-8
    want_r["too_long"] = 1
    is_({r: v for r, v in s["reasons"].items() if v}, want_r, "... each skipped line under its reason")
    is_(s["used"], len(used_lines) + 1, "... the good ones used")
    is_(s["bad_sni"], 1, "... an SNI that is no name counted, its line used")
objs, hw = by_key(out)
hd = dests(hw.get(("shop", "Deployment", "web"), {"destinations": []}))
is_(hd.get("new.test:443"), (1, 0, 1, "host"), "a would_deny verdict counted")
is_(hd.get("x.test:443"), (1, 0, 0, "host"), "wrong types in optional fields: ignored, line used")
is_(hd.get("[2001:db8::7/128]:8443"), (1, 0, 0, "host"), "an IPv6 host: a bracketed /128, lowercase")
is_(hd.get("[2001:db8::8/128]:8443"), (1, 0, 0, "host"), "a bracketed IPv6 host too")
is_(hd.get("10.1.2.3/32:443"), (1, 1, 0, "host"), "close denied counts as denied")
is_(hd.get("dot.test:443"), (1, 0, 0, "host"), "a host lowercased, without its trailing dot")
is_(hd.get("last.test:%d" % web_line["port"]), (1, 0, 0, "host"), "a last line without a newline counts")
ok(not any("h" * 300 in e for e in hd), "the huge host is nowhere")
is_(list(dests(hw.get(("shop", "Pod", "odd-pod"), {"destinations": []}))), ["owner.test:443"],
    "an owner whose kind or name is no Kubernetes name: the pod is its own workload")
ok(not any(o["name"].startswith("-") or o["namespace"].startswith("-") for o in objs),
   "no workload's name or namespace could be taken for an option")
for o in objs:
    check_allow(o["annotation"], "hostile: %s/%s" % (o["kind"], o["name"]))

# ---------------------------------------------------------------- filters, cap, exit
rc, out, err = learn("--json", "--since", "2025-01-01T00:00:00Z", hostile)
s = summary(err)
ok(s and s["filtered"] == 1 and "old.test:443" not in dests(by_key(out)[1][("shop", "Deployment", "web")]),
   "--since: the old line filtered out (%s)" % (s and s["filtered"]))
rc, out, err = learn("--json", "--until", "2020-01-01T00:00:01+01:00", hostile)
_, u = by_key(out)
is_([(k, list(dests(o))) for k, o in u.items()], [(("shop", "Deployment", "web"), ["old.test:443"])],
    "--until: only the old line")
is_(u.get(("shop", "Deployment", "web"), {}).get("first"), "2019-12-31T23:00:00.500Z",
    "... its ts in UTC, with milliseconds")
rc, out, err = learn("--json", "--namespace", "tools", log_path)
is_(list(by_key(out)[1]), [("tools", "Pod", "debug")], "--namespace tools: only its workload")
rc, out, err = learn("--json", "--max-entries", "3", log_path, hostile)
s = summary(err)
ok(rc == 0 and s and s["dests"] == 3 and s["over_cap"] > 0,
   "--max-entries 3: 3 destinations kept, the rest counted over_cap (%s)" % (s and s["over_cap"]))
ok(sum(o["over_cap"] for o in by_key(out)[0]) > 0, "... and on the workload")
missing = os.path.join(h.tmpdir(), "no-such-log")
rc, out, err = learn("--json", missing, log_path)
is_(rc, 1, "a file that cannot be read: exit 1")
like(err, re.escape(missing) + r": No such file", "... named on stderr")
ok(out.strip(), "... the others still reported")
for args in (["--collapse", "x"], ["--since", "yesterday"], ["--until", "2026-01-01"],
             ["--max-entries", "0"], ["--namespace", "a b"], ["--no-such-option"]):
    rc, out, err = learn(*args, input="")
    is_(rc, 2, "usage error %s: exit 2 (%r)" % (" ".join(args), err.strip()[-120:]))
rc, out, err = learn("-h")
ok(rc == 0 and "usage: connectd-learn" in out, "-h: usage on stdout, exit 0")

# ---------------------------------------------------------------- the SQL
sql = os.path.join(h.topdir(), "conf", "learn.sql")
ok(os.path.getsize(sql) > 500, "conf/learn.sql is there")
checked = False
if shutil.which("sqlfluff"):
    rc, out, err = h.run(["sqlfluff", "parse", "--dialect", "bigquery", sql], timeout=120)
    ok(rc == 0 and "unparsable" not in out.lower(),
       "sqlfluff parses conf/learn.sql as BigQuery SQL (rc %r)" % rc)
    if rc != 0:
        diag((out + err)[-2000:])
    checked = True
else:
    try:
        import sqlglot
    except ImportError:
        sqlglot = None
    if sqlglot is not None:
        try:
            stmts = sqlglot.parse(open(sql).read(), read="bigquery")
        except Exception as e:          # sqlglot's ParseError, TokenError
            stmts = [str(e)[:300], None]
        ok(len(stmts) == 1, "sqlglot parses conf/learn.sql as one BigQuery statement (%r)" % stmts[:1])
        checked = True
if not checked:
    tap.skip("no sqlfluff nor sqlglot: conf/learn.sql not parsed")
man = os.path.join(h.topdir(), "man", "connectd-learn.1")
if h.have("man"):
    env = dict(os.environ, LC_ALL="C", LANG="C", MANWIDTH="200", MANPAGER="cat", PAGER="cat")
    rc, page, err = h.run(["man", "-l", man], timeout=30, env=env)
    page = re.sub(r".\x08", "", page)
    flat = " ".join(page.split())
    body = [ln.strip() for ln in open(sql) if ln.strip() and not ln.strip().startswith("--")]
    gone = [ln for ln in body if " ".join(ln.split()) not in flat]
    is_(gone, [], "connectd-learn(1) carries conf/learn.sql's statement")
else:
    tap.skip("man not installed: connectd-learn(1) not compared with conf/learn.sql")
done()
