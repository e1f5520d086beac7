#!/usr/bin/env python3
"""88-logrotate.t: the shipped conf/connectd.logrotate loses no line under the privilege drop.

connectd starts as root with cache_effective_user nobody and logs to a
directory only root may write, the lab host's /var/log/connectd (issue
12; issue 9, defect 4).  Tunnels run without a pause while logrotate
rotates twice with the shipped file, forced (-f) and with its own state
file.  The file is used as shipped but for two substitutions: the
directory, and the postrotate command, which signals this test's
connectd by pid (the shipped one signals connectd.service's main
process, or every connectd on the machine: t/89 runs it as it is, under
systemd).  Run as root; skipped otherwise.

Expectations:
- the shipped file rotates with "create", compress and delaycompress,
  and signals the service's main process only;
- after each rotation the new access.log gets lines: connectd reopened;
- after the second one, access.log.2.gz is the first rotation's file,
  compressed;
- every tunnel's line is in exactly one of access.log, access.log.1 and
  access.log.2.gz: none lost, none twice, none torn (every line whole
  JSON);
- the new access.log is logrotate's (mode 0640, group adm);
- stderr never says a reopen failed.
"""
import grp
import gzip
import json
import os
import pwd
import re
import stat
import sys
import threading
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
from tap import ok, is_, like, diag, done, skip_all

h.need_connectd()
if os.geteuid() != 0:
    skip_all("needs root to test dropping privileges")
try:
    pwd.getpwnam("nobody")
except KeyError:
    skip_all("no user 'nobody'")
if not h.have("logrotate", "gzip"):
    skip_all("no logrotate or gzip")
h.watchdog(180)
echo = h.EchoServer(backlog=128)

shipped = h.read_text(os.path.join(os.path.dirname(h.srcdir()), "conf", "connectd.logrotate"))
body = re.sub(r"(?m)^\s*#.*\n", "", shipped)
like(body, r"(?m)^/var/log/connectd/\*\.log \{", "it rotates /var/log/connectd/*.log")
for word in ("create 0640 root adm", "compress", "delaycompress", "missingok", "notifempty"):
    like(body, r"(?m)^\s*%s$" % word, "... with %s" % word)
ok("copytruncate" not in body, "... and not copytruncate")
like(body, r"systemctl kill --kill-whom=main --signal=USR1 connectd\.service",
     "postrotate signals the service's main process")

logdir = os.path.join(h.tmpdir(), "log")
os.mkdir(logdir, 0o755)            # root's, like /var/log/connectd
log = os.path.join(logdir, "access.log")
state = os.path.join(h.tmpdir(), "logrotate.state")
try:
    grp.getgrnam("adm")
    group = "adm"
except KeyError:
    group = "root"
    body = body.replace("root adm", "root root")
    diag("no group adm: create 0640 root root")


def logrotate_conf(pid):
    text = body.replace("/var/log/connectd/", logdir + "/")
    text = re.sub(r"(?s)postrotate\n.*?endscript",
                  "postrotate\n\t\tkill -USR1 %d\n\tendscript" % pid, text)
    return h.tmpfile("connectd.logrotate", text)


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


class Traffic(threading.Thread):
    """Tunnels one after another, each named by its User-Agent, until stopped."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.sent = []           # User-Agents of tunnels that got a reply
        self.bad = []            # (User-Agent, status or error)
        self.stop = threading.Event()

    def run(self):
        i = 0
        while not self.stop.is_set() and i < 20000:
            ua = "t88-%d" % i
            i += 1
            try:
                c = pu.Client(self.port)
                st, _ = c.connect(echo.authority, [("Host", echo.authority),
                                                   ("User-Agent", ua)])
                if st == 200:
                    c.echo(b"x")
                c.close()
            except OSError as e:
                self.bad.append((ua, repr(e)))
                continue
            self.sent.append(ua)
            if st != 200:
                self.bad.append((ua, st))


def read_lines(path):
    """Every line of a log file (gzip'd if it ends in .gz), as bytes with
    its newline; a last line without one is kept, to be found torn."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    return data.splitlines(keepends=True)


with h.Connectd("cache_effective_user nobody\naccess_log stdio:%s json\n" % log +
                pu.LOOPBACK_ALLOW) as cd:
    ok(cd.wait_stderr(r"running as nobody"), "connectd runs as nobody")
    conf = logrotate_conf(cd.proc.pid)
    t = Traffic(cd.port)
    t.start()
    ok(h.wait_for(lambda: count_lines(log) >= 20, timeout=30), "traffic is logged")

    for n in (1, 2):
        rc, out, err = h.run(["logrotate", "-f", "-s", state, conf], timeout=60)
        is_(rc, 0, "rotation %d: logrotate -f with the shipped file exits 0" % n)
        if err.strip():
            diag(err.strip()[:500])
        ok(h.wait_for(lambda: count_lines(log) >= 20, timeout=30),
           "rotation %d: the new access.log gets the lines that follow" % n)

    t.stop.set()
    t.join(60 * h.SLOW)
    ok(not t.is_alive(), "traffic stopped")
    is_(t.bad[:5], [], "every tunnel got 200")
    diag("%d tunnels" % len(t.sent))

    files = [log, log + ".1", log + ".2.gz"]
    for f in files:
        ok(os.path.exists(f), "%s is there" % os.path.basename(f))
    ok(not os.path.exists(log + ".2") and not os.path.exists(log + ".1.gz"),
       "... and only those: .1 waits to be compressed, .2 was")
    st = os.stat(log)
    is_((stat.S_IMODE(st.st_mode), st.st_uid, grp.getgrgid(st.st_gid).gr_name),
        (0o640, 0, group), "the new access.log is logrotate's: 0640 root %s" % group)

    def gather():
        seen, torn = {}, []
        for f in files:
            if not os.path.exists(f):
                continue
            for ln in read_lines(f):
                try:
                    if not ln.endswith(b"\n"):
                        raise ValueError("no newline")
                    rec = json.loads(ln)
                    ua = rec["user_agent"]
                except (ValueError, KeyError, TypeError) as e:
                    torn.append((os.path.basename(f), ln[:120], str(e)))
                    continue
                seen.setdefault(ua, []).append(os.path.basename(f))
        return seen, torn

    # the last lines may still be on their way to the file
    h.wait_for(lambda: sum(len(v) for v in gather()[0].values()) >= len(t.sent), timeout=30)
    seen, torn = gather()
    is_(torn[:3], [], "no torn line")
    missing = [ua for ua in t.sent if ua not in seen]
    twice = {ua: fs for ua, fs in seen.items() if len(fs) > 1}
    extra = [ua for ua in seen if ua not in set(t.sent)]
    is_(missing[:5], [], "no line lost (%d tunnels)" % len(t.sent))
    is_(list(twice.items())[:5], [], "no line twice")
    is_(extra[:5], [], "no line for a tunnel not made")
    per = {f: sum(1 for v in seen.values() if os.path.basename(f) in v) for f in files}
    ok(all(per.values()), "every file holds lines: %s" % ", ".join(
        "%s %d" % (os.path.basename(f), n) for f, n in per.items()))

    bad = [ln for ln in cd.stderr().splitlines() if "reopen failed" in ln]
    ok(not bad, "no reopen failed on stderr")
    for b in bad[:3]:
        diag(b)

done()
