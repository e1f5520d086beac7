#!/usr/bin/env python3
"""32-helper-churn.t: a pod is deleted and its IP reused while traffic flows.

pod-7 owns 127.0.1.7 (served by the test API server, watched by podmeta;
connectd caches answers for ttl=1).  Tunnels from 127.0.1.7 start one
after another; a long tunnel opened before the change stays open across
it.  Then pod-7 is deleted and a new pod, new-7, gets 127.0.1.7.
Expectations:
  - every tunnel that started before the change names pod-7, including the
    long one that closes after new-7 exists (the pod at the tunnel's start);
  - along the tunnels' start order the pod changes once, pod-7 -> new-7,
    never back;
  - every tunnel that started more than ttl + 2 s after the change names
    new-7 (the cache and the watch both caught up);
  - no line lost, none without a pod.
"""
import os
import sys
import threading
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import helper_util as hu
from k8sapi import fixtures as kf
import podmeta_util as pu
from tap import ok, is_, diag, done

TTL = 1
IP = hu.pod_ip(7)

pm, echo, pods = hu.setup(90, 10)
api = pu.start_api(pods=pods)
new7 = kf.make_pod("new-7", ip=IP, namespace="ns-2", node="node-9",
                       labels={"app": "new"}, slim=True)

conf = hu.base_conf("external_acl_type podmeta ttl=%d %%SRC %s %s --delete-grace 60"
                    % (TTL, pm, " ".join(api.podmeta_args())))
with h.Connectd(conf, env=dict(os.environ, KUBERNETES_SERVICE_HOST="", NODE_NAME="")) as cd:
    starts = []          # (monotonic start, client port)
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            t = time.monotonic()
            c = hu.Client(cd.port, echo.authority, src=IP)
            starts.append((t, c.local_port))
            c.echo(b"x")
            c.close()
            time.sleep(0.05)
    first = hu.Client(cd.port, echo.authority, src=IP)
    ok(first.echo(b"a") == b"a", "a tunnel from %s" % IP)
    first.close()
    cd.wait_lines(1)
    ok(api.wait_watch(1, 10), "podmeta watches")
    longc = hu.Client(cd.port, echo.authority, src=IP)
    long_start = time.monotonic()
    ok(longc.echo(b"long") == b"long", "a long tunnel is open")
    th = threading.Thread(target=traffic, daemon=True)
    th.start()
    time.sleep(1.0)
    t_change = time.monotonic()
    api.delete_pod(pods[6]["metadata"]["namespace"], "pod-7")
    api.add_pod(new7)
    time.sleep(TTL + 3.0)
    ok(longc.echo(b"still") == b"still", "the long tunnel still works after the change")
    longc.close()
    stop.set()
    th.join(10)
    lines = cd.wait_lines(len(starts) + 2, timeout=20)
    is_(len(lines), len(starts) + 2, "one line per tunnel (%d)" % (len(starts) + 2))
    mine = hu.by_port(lines)
    want_old = hu.expected(pods[6], IP)
    want_new = hu.expected(new7, IP)
    ln = mine.get((IP, longc.local_port), {})
    is_(ln.get("pod"), want_old, "the long tunnel's line names pod-7, the pod at its start")
    seq = []
    for t, port in sorted(starts):
        p = mine.get((IP, port), {}).get("pod")
        seq.append((t, "old" if p == want_old else "new" if p == want_new else repr(p)))
    ok(all(s in ("old", "new") for _, s in seq), "every line names pod-7 or new-7 exactly")
    before = [s for t, s in seq if t < t_change]
    late = [s for t, s in seq if t > t_change + TTL + 2.0]
    ok(before and all(s == "old" for s in before), "%d tunnels before the change: pod-7" % len(before))
    ok(late and all(s == "new" for s in late), "%d tunnels after ttl + 2 s: new-7" % len(late))
    flips = sum(1 for a, b in zip(seq, seq[1:]) if a[1] != b[1])
    is_(flips, 1, "the pod changes once along the start order, never back")
    ok(all("pod_error" not in x for x in lines), "no line without an answer")
    if sys.modules["tap"]._failed:
        diag("sequence: %s" % " ".join("%.2f:%s" % (t - t_change, s) for t, s in seq))
    h.all_valid_json(cd.log)
    hu.diag_stderr(sys.modules["tap"], cd)
api.stop()
done()
