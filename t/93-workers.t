#!/usr/bin/env python3
"""93-workers.t: `workers N`, N event loops in N threads.

Expectations, with `workers 2` unless said:
- tunnels from 24 client addresses (127.0.0.1 .. 127.0.0.24, two each)
  all work; every log line is whole, valid JSON; there is one per tunnel;
- both workers accept (the per-worker counter of /metrics, and the
  SIGUSR1 stats line's "accepted by worker a/b"); the sums in /metrics
  equal the count of lines; /readyz says ready;
- client_ip_max_connections 2 is exact for every address: the kernel
  steers each address to one worker (SO_REUSEPORT with a BPF program);
- a helper answers in each worker (each runs its own children: lines
  carry at least two helper pids);
- SIGHUP changes the policy in every worker; a reload that changes
  `workers` is refused, and the running configuration goes on;
- SIGTERM drains: an open tunnel still works during shutdown_lifetime,
  and gets its line;
- `workers auto` starts one per CPU; `connectd -t -v` prints it;
- bad values are configuration errors with file:line."""
import os
import re
import signal
import sys
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import metrics_util as mu
import policy_util as pu
from tap import ok, is_, like, diag, done

h.need_connectd()
h.watchdog(120)
echo = h.EchoServer()
ALLOW = pu.LOOPBACK_ALLOW
SRCS = ["127.0.0.%d" % i for i in range(1, 25)]

# a helper whose answer names its pid: which worker's children answered
helper = h.tmpfile("pid-helper", "#!/usr/bin/env python3\n"
                   "import os, sys\n"
                   "for line in sys.stdin:\n"
                   "    sys.stdout.write('OK log=p%d\\n' % os.getpid())\n"
                   "    sys.stdout.flush()\n", mode=0o755)

conf = ("workers 2\nexternal_acl_type pid ttl=0 children-max=1 %%SRC %s\n" % helper
        + ALLOW)
with h.Connectd(conf, metrics=True) as cd:
    good = 0
    for src in SRCS * 2:
        c = pu.Client(cd.port, source=src)
        st, _ = c.connect(echo.authority)
        good += st == 200 and c.echo(b"x") == b"x"
        c.close()
    is_(good, len(SRCS) * 2, "48 tunnels from 24 addresses all work")
    lines = cd.wait_lines(len(SRCS) * 2)
    is_(len(lines), len(SRCS) * 2, "one line per tunnel")
    ok(h.all_valid_json(cd.log), "every line is whole, valid JSON")
    ids = [x.get("id") for x in lines]
    uids = [x.get("uid") for x in lines]
    ok(len(set(ids)) == len(ids) and len(set(uids)) == len(uids),
       "ids and uids are unique across the workers (%s...)" % sorted(ids)[:6])
    pods = set(re.findall(r'"pod_raw":"(p\d+)"', open(cd.stdout_path).read()))
    ok(len(pods) >= 2, "helpers answered in each worker (pids %s)" % sorted(pods))

    sc = mu.scrape(cd.metrics_port)[0]
    per = sc.series("connectd_worker_connections_accepted_total")
    vals = sorted(v for _, v in per)
    is_(len(per), 2, "two per-worker accepted counters")
    ok(all(v > 0 for v in vals), "both workers accepted (%s)" % vals)
    is_(sc.value("connectd_connections_accepted_total"), float(len(SRCS) * 2),
        "accepted, summed over workers, equals the tunnels")
    is_(sc.total("connectd_tunnels_total"), float(len(lines)),
        "tunnels_total, summed, equals the count of lines")
    is_(sc.value("connectd_ready"), 1.0, "ready: every worker listens")
    st, _, body = mu.get(cd.metrics_port, "/readyz")
    is_(st, 200, "/readyz says 200")
    cd.usr1()
    ok(cd.wait_stderr(r"stats: accepted %d, .* accepted by worker \d+/\d+" % (len(SRCS) * 2)),
       "SIGUSR1 stats are summed, with the count of each worker")
    m = re.search(r"accepted by worker (\d+)/(\d+)", cd.stderr())
    ok(m and int(m.group(1)) > 0 and int(m.group(2)) > 0, "... both non-zero")

# --- the per-IP limit is exact across workers
with h.Connectd("workers 2\nclient_ip_max_connections 2\n" + ALLOW) as cd:
    exact = 0
    for src in SRCS[:8]:
        a = pu.Client(cd.port, source=src)
        b = pu.Client(cd.port, source=src)
        sa, _ = a.connect(echo.authority)
        sb, _ = b.connect(echo.authority)
        c = pu.Client(cd.port, source=src)
        sc_, _ = c.connect(echo.authority)
        exact += (sa, sb, sc_) == (200, 200, 503)
        for x in (a, b, c):
            x.close()
    is_(exact, 8, "8 addresses: two tunnels each, the third gets 503")

# --- reload: every worker takes the new policy; workers cannot change
with h.Connectd("workers 2\n" + ALLOW) as cd:
    is_(sum(pu.Client(cd.port, source=s).connect(echo.authority)[0] == 200
            for s in SRCS[:8]), 8, "allowed from 8 addresses")
    cd.write_conf("workers 2\nhttp_access deny all\n")
    cd.hup()
    ok(cd.wait_stderr(r"configuration reloaded"), "reloaded")
    time.sleep(0.3)
    is_(sum(pu.Client(cd.port, source=s).connect(echo.authority)[0] == 403
            for s in SRCS[:8]), 8, "after the reload all 8 are denied, in both workers")
    cd.write_conf("workers 3\n" + ALLOW)
    cd.hup()
    ok(cd.wait_stderr(r"reload refused.*changing workers needs a restart"),
       "changing workers is refused with a clear message")
    is_(pu.Client(cd.port, source=SRCS[1]).connect(echo.authority)[0], 403,
        "... and the running configuration goes on")

# --- SIGTERM drains every worker
with h.Connectd("workers 2\nshutdown_lifetime 10 seconds\n" + ALLOW) as cd:
    open_ = []
    for s in SRCS[:4]:
        c = pu.Client(cd.port, source=s)
        c.connect(echo.authority)
        open_.append(c)
    cd.term()
    ok(cd.wait_stderr(r"shutting down"), "SIGTERM: shutting down")
    time.sleep(0.3)
    ok(all(c.echo(b"y") == b"y" for c in open_), "open tunnels of both workers still work")
    for c in open_:
        c.close()
    rc = cd.wait_exit(10 * h.SLOW)
    is_(rc, 0, "exits once the last tunnel closed")
    is_(len(cd.log.lines()), 4, "each drained tunnel has its line")

# --- workers auto
with h.Connectd("workers auto\n" + ALLOW) as cd:
    ok(pu.Client(cd.port).connect(echo.authority)[0] == 200, "workers auto serves")
    n = len(os.sched_getaffinity(0))
    if n > 1:
        ok(cd.wait_stderr(r"%d workers" % n), "one worker per CPU (%d)" % n)
    else:
        ok(True, "one CPU: one worker")
path = h.tmpfile("auto.conf", "http_port 127.0.0.1:3128\nworkers auto\n")
rc, out, err = h.run([h.connectd_bin(), "-t", "-v", "-f", path])
ok(rc == 0 and "workers auto" in out, "connectd -t -v prints workers auto")

# --- bad values
for bad in ("0", "-1", "two", "257", "2 3"):
    path = h.tmpfile("bad.conf", "http_port 127.0.0.1:3128\n\nworkers %s\n" % bad)
    rc, out, err = h.run([h.connectd_bin(), "-t", "-f", path])
    ok(rc != 0 and re.search(re.escape(path) + r":3: .*workers", err),
       "workers %s: an error at file:line" % bad)

done()
