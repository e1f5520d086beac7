#!/usr/bin/env python3
"""58-podmeta-file-reload.t: --source file: loads off the lookup path (issue 9, defect 9).

podmeta read a changed PodList in its event loop: a 49 MB file kept every
lookup waiting for seconds, longer than connectd's log-wait, and a FIFO at
the path hung podmeta in open() for good, deaf to EOF on stdin.  Here a
PodList of some 30 MB (generated in the temp dir) is rewritten while
lookups stream in.  Expectations, on answers and on the order of events,
never on timings:
  - every lookup is answered, each with a right answer (the pod before the
    reload or after it);
  - lookups sent while the load is in progress (podmeta says it is loading,
    or holds the file open) are answered before podmeta logs that the load
    is complete;
  - after the load, new pods answer, a changed pod has its new labels, and
    pods gone from the file are tombstones (still answered, counted as
    tombstones by SIGUSR1's stats line);
  - a FIFO and then a directory put at the path are refused, each with a
    message that says so, while podmeta keeps answering from the pods it
    has; a regular file put back is loaded again;
  - EOF on stdin during a load ends podmeta (status 0) before the load
    completes;
  - started on a FIFO, a directory or /dev/zero, podmeta refuses it with a
    message, answers BH ("no pod list yet") after --sync-wait, and EOF ends
    it with status 0.
"""
import json
import os
import re
import signal
import sys
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from k8sapi import fixtures as kf  # noqa: E402
import podmeta_util as pu
import tap
from tap import ok, is_, diag, done

pu.require_podmeta(tap)
h.watchdog(600)
W = h.SLOW                              # scales every wait (sanitizer builds)

N = 3000                                # full pods (managedFields and all): ~30 MB
GONE = 50                               # pods dropped by the reload
path = h.tmpfile("pods.json")


def ip_a(i):
    return "10.58.%d.%d" % (i >> 8, i & 255)


def ip_b(i):
    return "10.59.%d.%d" % (i >> 8, i & 255)


def write_list(pods, p=path):
    """An atomic replace, as kubectl ... > tmp && mv tmp path would do it."""
    tmp = p + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
                            "items": pods}))
    os.replace(tmp, p)


old = [kf.make_pod("a-%d" % i, ip=ip_a(i), namespace="ns-%d" % (i % 5)) for i in range(N)]
kept = old[0]
changed = dict(kept, metadata=dict(kept["metadata"], labels={"app": "a", "version": "two"}))
born = [kf.make_pod("b-%d" % i, ip=ip_b(i), namespace="ns-b") for i in range(GONE)]
new = [changed] + old[1:N - GONE] + born
gone = old[N - GONE]
write_list(old)
diag("PodList: %d bytes" % os.path.getsize(path))
KEEP_IP, BORN_IP, GONE_IP = ip_a(0), ip_b(7), ip_a(N - GONE)


def starts(err, p=path):
    return len(re.findall(re.escape(p) + r": loading\b", err))


def ends(err, p=path):
    return len(re.findall(re.escape(p) + r": loaded \d+ pods", err))


def holds_file(pm, p):
    """podmeta has the PodList open (the old code logged nothing at the start)."""
    d = "/proc/%d/fd" % pm.p.pid
    try:
        for fd in os.listdir(d):
            try:
                if os.readlink(os.path.join(d, fd)) == p:
                    return True
            except OSError:
                pass
    except OSError:
        pass
    return False


def loading(pm, n_ends, p=path):
    """A load that has not completed yet is under way."""
    err = pm.stderr()
    return ends(err, p) == n_ends and (starts(err, p) > n_ends or holds_file(pm, p))


def clean(pm, what):
    """No sanitizer report on pm's stderr (read it before pm.kill())."""
    rep = re.search(r"==\d+==ERROR: \w+Sanitizer|runtime error:|WARNING: ThreadSanitizer", pm.stderr())
    ok(rep is None, "%s: no sanitizer report" % what)
    if rep:
        diag(pm.stderr()[rep.start():rep.start() + 3000])


pm = pu.Podmeta(["--source", "file:" + path, "--sync-wait", "600"])
try:
    # ---- the first load: requests wait for it
    r = pm.lookup(KEEP_IP, timeout=120 * W)
    pu.check_known(tap, r, kept, KEEP_IP, name="first load: %s -> its pod" % KEEP_IP)
    pu.check_known(tap, pm.lookup(GONE_IP), gone, GONE_IP, name="... %s -> its pod" % GONE_IP)
    pu.check_unknown(tap, pm.lookup(BORN_IP), BORN_IP, name="... %s not yet known" % BORN_IP)
    n_ends = ends(pm.stderr())
    is_(n_ends, 1, "the load's completion is logged once")

    # ---- the reload, with lookups streaming in
    write_list(new)
    rounds = []          # (ip, reply, sent while loading, answered before completion)
    end = h.deadline(300)
    while time.monotonic() < end and pm.alive():
        for ip in (KEEP_IP, BORN_IP, GONE_IP):
            during = loading(pm, n_ends)
            r = pm.lookup(ip, timeout=120 * W)
            rounds.append((ip, r, during, ends(pm.stderr()) == n_ends))
        if ends(pm.stderr()) > n_ends:
            break
        time.sleep(0.01)
    ok(ends(pm.stderr()) == n_ends + 1, "the reload completed (%d lookups meanwhile)" % len(rounds))
    unanswered = [x for x in rounds if x[1].raw is None]
    is_(len(unanswered), 0, "every lookup during the reload was answered")
    wrong = []
    for ip, r, _, _ in rounds:
        if r.raw is None:
            continue
        if ip == KEEP_IP:
            good = r.log in (pu.expected_json(kept, ip), pu.expected_json(changed, ip))
        elif ip == BORN_IP:
            good = r.log in (pu.unknown_json(ip), pu.expected_json(born[7], ip))
        else:
            good = r.log == pu.expected_json(gone, ip)
        if not good or r.id is not None:
            wrong.append(r.raw[:300])
    is_(len(wrong), 0, "... each with the answer from before or after the reload")
    for w in wrong[:3]:
        diag("wrong: %s" % w)
    during = [x for x in rounds if x[2]]
    ok(during, "the load was seen under way (%d lookups sent meanwhile)" % len(during))
    early = [x for x in during if x[3] and x[1].raw is not None]
    ok(early, "lookups sent during the load were answered before its completion was logged (%d of %d)" %
       (len(early), len(during)))

    # ---- after the reload
    pu.check_known(tap, pm.lookup(BORN_IP), born[7], BORN_IP, name="after the reload: a new pod answers")
    pu.check_known(tap, pm.lookup(KEEP_IP), changed, KEEP_IP, name="... a changed pod has its new labels")
    pu.check_known(tap, pm.lookup(GONE_IP), gone, GONE_IP, name="... a pod gone from the file is a tombstone")
    nstats = len(re.findall(r"stats \(SIGUSR1\)", pm.stderr()))
    pm.signal(signal.SIGUSR1)
    h.wait_for(lambda: len(re.findall(r"stats \(SIGUSR1\)", pm.stderr())) > nstats, 20)
    st = re.findall(r"stats \(SIGUSR1\): pods=(\d+) tombstones=(\d+)", pm.stderr())
    is_(st[-1] if st else None, (str(N), str(GONE)), "stats: %d pods, %d tombstones" % (N, GONE))

    # ---- a FIFO, then a directory, at the path: refused, lookups go on
    fifo = path + ".fifo"
    os.mkfifo(fifo)
    os.replace(fifo, path)
    ok(h.wait_for(lambda: re.search(re.escape(path) + r": not a regular file \(a FIFO\)", pm.stderr()), 20),
       "a FIFO at the path: refused, and the log says so")
    pu.check_known(tap, pm.lookup(BORN_IP, timeout=10 * W), born[7], BORN_IP,
                   name="... lookups are answered from the pods already loaded")
    os.unlink(path)
    os.mkdir(path)
    ok(h.wait_for(lambda: re.search(re.escape(path) + r": not a regular file \(a directory\)", pm.stderr()), 20),
       "a directory at the path: refused, and the log says so")
    pu.check_known(tap, pm.lookup(KEEP_IP, timeout=10 * W), changed, KEEP_IP, name="... lookups still answered")
    ok(pm.alive(), "podmeta still runs")
    os.rmdir(path)
    small = [kf.make_pod("c-1", ip="10.60.0.1", namespace="ns-c")]
    write_list(small)
    r = pm.wait_reply("10.60.0.1", lambda r: r.log is not None and r.log.get("name") == "c-1", 30 * W)
    pu.check_known(tap, r, small[0], "10.60.0.1", name="a regular file put back is loaded")
    ok(h.wait_for(lambda: ends(pm.stderr()) == 3, 30), "... and its completion logged")
    is_(pm.close(30 * W), 0, "EOF: exit 0")
    clean(pm, "reloads")
    if tap._failed:
        diag("podmeta stderr (tail):\n" + pm.stderr()[-3000:])
finally:
    pm.kill()


# ---- EOF on stdin during a load ends podmeta before the load completes
eof = h.tmpfile("eof.json")
write_list(small, eof)
pm = pu.Podmeta(["--source", "file:" + eof, "--sync-wait", "600"])
try:
    pu.check_known(tap, pm.lookup("10.60.0.1", timeout=60 * W), small[0], "10.60.0.1",
                   name="another podmeta, on a small file")
    ok(h.wait_for(lambda: ends(pm.stderr(), eof) == 1, 30), "... its load is complete")
    write_list(old + old, eof)          # twice the pods: a load long enough to interrupt
    ok(h.wait_for(lambda: loading(pm, 1, eof), 30, interval=0.005), "the file grows: a load is under way")
    is_(pm.close(60 * W), 0, "EOF during the load: exit 0")
    is_(ends(pm.stderr(), eof), 1, "... before the load completed")
    clean(pm, "EOF during a load")
    if tap._failed:
        diag("podmeta stderr (tail):\n" + pm.stderr()[-3000:])
finally:
    pm.kill()

# ---- started on what is not a regular file
os.unlink(path)
os.mkfifo(path)
d = h.tmpfile("adir")
os.mkdir(d)
for what, p, kind in (("a FIFO", path, "a FIFO"), ("a directory", d, "a directory"),
                      ("/dev/zero", "/dev/zero", "a character device")):
    pm = pu.Podmeta(["--source", "file:" + p, "--sync-wait", "1"])
    try:
        r = pm.lookup("10.58.0.0", id=4, timeout=30 * W)
        is_((r.id, r.status, r.kv.get("message")), ("4", "BH", "no pod list yet"),
            "started on %s: BH after --sync-wait" % what)
        ok(re.search(re.escape(p) + r": not a regular file \(%s\)" % kind, pm.stderr()),
           "... refused, and the log says so")
        is_(pm.close(30 * W), 0, "... EOF ends it: exit 0")
        clean(pm, what)
        if tap._failed:
            diag("podmeta stderr (tail):\n" + pm.stderr()[-2000:])
    finally:
        pm.kill()
done()
