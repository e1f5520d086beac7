#!/usr/bin/env python3
"""41-acl-rules.t: http_access semantics, values from files, and the
checks on acl lines.

Expectations:
- No http_access line at all: every request is denied (Squid), rule
  "implicit deny (no http_access lines)".
- No line matches: the opposite of the last line applies, rule
  "implicit allow|deny (opposite of the last http_access line)".
- First match wins; an acl name is case-insensitive; a second acl line
  with the same name and type appends values.
- Values from a file, "/path" and parameters("/path"): one or more per
  line, # comments, -i in a regex file; src, port, dstdomain and
  dstdom_regex files all work.
- `connectd -t` refuses bad acl and http_access lines with FILE:LINE:
  unknown type, bad CIDR, bad port range, an acl used before it is
  defined, one name with two types, a bad regex, a missing file,
  "x" beside ".x" in one dstdomain acl.
- `connectd -t -v` prints the acl and http_access lines back, and that
  output is accepted again."""
import os
import re
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
from tap import ok, is_, like, diag, done

h.need_connectd()
h.watchdog(120)
CD = h.connectd_bin()

e1 = h.EchoServer()
e2 = h.EchoServer()
RESOLV = pu.local_names("127.0.0.1 a.test b.a.test c.test www.rx.test\n")

# --- no rules at all
with pu.RawConnectd(RESOLV + "acl x src all\n") as cd:
    pu.check(cd, e1.authority, "implicit deny (no http_access lines)", "no http_access lines")

# --- implicit rules
with h.Connectd(RESOLV + "acl p port %d\nhttp_access deny p\n" % e1.port) as cd:
    rec = pu.check(cd, e1.authority, "http_access deny p", "the only line matches")
    ok("detail" not in rec, "a denied line has the rule, not a detail repeating it")
    rec = pu.check(cd, e2.authority, "allow", "no line matches after a deny: allowed")
    is_(rec.get("rule"), None, "an allowed request has no rule field")
with h.Connectd(RESOLV + "acl p port %d\nhttp_access allow p\n" % e1.port) as cd:
    pu.check(cd, e2.authority, "implicit deny (opposite of the last http_access line)",
             "no line matches after an allow: denied")
    pu.check(cd, e1.authority, "allow", "the allow line matches")

# --- first match wins, names are case-insensitive, lines append
pol = ("acl P port %d\nacl q port 1\nacl q port %d\n"
       "http_access allow p\nhttp_access deny Q\nhttp_access allow all\n" % (e1.port, e2.port))
with h.Connectd(RESOLV + pol) as cd:
    pu.check(cd, e1.authority, "allow", "first match: allow before deny")
    pu.check(cd, e2.authority, "http_access deny Q", "an appended value matches")

# --- values from files
src_f = h.tmpfile("src.txt", "# clients\n127.0.0.2\n\n  127.0.0.3/32 127.0.0.4\n")
port_f = h.tmpfile("ports.txt", "# ports\n%d\n" % e1.port)
dom_f = h.tmpfile("doms.txt", "# domains\n.a.test\n c.test \n")
rx_f = h.tmpfile("rx.txt", "# regexes\n-i\n^WWW\\.\n")
pol = ('acl s src "%s"\nacl p port parameters("%s")\nacl d dstdomain "%s"\n'
       'acl r dstdom_regex "%s"\n'
       "http_access deny s\nhttp_access deny !p\nhttp_access deny d\nhttp_access deny r\n"
       "http_access allow all\n" % (src_f, port_f, dom_f, rx_f))
with h.Connectd(RESOLV + pol) as cd:
    pu.check(cd, e1.authority, "http_access deny s", "src from a file (1st value)",
             source="127.0.0.2")
    pu.check(cd, e1.authority, "http_access deny s", "src from a file (2 on a line)",
             source="127.0.0.4")
    pu.check(cd, e2.authority, "http_access deny !p", "port from parameters(\"file\")")
    pu.check(cd, "b.a.test:%d" % e1.port, "http_access deny d", "dstdomain .a.test from a file")
    pu.check(cd, "c.test:%d" % e1.port, "http_access deny d", "dstdomain c.test from a file")
    pu.check(cd, "www.rx.test:%d" % e1.port, "http_access deny r",
             "dstdom_regex with -i from a file")
    pu.check(cd, e1.authority, "allow", "nothing in the files matches 127.0.0.1 to an IP")

# --- config errors
BAD = [
    ("acl x bogus 1", r"unknown acl type"),
    ("acl x src 10.0.0.0/33", r"netmask"),
    ("acl x src not-an-ip", r"not an IP address"),
    ("acl x port 1024-80", r"ends before it starts"),
    ("acl x port 65536", r"not a port"),
    ("http_access allow undefined_acl", r"not defined"),
    ("http_access allow", r"usage"),
    ("http_access permit all", r"usage"),
    ("acl localhost port 80", r"already exists with type src"),
    ("acl x dstdom_regex (unclosed", r"regular expression"),
    ('acl x dstdomain "/nonexistent/file"', r"cannot read"),
    ("acl x src", r"has no values"),
    ("acl x src -i 10.0.0.1", r"not supported"),
]
for i, (line, msg) in enumerate(BAD):
    path = h.tmpfile("bad%02d.conf" % i, "# bad\nhttp_port 127.0.0.1:3128\n\n" + line + "\n")
    rc, out, err = h.run([CD, "-t", "-f", path], timeout=10)
    ok(rc not in (0, None) and re.search(r"%s:4\b" % re.escape(path), err)
       and re.search(msg, err), "-t refuses %r with FILE:4 and %r" % (line, msg))
    if rc == 0:
        diag(err)
path = h.tmpfile("dup.conf", "http_port 127.0.0.1:3128\nacl d dstdomain .x.test x.test\n")
rc, out, err = h.run([CD, "-t", "-f", path], timeout=10)
ok(rc not in (0, None) and "x.test" in err, "-t refuses x.test beside .x.test, as Squid 5 does")

# --- dump round trip
good = h.tmpfile("good.conf", "http_port 127.0.0.1:3128\n" + RESOLV + pol)
rc, out, err = h.run([CD, "-t", "-v", "-f", good], timeout=10)
is_(rc, 0, "-t -v accepts the file-value policy")
ok("http_access deny !p" in out and 'acl s src "%s"' % src_f in out,
   "-t -v prints the acl and http_access lines")
again = h.tmpfile("again.conf", out)
rc2, out2, err2 = h.run([CD, "-t", "-v", "-f", again], timeout=10)
is_(rc2, 0, "the printed configuration is accepted again")
is_(out2.split("\n", 1)[1], out.split("\n", 1)[1], "... and prints the same")

done()
