#!/usr/bin/env python3
"""71-log-udp.t: access_log udp://HOST:PORT sends one line per datagram.

- Each datagram is one whole line with its newline (Fluent Bit's in_udp
  splits on it with Format none, and skips it with Format json), valid
  JSON, the same as the file log's line.
- A line too big for a datagram (a helper's 20 KB pod) arrives rendered
  again without its large fields: valid JSON with "truncated":true, pod
  null, every other field as in the file log (which keeps the whole pod);
  SIGUSR1 counts it as truncated (and written).
- The same for a JSON template, and with datagram-size=2KB; a Squid-style
  template still too long without them is cut at a character boundary,
  and keeps its newline.
- connectd -t refuses bad udp:// specs and datagram sizes with FILE:LINE.
"""
import json
import os
import re
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import helper_util as hu
import logrecv as lr
from tap import ok, is_, like, diag, done

h.need_connectd()
h.watchdog(90)
echo = h.EchoServer()

# pods by client address: 127.0.1.2 gets one of 20 KB (labels), the others a small one
HELPER = r'''#!%s
import json, sys
for line in sys.stdin:
    ip = line.split()[0]
    pod = {"ip": ip, "namespace": "ci", "name": "runner-" + ip.split(".")[-1]}
    if ip == "127.0.1.2":
        pod["labels"] = dict(("label-%%03d" %% i, "v" * 200) for i in range(100))
    v = json.dumps(pod, separators=(",", ":")).replace("\\", "\\\\").replace('"', '\\"')
    sys.stdout.write('OK log="%%s"\n' %% v)
    sys.stdout.flush()
''' % hu.PY
helper = hu.script("pods.py", HELPER)
STANZA = "external_acl_type pods ttl=60 %%SRC %s\n" % helper


def tunnel_from(port, src):
    c = hu.Client(port, echo.authority, src=src)
    good = c.echo(b"u") == b"u"
    c.close()
    return good


rx = lr.DgramReceiver()
name = "udp://127.0.0.1:%d" % rx.port
filelog = os.path.join(h.tmpdir(), "file.log")
conf = STANZA + "access_log %s\naccess_log stdio:%s\n" % (name, filelog)
with h.Connectd(conf) as cd:
    ok(all(tunnel_from(cd.port, "127.0.1.1") for _ in range(10)), "10 tunnels")
    grams = rx.wait(10)
    is_(len(grams), 10, "10 datagrams")
    ok(all(g.endswith(b"\n") and g.count(b"\n") == 1 for g in grams),
       "each is one line with its newline")
    recs = []
    for g in grams:
        try:
            recs.append(json.loads(g))
        except ValueError:
            ok(False, "a datagram is valid JSON: %r" % g[:200])
    is_(len(recs), 10, "each is valid JSON")
    fl = h.JsonLog(filelog)
    h.wait_for(lambda: len(fl.lines()) >= 10, 5)
    is_(sorted(recs, key=lambda r: r["id"]), sorted(fl.lines(), key=lambda r: r["id"]),
        "the same lines as the file log")
    ok(all(r["pod"] and r["pod"]["name"] == "runner-1" for r in recs), "with the helper's pod")

    # a 20 KB pod: too big for the 8 KB datagram
    ok(tunnel_from(cd.port, "127.0.1.2"), "a tunnel from the pod with 20 KB of labels")
    grams = rx.wait(11)
    big = grams[10] if len(grams) > 10 else b""
    ok(0 < len(big) <= 8192, "its datagram fits in 8 KB (%d bytes)" % len(big))
    try:
        t = json.loads(big)
    except ValueError:
        t = {}
        ok(False, "the truncated line is valid JSON: %r" % big[:300])
    is_(t.get("truncated"), True, "it says \"truncated\":true")
    is_(t.get("pod"), None, "its pod is left out")
    h.wait_for(lambda: len(fl.lines()) >= 11, 5)
    full = [x for x in fl.lines() if x.get("id") == t.get("id")]
    ok(full and len(json.dumps(full[0]["pod"])) > 20000, "the file log has the whole pod")
    ok(full and "truncated" not in full[0], "... and no truncated mark")
    if full:
        same = dict(t)
        same.pop("truncated", None)
        want = dict(full[0])
        want["pod"] = None
        is_(same, want, "every other field is as in the file log")
    st = lr.settled_stats(cd, name)
    ok(st and st["truncated"] == 1 and st["written"] == 11 and st["dropped"] == 0,
       "SIGUSR1: 1 truncated, 11 written (%r)" % (st,))
rx.close()

# a JSON template, a small datagram size, and a Squid-style template that
# is still too long once its large fields are left out
rx1 = lr.DgramReceiver()
rx2 = lr.DgramReceiver()
rx3 = lr.DgramReceiver()
filler = "x" * 1200 + "\u00e9\u00e9\u00e9\u00e9" + "y" * 1000      # two-byte UTF-8 across the cut
conf = (STANZA +
        'logformat tpl {"ts":"%%ts","client":"%%>a","target":"%%ru","pod":%%\'ea}\n'
        "logformat wide %%ts %%>a %%ru %%ea %s\n"
        "access_log udp://127.0.0.1:%d tpl\n"
        "access_log udp://127.0.0.1:%d json datagram-size=2KB\n"
        "access_log udp://127.0.0.1:%d wide datagram-size=1KB\n"
        % (filler, rx1.port, rx2.port, rx3.port))
with h.Connectd(conf) as cd:
    ok(tunnel_from(cd.port, "127.0.1.1") and tunnel_from(cd.port, "127.0.1.2"),
       "a small pod and a big one")
    g1, g2, g3 = rx1.wait(2), rx2.wait(2), rx3.wait(2)
    try:
        t1 = sorted((json.loads(g) for g in g1), key=lambda r: r["client"])
    except ValueError:
        t1 = []
    is_(len(t1), 2, "the JSON template's datagrams are valid JSON")
    ok(len(t1) == 2 and "truncated" not in t1[0] and t1[0]["pod"]["name"] == "runner-1",
       "the small pod's line is whole")
    ok(len(t1) == 2 and t1[1].get("truncated") is True and t1[1]["pod"] is None and
       t1[1]["client"] == "127.0.1.2", "the big pod's line: pod null, \"truncated\":true, the rest kept")
    try:
        t2 = sorted((json.loads(g) for g in g2), key=lambda r: r["client_ip"])
    except ValueError:
        t2 = []
    ok(len(t2) == 2 and all(len(g) <= 2048 for g in g2), "datagram-size=2KB: datagrams of at most 2 KB")
    ok(len(t2) == 2 and t2[1].get("truncated") is True and t2[1]["status"] == 200 and
       t2[1]["client_ip"] == "127.0.1.2", "... the big one valid JSON, truncated")
    ok(len(g3) == 2 and all(len(g) <= 1024 and g.endswith(b"\n") for g in g3),
       "the wide Squid-style line is cut to 1 KB, newline kept")
    try:
        texts = [g.decode("utf-8") for g in g3]
        utf8 = True
    except UnicodeDecodeError:
        utf8 = False
    ok(utf8, "... at a character boundary (still UTF-8)")
    ok(len(g3) == 2 and all(re.match(rb"^\d+ 127\.0\.1\.[12] - - xxx", g) for g in g3),
       "... its target and pod printed as '-', as Squid prints an absent value (%r)"
       % (g3[0][:40] if g3 else None))
    for n, port in (("1", rx2.port), ("2", rx3.port)):
        st = lr.sink_stats(cd, "udp://127.0.0.1:%d" % port)
        ok(st and st["truncated"] == int(n), "SIGUSR1 counts %s truncated line(s) (%r)" % (n, st))

# ------------------------------------------------------------ connectd -t
CD = h.connectd_bin()
for spec in ("udp://h:99999", "udp://nohost", "udp://", "udp://127.0.0.1:5170 datagram-size=100",
             "udp://127.0.0.1:5170 datagram-size=1MB", "udp://127.0.0.1:5170 datagram-size=8 KB",
             "udp://127.0.0.1:5170 server=unix:/dev/log"):
    path = h.tmpfile("bad.conf", "# bad\nhttp_port 127.0.0.1:%d\naccess_log %s\n" % (h.free_port(), spec))
    rc, out, err = h.run([CD, "-t", "-f", path], timeout=10)
    ok(rc not in (0, None) and re.search(r"%s:3: " % re.escape(path), err),
       "-t refuses 'access_log %s' with FILE:3 (%s)" % (spec, err.strip()[-90:]))
path = h.tmpfile("good.conf", "http_port 127.0.0.1:%d\naccess_log udp://127.0.0.1:5170 "
                 "datagram-size=64 KB\naccess_log udp:localhost:514 squid datagram-size=1400\n"
                 % h.free_port())
rc, out, err = h.run([CD, "-t", "-v", "-f", path], timeout=10)
ok(rc != 0, "-t refuses 'datagram-size=64 KB': a value with a space is two words")
path = h.tmpfile("good.conf", "http_port 127.0.0.1:%d\naccess_log udp://127.0.0.1:5170 "
                 "datagram-size=64KB\naccess_log udp:localhost:514 squid datagram-size=1400\n"
                 % h.free_port())
rc, out, err = h.run([CD, "-t", "-v", "-f", path], timeout=10)
ok(rc != 0 and "65507" in err, "-t refuses 64KB: more than a UDP datagram holds (%s)" % err.strip()[-80:])
path = h.tmpfile("good.conf", "http_port 127.0.0.1:%d\naccess_log udp://127.0.0.1:5170 "
                 "datagram-size=32KB\naccess_log udp:localhost:514 squid datagram-size=1400\n"
                 % h.free_port())
rc, out, err = h.run([CD, "-t", "-v", "-f", path], timeout=10)
is_(rc, 0, "-t accepts udp://HOST:PORT datagram-size=32KB and udp:HOST:PORT")
like(out, r"access_log udp://localhost:514 logformat=squid buffer-size=4MB datagram-size=1400bytes",
     "-t -v prints them back")
done()
