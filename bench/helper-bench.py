#!/usr/bin/env python3
"""helper-bench.py: tunnels per second with the external ACL helper on and off.

Usage: CONNECTD=build/connectd/connectd PODMETA=build/podmeta/podmeta \\
           bench/helper-bench.py [seconds-per-run] [client-processes]

A short, bounded loopback load: client processes open tunnels from 50
source addresses (127.0.1.1..50) to a local echo server through connectd,
send 64 bytes, read them back and close, as fast as they can.  Runs:
  off       no external_acl_type
  on        podmeta (--source file:, 50 pods), ttl=60: answers from cache
  on-ttl0   the same with ttl=0 and concurrency=20: every tunnel asks podmeta
  policy    podmeta --policy as the shipped confs run it (%SRC %DST %PORT
            %ssl::>sni, http_access deny !egress_ok), each pod's list
            enforced: asked at the CONNECT and again once the first bytes
            are in (held until then), ttl=60
For each: tunnels/s, connectd CPU ms per 1000 tunnels (utime+stime from
/proc), and the delay from a client's close to its log line on connectd's
stdout (p50/p99, sequential probes after the load), which is what a log
line waits for the lookup.  connectd's own helper stats (answer wait
avg/max) are printed too.  Figures are reported, not asserted.
"""
import json
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "t", "lib"))
import harness as h  # noqa: E402
from k8sapi import fixtures as kf  # noqa: E402

CONNECTD = os.environ.get("CONNECTD", os.path.join(TOP, "build", "connectd", "connectd"))
PODMETA = os.environ.get("PODMETA", os.path.join(TOP, "build", "podmeta", "podmeta"))
SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
PROCS = int(sys.argv[2]) if len(sys.argv) > 2 else 4
NPODS = 50
PAYLOAD = b"x" * 64


def one_tunnel(proxy, origin, src):
    c = socket.socket()
    c.settimeout(10)
    c.bind((src, 0))
    c.connect(("127.0.0.1", proxy))
    c.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % origin)
    buf = h.recv_head(c)
    if b"\r\n\r\n" not in buf:
        raise OSError("no reply")
    got = h.send_echo(c, PAYLOAD, buf.split(b"\r\n\r\n", 1)[1])
    c.close()
    return got == PAYLOAD


def client(args):
    proxy, origin, k, until = args
    n = errors = 0
    i = k
    while time.monotonic() < until:
        try:
            if one_tunnel(proxy, origin, "127.0.1.%d" % (i % NPODS + 1)):
                n += 1
            else:
                errors += 1
        except OSError:
            errors += 1
        i += PROCS
    return n, errors


def cpu_ms(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def run(name, helper, tmp, origin):
    port = free_port()
    conf = os.path.join(tmp, name + ".conf")
    with open(conf, "w") as f:
        f.write("http_port 127.0.0.1:%d\nmax_connections 0\n" % port)
        if helper:
            f.write(helper + "\n")
        f.write("http_access allow all\n")
    err = open(os.path.join(tmp, name + ".err"), "w")
    p = subprocess.Popen([CONNECTD, "-f", conf], stdout=subprocess.PIPE, stderr=err)
    lines = []
    stop = threading.Event()

    def reader():
        for line in p.stdout:
            lines.append((time.monotonic(), line))
    threading.Thread(target=reader, daemon=True).start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    # warm up: helpers started, every address cached
    for i in range(NPODS):
        one_tunnel(port, origin, "127.0.1.%d" % (i + 1))
    time.sleep(0.5)
    cpu0 = cpu_ms(p.pid)
    until = time.monotonic() + SECONDS
    t0 = time.monotonic()
    with multiprocessing.Pool(PROCS) as pool:
        res = pool.map(client, [(port, origin, k, until) for k in range(PROCS)])
    elapsed = time.monotonic() - t0
    cpu = cpu_ms(p.pid) - cpu0
    n = sum(r[0] for r in res)
    errors = sum(r[1] for r in res)
    # close -> line delay, sequential probes
    time.sleep(0.5)
    delays = []
    for i in range(200):
        before = len(lines)
        one_tunnel(port, origin, "127.0.1.%d" % (i % NPODS + 1))
        t = time.monotonic()
        end = t + 5
        while len(lines) <= before and time.monotonic() < end:
            time.sleep(0.0002)
        if len(lines) > before:
            delays.append((lines[before][0] - t) * 1000)
    p.send_signal(15)
    p.wait(10)
    stop.set()
    err.close()
    stats = re.findall(r"stats: helper \S+: .*", open(os.path.join(tmp, name + ".err")).read())
    bad = sum(1 for _, x in lines if b'"pod_error"' in x)
    delays.sort()
    pct = (lambda q: delays[min(len(delays) - 1, int(q * len(delays)))]) if delays else (lambda q: -1)
    return {"name": name, "tunnels": n, "errors": errors, "rate": n / elapsed,
            "cpu_per_1000": cpu / n * 1000 if n else 0, "p50": pct(0.5), "p99": pct(0.99),
            "pod_errors": bad, "stats": stats[-1] if stats else ""}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def main():
    tmp = tempfile.mkdtemp(prefix="helper-bench-")
    pods = [kf.make_pod("pod-%d" % i, ip="127.0.1.%d" % i, namespace="bench", slim=True,
                        annotations={"egress.connectd.io/allow": "example.com:443, 127.0.0.1",
                                     "egress.connectd.io/mode": "enforce"})
            for i in range(1, NPODS + 1)]
    src = os.path.join(tmp, "pods.json")
    with open(src, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": pods}, f)
    origin = h.EchoServer(backlog=1024).port
    runs = [("off", None),
            ("on", "external_acl_type podmeta ttl=60 %%SRC %s --source file:%s" % (PODMETA, src)),
            ("on-ttl0", "external_acl_type podmeta ttl=0 concurrency=20 children-max=2 "
             "%%SRC %s --source file:%s" % (PODMETA, src)),
            ("policy", "external_acl_type egress ttl=60 concurrency=100 on_failure=open "
             "%%SRC %%DST %%PORT %%ssl::>sni %s --policy --source file:%s\n"
             "acl egress_ok external egress\nhttp_access deny !egress_ok" % (PODMETA, src))]
    print("# %d client processes, %.0f s per run, %d source addresses" % (PROCS, SECONDS, NPODS))
    print("%-8s %9s %8s %7s %12s %14s %14s %10s" % ("run", "tunnels", "errors", "tun/s",
                                                    "cpu ms/1000", "close->line p50",
                                                    "p99 (ms)", "pod_error"))
    out = []
    for name, helper in runs:
        r = run(name, helper, tmp, origin)
        out.append(r)
        print("%-8s %9d %8d %7.0f %12.1f %14.2f %14.2f %10d" % (
            name, r["tunnels"], r["errors"], r["rate"], r["cpu_per_1000"], r["p50"], r["p99"],
            r["pod_errors"]))
    for r in out:
        if r["stats"]:
            print("# %s: %s" % (r["name"], r["stats"]))
    base = out[0]["rate"]
    for r in out[1:]:
        print("# %s vs off: %+.1f%% tunnels/s, %+.1f%% connectd CPU per tunnel" % (
            r["name"], (r["rate"] / base - 1) * 100,
            (r["cpu_per_1000"] / out[0]["cpu_per_1000"] - 1) * 100))


if __name__ == "__main__":
    main()
