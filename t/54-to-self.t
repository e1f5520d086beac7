#!/usr/bin/env python3
"""54-to-self.t: "never to this host" holds for every address of the host.

Inside a network namespace this test creates, 10.0.0.1 and fd00:ec2::254
are on lo and an origin listens on [::]:443, so every spelling below
would reach it if a rule let it through (issue 9, defect 5).  The policy
is the shipped conf/connectd.conf's.

Expectations (each 403, logged close=denied with the rule, origin
untouched):
- 10.0.0.1:443, a hosts_file name for it, [::ffff:10.0.0.1]:443 -> to_self
- the IPv6 forms that carry 10.0.0.1: NAT64 [64:ff9b::a00:1],
  IPv4-compatible [::a00:1], 6to4 [2002:a00:1::1] -> to_self
- the same forms of 127.0.0.1 -> to_localhost; of 169.254.169.254 ->
  to_linklocal
- an address added after connectd started (10.0.0.77) -> to_self, once
  the kernel has told connectd (netlink)
- [fd00:ec2::254]:443, the IPv6 cloud metadata address -> the shipped
  metadata rule
"""
import os
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
from tap import ok, is_, diag, done

h.need_connectd()
pu.in_netns(addrs=("10.0.0.1/32", "169.254.169.254/32", "fd00:ec2::254/128"))
h.watchdog(90)

origin = h.EchoServer(host="::", port=443)
hosts = h.tmpfile("hosts", "10.0.0.1 self.test\n")
conf = ("http_port {port}\nhosts_file %s\ndns_nameservers 127.0.0.1\n" % hosts +
        pu.shipped_policy())
SELF = "http_access deny to_self"
LOCAL = "http_access deny to_localhost"
LINK = "http_access deny to_linklocal"
META = "http_access deny metadata"

with h.Connectd(conf) as cd:
    for auth, rule, name in (
            ("10.0.0.1:443", SELF, "an address of this host's lo, not loopback"),
            ("self.test:443", SELF, "a hosts_file name for it"),
            ("[::ffff:10.0.0.1]:443", SELF, "IPv4-mapped"),
            ("[64:ff9b::a00:1]:443", SELF, "NAT64"),
            ("[::a00:1]:443", SELF, "IPv4-compatible"),
            ("[2002:a00:1::1]:443", SELF, "6to4"),
            ("[64:ff9b::7f00:1]:443", LOCAL, "NAT64 of 127.0.0.1"),
            ("[2002:7f00:1::]:443", LOCAL, "6to4 of 127.0.0.1"),
            ("[64:ff9b::a9fe:a9fe]:443", LINK, "NAT64 of 169.254.169.254"),
            ("[fd00:ec2::254]:443", META, "the IPv6 metadata address")):
        pu.expect_denied(cd, auth, rule, "%s (%s)" % (name, auth), origin=origin)

    rc, out, err = h.run(["ip", "addr", "add", "10.0.0.77/32", "dev", "lo"], timeout=10)
    ok(rc == 0, "10.0.0.77 added to lo while connectd runs")
    recs = []

    def denied_now():
        st, head, rec = pu.attempt(cd, "10.0.0.77:443")
        recs.append((st, rec))
        return st == 403
    ok(h.wait_for(denied_now, timeout=10, interval=0.2),
       "an address added later is denied too (netlink keeps to_self current)")
    rec = recs[-1][1] or {}
    is_(rec.get("rule"), SELF, "... by to_self")
    is_(len([r for r in recs if r[0] == 200]), 0, "... and was never allowed in between")
    h.all_valid_json(cd.log)

is_(len(origin.conns), 0, "the origin on this host was never reached")
done()
