#!/usr/bin/env python3
# The API misbehaves the ways real ones do: the watch times out, the token is
# rotated (old one gets 401), the apiserver restarts, the RV is too old (HTTP
# 410 and an in-stream Expired ERROR), 429 with Retry-After, 500s.  podmeta
# keeps answering from memory throughout, and later changes still arrive.
import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(__file__)), "lib"))
import tap  # noqa: E402
from k8sapi import fixtures as kf  # noqa: E402
import podmeta_util as pu  # noqa: E402

pu.require_podmeta(tap)

mk = kf.make_pod
core = kf.fixture_pods()[0]
CORE_IP = core["status"]["podIP"]
fresh_pod = pu.PodSequence("10.60")


def still_answers(pm, what):
    pu.check_known(tap, pm.lookup(CORE_IP, timeout=3), core, CORE_IP, name="answers from memory " + what)


def change_arrives(api, pm, what, timeout=15):
    p = api.add_pod(fresh_pod("after"))
    ip = p["status"]["podIP"]
    r = pm.wait_reply(ip, pu.name_is(p["metadata"]["name"]), timeout)
    pu.check_known(tap, r, p, ip, name="a later change arrives " + what)
    return p


def since(api, n0, kind=None):
    return api.requests_since(n0, kind)


def fresh_podmeta(*args):
    """A new podmeta (fresh backoff state), synced and watching."""
    global pm
    pm, m = pu.restart_podmeta(api, pm, "--delete-grace", "1", *args)
    still_answers(pm, "(synced)")
    tap.ok(api.wait_watching_since(m, 5), "podmeta is watching")
    return pm


api = pu.start_api()
pm = None
with pu.Scenario(api):
    # ================= the watch ends normally; bookmarks move the RV
    na = api.add_pod(mk("nodea-1", "10.60.100.1", namespace="ci", node="node-a"))
    m = api.mark()
    pm = pu.start_podmeta(api, "--node", "node-a", "--delete-grace", "1")
    r = pm.wait_reply("10.60.100.1", pu.name_is("nodea-1"), 10)
    pu.check_known(tap, r, na, "10.60.100.1", name="--node node-a: synced")
    tap.ok(api.wait_watching_since(m, 5), "watching")
    for i in range(3):  # other nodes' pods: no events for podmeta, but the RV moves
        api.add_pod(fresh_pod("elsewhere", node="node-b"))
    api.bookmark()
    time.sleep(0.5)
    bm_rv = str(api.resource_version)
    n0 = len(api.requests())
    api.end_watches()  # as timeoutSeconds does: the terminating chunk
    tap.ok(api.wait_for(lambda: len(since(api, n0, "watch")) >= 1, 10), "re-watch after the watch ended")
    w = since(api, n0, "watch")
    tap.is_(w[0]["query"].get("resourceVersion") if w else None, bm_rv,
            "re-watch from the BOOKMARK's resourceVersion")
    tap.is_(len(since(api, n0, "list")), 0, "no relist when a watch ends normally")
    nb = api.add_pod(mk("nodea-2", "10.60.100.2", namespace="ci", node="node-a"))
    r = pm.wait_reply("10.60.100.2", pu.name_is("nodea-2"), 10)
    pu.check_known(tap, r, nb, "10.60.100.2", name="a later change arrives after the re-watch")

    # ================= token rotation
    fresh_podmeta()
    old = api.token
    api.rotate_token()
    n0 = len(api.requests())
    api.abort_watches()  # force a new request: it carries the old token
    still_answers(pm, "while the token is stale")
    p = change_arrives(api, pm, "after token rotation")
    new = since(api, n0)
    tap.ok(any(r["token"] == old and r["status"] == 401 for r in new), "the old token got 401")
    ok_after = [r for r in new if r["status"] == 200 and r["kind"] in ("list", "watch")]
    tap.ok(ok_after and all(r["token"] == api.token for r in ok_after),
           "after the 401 podmeta re-read the token file and used the new token")
    fails = [r for r in new if r["status"] == 401]
    tap.ok(len(fails) <= 3, "no 401 storm (%d)" % len(fails))

    # ================= API server restart
    fresh_podmeta()
    n0 = len(api.requests())
    lists0 = api.count("list")
    api.restart(down=1.0)
    still_answers(pm, "right after the API went away")
    p = change_arrives(api, pm, "after the restart")
    tap.ok(len(since(api, n0, "watch")) >= 1, "watch re-established after the restart")
    tap.ok(len(since(api, n0)) <= 15, "reconnects with backoff, not a storm (%d requests)" % len(since(api, n0)))

    # ================= HTTP 410 on the re-watch -> relist
    fresh_podmeta()
    gone = api.add_pod(fresh_pod("gone"))
    pm.wait_reply(gone["status"]["podIP"], pu.name_is(gone["metadata"]["name"]), 5)
    n0 = len(api.requests())
    api.inject_410()
    api.end_watches()
    tap.ok(api.wait_for(lambda: api.count("watch", status=410) >= 1, 10), "the re-watch got HTTP 410")
    tap.ok(api.wait_for(lambda: len(since(api, n0, "list")) >= 1, 10), "410 -> relist")
    tap.ok(api.wait_for(lambda: api.open_watches() >= 1, 10), "... then a new watch")
    still_answers(pm, "after the relist")
    change_arrives(api, pm, "after the 410")

    # ================= pods that changed while nobody watched, then 410 relist
    fresh_podmeta()
    victim = api.add_pod(fresh_pod("victim"))
    vip = victim["status"]["podIP"]
    pm.wait_reply(vip, pu.name_is(victim["metadata"]["name"]), 5)
    # restore from "backup": the state changes without events; old RVs are too old
    n0 = len(api.requests())
    state = [p for p in api.pods() if p["metadata"]["name"] != victim["metadata"]["name"]]
    newcomer = fresh_pod("newcomer")
    state.append(newcomer)
    api.set_pods(state)
    api.end_watches()
    r = pm.wait_reply(newcomer["status"]["podIP"], pu.name_is(newcomer["metadata"]["name"]), 10)
    pu.check_known(tap, r, api.get_pod("ci", newcomer["metadata"]["name"]), newcomer["status"]["podIP"],
                   name="re-watch from a compacted RV -> ERROR Expired -> relist finds the new pod")
    r = pm.wait_reply(vip, pu.unknown, 5)
    pu.check_unknown(tap, r, vip, name="... and the pod missing from the relist goes (after the grace)")
    w = since(api, n0, "watch")
    tap.ok(len(since(api, n0, "list")) >= 1, "relisted")

    # ================= in-stream ERROR 410 Expired
    fresh_podmeta()
    n0 = len(api.requests())
    api.inject_expired_error_event()
    tap.ok(api.wait_for(lambda: len(since(api, n0, "list")) >= 1, 10), "ERROR Expired event -> relist")
    tap.ok(api.wait_for(lambda: api.open_watches() >= 1, 10), "... then a new watch")
    still_answers(pm, "after the Expired event")
    change_arrives(api, pm, "after the Expired event")

    # ================= 429 with Retry-After
    fresh_podmeta()
    n0 = len(api.requests())
    api.fail_next(429, retry_after=2, kind="list")
    api.inject_expired_error_event()  # makes podmeta relist: the list gets the 429
    tap.ok(api.wait_for(lambda: api.count("list", status=429) >= 1, 10), "the relist got 429")
    tap.ok(api.wait_for(lambda: len([r for r in since(api, n0, "list") if r["status"] == 200]) >= 1, 15),
           "... and was retried")
    ls = since(api, n0, "list")
    t429 = [r["t"] for r in ls if r["status"] == 429]
    t200 = [r["t"] for r in ls if r["status"] == 200]
    gap = (t200[0] - t429[0]) if t429 and t200 else 0
    tap.ok(gap >= 1.9, "Retry-After: 2 honoured (retried after %.2fs)" % gap)
    tap.ok(gap < 8, "... and not much later")
    still_answers(pm, "after the 429")
    change_arrives(api, pm, "after the 429")

    # ================= watches that end at once: backoff, not a tight loop
    api.watch_lifetime = 0
    pm.close()
    api.wait_for(lambda: api.open_watches() == 0, 3)
    m = api.mark()
    pm = pu.start_podmeta(api, "--delete-grace", "1")
    still_answers(pm, "(synced; every watch ends at once)")
    time.sleep(max(0, 5 - (time.time() - api.requests_since(m)[0]["t"])))
    n = len(since(api, m, "watch"))
    tap.ok(2 <= n <= 8, "watches that end at once with no events: retried with backoff (%d watches in 5s)" % n)
    api.watch_lifetime = None
    change_arrives(api, pm, "once watches last again", timeout=20)

    # ================= a paginated list whose page 2 fails
    api2 = pu.start_api(pods=kf.generate_pods(1200, prefix="pg", base="10.61.0.0", slim=True))
    try:
        pods2 = api2.pods()
        for status in (410, 500):
            api2.fail_next(status, kind="list", match=lambda r: "continue" in r["query"])
            m = api2.mark()
            pm2 = pu.start_podmeta(api2, sync_wait=15)
            try:
                last = pods2[-1]
                r = pm2.lookup(last["status"]["podIP"], timeout=20)
                pu.check_known(tap, r, last, last["status"]["podIP"],
                               name="list page 2 got %d: the list completes anyway" % status)
                ls = api2.requests_since(m, "list")
                failed = [i for i, x in enumerate(ls) if x["status"] == status]
                if status == 410:
                    tap.ok(failed and len(ls) > failed[0] + 1 and "continue" not in ls[failed[0] + 1]["query"],
                           "... after 410 on a continue page: a fresh list from the start")
                okall = all(pm2.lookup(p["status"]["podIP"]).log == pu.expected_json(p, p["status"]["podIP"])
                            for p in pods2[::37])
                tap.ok(okall, "... and every page's pods answer (sampled)")
                # the watch starts just after the answers: wait for it
                api2.wait_for(lambda: api2.requests_since(m, "watch"), 10)
                w = api2.requests_since(m, "watch")
                tap.ok(w and w[0]["query"].get("resourceVersion") == str(api2.resource_version),
                       "... watch from the completed list's resourceVersion")
            finally:
                pm2.kill()
    finally:
        api2.stop()

    # ================= 500s, then recovery
    fresh_podmeta()
    n0 = len(api.requests())
    api.fail_next(500, count=2)
    api.end_watches()
    still_answers(pm, "while the API returns 500s")
    tap.ok(api.wait_for(lambda: api.pending_failures() == 0, 15), "podmeta retried through two 500s")
    p = change_arrives(api, pm, "after the 500s")
    rs = since(api, n0)
    fails = [i for i, r in enumerate(rs) if r["status"] == 500]
    tap.ok(len(fails) == 2, "two 500s seen")
    if len(fails) == 2 and len(rs) > fails[1] + 1:
        d1, d2 = rs[fails[1]]["t"] - rs[fails[0]]["t"], rs[fails[1] + 1]["t"] - rs[fails[1]]["t"]
        tap.ok(d1 >= 0.3 and d2 >= 0.3, "backoff between retries (%.2fs, %.2fs)" % (d1, d2))
        tap.ok(d2 > d1, "... growing")
    else:
        tap.ok(False, "backoff between retries")
        tap.ok(False, "... growing")
    tap.ok(pm.alive(), "podmeta still running")
    pm.signal(10)  # SIGUSR1: stats to stderr
    time.sleep(0.3)
    tap.like(pm.stderr(), r"(?i)relist|api.?err", "SIGUSR1 prints stats (relists, API errors)")
    rc = pm.close()
    tap.is_(rc, 0, "exits 0 on EOF")
tap.done()
