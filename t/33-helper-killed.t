#!/usr/bin/env python3
"""33-helper-killed.t: helper children killed again and again mid-run.

connectd runs podmeta (2 children, concurrency=5, ttl=0 so that every
tunnel asks) while 4 client threads open tunnels from 10 pod addresses
non-stop.  For one second every podmeta child is SIGKILLed every 100 ms.
Expectations:
  - every tunnel echoes: killing helpers never touches a tunnel;
  - no line is lost: exactly one line per tunnel;
  - every line either names its pod exactly or has no pod and a pod_error
    from {helper_down, timeout, queue_full, bh}; some lines have one;
  - the helper is restarted: tunnels that start 3 s after the last kill are
    all enriched again; stderr logs the kills and the stats count restarts.
"""
import os
import re
import signal
import sys
import threading
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import helper_util as hu
from tap import ok, is_, diag, done

ERRORS = {"helper_down", "timeout", "queue_full", "bh"}

pm, echo, pods = hu.setup(90, 10, backlog=128)
src = hu.write_pods(h.tmpfile("pods.json"), pods)
want = hu.answers(pods)

conf = hu.base_conf("external_acl_type podmeta ttl=0 children-max=2 children-startup=2 "
                    "concurrency=5 %%SRC %s --source file:%s" % (pm, src))
with h.Connectd(conf) as cd:
    ok(h.wait_for(lambda: len(hu.helper_children(cd, "podmeta")) == 2), "2 podmeta children")
    c = hu.Client(cd.port, echo.authority, src=hu.pod_ip(1))
    ok(c.echo(b"x") == b"x", "first tunnel")
    c.close()
    cd.wait_lines(1)

    runs = []             # (start, port, src, echoed)
    lock = threading.Lock()
    stop = threading.Event()

    def worker(k):
        i = k
        while not stop.is_set():
            ip = hu.pod_ip(i % 10 + 1)
            i += 1
            t = time.monotonic()
            try:
                c = hu.Client(cd.port, echo.authority, src=ip)
                good = c.echo(b"data %d" % i) == b"data %d" % i
                port = c.local_port
                c.close()
            except OSError as e:
                good, port = False, None
                diag("client error: %r" % e)
            with lock:
                runs.append((t, port, ip, good))
            time.sleep(0.01)
    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    killed = 0
    end_kill = time.monotonic() + 1.0
    while time.monotonic() < end_kill:
        for pid in hu.helper_children(cd, "podmeta"):
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    last_kill = time.monotonic()
    ok(killed >= 2, "killed %d podmeta children" % killed)
    time.sleep(4.0)
    stop.set()
    for t in threads:
        t.join(10)

    is_(sum(1 for r in runs if r[3]), len(runs), "all %d tunnels echoed" % len(runs))
    lines = cd.wait_lines(len(runs) + 1, timeout=20)
    time.sleep(0.5)
    lines = cd.lines()
    is_(len(lines), len(runs) + 1, "no line lost")
    mine = hu.by_port(lines)
    wrong, errs = [], {}
    for t, port, ip, _ in runs:
        x = mine.get((ip, port), {})
        if x.get("pod") == want[ip] and "pod_error" not in x:
            continue
        if x.get("pod") is None and x.get("pod_error") in ERRORS:
            errs[x["pod_error"]] = errs.get(x["pod_error"], 0) + 1
            continue
        wrong.append((ip, x.get("pod"), x.get("pod_error")))
    is_(len(wrong), 0, "every line: its pod, or null and a pod_error")
    for w in wrong[:3]:
        diag("wrong: %r" % (w,))
    ok(sum(errs.values()) > 0, "lines without an answer say why: %r" % errs)
    late = [mine.get((ip, p), {}) for t, p, ip, _ in runs if t > last_kill + 3.0]
    ok(late and all(isinstance(x.get("pod"), dict) for x in late),
       "%d tunnels 3 s after the last kill are enriched again" % len(late))
    ok(re.search(r"helper podmeta\[\d+\]: killed by signal 9", cd.stderr()),
       "the kills are logged")
    cd.usr1()
    ok(cd.wait_stderr(r"stats: helper podmeta: .*restarts [1-9]"), "stats count restarts")
    h.all_valid_json(cd.log)
    hu.diag_stderr(sys.modules["tap"], cd)
done()
