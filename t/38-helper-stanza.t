#!/usr/bin/env python3
"""38-helper-stanza.t: the Squid stanza, unchanged, gives valid JSON.

The four lines people run under Squid today
  external_acl_type podmeta ttl=5 children-max=20 %SRC /path/to/podmeta ...
  acl podmeta external podmeta
  logformat connect_bytes {"ts":"%ts","client_ip":"%>a",...,"podmeta":%'ea}
  access_log stdio:/dev/stdout connect_bytes
go into connectd as they are (plus an http_access line), three times:
  1. podmeta knows the pods: every line's "podmeta" is the pod's JSON;
  2. podmeta --unknown err, a client no pod owns: the helper answers ERR,
     the line is still valid JSON with "podmeta":null (Squid prints "-");
  3. a helper that never answers: after log-wait the line is written,
     valid JSON, "podmeta":null.
Every line also has the stanza's other fields (ts, client_ip, authority,
bytes_up, bytes_down) with Squid's values.
Configuration checks (connectd -t): bad external_acl_type lines are
refused with FILE:LINE and the cause; -t -v prints every option with its
value, and that output is accepted again.
"""
import re
import os
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import helper_util as hu
from tap import ok, is_, diag, done

pm, echo, pods = hu.setup(60, 3, backlog=32)
src = hu.write_pods(h.tmpfile("pods.json"), pods)

STANZA = """external_acl_type podmeta ttl=5 children-max=20 %%SRC %s
acl podmeta external podmeta
logformat connect_bytes {"ts":"%%ts","client_ip":"%%>a","authority":"%%ru","bytes_up":"%%>st","bytes_down":"%%<st","podmeta":%%'ea}
access_log stdio:/dev/stdout connect_bytes
http_access allow all
"""
silent = hu.script("silent.sh", "#!/bin/sh\nexec sleep 600\n")


def run(name, helper, ips):
    with h.Connectd(STANZA % helper, name=name) as cd:
        for ip in ips:
            c = hu.Client(cd.port, echo.authority, src=ip)
            ok(c.status == 200 and c.echo(b"12345") == b"12345", "%s: tunnel from %s" % (name, ip))
            c.close()
        lines = cd.wait_lines(len(ips), timeout=15)
        h.all_valid_json(cd.log)
        is_(len(lines), len(ips), "%s: one line per tunnel" % name)
        for x in lines:
            ok(set(x) == {"ts", "client_ip", "authority", "bytes_up", "bytes_down", "podmeta"}
               and x["authority"] == echo.authority and x["bytes_up"].isdigit()
               and x["bytes_down"].isdigit(), "%s: the stanza's fields" % name)
        return {x["client_ip"]: x for x in lines}


CD = h.need_connectd()
BAD = [("external_acl_type x ttl=5 frob=1 %SRC /bin/cat", "unknown option 'frob'"),
       ("external_acl_type x %SRC %NOPE /bin/cat", "unknown FORMAT code '%NOPE'"),
       ("external_acl_type x ttl=5 %SRC", "no helper program"),
       ("external_acl_type x ttl=-1 %SRC /bin/cat", "ttl: '-1' is not a number"),
       ("external_acl_type x grace=101 %SRC /bin/cat", "grace: '101'"),
       ("external_acl_type x %SRC /bin/cat\nexternal_acl_type x %SRC /bin/cat", "already defined")]
for i, (line, why) in enumerate(BAD):
    path = h.tmpfile("bad%d.conf" % i, "http_port 127.0.0.1:%d\n%s\n" % (h.free_port(), line))
    rc, out, err = h.run([CD, "-t", "-f", path], timeout=10)
    ok(rc != 0 and why in err and re.search(r"bad%d\.conf:\d+" % i, err),
       "-t refuses %r: %s" % (line, why))
    if rc == 0 or why not in err:
        diag(err)
path = h.tmpfile("dump.conf", "http_port 127.0.0.1:%d\nexternal_acl_type p ttl=7 concurrency=3 "
                 "%%SRC %%DST %%DATA /bin/cat -u\n" % h.free_port())
rc, out, err = h.run([CD, "-t", "-v", "-f", path], timeout=10)
dump = [x for x in out.splitlines() if x.startswith("external_acl_type")]
is_(dump, ["external_acl_type p ttl=7 negative_ttl=7 grace=1 cache=262144 children-max=5 "
           "children-startup=0 children-idle=1 concurrency=3 queue-size=10 timeout=30 "
           "log-wait=3 %SRC %DST %DATA /bin/cat -u"], "-t -v: every option with its value")
path2 = h.tmpfile("dump2.conf", out)
rc, out2, err = h.run([CD, "-t", "-f", path2], timeout=10)
is_(rc, 0, "the dump is accepted again")

got = run("pods", "%s --source file:%s" % (pm, src), [hu.pod_ip(1), hu.pod_ip(2)])
for i in (1, 2):
    is_(got.get(hu.pod_ip(i), {}).get("podmeta"), hu.expected(pods[i - 1], hu.pod_ip(i)),
        "podmeta filled with the pod's JSON for %s" % hu.pod_ip(i))
x = got.get(hu.pod_ip(1), {})
is_((x.get("bytes_up"), x.get("bytes_down")),
    (str(len("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (echo.authority, echo.authority)) + 5),
     str(39 + 5)), "Squid's byte counts (head + payload, 39-byte reply + payload)")

got = run("err", "%s --unknown err --source file:%s" % (pm, src), ["127.0.1.77"])
ok("127.0.1.77" in got and got["127.0.1.77"]["podmeta"] is None,
   "helper answered ERR: \"podmeta\":null, still valid JSON")

got = run("silent", silent, [hu.pod_ip(1)])
ok(hu.pod_ip(1) in got and got[hu.pod_ip(1)]["podmeta"] is None,
   "helper never answered: \"podmeta\":null after log-wait, valid JSON")
done()
