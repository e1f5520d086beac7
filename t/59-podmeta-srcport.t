#!/usr/bin/env python3
"""59-podmeta-srcport.t: a helper FORMAT that starts with a number (issue 9, defect 10).

Squid cannot tell a helper whether concurrency is on, so podmeta's default
(--channel-id auto) takes a leading all-digit token followed by more tokens
for a channel ID.  `external_acl_type pm %SRCPORT %SRC podmeta ...` sends
`54321 127.0.1.1 -`; podmeta answered `54321 OK ...`, connectd
(concurrency=0) called that a malformed reply and killed the child.
--channel-id no|yes says whether there is an ID, and --address-token N
which token is %SRC.  Expectations:
  - podmeta driven directly with --channel-id no --address-token 2 answers
    `54321 10.0.0.1` (with or without %DATA) with the pod of 10.0.0.1 and no
    channel ID; a port that looks like an address is never looked up;
  - --channel-id yes --address-token 2 echoes the ID and finds the address
    after the port; a line without an ID is refused, without one;
  - --channel-id no with the default --address-token 1: a leading number is
    not an address (ERR, no ID); the default, auto, is unchanged;
  - bad option values are refused at start;
  - under connectd, `%SRCPORT %SRC` with concurrency=0 (--channel-id no) and
    with concurrency=4 (--channel-id yes): every tunnel's line has its pod,
    no pod_error, connectd's stderr says nothing of malformed replies and
    the helper was never restarted.
"""
import concurrent.futures
import os
import re
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import helper_util as hu
from k8sapi import fixtures as kf  # noqa: E402
import podmeta_util as pu
import tap
from tap import ok, is_, diag, done

PM = hu.need_podmeta(tap)
h.need_connectd()
h.watchdog(120)

# ---------------------------------------------------------------- direct
pods = [kf.make_pod("web-%d" % i, ip="10.0.0.%d" % i, namespace="ns", slim=True)
        for i in range(1, 4)]
direct = hu.write_pods(h.tmpfile("direct.json"), pods)
p1 = pods[0]


def podmeta(*args):
    return pu.Podmeta(["--source", "file:" + direct] + list(args))


def bad(reply, id=None, msg=None):
    r = pu.Reply(reply)
    return r.status == "ERR" and r.id == id and (msg is None or r.kv.get("message") == msg)


pm = podmeta("--channel-id", "no", "--address-token", "2")
try:
    exact = pu.expected_line(p1, "10.0.0.1")
    is_(pm.ask("54321 10.0.0.1"), exact, "--channel-id no --address-token 2: `54321 10.0.0.1` -> its pod, no ID")
    is_(pm.ask("54321 10.0.0.1 -"), exact, "... with the trailing %DATA")
    is_(pm.ask("1 10.0.0.1 -"), exact, "... port 1")
    is_(pm.ask("54321 10.0.0.9 -"), 'OK log="{\\"ip\\":\\"10.0.0.9\\",\\"pod\\":null}"',
        "... an unknown address: pod null, no ID")
    is_(pm.ask("10.0.0.1 10.0.0.2 -"), pu.expected_line(pods[1], "10.0.0.2"),
        "... the second token is the address, even when the first looks like one")
    ok(bad(pm.ask("54321 not-an-ip -"), msg="not an IP address"), "... not an address: ERR, no ID")
    ok(bad(pm.ask("54321")), "... no second token: ERR, no ID")
    ok(pm.alive(), "podmeta still runs")
    is_(pm.close(), 0, "EOF: exit 0")
    if tap._failed:
        diag("podmeta stderr:\n" + pm.stderr()[-2000:])
finally:
    pm.kill()

pm = podmeta("--channel-id", "yes", "--address-token", "2")
try:
    is_(pm.ask("3 54321 10.0.0.1 -"), pu.expected_line(p1, "10.0.0.1", id=3),
        "--channel-id yes --address-token 2: `3 54321 10.0.0.1 -` -> ID 3 and its pod")
    is_(pm.ask("0 54321 10.0.0.1"), pu.expected_line(p1, "10.0.0.1", id=0), "... ID 0, no %DATA")
    ok(bad(pm.ask("10.0.0.1 -"), msg="no channel ID"), "... a line without an ID: ERR, no ID")
    ok(bad(pm.ask("5 54321"), id="5"), "... no address token: ERR with the ID")
    is_(pm.close(), 0, "EOF: exit 0")
finally:
    pm.kill()

pm = podmeta("--channel-id", "no")
try:
    is_(pm.ask("10.0.0.1 -"), pu.expected_line(p1, "10.0.0.1"), "--channel-id no: `10.0.0.1 -` as before")
    ok(bad(pm.ask("7 10.0.0.1 -"), msg="not an IP address"), "... `7 10.0.0.1 -`: 7 is not an address, no ID")
    is_(pm.close(), 0, "EOF: exit 0")
finally:
    pm.kill()

pm = podmeta()
try:
    is_(pm.ask("7 10.0.0.1 -"), pu.expected_line(p1, "10.0.0.1", id=7), "default (auto): `7 10.0.0.1 -` has ID 7")
    is_(pm.ask("10.0.0.1"), pu.expected_line(p1, "10.0.0.1"), "... `10.0.0.1`: no ID")
    is_(pm.close(), 0, "EOF: exit 0")
finally:
    pm.kill()

for args, what in ((["--channel-id", "maybe"], "--channel-id maybe"),
                   (["--address-token", "0"], "--address-token 0"),
                   (["--address-token", "17"], "--address-token 17"),
                   (["--address-token", "2x"], "--address-token 2x")):
    rc, _, err = h.run([PM, "--source", "file:" + direct] + args, timeout=20, input="")
    ok(rc not in (0, None) and args[0] in err,
       "%s: refused at start, naming the option" % what)

# ---------------------------------------------------------------- connectd
N_PODS = 8
PER_POD = 3
cpods = hu.make_pods(N_PODS)
src = hu.write_pods(h.tmpfile("pods.json"), cpods)
want = {hu.pod_ip(i + 1): hu.expected(p, hu.pod_ip(i + 1)) for i, p in enumerate(cpods)}
echo = h.EchoServer(backlog=64)


def run(name, options, idmode):
    conf = hu.base_conf("external_acl_type pm ttl=60 children-max=2 queue-size=100 %s %%SRCPORT %%SRC %s "
                        "--channel-id %s --address-token 2 --source file:%s" % (options, PM, idmode, src))
    with h.Connectd(conf, name=name) as cd:
        # the first tunnel may wait for podmeta's start: not a test of speed
        c = hu.Client(cd.port, echo.authority, src=hu.pod_ip(1))
        is_(c.status, 200, "%s: a first tunnel" % name)
        c.close()
        cd.wait_lines(1, timeout=15)
        jobs = [hu.pod_ip(i) for i in range(1, N_PODS + 1)] * PER_POD

        def one(ip):
            c = hu.Client(cd.port, echo.authority, src=ip)
            data = ("%s:%d" % (c.src, c.local_port)).encode()
            good = c.status == 200 and c.echo(data) == data
            c.close()
            return (c.src, c.local_port, good)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            done_ = list(pool.map(one, jobs))
        is_(sum(1 for d in done_ if d[2]), len(jobs), "%s: %d tunnels, each from its own port" % (name, len(jobs)))
        lines = cd.wait_lines(len(jobs) + 1, timeout=20)
        is_(len(lines), len(jobs) + 1, "%s: one line per tunnel" % name)
        mine = hu.by_port(lines)
        wrong = []
        for s, port, _ in done_:
            x = mine.get((s, port))
            if x is None or x.get("pod") != want[s] or "pod_error" in x:
                wrong.append((s, port, x and x.get("pod"), x and x.get("pod_error")))
        is_(len(wrong), 0, "%s: every line has the pod of its client address, no pod_error" % name)
        for w in wrong[:5]:
            diag("wrong: %r" % (w,))
        cd.term()
        cd.wait_exit()
        err = cd.stderr()
        ok("malformed reply" not in err, "%s: connectd's stderr says nothing of malformed replies" % name)
        m = re.search(r"stats: helper pm: .*?restarts (\d+), malformed (\d+)", err)
        ok(m is not None and m.groups() == ("0", "0"), "%s: the helper was never restarted (%s)" %
           (name, "restarts %s, malformed %s" % m.groups() if m else "no stats line"))
        hu.diag_stderr(tap, cd)


run("concurrency=0", "", "no")
run("concurrency=4", "concurrency=4", "yes")
done()
