#!/usr/bin/env python3
"""45-acl-external.t: the external acl type, with a helper that answers
after 0.3 s: OK for 127.0.0.2 (and for %DATA "letmein"), ERR otherwise.

Expectations:
- http_access allow vip, vip = external helper: 127.0.0.2 tunnels (the
  decision waits for the answer), 127.0.0.1 is denied by
  "http_access deny all";
- the acl's arguments reach the helper as %DATA: an acl with "letmein"
  allows 127.0.0.1;
- an external acl naming an undefined external_acl_type is refused by
  connectd -t.
Skipped if this connectd does not support external_acl_type yet."""
import os
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
from tap import ok, is_, like, diag, done, skip_all

h.need_connectd()
h.watchdog(60)
CD = h.connectd_bin()

helper = h.tmpfile("helper.py", r'''#!/usr/bin/env python3
import sys, time
for line in sys.stdin:
    w = line.split()
    time.sleep(0.3)
    ok = (w and w[0] == "127.0.0.2") or (len(w) > 1 and w[-1] == "letmein")
    sys.stdout.write("OK\n" if ok else "ERR\n")
    sys.stdout.flush()
''', mode=0o755)
HDEF = "external_acl_type ext ttl=0 %%SRC %s %s\n" % (sys.executable, helper)

probe = h.tmpfile("probe.conf", "http_port 127.0.0.1:3128\n" + HDEF +
                  "acl vip external ext\nhttp_access allow vip\n")
rc, out, err = h.run([CD, "-t", "-f", probe], timeout=10)
if rc != 0:
    skip_all("external_acl_type is not supported by this connectd: %s" % err.strip()[:120])

echo = h.EchoServer()
with h.Connectd(HDEF + "acl vip external ext\nacl pass external ext letmein\n"
                "acl c1 src 127.0.0.3\n"
                "http_access allow vip\nhttp_access allow c1 pass\n"
                "http_access deny all\n") as cd:
    pu.check(cd, echo.authority, "allow", "the helper says OK for 127.0.0.2", source="127.0.0.2")
    pu.check(cd, echo.authority, "http_access deny all", "the helper says ERR for 127.0.0.1")
    pu.check(cd, echo.authority, "allow", "%DATA reaches the helper", source="127.0.0.3")

bad = h.tmpfile("bad.conf", "http_port 127.0.0.1:3128\nacl x external nosuchhelper\n"
                "http_access allow x\n")
rc, out, err = h.run([CD, "-t", "-f", bad], timeout=10)
ok(rc not in (0, None) and "nosuchhelper" in err and "%s:2:" % bad in err,
   "-t refuses an external acl with an undefined external_acl_type, at the acl's FILE:2")
if "%s:2:" % bad not in (err or ""):
    diag(err)

done()
