#!/usr/bin/env python3
# 10,000 generated pods (each a full-size copy of the recorded coredns pod,
# managedFields and all): one paginated list from one snapshot, one watch,
# every IP answered exactly, no API request per lookup, memory bounded.
import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(__file__)), "lib"))
import tap  # noqa: E402
from k8sapi import fixtures as kf  # noqa: E402
import podmeta_util as pu  # noqa: E402

pu.require_podmeta(tap)

N = 10000
pods = kf.generate_pods(N)
api = pu.start_api(pods=pods)


def rss_kb(pid, key="VmHWM"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


with pu.Scenario(api):
    t0 = time.time()
    pm = pu.start_podmeta(api, "--sync-wait", "120")  # ASan on a busy machine: slow
    first = pods[0]
    r = pm.lookup(first["status"]["podIP"], timeout=130)
    pu.check_known(tap, r, first, first["status"]["podIP"], name="first lookup after the big list")
    tap.diag("synced %d pods in %.2fs" % (N, time.time() - t0))

    # ---- the list: paginated, all pages from one snapshot
    lists = api.requests("list")
    tap.ok(len(lists) >= 2, "the list was paginated (%d pages)" % len(lists))
    limit = int(lists[0]["query"].get("limit") or 0) if lists else 0
    tap.ok(0 < limit <= 5000, "with a limit (%d)" % limit)
    tap.is_(len(lists), -(-N // limit) if limit else None, "exactly ceil(N/limit) pages: one list, no retries")
    tap.ok(all("continue" not in r["query"] for r in lists[:1]) and
           all(r["query"].get("continue") for r in lists[1:]), "pages 2.. follow metadata.continue")
    tap.ok(all(r["status"] == 200 for r in lists), "all pages 200")
    tap.ok(api.wait_for(lambda: api.count("watch") >= 1, 10), "then a watch")
    w = api.requests("watch")
    tap.is_(w[0]["query"].get("resourceVersion") if w else None, str(api.resource_version),
            "watch from the list's resourceVersion")

    # ---- every IP, pipelined with channel IDs
    t1 = time.time()
    lines = "".join("%d %s -\n" % (i, p["status"]["podIP"]) for i, p in enumerate(pods))
    pm.write(lines)
    got = {}
    deadline = time.time() + 60
    while len(got) < N and time.time() < deadline:
        line = pm.readline(max(0.1, deadline - time.time()))
        if line is None:
            break
        rr = pu.Reply(line)
        got.setdefault(rr.id, []).append(rr)
    dt = time.time() - t1
    tap.is_(len(got), N, "%d replies, one per ID" % N)
    tap.ok(all(len(v) == 1 for v in got.values()), "no ID answered twice")
    bad = []
    for i, p in enumerate(pods):
        rr = (got.get(str(i)) or [None])[0]
        ip = p["status"]["podIP"]
        if rr is None or rr.status != "OK" or rr.log != pu.expected_json(p, ip) \
                or rr.kv.get("pod") != p["metadata"]["name"]:
            bad.append((i, rr.raw if rr else None))
    tap.ok(not bad, "all %d answers exact" % N)
    for i, raw in bad[:5]:
        tap.diag("pod %d: %r" % (i, raw))
    tap.ok(dt < 20, "%d lookups in %.2fs" % (N, dt))
    tap.diag("%d lookups in %.2fs (%.0f/s)" % (N, dt, N / dt if dt else 0))
    tap.is_(api.count("list"), len(lists), "no list per lookup")
    tap.is_(api.count("watch"), 1, "still one watch")
    tap.is_(api.count("get"), 0, "no GET per lookup")

    # ---- churn on the big cluster arrives through the watch
    for i in range(0, 200, 2):
        api.delete_pod(pods[i]["metadata"]["namespace"], pods[i]["metadata"]["name"])
    newpods = [kf.make_pod("late-%03d" % i, "10.200.0.%d" % (i + 1), namespace="late") for i in range(100)]
    for p in newpods:
        api.add_pod(p)
    r = pm.wait_reply("10.200.0.100", lambda r: r.log is not None and r.log.get("name") == "late-099", 10)
    pu.check_known(tap, r, api.get_pod("late", "late-099"), "10.200.0.100", name="100 adds after 100 deletes arrive")
    ok = all(pm.lookup(p["status"]["podIP"]).log == pu.expected_json(api.get_pod("late", p["metadata"]["name"]),
                                                                       p["status"]["podIP"]) for p in newpods)
    tap.ok(ok, "all 100 new pods answer")
    tap.is_(api.count("list"), len(lists), "no relist for churn")

    if tap.sanitized(pu.PODMETA):
        tap.skip("memory figures are meaningless under ASan (it quarantines freed memory)", 2)
    else:
        hwm = rss_kb(pm.p.pid)
        tap.ok(hwm is not None and hwm < 200 * 1024, "peak RSS under 200 MB (%s kB)" % hwm)
        cur = rss_kb(pm.p.pid, "VmRSS")
        tap.ok(cur is not None and cur < 120 * 1024, "RSS after sync under 120 MB: spec and managedFields dropped (%s kB)" % cur)
    pm.signal(10)
    tap.ok(api.wait_for(lambda: "SIGUSR1" in pm.stderr() or "stats" in pm.stderr(), 3), "SIGUSR1: stats printed")
    tap.like(pm.stderr(), r"pods\D{0,3}100\d\d", "SIGUSR1 stats count the pods")
    tap.is_(pm.close(), 0, "exit 0")
tap.done()
