#!/usr/bin/env python3
"""16-conf.t: configuration files, checked with `connectd -t -f FILE` and
at startup.

Every bad line is refused with FILE:LINE and the line's text on stderr and
a non-zero exit, both by -t and by a plain start (which must not listen).
Good files, including the shipped conf/connectd.conf with the Squid stanza
uncommented, pass -t."""
import os
import re
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, like, diag, done

HEAD = "# a test file\nhttp_port 127.0.0.1:{port}\n\n"        # the bad line is line 4
STANZA = ("logformat connect_bytes {\"ts\":\"%ts\",\"client_ip\":\"%>a\",\"authority\":\"%ru\","
          "\"bytes_up\":\"%>st\",\"bytes_down\":\"%<st\",\"podmeta\":%'ea}\n"
          "access_log stdio:/dev/stdout connect_bytes\n")
BAD = [
    "bogus_directive 1",
    "connect_timeout thirty seconds",
    "connect_timeout 30 parsecs",
    "connect_timeout 30seconds",
    "read_timeout 5 seconds trailing",
    "request_header_timeout",
    "http_port 127.0.0.1:99999",
    "http_port 127.0.0.1:0",
    "http_port",
    "http_port 1.2.3.4.5:80",
    "http_port [::1:3128",
    "access_log",
    "access_log stdio:/dev/stdout nosuchformat",
    "logformat",
    "logformat onlyname",
    "logformat x %zz",
    "read_timeout 1 minute # a trailing comment",
    # -t says a log cannot be opened, without opening it
    "access_log stdio:/nonexistent-connectd-dir/access.log json",
    "access_log stdio:/ json",
]
GOOD = [
    "connect_timeout 30 seconds\nread_timeout 2 minutes\nrequest_header_timeout 1 second\n",
    "http_port 3128\n",
    "http_port [::1]:3128\n",
    "# only a comment\n\n   \n",
    "logformat all %ts %tu %tl %tr %>a %>p %<a %<p %ru %rm %>st %<st %>Hs %Ss %ea %'ea %\"ea %#ea\n"
    "access_log stdio:/dev/null all\n",
    "access_log stdio:/dev/null\naccess_log stdio:/dev/null json\n",
    STANZA,
]

h.need_connectd()
h.watchdog(90)
CD = h.connectd_bin()

for i, line in enumerate(BAD):
    port = h.free_port()
    path = h.tmpfile("bad%02d.conf" % i, HEAD.replace("{port}", str(port)) + line + "\n")
    rc, out, err = h.run([CD, "-t", "-f", path], timeout=10)
    ok(rc not in (0, None), "-t refuses %r (rc %r)" % (line, rc))
    like(err, r"%s:4\b" % re.escape(path), "... with FILE:4 on stderr")
    ok(line.split("#")[0].strip() in err or line in err, "... quoting the line")
    if i % 4 == 0:        # a plain start refuses it too, and never listens
        p = h.Proc([CD, "-f", path], stdout=path + ".out", stderr=path + ".err")
        rc = p.wait(10)
        ok(rc not in (0, None), "a plain start refuses %r (rc %r)" % (line, rc))
        like(h.read_text(path + ".err"), r"%s:4\b" % re.escape(path), "... with FILE:4")
        p.stop()

for i, text in enumerate(GOOD):
    path = h.tmpfile("good%02d.conf" % i, HEAD.replace("{port}", str(h.free_port())) + text)
    rc, out, err = h.run([CD, "-t", "-f", path], timeout=10)
    is_(rc, 0, "-t accepts %r" % text.strip()[:60])
    if rc:
        diag(err)

shipped = os.path.join(h.topdir(), "conf", "connectd.conf")
rc, out, err = h.run([CD, "-t", "-f", shipped], timeout=10)
is_(rc, 0, "-t accepts the shipped conf/connectd.conf")
if rc:
    diag(err)
text = open(shipped).read()
stanza = re.sub(r"^#(logformat connect_bytes|access_log stdio:/dev/stdout connect_bytes)",
                r"\1", text, flags=re.M)
stanza = re.sub(r"^access_log stdio:/dev/stdout json$", "# (replaced)", stanza, flags=re.M)
ok(stanza != text, "the shipped file carries the Squid stanza, commented out")
path = h.tmpfile("stanza.conf", stanza)
rc, out, err = h.run([CD, "-t", "-f", path], timeout=10)
is_(rc, 0, "-t accepts it with the Squid stanza uncommented")
if rc:
    diag(err)
done()
