#!/usr/bin/env python3
"""40-acl-types.t: every local acl type, allowed and denied, through real
CONNECTs to echo servers on loopback.

Expectations:
- src: IPv4 and IPv6 clients, single address, CIDR, range; a dual-stack
  listener's IPv4 client matches an IPv4 src acl.
- port: single ports and ranges.
- dstdomain: ".x" matches x and every subdomain, "x" only x; case and a
  trailing dot do not matter; "notx" is not a subdomain of "x".
- dstdom_regex: PCRE2, case-sensitive unless -i.
- dst: the resolved addresses (a name from hosts_file resolving into the
  range is denied) and IP literals (IPv4, IPv6, ::ffff:127.0.0.1).
- method CONNECT, negation (!acl) and AND of several acls on one line.
- Each denial is a 403 logged with close=denied and the line as the rule;
  each allowed request tunnels a byte.
No DNS query leaves the machine: hosts_file, dns_nameservers 127.0.0.1."""
import os
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
from tap import ok, is_, diag, done

h.need_connectd()
h.watchdog(120)

v6 = h.have_ipv6_loopback()
e1 = h.EchoServer()
e2 = h.EchoServer()
e6 = h.EchoServer(host="::1") if v6 else None
RESOLV = pu.local_names("".join("127.0.0.1 %s\n" % n for n in (
    "good.test", "www.good.test", "a.b.good.test", "notgood.test",
    "plain.test", "www.plain.test", "api1.test", "API2.test", "other.test")) +
    ("::1 six.test\n" if v6 else ""))


def start(policy, dual=False):
    port_lines = ("http_port [::1]:{port}\nhttp_port 127.0.0.1:{port}\n"
                  if v6 and not dual else "")
    if dual:
        port_lines = "http_port {port}\n"
    return h.Connectd(port_lines + RESOLV + policy)


# --- src, IPv4 and IPv6 clients
pol = ("acl c2 src 127.0.0.2 127.0.0.10-127.0.0.12\n"
       "acl c6 src ::1/128\n"
       "http_access allow c2\nhttp_access allow c6\nhttp_access deny all\n")
with start(pol) as cd:
    pu.check(cd, e1.authority, "http_access deny all", "src: 127.0.0.1 not listed")
    pu.check(cd, e1.authority, "allow", "src: 127.0.0.2 listed", source="127.0.0.2")
    pu.check(cd, e1.authority, "allow", "src: 127.0.0.11 in a range", source="127.0.0.11")
    pu.check(cd, e1.authority, "http_access deny all", "src: 127.0.0.13 past the range",
             source="127.0.0.13")
    if v6:
        pu.check(cd, e1.authority, "allow", "src: ::1 client (IPv6)", host="::1")
with start("acl net src 127.0.0.0/24\nhttp_access allow net\nhttp_access deny all\n",
           dual=True) as cd:
    pu.check(cd, e1.authority, "allow", "src: IPv4 client of a dual-stack listener")
    pu.check(cd, e1.authority, "http_access deny all", "src: 127.0.1.1 outside /24",
             source="127.0.1.1")

# --- port
pol = ("acl p port %d 1-1024\nhttp_access allow p\nhttp_access deny all\n" % e1.port)
with start(pol) as cd:
    pu.check(cd, e1.authority, "allow", "port: listed")
    pu.check(cd, e2.authority, "http_access deny all", "port: not listed")
pol = "acl r port %d-%d\nhttp_access deny r\nhttp_access allow all\n" % (e2.port, e2.port)
with start(pol) as cd:
    pu.check(cd, e2.authority, "http_access deny r", "port: in a denied range")
    pu.check(cd, e1.authority, "allow", "port: outside the denied range")

# --- dstdomain
pol = ("acl d dstdomain .good.test plain.test\n"
       "http_access allow d\nhttp_access deny all\n")
with start(pol) as cd:
    for host in ("good.test", "www.good.test", "a.b.good.test", "WWW.Good.TEST",
                 "plain.test"):
        pu.check(cd, "%s:%d" % (host, e1.port), "allow", "dstdomain: %s" % host)
    for host in ("notgood.test", "www.plain.test", "other.test", "127.0.0.1"):
        pu.check(cd, "%s:%d" % (host, e1.port), "http_access deny all",
                 "dstdomain: %s" % host)
with start("acl ip dstdomain 127.0.0.1\nacl g dstdomain plain.test\n"
           "http_access deny ip\nhttp_access deny g\nhttp_access allow all\n") as cd:
    pu.check(cd, e1.authority, "http_access deny ip", "dstdomain: an IP literal as text")
    pu.check(cd, "PLAIN.test.:%d" % e1.port, "http_access deny g",
             "dstdomain: case and a trailing dot do not get around a deny")
    pu.check(cd, "good.test:%d" % e1.port, "allow", "dstdomain: a name resolving to it")

# --- dstdom_regex
pol = ("acl rx dstdom_regex ^api[0-9]+\\.test$\n"
       "acl rxi dstdom_regex -i ^www\\.GOOD\\.\n"
       "http_access allow rx\nhttp_access allow rxi\nhttp_access deny all\n")
with start(pol) as cd:
    pu.check(cd, "api1.test:%d" % e1.port, "allow", "dstdom_regex: matches")
    pu.check(cd, "API2.test:%d" % e1.port, "http_access deny all",
             "dstdom_regex: case-sensitive without -i")
    pu.check(cd, "www.good.test:%d" % e1.port, "allow", "dstdom_regex -i: caseless")
    pu.check(cd, "good.test:%d" % e1.port, "http_access deny all", "dstdom_regex: no match")

# --- dst: resolved addresses and literals
pol = ("acl lo4 dst 127.0.0.0/8\n"
       "http_access deny lo4\nhttp_access allow all\n")
with start(pol) as cd:
    pu.check(cd, "good.test:%d" % e1.port, "http_access deny lo4",
             "dst: a name resolving into the range")
    pu.check(cd, e1.authority, "http_access deny lo4", "dst: an IPv4 literal")
    pu.check(cd, "[::ffff:127.0.0.1]:%d" % e1.port, "http_access deny lo4",
             "dst: an IPv4-mapped IPv6 literal")
    if v6:
        pu.check(cd, e6.authority, "allow", "dst: [::1] is outside 127.0.0.0/8")
        pu.check(cd, "six.test:%d" % e6.port, "allow", "dst: a name resolving to ::1")
if v6:
    pol = "acl lo6 dst ::1\nhttp_access deny lo6\nhttp_access allow all\n"
    with start(pol) as cd:
        pu.check(cd, e6.authority, "http_access deny lo6", "dst: an IPv6 literal")
        pu.check(cd, "six.test:%d" % e6.port, "http_access deny lo6",
                 "dst: a name resolving to ::1")
        pu.check(cd, e1.authority, "allow", "dst: 127.0.0.1 is not ::1")

# --- method, negation, AND
pol = ("acl p1 port %d\nacl c2 src 127.0.0.2\n"
       "http_access deny !CONNECT\n"
       "http_access deny p1 !c2\n"
       "http_access allow all\n" % e1.port)
with start(pol) as cd:
    pu.check(cd, e1.authority, "http_access deny p1 !c2", "AND with a negation: both hold")
    pu.check(cd, e1.authority, "allow", "AND with a negation: !c2 fails", source="127.0.0.2")
    pu.check(cd, e2.authority, "allow", "AND with a negation: p1 fails")
pol = ("acl m method CONNECT\nacl d dstdomain .good.test\n"
       "http_access allow m !d\nhttp_access deny all\n")
with start(pol) as cd:
    pu.check(cd, e1.authority, "allow", "method CONNECT matches")
    pu.check(cd, "www.good.test:%d" % e1.port, "http_access deny all",
             "negated dstdomain")
    cd.finish()
    recs = h.all_valid_json(cd.log)

done()
