#!/usr/bin/env python3
# The helper protocol as Squid drives it: concurrent channel IDs (each answered
# exactly once, in any order), lines with and without IDs and the trailing
# %DATA "-", URL-escaped IPv6 and ::ffff:a.b.c.d; malformed lines, 100 KB
# lines and non-IP tokens get exactly one reply each and never crash podmeta;
# BH only when no list completed within --sync-wait.
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(__file__)), "lib"))
import tap  # noqa: E402
from k8sapi import fixtures as kf  # noqa: E402
import podmeta_util as pu  # noqa: E402

pu.require_podmeta(tap)

mk = kf.make_pod
p4 = mk("proto-v4", "10.70.0.1", namespace="ci")
p6 = mk("proto-ds", ips=["10.70.0.2", "fd00:70::2"], namespace="ci")
core = kf.fixture_pods()[0]
api = pu.start_api()
api.add_pod(p4)
api.add_pod(p6)
p4, p6 = api.get_pod("ci", "proto-v4"), api.get_pod("ci", "proto-ds")
KNOWN = {"10.70.0.1": p4, "10.70.0.2": p6, "fd00:70::2": p6, "10.244.0.3": core}
with pu.Scenario(api):
    pm = pu.start_podmeta(api)
    pu.check_known(tap, pm.lookup("10.70.0.1"), p4, "10.70.0.1", name="synced")

    # ---- concurrent IDs in one burst, answered once each (any order)
    rnd = random.Random(42)
    reqs = []
    ips = list(KNOWN) + ["10.70.9.%d" % i for i in range(1, 20)]
    for i in range(300):
        reqs.append((str(rnd.choice([i, i + 1000, i * 7 + 5000])), rnd.choice(ips)))
    seen_ids = set()
    uniq = []
    for id_, ip in reqs:
        if id_ not in seen_ids:
            seen_ids.add(id_)
            uniq.append((id_, ip))
    rnd.shuffle(uniq)
    pm.write("".join("%s %s -\n" % r for r in uniq))
    got = {}
    for _ in range(len(uniq)):
        line = pm.readline(10)
        if line is None:
            break
        r = pu.Reply(line)
        got.setdefault(r.id, []).append(r)
    tap.is_(sorted(got), sorted(i for i, _ in uniq), "%d concurrent IDs: every ID answered" % len(uniq))
    tap.ok(all(len(v) == 1 for v in got.values()), "... exactly once")
    wrong = []
    for id_, ip in uniq:
        r = (got.get(id_) or [pu.Reply(None)])[0]
        want = pu.expected_json(KNOWN[ip], ip) if ip in KNOWN else pu.unknown_json(ip)
        if r.status != "OK" or r.log != want:
            wrong.append((id_, ip, r.raw))
    tap.ok(not wrong, "... each with the answer for its own IP")
    for w in wrong[:3]:
        tap.diag("wrong: %r" % (w,))
    tap.is_(pm.readline(0.3), None, "no extra replies")

    # ---- forms of the same request
    exact4 = pu.expected_line(p4, "10.70.0.1")
    tap.is_(pm.ask("10.70.0.1 -"), exact4, "no ID, trailing -")
    tap.is_(pm.ask("10.70.0.1"), exact4, "no ID, no %DATA")
    tap.is_(pm.ask("17 10.70.0.1 -"), pu.expected_line(p4, "10.70.0.1", id=17), "ID 17, trailing -")
    tap.is_(pm.ask("17 10.70.0.1"), pu.expected_line(p4, "10.70.0.1", id=17), "ID 17, no %DATA")
    tap.is_(pm.ask("18 10.70.0.1 some%20data"), pu.expected_line(p4, "10.70.0.1", id=18), "ID, URL-escaped %DATA")
    r = pu.Reply(pm.ask("10.70.0.1 -\r"))
    pu.check_known(tap, r, p4, "10.70.0.1", name="CRLF line ending tolerated")
    exact6 = pu.expected_line(p6, "fd00:70::2")
    tap.is_(pm.ask("fd00:70::2 -"), exact6, "IPv6 as Squid sends it (':' unescaped)")
    tap.is_(pm.ask("fd00%3a70%3a%3a2 -"), exact6, "URL-escaped IPv6 (%3a)")
    tap.is_(pm.ask("fd00%3A70%3A%3A2 -"), exact6, "URL-escaped IPv6 (%3A)")
    tap.is_(pm.ask("FD00:70:0:0:0:0:0:2 -"), exact6, "IPv6 uppercase, uncompressed: canonical answer")
    tap.is_(pm.ask("::ffff:10.70.0.1 -"), exact4, "IPv4-mapped ::ffff:a.b.c.d -> the IPv4 pod")
    tap.is_(pm.ask("%3a%3affff%3a10.70.0.1 -"), exact4, "URL-escaped IPv4-mapped")
    tap.is_(pm.ask("9 ::FFFF:10.70.0.2 -"), pu.expected_line(p6, "10.70.0.2", id=9), "::FFFF: uppercase, with ID")
    r = pu.Reply(pm.ask("10.70.0.%32 -"))
    pu.check_known(tap, r, p6, "10.70.0.2", name="URL-escaped digit in IPv4")
    pu.check_unknown(tap, pu.Reply(pm.ask("::1 -")), "::1", name="unknown IPv6 -> pod null")

    # ---- malformed input: exactly one reply each, ID echoed when there is one
    big = "a" * 100000
    cases = [
        ("", None, "empty line"),
        (" ", None, "a lone space"),
        ("-", None, "just '-'"),
        ("hello world", None, "words"),
        ("not-an-ip -", None, "non-IP token"),
        ("5 not-an-ip -", "5", "non-IP token with an ID"),
        ("6 -", "6", "ID and '-' only"),
        ("300.1.1.1 -", None, "IPv4 octet out of range"),
        ("10.70.0.1.5 -", None, "five octets"),
        ("10.70.0 -", None, "three octets"),
        ("1.2.3.4/24 -", None, "a CIDR"),
        ("fd00::70::2 -", None, "two '::'"),
        ("%zz -", None, "bad URL escape"),
        ("%00 -", None, "escaped NUL"),
        ("10.70.0.1%00 -", None, "IP then escaped NUL"),
        ("\t10.70.0.1 -", None, "leading tab"),
        ("10.70.0.1 - extra tokens here", None, "extra tokens"),
        ("99999999999999999999999999 10.70.0.1 -", None, "absurd ID"),
        ("-1 10.70.0.1 -", None, "negative 'ID'"),
        (b"\x01\x02\x7f\xff\xfe -", None, "control and high bytes"),
        ("\u00e9t\u00e9 -", None, "UTF-8 text"),
        ("7 " + big, "7", "100 KB token with an ID"),
        (big, None, "100 KB line"),
        ("8 10.70.0.1 " + big, "8", "valid IP then 100 KB of %DATA"),
        (" ".join(["10.70.0.1"] * 20000), None, "20,000 tokens"),
    ]
    extra = []
    for i, (line, want_id, what) in enumerate(cases):
        sid = str(90000 + i)
        pm.write(line if isinstance(line, bytes) else line.encode("utf-8"))
        pm.write(b"\n%s 10.70.0.1 -\n" % sid.encode())
        replies = []
        while True:
            r = pm.readline(8)
            if r is None:
                break
            replies.append(r)
            if r.startswith(sid + " "):
                break
        before = replies[:-1] if replies and replies[-1].startswith(sid + " ") else replies
        ok = len(before) == 1
        rr = pu.Reply(before[0]) if before else pu.Reply(None)
        if ok and want_id is not None:
            ok = rr.id == want_id
        text = line.decode("latin-1") if isinstance(line, bytes) else line
        if ok and want_id is None and rr.id is not None and not text.startswith(rr.id + " "):
            ok = False
        ok = ok and rr.status in ("OK", "ERR", "BH") and rr.bad_syntax is None
        tap.ok(ok, "%s: exactly one reply%s" % (what, " (ID %s)" % want_id if want_id else ""))
        if not ok:
            tap.diag("replies: %r" % [x[:200] for x in replies])
        valid_ip_first = text.split(None, 2)[:2] in (["10.70.0.1", "-"], ["10.70.0.1", "extra"]) or \
            text.startswith("8 10.70.0.1") or text.startswith("10.70.0.1 10.70.0.1")
        if rr.status == "OK" and rr.log and rr.log.get("name") and not valid_ip_first:
            extra.append((what, before[0][:200]))
        if not pm.alive():
            break
    tap.ok(not extra, "garbage never attributed to a pod (a valid IP followed by extra %DATA may be)")
    for e in extra:
        tap.diag("attributed: %r" % (e,))
    tap.ok(pm.alive(), "podmeta survived all of it")
    tap.is_(pm.ask("10.70.0.1 -"), exact4, "and still answers")

    # ---- EOF with requests in flight: all answered before exit
    pm.write("".join("%d 10.70.0.%d -\n" % (i, i % 3) for i in range(1, 51)))
    rc = pm.close(10)
    n = 0
    while pm.readline(1) is not None:
        n += 1
    tap.is_(n, 50, "EOF after 50 requests: 50 replies, then exit")
    tap.is_(rc, 0, "... exit status 0")
    pu.diag_on_fail(tap, pm, api)

    # ---- BH only when no list completes within --sync-wait
    api.fail_next(500, kind="list", count=1000)
    t0 = time.time()
    pm = pu.start_podmeta(api, sync_wait=1)
    pm.write("3 10.70.0.1 -\n")
    line = pm.readline(6)
    dt = time.time() - t0
    r = pu.Reply(line)
    tap.is_((r.id, r.status), ("3", "BH"), "no sync within --sync-wait 1: BH (ID echoed)")
    tap.ok(0.7 <= dt <= 4, "... after about the sync wait (%.2fs)" % dt)
    tap.is_(pu.Reply(pm.ask("10.70.0.1 -", 4)).status, "BH", "still unsynced: BH at once")
    api.clear_failures()
    r = pm.wait_reply("10.70.0.1", lambda r: r.status == "OK", 15)
    pu.check_known(tap, r, p4, "10.70.0.1", name="after the API recovers: OK")
    pm.close()

    # a slow first list within --sync-wait: requests wait for it, no BH
    api.fail_next(500, kind="list", count=1)
    pm = pu.start_podmeta(api, sync_wait=8)
    t0 = time.time()
    r = pm.lookup("10.70.0.1", id=4, timeout=10)
    pu.check_known(tap, r, p4, "10.70.0.1", id="4", name="first list failed once: the waiting request gets OK, not BH")
    tap.diag("answered after %.2fs" % (time.time() - t0))
    pm.close()
tap.done()
