#!/usr/bin/env python3
"""42-default-policy.t: the acl and http_access lines of the shipped
conf/connectd.conf, against real attempts, inside a network namespace
that this test creates (only lo up, and a veth pair to a second
namespace, "another host" at 10.9.0.2), so nothing can leave the machine
even if a rule were wrong.  Origins really listen on every target, so a
wrong allow would show up as a 200.

Expectations (each denial: 403, logged close=denied with the rule):
- CONNECT 127.0.0.1:22             -> http_access deny !Safe_ports
- CONNECT 127.0.0.1:443            -> http_access deny to_localhost
- CONNECT [::1]:443                -> http_access deny to_localhost
- CONNECT 0.0.0.0:443              -> http_access deny to_localhost
- CONNECT 169.254.169.254:80       -> http_access deny CONNECT !SSL_ports
- CONNECT 169.254.169.254:443      -> http_access deny to_linklocal
- CONNECT [::ffff:169.254.169.254]:443 -> http_access deny to_linklocal
- CONNECT [fe80::1]:443            -> http_access deny to_linklocal
- CONNECT evil.test:443 (hosts_file: 127.0.0.1) -> deny to_localhost
- CONNECT meta.test:443 (hosts_file: 169.254.169.254) -> deny to_linklocal
- CONNECT 10.0.0.1:8443 (a port other than 443) -> deny CONNECT !SSL_ports
- CONNECT 10.0.0.1:443 (an address of this host, not loopback) -> deny
  to_self (it was allowed before to_self existed)
- CONNECT 10.9.0.2:443 (another host) from localhost and from localnet
  10.0.0.2: allowed
- a client from 203.0.113.5 (not localnet)      -> http_access deny all
- other numeric spellings of loopback (2130706433, 127.1, 0x7f.0.0.1,
  0177.0.0.1): 400 "ambiguous numeric host", since resolvers read them
  differently; localhost: 403 by to_localhost"""
import os
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
from tap import ok, is_, diag, done

h.need_connectd()
pu.in_netns(addrs=("169.254.169.254/32", "10.0.0.1/32", "10.0.0.2/32",
                   "203.0.113.5/32"), peer=("10.9.0.1/24", "10.9.0.2/24"))
h.watchdog(90)

policy = pu.shipped_policy()
ok("http_access deny to_linklocal" in policy and "http_access deny all" in policy,
   "the shipped conf has the default policy lines")
diag(policy)

origins = {}
for host, port in (("127.0.0.1", 22), ("127.0.0.1", 443), ("::1", 443),
                   ("169.254.169.254", 80), ("169.254.169.254", 443),
                   ("10.0.0.1", 443), ("10.0.0.1", 8443)):
    origins[(host, port)] = h.EchoServer(host=host, port=port)
other = pu.PeerEcho("10.9.0.2", 443)
hosts = h.tmpfile("hosts", "127.0.0.1 evil.test\n169.254.169.254 meta.test\n"
                  "10.9.0.2 fine.test\n")

conf = ("http_port {port}\nhosts_file %s\ndns_nameservers 127.0.0.1\n" % hosts +
        policy)
PORTS = "http_access deny CONNECT !SSL_ports"
LOCAL = "http_access deny to_localhost"
LINK = "http_access deny to_linklocal"
SELF = "http_access deny to_self"
with h.Connectd(conf) as cd:
    o = origins
    pu.expect_denied(cd, "127.0.0.1:22", "http_access deny !Safe_ports",
                     origin=o[("127.0.0.1", 22)])
    pu.expect_denied(cd, "127.0.0.1:443", LOCAL, origin=o[("127.0.0.1", 443)])
    pu.expect_denied(cd, "[::1]:443", LOCAL, origin=o[("::1", 443)])
    pu.expect_denied(cd, "0.0.0.0:443", LOCAL, origin=o[("127.0.0.1", 443)])
    pu.expect_denied(cd, "169.254.169.254:80", PORTS, origin=o[("169.254.169.254", 80)])
    pu.expect_denied(cd, "169.254.169.254:443", LINK, origin=o[("169.254.169.254", 443)])
    pu.expect_denied(cd, "[::ffff:169.254.169.254]:443", LINK,
                     origin=o[("169.254.169.254", 443)])
    pu.expect_denied(cd, "[fe80::1]:443", LINK)
    pu.expect_denied(cd, "evil.test:443", LOCAL, "a hosts_file name for 127.0.0.1",
                     origin=o[("127.0.0.1", 443)])
    pu.expect_denied(cd, "meta.test:443", LINK, "a hosts_file name for 169.254.169.254",
                     origin=o[("169.254.169.254", 443)])
    pu.expect_denied(cd, "10.0.0.1:8443", PORTS, "a port other than 443",
                     origin=o[("10.0.0.1", 8443)])
    # resolvers disagree on these (0177.0.0.1 is 127.0.0.1 to inet_aton and
    # 177.0.0.1 to c-ares): a numeric last label must be a dotted quad
    for odd in ("2130706433", "127.1", "0x7f.0.0.1", "0177.0.0.1"):
        st, head, rec = pu.attempt(cd, "%s:443" % odd)
        ok(st == 400 and (rec or {}).get("detail") == "ambiguous numeric host"
           and (rec or {}).get("server_ip") is None,
           "%s:443 (another spelling of loopback) is refused as ambiguous (%r, %r)" % (
               odd, st, (rec or {}).get("detail")))
    st, head, rec = pu.attempt(cd, "localhost:443")
    ok(st == 403 and (rec or {}).get("rule") == "http_access deny to_localhost",
       "localhost:443 is denied by to_localhost (%r, %r)" % (st, (rec or {}).get("rule")))
    pu.expect_denied(cd, "10.0.0.1:443", SELF, "443 on an address of this host",
                     origin=o[("10.0.0.1", 443)])
    pu.check(cd, "10.9.0.2:443", "allow", "443 on another host, from localhost")
    pu.check(cd, "fine.test:443", "allow", "a name, from localnet 10.0.0.2",
             host="10.0.0.1", source="10.0.0.2")
    pu.check(cd, "10.9.0.2:443", "http_access deny all",
             "a client outside localnet (203.0.113.5)", host="10.0.0.1",
             source="203.0.113.5")
    is_(len(other.conns), 2, "only the two allowed tunnels reached an origin")
    for k, v in o.items():
        is_(len(v.conns), 0, "origin %s:%d was never reached" % k)
    recs = h.all_valid_json(cd.log)

done()
