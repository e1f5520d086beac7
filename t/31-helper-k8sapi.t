#!/usr/bin/env python3
"""31-helper-k8sapi.t: 50 pods served by the test Kubernetes API server.

The test API server (t/lib/k8sapi/: TLS, bearer token, list+watch) holds
50 pods on 127.0.1.1 .. 127.0.1.50; podmeta lists and watches it, connectd
drives podmeta with the shipped-style line (no concurrency, Squid's
defaults but children-max=10 and a queue large enough for the burst).
Expectations:
  - 50 concurrent tunnels, one per address, all echo and get one line each;
  - every line carries exactly the pod JSON of its client address;
  - each podmeta child made one list (plus a watch), none a GET per lookup.
"""
import concurrent.futures
import os
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import helper_util as hu
import podmeta_util as pu
from tap import ok, is_, diag, done

N = 50

pm, echo, pods = hu.setup(90, N, backlog=256)
api = pu.start_api(pods=pods)
want = hu.answers(pods)

args = " ".join(api.podmeta_args())
conf = hu.base_conf("external_acl_type podmeta ttl=5 children-max=10 children-startup=2 "
                    "queue-size=100 %%SRC %s %s" % (pm, args))
with h.Connectd(conf, env=dict(os.environ, KUBERNETES_SERVICE_HOST="", NODE_NAME="")) as cd:
    ok(api.wait_watch(2, 10), "both startup children list and watch the API")
    ips = [hu.pod_ip(i) for i in range(1, N + 1)]
    with concurrent.futures.ThreadPoolExecutor(N) as pool:
        clients = list(pool.map(lambda ip: hu.Client(cd.port, echo.authority, src=ip), ips))
    is_(sum(1 for c in clients if c.status == 200), N, "%d tunnels from %d addresses" % (N, N))
    with concurrent.futures.ThreadPoolExecutor(N) as pool:
        res = list(pool.map(lambda c: c.echo(b"ping") == b"ping", clients))
    for c in clients:
        c.close()
    is_(sum(res), N, "every tunnel echoed")
    lines = cd.wait_lines(N, timeout=20)
    is_(len(lines), N, "one line per tunnel")
    mine = hu.by_port(lines)
    bad = [(c.src, mine.get((c.src, c.local_port))) for c in clients
           if (mine.get((c.src, c.local_port)) or {}).get("pod") != want[c.src]]
    is_(len(bad), 0, "every line carries its pod's JSON from the API")
    for b in bad[:3]:
        diag("wrong: %r" % (b,))
    kids = len(hu.helper_children(cd, "podmeta"))
    ok(1 <= api.count("list") <= 10, "one list per podmeta child (%d lists, %d children)"
       % (api.count("list"), kids))
    is_(api.count("get"), 0, "no API request per lookup")
    h.all_valid_json(cd.log)
    hu.diag_stderr(sys.modules["tap"], cd)
api.stop()
done()
