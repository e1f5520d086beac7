#!/usr/bin/env python3
"""55-conf-scale.t: configuration parsing grows linearly with acl lines.

Looking up an acl by name used to scan every acl defined so far, so
40,000 acl lines took 5 s to parse, on start and on every SIGHUP, which
stalls every tunnel (issue 9, defect 6).  The cost is measured in
instructions, counted by valgrind's callgrind, not in seconds, so the
result does not depend on the machine or its load.

Expectations:
- connectd -t on 4,000 acl lines (with http_access lines naming them)
  costs at most 2.6 times what 2,000 cost (linear: about 2; the old
  quadratic lookup: about 4);
- names stay case-insensitive and a duplicate acl of another type is
  still refused, with its line;
- 20,000 acl lines load, and a SIGHUP with them keeps an open tunnel
  working.  (How long a reload takes is a bench/ figure, not a test.)
"""
import os
import re
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
from tap import ok, is_, like, diag, done, skip_all, sanitized

h.need_connectd()
h.watchdog(180)


def acl_conf(n, port=3999):
    out = ["http_port 127.0.0.1:%d" % port]
    out += ["acl a%d dst 10.%d.%d.0/24" % (i, (i >> 8) & 255, i & 255) for i in range(n)]
    out += ["http_access deny A%d" % i for i in range(0, n, 4)]
    return "\n".join(out) + "\n"


if h.have("valgrind") and not sanitized(h.connectd_bin()):
    costs = {}
    for n in (2000, 4000):
        path = h.tmpfile("acl%d.conf" % n, acl_conf(n))
        costs[n] = h.instructions([h.connectd_bin(), "-t", "-f", path])
    diag("instructions: %r" % costs)
    ok(costs[2000] and costs[4000] and costs[4000] <= 2.6 * costs[2000],
       "4,000 acl lines cost at most 2.6 times 2,000 (%.2f)" %
       (costs[4000] / float(costs[2000] or 1)))
else:
    ok(True, "# SKIP valgrind missing, or a sanitizer build")

bad = h.tmpfile("dup.conf", acl_conf(10) + "acl A3 port 443\n")
rc, out, err = h.run([h.connectd_bin(), "-t", "-f", bad], timeout=30)
ok(rc != 0, "an acl named again with another type is refused")
like(err, r"dup\.conf:\d+: acl 'A3' already exists with type dst|dup\.conf:\d+: acl 'a3' already exists",
     "... with its file:line, whatever the case of the name")

echo = h.EchoServer()
big = acl_conf(20000).split("\n", 1)[1]
with h.Connectd(big + pu.LOOPBACK_ALLOW) as cd:
    c = pu.Client(cd.port)
    st, _ = c.connect(echo.authority)
    is_(st, 200, "20,000 acl lines load; a tunnel works")
    cd.hup()
    ok(cd.wait_stderr(r"configuration reloaded", timeout=60), "SIGHUP with them: reloaded")
    is_(c.echo(b"r"), b"r", "the tunnel open across the reload still works")
    c.close()
done()
