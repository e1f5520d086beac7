#!/usr/bin/env python3
"""35-helper-garbage.t: helpers that answer wrongly are stopped, not trusted.

Each bad helper below runs under its own connectd; five tunnels go
through each, one after another.
  garbage:  prints "hello garbage" (not OK/ERR/BH) and a line on stderr;
  badid:    concurrency=2, answers with channel ID 99 (never asked);
  bigid:    concurrency=1, answers with channel ID 2^64 (18446744073709551616),
            which must not wrap around to 0, the channel asked;
  longline: prints a 70 KB line (over the 64 KB bound);
  bh:       answers BH (Squid's "broken helper").
Expectations:
  - every tunnel echoes; every line is valid JSON with "pod": null;
  - garbage, badid, bigid, longline: pod_error "helper_down"; connectd's stderr
    names the cause ("malformed reply (...)"), carries the helper's own
    stderr line, and shows the helper started again (restarted);
  - bh: pod_error "bh"; each lookup is sent twice (retried once) and BH
    is not cached, so 5 tunnels make 10 requests.
"""
import os
import re
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import helper_util as hu
from tap import ok, is_, like, diag, done

h.need_connectd()
h.watchdog(90)
echo = h.EchoServer(backlog=64)

BAD = r'''#!%s
import sys
mode = sys.argv[1]
sys.stderr.write("bad helper %%s ready\n" %% mode)
sys.stderr.flush()
for line in sys.stdin:
    t = line.split()
    if mode == "garbage":
        out = "hello garbage"
    elif mode == "badid":
        out = "99 OK log=x"
    elif mode == "bigid":
        out = "18446744073709551616 OK log=x"
    elif mode == "longline":
        out = "OK log=" + "A" * 70000
    else:
        out = (t[0] + " " if mode == "bhid" else "") + "BH message=busy"
    sys.stdout.write(out + "\n")
    sys.stdout.flush()
''' % hu.PY
prog = hu.script("bad.py", BAD)
CAUSE = {"garbage": r"malformed reply \(not OK, ERR or BH\): \"hello garbage\"",
         "badid": r"malformed reply \(unknown channel ID\): \"99 OK log=x\"",
         "bigid": r"malformed reply \(unknown channel ID\): \"18446744073709551616 OK",
         "longline": r"malformed reply \(line too long\)"}

for mode in ("garbage", "badid", "bigid", "longline", "bh"):
    opts = {"badid": "concurrency=2 ", "bh": "concurrency=2 ",
            "bigid": "concurrency=1 "}.get(mode, "")
    pmode = "bhid" if mode == "bh" else mode
    conf = hu.base_conf("external_acl_type bad ttl=60 %s%%SRC %s %s" % (opts, prog, pmode))
    with h.Connectd(conf, name=mode) as cd:
        good = 0
        for i in range(5):
            c = hu.Client(cd.port, echo.authority, src=hu.pod_ip(1))
            good += c.echo(b"abc") == b"abc"
            c.close()
            cd.wait_lines(i + 1)
        is_(good, 5, "%s: all tunnels echo" % mode)
        lines = cd.wait_lines(5)
        want = "bh" if mode == "bh" else "helper_down"
        is_([(x.get("pod"), x.get("pod_error")) for x in lines], [(None, want)] * 5,
            "%s: every line has pod null and pod_error %s" % (mode, want))
        h.all_valid_json(cd.log)
        err = cd.stderr()
        if mode == "bh":
            cd.usr1()
            m = cd.wait_stderr(r"stats: helper bad: lookups (\d+), cache hits (\d+), shared \d+, "
                               r"requests (\d+), ok \d+, err \d+, bh (\d+)")
            is_(m and tuple(int(g) for g in m.groups()), (5, 0, 10, 10),
                "bh: 5 lookups, no cache hit, each sent twice")
        else:
            like(err, CAUSE[mode], "%s: the cause is logged" % mode)
            like(err, r"helper bad\[\d+\]: bad helper %s ready" % mode,
                 "%s: the helper's stderr is logged" % mode)
            ok(len(re.findall(r"helper bad\[\d+\]: started", err)) >= 2,
               "%s: the helper was started again" % mode)
        hu.diag_stderr(sys.modules["tap"], cd)
done()
