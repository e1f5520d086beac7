#!/usr/bin/env python3
# Pods come and go while podmeta watches: deletes leave tombstones for
# --delete-grace, IP reuse within and after the grace, two live pods on one
# IP (the newer wins), Succeeded/Failed pods drop out, a dual-stack pod
# answers on both addresses, MODIFIED events re-render the answer.
import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(__file__)), "lib"))
import tap  # noqa: E402
from k8sapi import fixtures as kf  # noqa: E402
import podmeta_util as pu  # noqa: E402

pu.require_podmeta(tap)

GRACE = 3.0
T0 = time.time() - 7200
mk = kf.make_pod


api = pu.start_api()
with pu.Scenario(api):
    pm = pu.start_podmeta(api, "--delete-grace", str(int(GRACE)))
    pu.check_known(tap, pm.lookup("10.244.0.3"), kf.fixture_pods()[0], "10.244.0.3", name="synced")
    tap.ok(api.wait_watch(1, 5), "podmeta is watching")

    # ---- additions arrive through the watch
    a1 = api.add_pod(mk("alpha-1", "10.50.0.1", namespace="ci", created=T0))
    b1 = api.add_pod(mk("bravo-1", "10.50.0.2", namespace="ci", created=T0))
    h1 = api.add_pod(mk("hotel-1", "10.50.0.8", namespace="ci", created=T0))
    r = pm.wait_reply("10.50.0.1", pu.name_is("alpha-1"), 5)
    pu.check_known(tap, r, a1, "10.50.0.1", name="ADDED pod answers")
    r = pm.wait_reply("10.50.0.8", pu.name_is("hotel-1"), 5)
    pu.check_known(tap, r, h1, "10.50.0.8", name="second ADDED pod answers")
    tap.is_(api.count("list"), 1, "changes came by watch, no relist")

    # ---- deletes: tombstones within the grace period
    t_del = time.time()
    api.delete_pod("ci", "alpha-1")
    api.delete_pod("ci", "bravo-1")
    api.delete_pod("ci", "hotel-1", graceful=True)  # MODIFIED with deletionTimestamp, then DELETED
    time.sleep(0.3)
    r = pm.lookup("10.50.0.1")
    pu.check_known(tap, r, a1, "10.50.0.1", name="deleted pod still answers within --delete-grace")
    pu.check_known(tap, pm.lookup("10.50.0.8"), h1, "10.50.0.8", name="gracefully deleted pod too")
    # reuse of alpha's IP within the grace: the new live pod wins over the tombstone
    a2 = api.add_pod(mk("alpha-2", "10.50.0.1", namespace="ci"))
    r = pm.wait_reply("10.50.0.1", pu.name_is("alpha-2"), 5)
    pu.check_known(tap, r, a2, "10.50.0.1", name="IP reused within the grace: the new pod")
    tap.ok(time.time() - t_del < GRACE, "(that was within the grace period)")

    # ---- two live pods claim one IP: the newer one wins, in either arrival order
    c_old = api.add_pod(mk("charlie-old", "10.50.0.3", namespace="ci", created=T0))
    r = pm.wait_reply("10.50.0.3", pu.name_is("charlie-old"), 5)
    c_new = api.add_pod(mk("charlie-new", "10.50.0.3", namespace="ci", created=T0 + 600))
    r = pm.wait_reply("10.50.0.3", pu.name_is("charlie-new"), 5)
    pu.check_known(tap, r, c_new, "10.50.0.3", name="newer pod added later wins")
    d_new = api.add_pod(mk("delta-new", "10.50.0.4", namespace="ci", created=T0 + 600))
    pm.wait_reply("10.50.0.4", pu.name_is("delta-new"), 5)
    api.add_pod(mk("delta-old", "10.50.0.4", namespace="ci", created=T0))
    api.add_pod(mk("sync-1", "10.50.0.99", namespace="ci"))  # a marker: the event after delta-old
    pm.wait_reply("10.50.0.99", pu.name_is("sync-1"), 5)
    pu.check_known(tap, pm.lookup("10.50.0.4"), d_new, "10.50.0.4", name="older pod added later loses")
    # the newer one is deleted: after its grace the older live pod owns the IP again
    api.delete_pod("ci", "charlie-new")

    # ---- Succeeded / Failed pods drop out
    e1 = api.add_pod(mk("echo-1", "10.50.0.5", namespace="ci", owner="Job"))
    pm.wait_reply("10.50.0.5", pu.name_is("echo-1"), 5)
    api.modify_pod("ci", "echo-1", phase="Succeeded")
    r = pm.wait_reply("10.50.0.5", pu.unknown, 5)
    pu.check_unknown(tap, r, "10.50.0.5", name="Succeeded pod no longer owns its IP")
    e2 = api.add_pod(mk("echo-2", "10.50.0.5", namespace="ci", created=T0 - 600))
    r = pm.wait_reply("10.50.0.5", pu.name_is("echo-2"), 5)
    pu.check_known(tap, r, e2, "10.50.0.5", name="a running pod on a Succeeded pod's IP wins (even if older)")
    api.add_pod(mk("foxtrot-1", "10.50.0.7", namespace="ci", phase="Failed"))
    api.add_pod(mk("sync-2", "10.50.0.98", namespace="ci"))
    pm.wait_reply("10.50.0.98", pu.name_is("sync-2"), 5)
    pu.check_unknown(tap, pm.lookup("10.50.0.7"), "10.50.0.7", name="a pod added as Failed never answers")

    # ---- dual stack: every address in status.podIPs
    ds = api.add_pod(mk("golf-ds", ips=["10.50.1.1", "fd00:10:244:1::1"], namespace="ci"))
    r = pm.wait_reply("10.50.1.1", pu.name_is("golf-ds"), 5)
    pu.check_known(tap, r, ds, "10.50.1.1", name="dual-stack pod: IPv4 address")
    pu.check_known(tap, pm.lookup("fd00:10:244:1::1"), ds, "fd00:10:244:1::1", name="dual-stack pod: IPv6 address")
    ds6 = api.add_pod(mk("golf-v6first", ips=["fd00:10:244:1::2", "10.50.1.2"], namespace="ci"))
    r = pm.wait_reply("10.50.1.2", pu.name_is("golf-v6first"), 5)
    pu.check_known(tap, r, ds6, "10.50.1.2", name="IPv6-primary dual-stack pod: IPv4 (second) address")
    pu.check_known(tap, pm.lookup("fd00:10:244:1::2"), ds6, "fd00:10:244:1::2", name="... and IPv6 primary")
    # dual-stack pod from a recorded one (synthetic IPv6 entry added to podIPs)
    core = kf.fixture_pods()[0]
    core2 = api.add_pod(kf.variant(core, name="coredns-589f44dc88-dual6", ips=["10.244.0.13", "fd00:10:244::13"]))
    r = pm.wait_reply("fd00:10:244::13", pu.name_is("coredns-589f44dc88-dual6"), 5)
    pu.check_known(tap, r, core2, "fd00:10:244::13", name="recorded coredns pod with a synthetic IPv6 podIPs entry")

    # ---- MODIFIED: labels change, an IP appears later
    api.modify_pod("ci", "golf-ds", labels={"app": "golf", "track": "canary"})
    r = pm.wait_reply("10.50.1.1", lambda r: r.log is not None and r.log.get("labels", {}).get("track") == "canary", 5)
    pu.check_known(tap, r, api.get_pod("ci", "golf-ds"), "10.50.1.1", name="MODIFIED labels are re-rendered")
    pend = mk("india-1", namespace="ci", phase="Pending")
    api.add_pod(pend)
    api.modify_pod("ci", "india-1", phase="Running", ip="10.50.0.9")
    r = pm.wait_reply("10.50.0.9", pu.name_is("india-1"), 5)
    pu.check_known(tap, r, api.get_pod("ci", "india-1"), "10.50.0.9", name="a Pending pod's IP counts once assigned")

    # ---- an IP changes in a MODIFIED event: the old address is released
    api.add_pod(mk("juliet-1", "10.50.2.1", namespace="ci"))
    pm.wait_reply("10.50.2.1", pu.name_is("juliet-1"), 5)
    api.modify_pod("ci", "juliet-1", ip="10.50.2.2")
    r = pm.wait_reply("10.50.2.2", pu.name_is("juliet-1"), 5)
    pu.check_known(tap, r, api.get_pod("ci", "juliet-1"), "10.50.2.2", name="MODIFIED podIP: the new address answers")
    pu.check_unknown(tap, pm.lookup("10.50.2.1"), "10.50.2.1", name="... and the old one is released")

    # ---- StatefulSet style: same name, new UID, same IP, within the grace
    k1 = api.add_pod(mk("kilo-0", "10.50.3.1", namespace="ci", owner="StatefulSet", owner_name="kilo"))
    pm.wait_reply("10.50.3.1", pu.name_is("kilo-0"), 5)
    t_kilo = time.time()
    api.delete_pod("ci", "kilo-0")
    k2 = api.add_pod(mk("kilo-0", "10.50.3.1", namespace="ci", owner="StatefulSet", owner_name="kilo"))
    r = pm.wait_reply("10.50.3.1", lambda r: r.log is not None and r.log.get("uid") == k2["metadata"]["uid"], 5)
    pu.check_known(tap, r, k2, "10.50.3.1", name="same name re-created (new UID, same IP): the new UID")
    # an unknown pod's DELETED and a DELETED for a Succeeded pod are harmless
    api.delete_pod("ci", "echo-1")

    # ---- after the grace period
    left = t_del + GRACE + 1.5 - time.time()
    if left > 0:
        time.sleep(left)
    r = pm.wait_reply("10.50.0.2", pu.unknown, 3)
    pu.check_unknown(tap, r, "10.50.0.2", name="after --delete-grace a deleted pod's IP is unknown")
    pu.check_unknown(tap, pm.lookup("10.50.0.8"), "10.50.0.8", name="... also for the graceful delete")
    pu.check_known(tap, pm.lookup("10.50.0.1"), a2, "10.50.0.1",
                   name="the tombstone's expiry leaves the IP's new owner alone")
    b2 = api.add_pod(mk("bravo-2", "10.50.0.2", namespace="ci"))
    r = pm.wait_reply("10.50.0.2", pu.name_is("bravo-2"), 5)
    pu.check_known(tap, r, b2, "10.50.0.2", name="IP reused after the grace: the new pod")
    r = pm.wait_reply("10.50.0.3", pu.name_is("charlie-old"), 3)
    pu.check_known(tap, r, c_old, "10.50.0.3", name="newer pod deleted and expired: the older live pod again")
    left = t_kilo + GRACE + 1.0 - time.time()
    if left > 0:
        time.sleep(left)
    pu.check_known(tap, pm.lookup("10.50.3.1"), k2, "10.50.3.1",
                   name="the old UID's tombstone expiring leaves the re-created pod alone")
    tap.is_(api.count("list"), 1, "all of this without a relist")
    tap.is_(api.count("get"), 0, "and without per-pod GETs")
    tap.ok(pm.alive(), "podmeta still running")
tap.done()
