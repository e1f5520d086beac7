#!/usr/bin/env python3
"""39-helper-reload.t: helper children follow a SIGHUP.

Three external_acl_type lines: "keep" (podmeta, 2 children at startup),
"change" (podmeta, 1 child) and "gated" (a script that answers only once
a gate file exists).  A tunnel leaves a request in flight at "gated".
Then SIGHUP with a configuration where "keep" is written exactly as
before, "change" has another ttl and "gated" another log-wait.
Expectations:
  - "keep": the very same child pids before and after;
  - "change": the old child exits, a new one runs (different pid);
  - "gated": the old child is not stopped while its request is in flight;
    when the gate opens it answers, the waiting line carries that answer,
    and then the old child exits;
  - after the reload tunnels are enriched as before (the first defined
    type that answers with log= wins: "keep");
  - a reload that drops a type closes its children.
"""
import os
import sys
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import helper_util as hu
from tap import ok, is_, diag, done

pm, echo, pods = hu.setup(90, 3, backlog=32)
keep_src = hu.write_pods(h.tmpfile("keep.json"), pods)
change_src = hu.write_pods(h.tmpfile("change.json"), pods)
gate = h.tmpfile("gate")
GATED = r'''#!%s
import os, sys, time
for line in sys.stdin:
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.01)
    sys.stdout.write('OK log="{\\"gated\\":true}"\n')
    sys.stdout.flush()
''' % hu.PY
gprog = hu.script("gated.py", GATED)

KEEP = "external_acl_type keep ttl=60 children-startup=2 %%SRC %s --source file:%s" % (pm, keep_src)
GATE1 = "external_acl_type gated ttl=60 children-idle=0 log-wait=30 %%SRC %s %s" % (gprog, gate)
GATE2 = "external_acl_type gated ttl=60 children-idle=0 log-wait=29 %%SRC %s %s" % (gprog, gate)
CHANGE = "external_acl_type change ttl=%d children-startup=1 %%SRC %s --source file:%s"
v1 = hu.base_conf("\n".join([GATE1, KEEP, CHANGE % (5, pm, change_src)]))
v2 = hu.base_conf("\n".join([GATE2, KEEP, CHANGE % (6, pm, change_src)]))
v3 = hu.base_conf(KEEP)


def kids(cd, what):
    return set(hu.helper_children(cd, what))


with h.Connectd(v1) as cd:
    ok(h.wait_for(lambda: len(kids(cd, "keep.json")) == 2 and len(kids(cd, "change.json")) == 1),
       "startup: 2 keep children, 1 change child")
    keep1, change1 = kids(cd, "keep.json"), kids(cd, "change.json")
    c = hu.Client(cd.port, echo.authority, src=hu.pod_ip(1))
    ok(c.echo(b"x") == b"x", "a tunnel while gated holds its request")
    c.close()
    ok(h.wait_for(lambda: len(kids(cd, "gated.py")) >= 1), "the gated helper runs")
    gated1 = kids(cd, "gated.py")
    time.sleep(0.3)
    is_(len(cd.lines()), 0, "its line waits for gated (defined first)")

    cd.write_conf(v2)
    cd.hup()
    ok(cd.wait_stderr(r"configuration reloaded"), "SIGHUP: reloaded")
    ok(h.wait_for(lambda: not (kids(cd, "change.json") & change1) and len(kids(cd, "change.json")) == 1),
       "change: the old child is gone, a new one runs")
    is_(kids(cd, "keep.json"), keep1, "keep: the same children (pids %s)" % sorted(keep1))
    time.sleep(0.5)
    ok(gated1 <= kids(cd, "gated.py"), "gated: the old child still runs with its request in flight")
    open(gate, "w").close()
    lines = cd.wait_lines(1)
    is_(lines[0].get("pod") if lines else None, {"gated": True},
        "the waiting line carries the old child's answer")
    ok(h.wait_for(lambda: not (kids(cd, "gated.py") & gated1)), "then the old gated child exits")

    c = hu.Client(cd.port, echo.authority, src=hu.pod_ip(2))
    c.echo(b"y")
    c.close()
    lines = cd.wait_lines(2)
    is_(lines[-1].get("pod") if len(lines) == 2 else None, {"gated": True},
        "after the reload: the first defined type's answer")
    is_(kids(cd, "keep.json"), keep1, "keep: still the same children")

    cd.write_conf(v3)
    cd.hup()
    ok(h.wait_for(lambda: len(kids(cd, "change.json")) == 0 and len(kids(cd, "gated.py")) == 0),
       "types dropped by a reload: their children close")
    c = hu.Client(cd.port, echo.authority, src=hu.pod_ip(3))
    c.echo(b"z")
    c.close()
    lines = cd.wait_lines(3)
    is_(lines[-1].get("pod") if len(lines) == 3 else None, hu.expected(pods[2], hu.pod_ip(3)),
        "keep alone answers now")
    is_(kids(cd, "keep.json"), keep1, "keep: the same children through both reloads")
    h.all_valid_json(cd.log)
    hu.diag_stderr(sys.modules["tap"], cd)
done()
