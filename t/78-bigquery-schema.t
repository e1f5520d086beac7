#!/usr/bin/env python3
"""78-bigquery-schema.t: every kind of json line loads into BigQuery.

conf/bigquery-schema.json is the table schema (bq mk --schema) of the
json format.  This test checks the schema itself (valid BigQuery column
names and types, the same fields, types and nullability as the table in
connectd.conf(5)), that the validator every test runs at its end
(harness.schema_errors, from Connectd.finish) rejects what BigQuery would,
and then makes one connectd write a line of every kind and checks each:
  - a tunnel whose helper answers a JSON object with dotted label keys
    (kept as they are: "pod" is a JSON column), and its interim records;
  - a denied CONNECT (403, rule), a bad request (400, host/port null), a
    head that times out (408), a partial head the client gives up on
    (status 0, never null: Squid's %>Hs 000), a closed port (503), a
    forwarded plain-HTTP GET (scheme, url, http_status);
  - helpers that answer ERR (pod_error err), OK without log= (no_log),
    text that is not JSON (not_json: pod null, pod_raw the text; this was
    a string "pod" before), JSON that is not an object (not_object), a
    log= value over 1024 bytes (pod_raw cut on a character boundary), and
    one that answers too late (timeout);
  - a tunnel still open at SIGTERM (its final line says "shutdown").
Every line fits the schema; "pod" is an object or null, "status" an
integer; every uid is <16 hex>-<id>-<seq>, unique, with one prefix per
process (a second connectd has another), and "proxy" is visible_hostname
(by default the host name).  A JSON template beside the json log gets
Squid's %master_xaction (the id) and %>Hs (0, not null, when nothing was
sent)."""
import json
import os
import re
import socket
import sys
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import helper_util as hu
from tap import ok, is_, diag, done

h.need_connectd()
h.watchdog(90)

# ------------------------------------------------------------ the schema

SCHEMA = h.bigquery_schema()
names = [c.get("name") for c in SCHEMA]
ok(all(set(c) == {"name", "type", "mode", "description"} |
       ({"fields"} if c.get("type") == "RECORD" else set()) for c in SCHEMA),
   "every column has name, type, mode and description (and a RECORD its fields)")
ok(all(re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$", n or "") for n in names),
   "column names are valid BigQuery names (letters, digits, underscores)")
is_(len(set(names)), len(names), "column names are unique")
ok(all(c["type"] in ("STRING", "INTEGER", "BOOLEAN", "TIMESTAMP", "JSON", "RECORD") for c in SCHEMA)
   and all(c["mode"] in ("REQUIRED", "NULLABLE") for c in SCHEMA),
   "types and modes are BigQuery's")
col = {c["name"]: c for c in SCHEMA}
# policy (issue 15): a RECORD of exactly the five members, STRING NULLABLE
is_((col["policy"]["type"], col["policy"]["mode"]), ("RECORD", "NULLABLE"),
    "policy is a NULLABLE RECORD column")
is_([(f.get("name"), f.get("type"), f.get("mode"), bool(f.get("description")))
     for f in col["policy"]["fields"]],
    [(n, "STRING", "NULLABLE", True) for n in h.POLICY_MEMBERS],
    "its fields: mode, verdict, rule, from, reason, each a described NULLABLE STRING")
is_((col["ts"]["type"], col["start"]["type"]), ("TIMESTAMP", "TIMESTAMP"), "ts and start are TIMESTAMP")
is_((col["pod"]["type"], col["pod"]["mode"]), ("JSON", "NULLABLE"), "pod is a NULLABLE JSON column")
is_(col["status"]["mode"], "REQUIRED", "status is REQUIRED")
ok(all(col[n]["type"] == "INTEGER" for n in ("duration_ms", "id", "seq", "bytes_up", "bytes_down",
                                             "bytes_up_delta", "bytes_down_delta", "status")),
   "counters are INTEGER")

# the field table of connectd.conf(5): ".It Li a , b Ta type Ta null"
MANTYPE = {"timestamp": "TIMESTAMP", "integer": "INTEGER", "string": "STRING",
           "boolean": "BOOLEAN", "object": "JSON", "record": "RECORD"}
man = {}
with open(os.path.join(h.topdir(), "man", "connectd.conf.5")) as f:
    text = f.read()
table = text[text.index("The fields, in this order, with their type"):]
table = table[:table.index(".El")]
for ln in table.splitlines():
    m = re.match(r"^\.It Li (.+?) Ta (\w+) Ta (.+)$", ln)
    if m:
        for n in m.group(1).split(" , "):
            man[n.strip()] = (MANTYPE.get(m.group(2), m.group(2)),
                              "REQUIRED" if m.group(3).strip() == "never" else "NULLABLE")
is_(list(man), names, "connectd.conf(5) lists the schema's fields, in its order")
is_({n: man.get(n) for n in names}, {n: (col[n]["type"], col[n]["mode"]) for n in names},
    "connectd.conf(5) gives each field the schema's type and nullability")

# the validator: what BigQuery would refuse, it refuses
good = {"ts": "2026-11-23T18:17:03.456Z", "start": "2026-11-23T18:17:00.123Z", "duration_ms": 3333,
        "id": 7, "uid": "4f1c9a0e2b7d6c35-7-1", "seq": 1, "record": "final", "proxy": "p",
        "client_ip": "127.0.0.1", "client_port": 1, "status": 200, "bytes_up": 1, "bytes_down": 2,
        "bytes_up_delta": 1, "bytes_down_delta": 2, "request_in_connection": 1, "pod": {"a.b/c": 1}}
is_(h.schema_errors(good), [], "validator: a good line fits")
for name, change in (("status null", {"status": None}), ("pod a string", {"pod": "x"}),
                     ("ts without milliseconds", {"ts": "2026-11-23T18:17:03Z"}),
                     ("ts in month 13", {"ts": "2026-13-23T18:17:03.456Z"}),
                     ("a boolean id", {"id": True}), ("a float counter", {"bytes_up": 1.5}),
                     ("a field outside the schema", {"extra": 1}),
                     ("policy a string", {"policy": "allow"}),
                     ("a policy member a number", {"policy": {"mode": 1, "verdict": None,
                                                              "rule": None, "from": None,
                                                              "reason": None}}),
                     ("a policy member outside the schema", {"policy": {"mode": None, "verdict": None,
                                                                       "rule": None, "from": None,
                                                                       "reason": None, "x": "y"}}),
                     ("truncated not a boolean", {"truncated": 1})):
    bad = dict(good, **change)
    ok(h.schema_errors(bad), "validator: refuses %s (%s)" % (name, "; ".join(h.schema_errors(bad))))
bad = dict(good)
del bad["uid"]
ok(h.schema_errors(bad), "validator: refuses a REQUIRED field missing")
is_(h.schema_errors(dict(good, pod=None, detail=None)), [], "validator: NULLABLE may be null")
is_(h.schema_errors(dict(good, policy={"mode": "report", "verdict": "would_deny", "rule": None,
                                       "from": "pod", "reason": "host_not_listed"})), [],
    "validator: a policy object fits")

# --------------------------------------------------------------- the lines

LONG = "x" + "\u00e9" * 1500              # 3001 bytes; byte 1024 is inside an e-acute
ANSWERS = {
    "127.0.1.1": 'OK log="%s"',            # filled below: a JSON object
    "127.0.1.2": "ERR",
    "127.0.1.3": 'OK log="not json at all"',
    "127.0.1.4": 'OK log="\\"just a string\\""',
    "127.0.1.5": 'OK log="[1,2,3]"',
    "127.0.1.6": "OK",
    "127.0.1.7": "LATE",
    "127.0.1.8": 'OK log="%s"' % LONG,
}
POD = {"namespace": "ci", "name": "runner-1",
       "labels": {"app.kubernetes.io/name": "ci-runner", "pod-template-hash": "abc"},
       "annotations": {"example.com/team": "infra"}, "owner": {"kind": "Job", "name": "runner-1"}}
ANSWERS["127.0.1.1"] %= json.dumps(POD, separators=(",", ":")).replace("\\", "\\\\").replace('"', '\\"')
HELPER = r'''#!%s
import sys, time
ANSWERS = %r
for line in sys.stdin:
    a = ANSWERS.get(line.split()[0], "ERR")
    if a == "LATE":
        time.sleep(8)
        a = 'OK log="{}"'
    sys.stdout.buffer.write(a.encode() + b"\n")
    sys.stdout.buffer.flush()
''' % (hu.PY, ANSWERS)
helper = hu.script("helper78.py", HELPER)

echo = h.EchoServer(backlog=32)
web = h.HttpOrigin(body=b"hello from origin\n")
closed = h.free_port()
denied_port = h.free_port()
TXLOG = os.path.join(h.tmpdir(), "tx.log")
CONF = ("visible_hostname t78-proxy.example\n"
        "logformat tx {\"id\":%%master_xaction,\"status\":%%>Hs,\"port\":%%>p}\n"
        "access_log stdio:/dev/stdout json\n"
        "access_log stdio:%s tx\n" % TXLOG +
        "access_log_interval 1 second\n"
        "request_header_timeout 1 second\n"
        "external_acl_type meta ttl=60 negative_ttl=60 log-wait=4 children-startup=5 %%SRC %s\n"
        "acl denied_port port %d\n"
        "http_access deny denied_port\n"
        "http_access allow all\n" % (helper, denied_port))

kinds = {}      # kind -> (client_ip, client_port)


def tunnel(cd, src, name, data=b"hello"):
    c = hu.Client(cd.port, echo.authority, src=src)
    good = c.status == 200 and c.echo(data) == data
    ok(good, "%s: tunnel from %s echoes" % (name, src))
    kinds[name] = (src, c.local_port)
    return c


def raw(cd, name, data, shut=False, wait=False):
    c = h.ProxyClient(cd.port)
    c.send(data)
    if shut:
        c.shut_wr()
    c.read_to_eof(timeout=5) if wait or shut else None
    kinds[name] = ("127.0.0.1", c.local_port)
    c.close()


with h.Connectd(CONF, name="lines") as cd:
    # a tunnel open over a few intervals: interim records with the pod
    long_c = tunnel(cd, "127.0.1.1", "pod object")
    for src, name in (("127.0.1.2", "helper ERR"), ("127.0.1.3", "not JSON"),
                      ("127.0.1.4", "JSON string"), ("127.0.1.5", "JSON array"),
                      ("127.0.1.6", "OK without log="), ("127.0.1.7", "late answer"),
                      ("127.0.1.8", "long log= value")):
        tunnel(cd, src, name).close()
    c = h.ProxyClient(cd.port)
    st, _ = c.connect_tunnel("127.0.0.1:%d" % denied_port)
    is_(st, 403, "denied: 403")
    kinds["denied"] = ("127.0.0.1", c.local_port)
    c.close()
    raw(cd, "bad request", b"GARBAGE\x01 nonsense\r\n\r\n", wait=True)
    raw(cd, "header timeout", b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n", wait=True)
    raw(cd, "client gave up", b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHo", shut=True)
    c = h.ProxyClient(cd.port)
    st, _ = c.connect_tunnel("127.0.0.1:%d" % closed)
    is_(st, 503, "closed port: 503")
    kinds["connect failed"] = ("127.0.0.1", c.local_port)
    c.close()
    c = h.ProxyClient(cd.port)
    st, reply, how = c.request(b"GET http://%s/x?secret=1 HTTP/1.1\r\nHost: %s\r\n"
                               b"Connection: close\r\n\r\n" % (web.authority.encode(), web.authority.encode()))
    is_(st, 200, "forwarded GET: 200")
    kinds["forwarded GET"] = ("127.0.0.1", c.local_port)
    c.close()
    # two intervals with traffic in between, then leave it open for SIGTERM
    for i in range(3):
        time.sleep(0.8)
        long_c.echo(b"more")
    cd.wait_lines(1, timeout=10, pred=lambda x: x.get("record") == "interim"
                  and x.get("client_ip") == "127.0.1.1" and x.get("seq", 0) >= 2)
    cd.wait_lines(1, timeout=10, pred=lambda x: x.get("client_ip") == "127.0.1.7")
    cd.wait_lines(len(kinds) - 1, timeout=10, pred=lambda x: x.get("record") == "final")
    kinds["shutdown"] = kinds["pod object"]
# finish() has checked every line against the schema; now each kind
lines = cd.lines()
ok(lines, "connectd wrote %d lines" % len(lines))
for x in lines:
    if h.schema_errors(x):
        diag("%r: %s" % (x, h.schema_errors(x)))
ok(all(not h.schema_errors(x) for x in lines), "every line fits the schema")
ok(all(isinstance(x.get("status"), int) and not isinstance(x.get("status"), bool) for x in lines),
   "status is an integer on every line")
ok(all(x.get("pod") is None or isinstance(x.get("pod"), dict) for x in lines),
   "pod is an object or null on every line")
finals = {(x["client_ip"], x["client_port"]): x for x in lines if x.get("record") == "final"}


def line(kind):
    return finals.get(kinds.get(kind), {})


EXPECT = {
    "pod object": dict(status=200, pod=POD, close="shutdown", proxy="t78-proxy.example"),
    "helper ERR": dict(status=200, pod=None, pod_error="err"),
    "not JSON": dict(status=200, pod=None, pod_error="not_json", pod_raw="not json at all"),
    "JSON string": dict(status=200, pod=None, pod_error="not_object", pod_raw='"just a string"'),
    "JSON array": dict(status=200, pod=None, pod_error="not_object", pod_raw="[1,2,3]"),
    "OK without log=": dict(status=200, pod=None, pod_error="no_log"),
    "late answer": dict(status=200, pod=None, pod_error="timeout"),
    "long log= value": dict(pod=None, pod_error="not_json",
                            pod_raw=LONG.encode()[:1023].decode()),
    "denied": dict(status=403, close="denied", method="CONNECT", server_ip=None),
    "bad request": dict(status=400, close="bad_request", host=None, port=None),
    "header timeout": dict(status=408, close="header_timeout", host=None, port=None),
    "client gave up": dict(status=0, close="client_eof", host=None, http_status=None,
                           detail="incomplete request head"),
    "connect failed": dict(status=503, close="connect_failed", server_ip=None),
    "forwarded GET": dict(status=200, http_status=200, scheme="http", close="done",
                          url="http://%s/x?" % web.authority),
}
for kind, want in EXPECT.items():
    x = line(kind)
    ok(x, "%s: a final line" % kind)
    got = {k: x.get(k) for k in want}
    is_(got, want, "%s: %s" % (kind, ", ".join(
        "%s %s" % (k, "(the object)" if isinstance(v, dict) else "(%d bytes)" % len(v.encode())
                   if k == "pod_raw" and len(v) > 40 else v) for k, v in sorted(want.items()))))
ok(all(len(x.get("pod_raw", "").encode()) <= 1024 for x in lines), "pod_raw is at most 1024 bytes")

interim = [x for x in lines if x.get("record") == "interim"]
ok(len(interim) >= 2, "the long tunnel has interim records (%d)" % len(interim))
ok(all(x.get("close") is None and x.get("pod") == POD and x.get("status") == 200 for x in interim),
   "interim records: close null, the pod, status 200")

uids = [x["uid"] for x in lines]
is_(len(set(uids)), len(uids), "every uid is unique")
ok(all(re.match(r"^[0-9a-f]{16}-\d+-\d+$", u) for u in uids), "uid is <16 hex>-<id>-<seq>")
ok(all(x["uid"].endswith("-%d-%d" % (x["id"], x["seq"])) for x in lines), "uid ends in -id-seq")
prefixes = {u.split("-")[0] for u in uids}
is_(len(prefixes), 1, "one uid prefix per process")
ok(all(x["proxy"] == "t78-proxy.example" for x in lines), "proxy is visible_hostname")

# a JSON template: %master_xaction is the id, %>Hs 0 (not null) when
# nothing was sent, as Squid prints it
tx = {(x.get("port"), x.get("id")): x for x in h.JsonLog(TXLOG).lines()}
is_(sorted((x["client_port"], x["id"], x["status"]) for x in finals.values()),
    sorted((p, i, x.get("status")) for (p, i), x in tx.items()),
    "a template's %master_xaction and %>Hs are the json line's id and status (0 included)")

# another process: another prefix; the default proxy is the host name
with h.Connectd(None, name="second") as cd2:
    tunnel(cd2, "127.0.0.1", "second process").close()
    other = cd2.wait_lines(1)
if other:
    p2 = other[0]["uid"].split("-")[0]
    ok(p2 not in prefixes, "a second process has another uid prefix (%s, %s)" % (p2, prefixes))
    is_(other[0]["proxy"], socket.gethostname(), "proxy defaults to the host name")
    is_((other[0]["record"], other[0]["seq"], other[0]["bytes_up_delta"]), ("final", 1, 5),
        "without access_log_interval: one final line, seq 1, delta = total")
done()
