#!/usr/bin/env python3
"""12-manpages.t: the manual pages render cleanly and are complete.

- `groff -ww -z -man` gives no warning for each page, and `man -l` renders
  it (exit 0, text out, nothing on stderr).
- every directive in conf/connectd.conf (active, or commented out as
  `#directive ...`) and every directive of the core issue is documented
  in connectd.conf(5);
- every command-line flag in connectd's usage line is documented in
  connectd(8), every option in podmeta's in podmeta(8), every option in
  connectd-learn's in connectd-learn(1);
- podmeta exits 2, as podmeta(8) says of a usage error, for a bad option
  value, saying which option and why.
podmeta.8 belongs to the podmeta issue: while it is empty it is skipped."""
import os
import re
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, like, diag, done

TOP = h.topdir()
PAGES = [
    # page, required now
    ("man/connectd.8", True),
    ("man/connectd.conf.5", True),
    ("man/podmeta.8", False),
    ("man/connectd-learn.1", True),
]
CORE_DIRECTIVES = ["http_port", "connect_timeout", "read_timeout", "request_header_timeout",
                   "access_log", "logformat"]
CORE_FLAGS = ["f", "t", "V"]
ENV = dict(os.environ, LC_ALL="C", LANG="C", MANWIDTH="80", MANPAGER="cat", PAGER="cat",
           MAN_KEEP_FORMATTING="")

if not h.have("groff", "man"):
    h.tap.skip_all("groff and man are needed")
h.watchdog(60)


def plain(text):
    text = re.sub(r".\x08", "", text)             # overstrike bold/underline
    return re.sub(r"\x1b\[[0-9;]*m", "", text)     # SGR


rendered = {}
for page, required in PAGES:
    path = os.path.join(TOP, page)
    size = os.path.getsize(path) if os.path.exists(path) else -1
    if size <= 0 and not required:
        ok(True, "%s # SKIP not written yet" % page)
        continue
    ok(size > 0, "%s exists and is not empty" % page)
    if size <= 0:
        continue
    rc, out, err = h.run(["groff", "-ww", "-z", "-man", path], timeout=30, env=ENV)
    ok(rc == 0 and err.strip() == "", "groff -ww -z: %s renders without warnings" % page)
    if err.strip():
        diag(err[-2000:])
    rc, out, err = h.run(["man", "-l", path], timeout=30, env=ENV)
    ok(rc == 0 and len(out) > 200 and err.strip() == "", "man -l %s renders (%d bytes)" % (page, len(out)))
    if err.strip():
        diag(err[-2000:])
    # join words that the renderer hyphenated across lines
    rendered[page] = plain(out) + "\n" + re.sub(r"[-\u2010]\n\s*", "", plain(out))

# directives
conf5 = rendered.get("man/connectd.conf.5", "")
directives = []
with open(os.path.join(TOP, "conf", "connectd.conf")) as f:
    for ln in f:
        m = re.match(r"^#?([a-z][a-z0-9_]*)\s", ln)   # "# prose" has a space after '#'
        if m and m.group(1) not in directives:
            directives.append(m.group(1))
ok(directives, "conf/connectd.conf has directives (%s)" % " ".join(directives))
for d in CORE_DIRECTIVES:
    if d not in directives:
        directives.append(d)
# and every directive connectd itself prints back with -t -v, given a
# file that sets the ones it prints only when set
if os.access(h.connectd_bin(), os.X_OK):
    allset = h.tmpfile("allset.conf", "http_port 3128\ndns_nameservers 127.0.0.1\n"
                       "hosts_file /etc/hosts\ncache_effective_user nobody\n"
                       "external_acl_type x %SRC /bin/true\nacl a src all\n"
                       "http_access allow a\n")
    rc, out, err = h.run([h.connectd_bin(), "-t", "-v", "-f", allset], timeout=10)
    for ln in out.splitlines():
        m = re.match(r"^([a-z][a-z0-9_]*)\s", ln)
        if m and m.group(1) not in directives:
            directives.append(m.group(1))
for d in directives:
    ok(re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(d), conf5),
       "connectd.conf(5) documents %s" % d)

# flags
flags = list(CORE_FLAGS)
if os.access(h.connectd_bin(), os.X_OK):
    rc, out, err = h.run([h.connectd_bin(), "-h"], timeout=10)
    m = re.search(r"usage:.*", out + err)
    ok(m, "connectd -h prints a usage line")
    if m:
        for grp in re.findall(r"\[-(\w+)\]|\[-(\w) ", m.group(0)):
            for ch in "".join(grp):
                if ch not in flags:
                    flags.append(ch)
else:
    diag("connectd not built: checking the issue's flags only")
man8 = rendered.get("man/connectd.8", "")
for fl in flags:
    ok(re.search(r"(?<![\w-])-%s\b" % fl, man8), "connectd(8) documents -%s" % fl)

# podmeta: its options, and what a bad value gets
PODMETA = os.environ.get("PODMETA", "")
if PODMETA and os.access(PODMETA, os.X_OK):
    pm8 = rendered.get("man/podmeta.8", "")
    rc, out, err = h.run([PODMETA, "-h"], timeout=10)
    opts = re.findall(r"\[(--[a-z][a-z-]*)", out + err)
    ok(rc == 0 and len(opts) >= 10, "podmeta -h prints its options (%d)" % len(opts))
    for o in opts:
        ok(re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(o), pm8), "podmeta(8) documents %s" % o)
    for args, opt in ((["--max-value", "x"], "--max-value"),
                      (["--max-value", "-1"], "--max-value"),
                      (["--unknown", "maybe"], "--unknown"),
                      (["--sync-wait", "soon"], "--sync-wait"),
                      (["--delete-grace", "-5"], "--delete-grace"),
                      (["--channel-id", "sometimes"], "--channel-id"),
                      (["--address-token", "0"], "--address-token"),
                      (["--source", "ftp://x"], "--source"),
                      (["--no-such-option"], "no-such-option"),
                      (["extra-argument"], "usage")):
        rc, out, err = h.run([PODMETA] + args, timeout=10, input="")
        ok(rc == 2 and opt in err,
           "podmeta %s: exit 2 (%r), naming %s: %r" % (" ".join(args), rc, opt, err.strip()[-200:]))
else:
    diag("PODMETA not set: podmeta's options not checked")

# connectd-learn: its options
LEARN = os.environ.get("CONNECTD_LEARN", "")
if LEARN and os.access(LEARN, os.X_OK):
    l1 = rendered.get("man/connectd-learn.1", "")
    rc, out, err = h.run([LEARN, "-h"], timeout=10)
    opts = re.findall(r"\[(--?[a-z][a-z-]*)", out)
    ok(rc == 0 and len(opts) >= 8, "connectd-learn -h prints its options (%d)" % len(opts))
    for o in opts:
        ok(re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(o), l1), "connectd-learn(1) documents %s" % o)
else:
    diag("CONNECTD_LEARN not set: connectd-learn's options not checked")
done()
