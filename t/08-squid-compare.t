#!/usr/bin/env python3
"""08-squid-compare.t: the same traffic through Squid 5.7 and connectd, both
logging with the stanza from the setup connectd replaces:

  logformat connect_bytes {"ts":"%ts","client_ip":"%>a","authority":"%ru","bytes_up":"%>st","bytes_down":"%<st","podmeta":%'ea}
  access_log stdio:/dev/stdout connect_bytes

client_ip, authority, bytes_up and bytes_down must be equal.  Squid's
%>st is the CONNECT head plus payload up, %<st the 39-byte 200 reply plus
payload down, so the expected values are computed from what is sent.
Squid's line is not JSON ("podmeta":- when no helper answered); connectd's
must be."""
import os
import re
import json
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, like, diag, done

LOGFORMAT = ('logformat connect_bytes {"ts":"%ts","client_ip":"%>a","authority":"%ru",'
             '"bytes_up":"%>st","bytes_down":"%<st","podmeta":%\'ea}')
REPLY_200 = b"HTTP/1.1 200 Connection established\r\n\r\n"     # 39 bytes
TRAFFIC = [
    # name, origin kind, payload up, payload down
    {"name": "1-byte echo", "kind": "echo", "up": 1, "down": 1},
    {"name": "100 KiB up, 300 KiB down", "kind": "sinksource", "up": 100 * 1024, "down": 300 * 1024},
]
FIELDS = ["client_ip", "authority", "bytes_up", "bytes_down"]

h.need_connectd()
if not h.Squid.available():
    h.tap.skip_all("squid (Debian package) is not installed")
h.watchdog(90)

echo = h.EchoServer()
sinks = {t["name"]: h.SinkSource(up=t["up"], down=t["down"]) for t in TRAFFIC if t["kind"] == "sinksource"}


def origin_of(t):
    return echo if t["kind"] == "echo" else sinks[t["name"]]


def drive(port, t):
    """One tunnel of traffic t; returns (request head, client port)."""
    o = origin_of(t)
    c = h.ProxyClient(port)
    st, head = c.connect_tunnel(o.authority)
    assert st == 200, head
    up = h.pattern(t["up"])
    c.send(up)
    got = c.recv_exact(t["down"], timeout=20)
    assert len(got) == t["down"], "short read"
    if t["kind"] == "sinksource":
        c.read_to_eof(timeout=10)
    c.close()
    return c.request_head, c.local_port


def squidish(line):
    """Squid's line with "podmeta":- made JSON."""
    try:
        return json.loads(re.sub(r'"podmeta":-}$', '"podmeta":null}', line))
    except ValueError:
        return {"_invalid_json": line}


results = {}
sq = h.Squid(LOGFORMAT + "\naccess_log stdio:{dir}/connect_bytes.log connect_bytes\n")
sqlog = h.JsonLog(os.path.join(sq.dir, "connect_bytes.log"))
for t in TRAFFIC:
    head, cport = drive(sq.port, t)
    results.setdefault(t["name"], {})["head"] = head
sq_lines = sqlog.wait_raw(len(TRAFFIC), timeout=15)
sq.stop()

with h.Connectd(LOGFORMAT + "\naccess_log stdio:/dev/stdout connect_bytes\n") as cd:
    for t in TRAFFIC:
        drive(cd.port, t)
    cd_lines = cd.log.wait_raw(len(TRAFFIC), timeout=15)

is_(len(sq_lines), len(TRAFFIC), "squid logged one line per tunnel")
is_(len(cd_lines), len(TRAFFIC), "connectd logged one line per tunnel")
for i, t in enumerate(TRAFFIC):
    n = t["name"]
    sql = sq_lines[i] if i < len(sq_lines) else ""
    cdl = cd_lines[i] if i < len(cd_lines) else ""
    diag("squid:    " + sql)
    diag("connectd: " + cdl)
    try:
        json.loads(sql)
        diag("%s: squid's line is valid JSON (unexpected)" % n)
    except ValueError:
        diag("%s: squid's line is not valid JSON (\"podmeta\":- with no helper), as documented" % n)
    try:
        cdj = json.loads(cdl)
        ok(isinstance(cdj, dict), "%s: connectd's line is valid JSON" % n)
    except ValueError as e:
        ok(False, "%s: connectd's line is valid JSON (%s)" % (n, e))
        cdj = {}
    sqj = squidish(sql)
    o = origin_of(t)
    head = results[n]["head"]
    want = {"client_ip": "127.0.0.1", "authority": o.authority,
            "bytes_up": str(len(head) + t["up"]),
            "bytes_down": str(len(REPLY_200) + t["down"])}
    for f in FIELDS:
        is_(sqj.get(f), want[f], "%s: squid's %s is %s" % (n, f, want[f]))
        is_(cdj.get(f), sqj.get(f), "%s: connectd's %s equals squid's" % (n, f))
    like(cdj.get("ts"), r"^\d{10}(\.\d+)?$", "%s: connectd's %%ts is epoch seconds like squid's" % n)
    like(sqj.get("ts"), r"^\d{10}$", "%s: squid's %%ts is epoch seconds" % n)
    ok("podmeta" in cdj, "%s: connectd's line has podmeta (%r)" % (n, cdj.get("podmeta")))
done()
