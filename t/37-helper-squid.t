#!/usr/bin/env python3
"""37-helper-squid.t: Squid and connectd with podmeta log the same pod JSON.

Squid 5.7 (Debian) and connectd each run podmeta (--source file:, 10 pods
on 127.0.1.1..10) with the same external_acl_type line and the same
logformat ({"src":"%>a","podmeta":%'ea}).  Squid needs the trick
`http_access deny podmeta !all` to call the helper at all; connectd does
not.  The same tunnels (every pod address, and 127.0.1.99 that no pod
owns) go through both.
Expectations:
  - every tunnel works through both proxies;
  - both logs are valid JSON and, address by address, the "podmeta"
    values are identical: the pod's JSON, and podmeta's
    {"ip":...,"pod":null} for 127.0.1.99;
  - connectd's built-in json format carries the same value as "pod".
"""
import os
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import helper_util as hu
import podmeta_util as pu
from tap import ok, is_, diag, done, skip_all

if not h.Squid.available():
    skip_all("squid not installed")
pm, echo, pods = hu.setup(120, 10)
src = hu.write_pods(h.tmpfile("pods.json"), pods)
hu.readable_for_squid(src)
ips = [hu.pod_ip(i) for i in range(1, 11)] + ["127.0.1.99"]
want = hu.answers(pods)
want["127.0.1.99"] = pu.unknown_json("127.0.1.99")

# squid runs it as `proxy`: give it a copy it can reach
HELPER = "external_acl_type podmeta ttl=5 children-max=20 %%SRC %s --source file:%s" % (
    h.runnable_copy(pm), src)
FORMAT = 'logformat pods {"src":"%>a","podmeta":%\'ea}'

squid = hu.Squid(HELPER + "\nacl podmeta external podmeta\n" + FORMAT +
                 "\naccess_log stdio:{dir}/access.log pods\nhttp_access deny podmeta !all\n")
conf = (HELPER + "\nacl podmeta external podmeta\n" + FORMAT + "\n"
        "access_log stdio:{dir}/pods.log pods\naccess_log stdio:/dev/stdout json\n"
        "http_access allow all\n")
cd = h.Connectd(conf.replace("{dir}", h.tmpdir()), name="connectd")
sq_ok = cd_ok = 0
for ip in ips:
    for port in (squid.port, cd.port):
        c = hu.Client(port, echo.authority, src=ip)
        good = c.status == 200 and c.echo(ip.encode()) == ip.encode()
        c.close()
        if port == squid.port:
            sq_ok += good
        else:
            cd_ok += good
is_(sq_ok, len(ips), "every tunnel works through Squid")
is_(cd_ok, len(ips), "every tunnel works through connectd")
h.wait_for(lambda: len(squid.log_lines()) >= len(ips), 15)
sq = sys.modules["tap"].json_lines("\n".join(squid.log_lines()))
cdlog = h.JsonLog(os.path.join(h.tmpdir(), "pods.log"))
h.wait_for(lambda: len(cdlog.lines()) >= len(ips), 15)
cl = cdlog.lines()
is_((len(sq), len(cl)), (len(ips), len(ips)), "one valid JSON line per tunnel in both logs")
sq_by = {x.get("src"): x.get("podmeta") for x in sq}
cd_by = {x.get("src"): x.get("podmeta") for x in cl}
diff = [ip for ip in ips if sq_by.get(ip) != cd_by.get(ip) or cd_by.get(ip) != want[ip]]
is_(diff, [], "address by address, the same podmeta JSON from Squid and connectd")
for ip in diff[:3]:
    diag("%s: squid %r" % (ip, sq_by.get(ip)))
    diag("%s: connectd %r" % (ip, cd_by.get(ip)))
js = {x.get("client_ip"): x.get("pod") for x in cd.wait_lines(len(ips))}
is_([ip for ip in ips if js.get(ip) != want[ip]], [], "connectd's json format: the same value as \"pod\"")
h.all_valid_json(cd.log)
hu.diag_stderr(sys.modules["tap"], cd)
cd.finish()
squid.stop()
done()
