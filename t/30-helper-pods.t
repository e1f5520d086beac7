#!/usr/bin/env python3
"""30-helper-pods.t: 50 pods, concurrent tunnels, every line names its pod.

podmeta (--source file:) maps 127.0.1.1 .. 127.0.1.50 to pods pod-1 ..
pod-50.  Two tunnels from every address run at once (100 concurrent),
each echoes its bytes.  Expectations:
  - every tunnel works and gets exactly one log line;
  - every line's "pod" is exactly the JSON podmeta renders for the pod that
    owns the line's client_ip, and no line has a pod_error;
  - connectd ran the helper with channel IDs (concurrency=20), so fewer
    helper requests than tunnels reached podmeta (cache, shared lookups):
    the stats line at exit says so.
"""
import concurrent.futures
import os
import re
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import helper_util as hu
from tap import ok, is_, diag, done

N_PODS = 50
PER_POD = 2

pm, echo, pods = hu.setup(90, N_PODS, backlog=256)
src = hu.write_pods(h.tmpfile("pods.json"), pods)
want = hu.answers(pods)

conf = hu.base_conf("external_acl_type podmeta ttl=60 children-max=3 concurrency=20 "
                    "%%SRC %s --source file:%s" % (pm, src))
with h.Connectd(conf) as cd:
    # the first tunnel may wait for podmeta's start: not a test of speed
    c = hu.Client(cd.port, echo.authority, src="127.0.1.1")
    is_(c.status, 200, "a tunnel from 127.0.1.1")
    c.close()
    cd.wait_lines(1)

    jobs = [hu.pod_ip(i) for i in range(1, N_PODS + 1)] * PER_POD

    def open_one(ip):
        return hu.Client(cd.port, echo.authority, src=ip)
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        clients = list(pool.map(open_one, jobs))
    is_(sum(1 for c in clients if c.status == 200), len(jobs),
        "%d tunnels from %d addresses open at once" % (len(jobs), N_PODS))

    def talk(c):
        data = ("%s:%d" % (c.src, c.local_port)).encode()
        got = c.echo(data)
        c.close()
        return got == data
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        res = list(pool.map(talk, clients))
    is_(sum(res), len(clients), "every tunnel echoed its bytes")

    lines = cd.wait_lines(len(clients) + 1, timeout=20)
    is_(len(lines), len(clients) + 1, "one line per tunnel")
    mine = hu.by_port(lines)
    bad = []
    for c in clients:
        x = mine.get((c.src, c.local_port))
        if x is None or x.get("client_ip") != c.src or x.get("pod") != want[c.src] \
                or "pod_error" in x:
            bad.append((c.src, c.local_port, x and x.get("pod"), x and x.get("pod_error")))
    is_(len(bad), 0, "every line names the pod of its client address, exactly")
    for b in bad[:5]:
        diag("wrong: %r" % (b,))
    names = set(x["pod"]["name"] for x in lines if isinstance(x.get("pod"), dict))
    is_(len(names), N_PODS, "all %d pods appear" % N_PODS)
    h.all_valid_json(cd.log)
    cd.term()
    cd.wait_exit()
    m = re.search(r"stats: helper podmeta: lookups (\d+), cache hits (\d+), shared (\d+), "
                  r"requests (\d+)", cd.stderr())
    ok(m is not None, "helper stats at exit")
    if m:
        lookups, hits, shared, requests = map(int, m.groups())
        is_(lookups, len(clients) + 1, "one lookup per tunnel")
        ok(requests <= N_PODS + 1, "at most one helper request per address (%d)" % requests)
        is_(hits + shared + requests, lookups, "every lookup was a hit, shared, or a request")
    hu.diag_stderr(sys.modules["tap"], cd)
done()
