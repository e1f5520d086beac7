#!/usr/bin/env python3
# Real Squid (Debian's squid 5.7) runs podmeta as its external ACL helper
# (ttl=5 concurrency=50 %SRC).  CONNECT tunnels from 127.0.0.1 and 127.0.0.2
# (two pods) and 127.0.0.3 (no pod) to a local echo origin; Squid's access
# log, written with "podmeta":%'ea, must be valid JSON carrying each pod's
# JSON exactly as podmeta rendered it.
import os
import pwd
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(__file__)), "lib"))
import tap  # noqa: E402
import harness as h  # noqa: E402
from k8sapi import fixtures as kf  # noqa: E402
import podmeta_util as pu  # noqa: E402

pu.require_podmeta(tap)
SQUID = shutil.which("squid") or ("/usr/sbin/squid" if os.access("/usr/sbin/squid", os.X_OK) else None)
if not SQUID:
    tap.skip_all("squid not installed")


def tunnel(src, proxy_port, origin_port, payload):
    """CONNECT from `src` through Squid; returns (status line, echoed bytes)."""
    s = socket.socket()
    s.settimeout(10)
    try:
        s.bind((src, 0))
        s.connect(("127.0.0.1", proxy_port))
        s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (origin_port, origin_port))
        head = h.recv_head(s)
        status = head.split(b"\r\n", 1)[0].decode("latin-1")
        rest = head.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in head else b""
        if " 200 " not in status:
            return status, b""
        return status, h.send_echo(s, payload, rest)
    except OSError as e:
        return "error: %s" % e, b""
    finally:
        s.close()


mk = kf.make_pod
pod_a = mk("runner-a-7f9c4", "127.0.0.1", namespace="ci", labels={"app": "runner", "job": "build-42"},
           owner="Job", owner_name="build-42")
pod_b = mk("runner-b-5d2x8", ips=["127.0.0.2", "fd00:27::2"], namespace="build",
           labels={"app": "runner", "quote": 'say "hi"\\n'}, annotations={"team": "infra"})
api = pu.start_api(pods=[pod_a, pod_b])
pod_a, pod_b = api.get_pod("ci", pod_a["metadata"]["name"]), api.get_pod("build", pod_b["metadata"]["name"])
echo = h.EchoServer(backlog=16)
d = tempfile.mkdtemp(prefix="t27-squid-")
squid = None
try:
    user_line = ""
    if os.geteuid() == 0:
        pw = pwd.getpwnam("proxy")
        os.chown(d, pw.pw_uid, pw.pw_gid)
        user_line = "cache_effective_user proxy\n"
        # the helper runs as proxy: it must read the token and CA files
        os.chmod(api.dir, 0o755)
        for f in (api.token_file, api.ca_file):
            os.chmod(f, 0o644)
    port = h.free_port()
    args = " ".join(api.podmeta_args() + ["--annotations", "^team$", "--sync-wait", "10"])
    # squid runs helpers as `proxy`, which may not reach the build (a 0700
    # home): it gets a copy in its own directory
    pm = os.path.join(d, "podmeta")
    shutil.copy2(pu.PODMETA, pm)
    os.chmod(pm, 0o755)
    conf = os.path.join(d, "squid.conf")
    with open(conf, "w") as f:
        f.write("""\
http_port 127.0.0.1:{port}
{user}pid_filename {d}/squid.pid
cache_log {d}/cache.log
coredump_dir {d}
cache deny all
cache_mem 8 MB
shutdown_lifetime 1 seconds
logfile_rotate 0
dns_nameservers 127.0.0.1
external_acl_type podmeta ttl=5 concurrency=50 children-max=2 children-startup=1 %SRC {pm} {args}
acl podmeta external podmeta
acl lo src 127.0.0.0/8
logformat connect_bytes {{"src":"%>a","method":"%rm","uri":"%ru","status":%>Hs,"in":%>st,"out":%<st,"podmeta":%'ea}}
access_log stdio:{d}/access.log connect_bytes
http_access deny podmeta !all
http_access allow lo
http_access deny all
""".format(port=port, user=user_line, d=d, pm=pm, args=args))
    squid = pu.Proc([SQUID, "-N", "-f", conf], stdin=False)

    def up():  # no probe connection: it would be logged as a transaction error
        try:
            with open(os.path.join(d, "cache.log")) as f:
                return "Accepting HTTP Socket connections" in f.read()
        except OSError:
            return False
    ok = api.wait_for(up, 20, 0.1)
    tap.ok(ok, "squid listens on 127.0.0.1:%d" % port)
    if not ok:
        tap.diag(squid.stderr()[-2000:])
        try:
            tap.diag(open(os.path.join(d, "cache.log")).read()[-2000:])
        except OSError:
            pass

    cases = [("127.0.0.1", b"hello from a\n" * 10), ("127.0.0.2", b"hello from b\n" * 100),
             ("127.0.0.3", b"x"), ("127.0.0.1", b"again\n")]
    for src, payload in cases:
        st, got = tunnel(src, port, echo.port, payload)
        tap.ok(st.startswith("HTTP/1.1 200") and got == payload, "CONNECT from %s: 200 and echo (%s)" % (src, st))

    logf = os.path.join(d, "access.log")

    def lines():
        try:
            with open(logf) as f:
                return [x for x in f.read().splitlines() if x.strip()]
        except OSError:
            return []
    api.wait_for(lambda: len(lines()) >= len(cases), 10, 0.1)
    ls = lines()
    tap.is_(len(ls), len(cases), "one access log line per tunnel")
    recs = tap.json_lines("\n".join(ls))
    tap.is_(len(recs), len(ls), "every access log line is valid JSON")
    by_src = {}
    for r in recs:
        by_src.setdefault(r.get("src"), []).append(r)
    want = {"127.0.0.1": pu.expected_json(pod_a, "127.0.0.1"),
            "127.0.0.2": pu.expected_json(pod_b, "127.0.0.2", annotations_re="^team$"),
            "127.0.0.3": pu.unknown_json("127.0.0.3")}
    for src, w in want.items():
        got = [r.get("podmeta") for r in by_src.get(src, [])]
        ok = bool(got) and all(g == w for g in got)
        tap.ok(ok, "%s: the log line carries %s" % (src, "pod " + w["name"] if "name" in w else "pod null"))
        if not ok:
            tap.diag("got:  %r" % got)
            tap.diag("want: %r" % w)
    tap.ok(all(r.get("method") == "CONNECT" and r.get("status") == 200 for r in recs), "CONNECT 200 logged")
    b = by_src.get("127.0.0.2", [{}])[0]
    tap.ok(b.get("in", 0) >= 1300 and b.get("out", 0) >= 1300, "byte counts logged for b (%s/%s)"
           % (b.get("in"), b.get("out")))
    lists = api.requests("list")
    tap.ok(1 <= len(lists) <= 2, "the helper listed once per child (%d)" % len(lists))
    tap.is_(api.count("get"), 0, "no per-lookup API requests")

    # a pod that appears later reaches Squid's log through the watch
    pod_c = api.add_pod(mk("runner-c-9q7wz", "127.0.0.4", namespace="ci"))
    time.sleep(0.5)
    st, got = tunnel("127.0.0.4", port, echo.port, b"c\n")
    tap.ok(st.startswith("HTTP/1.1 200"), "CONNECT from 127.0.0.4 (pod added after start)")
    api.wait_for(lambda: len(lines()) >= len(cases) + 1, 10, 0.1)
    recs = tap.json_lines("\n".join(lines()))
    c = [r for r in recs if r.get("src") == "127.0.0.4"]
    tap.ok(c and c[0].get("podmeta") == pu.expected_json(pod_c, "127.0.0.4"), "... logged with the new pod's JSON")
    if not (c and c[0].get("podmeta") == pu.expected_json(pod_c, "127.0.0.4")):
        tap.diag("got: %r" % (c,))
finally:
    if squid is not None:
        squid.signal(15)
        try:
            squid.p.wait(8)
        except Exception:
            pass
        if tap._failed:
            tap.diag("squid stderr: " + squid.stderr()[-1500:])
            try:
                tap.diag("cache.log: " + open(os.path.join(d, "cache.log")).read()[-2500:])
            except OSError:
                pass
        squid.kill()
    echo.close()
    api.stop()
    shutil.rmtree(d, ignore_errors=True)
tap.done()
