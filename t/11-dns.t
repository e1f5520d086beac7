#!/usr/bin/env python3
"""11-dns.t: name resolution from a private /etc/hosts.

The test re-runs itself in a private mount namespace (unshare -m) with its
own /etc/hosts and a resolv.conf pointing at 127.0.0.1 (nothing listens
there), so connectd sees the names below and no query leaves the machine.

- a name with one IPv4 address resolves and connects;
- a name with both ::1 and 127.0.0.1, where only one of them has a
  listener: every address is tried, whichever order they come in;
- a name that resolves nowhere: 503, close dns_failed;
- a name whose only address refuses: 503, close connect_failed."""
import os
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, diag, done

HOSTS = [
    ("127.0.0.1", "v4.connectd.test"),
    ("::1", "dual.connectd.test"),
    ("127.0.0.1", "dual.connectd.test"),
]
h.private_files({"/etc/hosts": h.hosts_file(*HOSTS), "/etc/resolv.conf": h.LOOPBACK_RESOLV},
                reason="a private /etc/hosts")
h.need_connectd()
h.watchdog(60)
V6 = h.have_ipv6_loopback()

echo4 = h.EchoServer(host="127.0.0.1")
echo6 = h.EchoServer(host="::1") if V6 else None
# a port free on both families, and echo servers on one family only
closed = h.free_port()

CASES = [
    # name, authority, status, log expectations
    ("v4 name", "v4.connectd.test:%d" % echo4.port, 200,
     {"host": "v4.connectd.test", "server_ip": "127.0.0.1", "server_port": echo4.port}),
    ("dual name, only 127.0.0.1 listens", "dual.connectd.test:%d" % echo4.port, 200,
     {"server_ip": "127.0.0.1"}),
    ("unresolvable name", "nosuch.connectd.invalid:443", 503,
     {"close": "dns_failed", "server_ip": None}),
    ("not in hosts, .test", "absent.connectd.test:443", 503,
     {"close": "dns_failed", "server_ip": None}),
    ("v4 name, refused", "v4.connectd.test:%d" % closed, 503,
     {"close": "connect_failed", "server_ip": None}),
]
if V6:
    CASES.insert(2, ("dual name, only ::1 listens", "dual.connectd.test:%d" % echo6.port, 200,
                     {"server_ip": "::1", "server_port": echo6.port}))
else:
    diag("no IPv6 loopback: the ::1 case is not run")

with h.Connectd({}) as cd:
    for name, auth, want, log in CASES:
        c = h.ProxyClient(cd.port)
        st, head = c.connect_tunnel(auth)
        is_(st, want, "%s: CONNECT %s -> %d" % (name, auth, want))
        if st == 200:
            c.send(b"dns")
            is_(c.recv_exact(3), b"dns", "%s: echo through the tunnel" % name)
        c.close()
        line = cd.wait_client(c.local_port)
        h.check_record(line, dict(log, status=want, authority=auth), prefix=name + ": ")
    h.all_valid_json(cd.log)
done()
