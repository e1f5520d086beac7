#!/usr/bin/env python3
# An API that sends broken things: truncated JSON, wrong types, huge objects,
# HTML, empty bodies, connections closed mid-chunk, garbage watch lines.
# podmeta never crashes, never answers twice, keeps answering from memory,
# and recovers: a later change always arrives.
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
fresh_pod = pu.PodSequence("10.80")
api = pu.start_api()
pm = None


def new_podmeta(*args, sync_wait=10):
    global pm
    pm, m = pu.restart_podmeta(api, pm, "--delete-grace", "1", *args, sync_wait=sync_wait)
    return m


def recovered(what, timeout=12):
    """podmeta alive, answering the fixture pod exactly, and a new pod arrives."""
    r = pm.lookup(CORE_IP, timeout=timeout)
    ok = pu.check_known(tap, r, core, CORE_IP, name="%s: answers" % what)
    p = api.add_pod(fresh_pod("later"))
    ip = p["status"]["podIP"]
    r = pm.wait_reply(ip, pu.name_is(p["metadata"]["name"]), timeout)
    ok = pu.check_known(tap, r, p, ip, name="%s: recovers, a later pod arrives" % what) and ok
    tap.ok(pm.alive(), "%s: podmeta alive" % what)
    return ok


with pu.Scenario(api):
    # ================= broken first lists
    for mode in ("truncated", "truncated_chunked", "short_body", "close_mid_chunk", "not_json", "empty",
                 "wrongtypes_top", "wrongtypes"):
        api.bad_next("list", mode)
        m = new_podmeta()
        recovered("list %s" % mode)
        lists = api.requests_since(m, "list")
        if mode != "wrongtypes":
            tap.ok(len(lists) >= 2, "list %s: retried (%d lists)" % (mode, len(lists)))
    # with wrongtypes podmeta may use the well-formed items or retry: either way no bogus attribution
    r = pm.lookup("10.98.0.6")
    tap.ok(r.status == "OK" and r.log is not None and r.log.get("name") in (None,), 
           "list wrongtypes: a pod without metadata is never attributed")

    # ================= a huge list item (8 MiB annotation): no crash
    api.bad_next("list", "huge")
    m = new_podmeta(sync_wait=20)
    recovered("list with an 8 MiB object", timeout=20)
    r = pm.lookup("10.99.9.9")
    tap.diag("8 MiB pod: %s" % (r.raw or "")[:200])

    # ================= a realistic big pod (1.4 MiB last-applied + a 300 KB label-sized annotation)
    bigpod = mk("bigpod-1", "10.80.200.1", namespace="ci", annotations={
        pu.LAST_APPLIED: "{" + "\"k\":\"" + "v" * (1400 * 1024) + "\"}\n", "note": "n" * 300000})
    api.add_pod(bigpod)
    bigpod = api.get_pod("ci", "bigpod-1")
    r = pm.wait_reply("10.80.200.1", pu.name_is("bigpod-1"), 10)
    pu.check_known(tap, r, bigpod, "10.80.200.1", name="1.4 MiB watch event: the pod answers")
    r = pm.lookup("10.80.200.1")
    tap.ok(r.raw is not None and len(r.raw) < 8192, "... in a short line (%d bytes): no annotations by default"
           % len(r.raw or ""))
    m = new_podmeta("--annotations", ".", "--max-value", "64")
    r = pm.lookup("10.80.200.1")
    pu.check_known(tap, r, bigpod, "10.80.200.1", annotations_re=".", max_value=64,
                   name="1.4 MiB list item with --annotations .: capped, last-applied dropped")

    # ================= broken watch streams
    for mode in ("truncated_line", "garbage", "wrongtypes", "huge", "split", "close_mid_chunk",
                 "close_mid_line", "abort"):
        m = new_podmeta()
        pu.check_known(tap, pm.lookup(CORE_IP), core, CORE_IP, name="watch %s: synced" % mode)
        tap.ok(api.wait_watching_since(m, 5), "watch %s: watching" % mode)
        api.bad_watch(mode)
        time.sleep(0.2)
        recovered("watch %s" % mode, timeout=15)
        if mode == "split":
            tap.is_(len(api.requests_since(m, "watch")), 1, "watch split: events split into 7-byte chunks "
                    "are reassembled on the same stream")
    # bad things at the start of a watch stream
    for mode in ("garbage", "close_mid_chunk"):
        m = new_podmeta()
        pu.check_known(tap, pm.lookup(CORE_IP), core, CORE_IP, name="watch-start %s: synced" % mode)
        api.wait_watching_since(m, 5)
        api.bad_next("watch", mode)
        api.end_watches()
        time.sleep(0.2)
        recovered("watch-start %s" % mode, timeout=15)

    # ================= a broken list on relist keeps the old index
    m = new_podmeta()
    pu.check_known(tap, pm.lookup(CORE_IP), core, CORE_IP, name="relist: synced")
    api.wait_watching_since(m, 5)
    api.bad_next("list", "truncated")
    api.inject_expired_error_event()
    tap.ok(api.wait_for(lambda: len(api.requests_since(m, "list")) >= 2, 10), "Expired -> relist (truncated)")
    pu.check_known(tap, pm.lookup(CORE_IP), core, CORE_IP, name="a failed relist keeps answering from memory")
    recovered("relist after a truncated list")
    rc = pm.close()
    tap.is_(rc, 0, "exit 0 after all of it")
tap.done()
