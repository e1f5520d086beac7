#!/usr/bin/env python3
"""hostile.py: what hostile or careless input costs: big configurations, trickled heads.

    python3 bench/hostile.py --connectd build/connectd/connectd [--before OLD] [--squid]

Figures, for each connectd given (and Squid 5.7 with --squid, for the
trickle):

  parse    connectd -t on a file of N acl lines (with http_access lines
           naming every fourth), seconds, for N in --acls
  reload   the same file loaded, a tunnel open, SIGHUP: seconds until
           "configuration reloaded", and the longest a 1-byte echo through
           the open tunnel waited meanwhile (the loop stalls while it parses)
  trickle  --clients clients each send a CONNECT head with --prefill bytes
           of one header at once, then a byte every 2 ms (request_header_
           max_size 1 MB, the header never ends) for --seconds: the proxy's
           CPU use, in % of one core

No timed assertion anywhere: this prints a Markdown table.  Everything
stays on 127.0.0.1.  It reuses the test harness (t/lib/harness.py).
"""
import argparse
import os
import signal
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "t", "lib"))
import harness as h  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
ALLOW = ("acl t_loopback src 127.0.0.0/8 ::1\nhttp_access allow t_loopback\n"
         "http_access deny all\n")


def acl_lines(n):
    out = ["acl a%d dst 10.%d.%d.0/24" % (i, (i >> 8) & 255, i & 255) for i in range(n)]
    out += ["http_access deny a%d" % i for i in range(0, n, 4)]
    return "\n".join(out) + "\n"


def cpu_of(pid):
    """utime + stime of a process and its threads, seconds."""
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / float(CLK_TCK)


def parse_time(binary, n):
    path = h.tmpfile("acl%d.conf" % n, "http_port 127.0.0.1:%d\n" % h.free_port() +
                     acl_lines(n) + "http_access deny all\n")
    t0 = time.monotonic()
    rc, _, err = h.run([binary, "-t", "-f", path], timeout=600)
    return time.monotonic() - t0 if rc == 0 else None


def reload_stall(binary, n, echo):
    os.environ["CONNECTD"] = binary
    with h.Connectd(acl_lines(n).replace("http_access deny all\n", "") + ALLOW,
                    name="reload%d-%d" % (n, abs(hash(binary)) % 1000)) as cd:
        c = h.ProxyClient(cd.port)
        st, _ = c.connect_tunnel(echo.authority)
        if st != 200:
            return None, None
        stop = threading.Event()
        worst = [0.0]

        def ping():
            while not stop.is_set():
                t = time.monotonic()
                c.send(b"p")
                c.recv_exact(1, timeout=600)
                worst[0] = max(worst[0], time.monotonic() - t)
                time.sleep(0.002)
        th = threading.Thread(target=ping, daemon=True)
        th.start()
        time.sleep(0.2)
        before = cd.stderr().count("configuration reloaded")
        t0 = time.monotonic()
        cd.hup()
        h.wait_for(lambda: cd.stderr().count("configuration reloaded") > before,
                   timeout=600, interval=0.005)
        took = time.monotonic() - t0
        time.sleep(0.2)
        stop.set()
        th.join(5)
        c.close()
        return took, worst[0]


def trickle_cpu(pid, port, clients, seconds, prefill):
    socks = []
    for _ in range(clients):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nX-Long: " + b"a" * prefill)
        socks.append(s)
    time.sleep(0.5)
    c0, t0 = cpu_of(pid), time.monotonic()
    while time.monotonic() - t0 < seconds:
        for s in socks:
            try:
                s.send(b"a")
            except OSError:
                pass
        time.sleep(0.002)
    used = cpu_of(pid) - c0
    wall = time.monotonic() - t0
    for s in socks:
        s.close()
    return 100.0 * used / wall


def trickle_connectd(binary, clients, seconds, prefill):
    os.environ["CONNECTD"] = binary
    with h.Connectd("request_header_max_size 1 MB\nrequest_header_timeout 10 minutes\n"
                    "client_lifetime 1 hour\naccess_log none\n" + ALLOW,
                    name="trickle-%d" % (abs(hash(binary)) % 1000)) as cd:
        return trickle_cpu(cd.proc.pid, cd.port, clients, seconds, prefill)


def trickle_squid(clients, seconds, prefill):
    if not h.Squid.available():
        return None
    with h.Squid("request_header_max_size 1 MB\nclient_request_buffer_max_size 2 MB\n"
                 "request_timeout 10 minutes\n") as sq:
        # the master forks a kid that does the work: measure the kid
        kids = [int(p) for p in os.listdir("/proc") if p.isdigit() and
                h.read_text("/proc/%s/status" % p).find("PPid:\t%d\n" % sq.proc.p.pid) >= 0]
        pid = kids[0] if kids else sq.proc.p.pid
        return trickle_cpu(pid, sq.port, clients, seconds, prefill)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--connectd", default=os.environ.get("CONNECTD"), required=False)
    ap.add_argument("--before", help="an older connectd to measure beside it")
    ap.add_argument("--squid", action="store_true", help="Squid's trickle figure too")
    ap.add_argument("--acls", default="10000,40000,100000")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--prefill", type=int, default=256 * 1024,
                    help="bytes of the header sent at once before the trickle")
    a = ap.parse_args()
    if not a.connectd:
        ap.error("--connectd is needed")
    targets = [("connectd", os.path.abspath(a.connectd))]
    if a.before:
        targets.insert(0, ("before", os.path.abspath(a.before)))
    sizes = [int(x) for x in a.acls.split(",")]
    echo = h.EchoServer()
    rows = []
    for name, binary in targets:
        for n in sizes:
            p = parse_time(binary, n)
            took, worst = reload_stall(binary, n, echo)
            rows.append((name, n, p, took, worst))
    print("| binary | acl lines | connectd -t, s | SIGHUP to reloaded, s | "
          "longest echo wait during it, s |")
    print("|---|---:|---:|---:|---:|")
    for name, n, p, took, worst in rows:
        f = lambda v: "%.3f" % v if v is not None else "-"
        print("| %s | %d | %s | %s | %s |" % (name, n, f(p), f(took), f(worst)))
    print()
    print("| proxy | CPU, %% of a core: %d clients, %d KB of one header, then a byte "
          "every 2 ms |" % (a.clients, a.prefill // 1024))
    print("|---|---:|")
    for name, binary in targets:
        print("| %s | %.1f |" % (name, trickle_connectd(binary, a.clients, a.seconds,
                                                        a.prefill)))
    if a.squid:
        v = trickle_squid(a.clients, a.seconds, a.prefill)
        print("| squid | %s |" % ("%.1f" % v if v is not None else "not installed"))


if __name__ == "__main__":
    main()
