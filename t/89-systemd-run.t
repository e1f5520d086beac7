#!/usr/bin/env python3
"""89-systemd-run.t: conf/connectd.service run for real, under a systemd booted for the test.

No service manager runs on a CI machine or in a container, so this test
boots one: /lib/systemd/systemd as PID 1 of a new PID, mount and UTS
namespace (unshare), on a private /run that holds the unit, with the
test's directory bound on /var/log.  The unit is the shipped template with
its paths set to copies of the built programs, plus a drop-in that only
leaves out the default dependencies (sysinit.target would start the
host's boot services) and sends connectd's standard output and error to
files (there is no journal); every sandboxing line is in force.  The
network namespace is the host's: the proxy is reached on 127.0.0.1.

Skipped unless root, on a host whose PID 1 is systemd (the test would
not boot a second manager beside the host's), or when systemd cannot
boot here.  One at a time (a lock): both would share the cgroup tree.
The cgroups the test's systemd made are removed at the end.

Expectations:
- systemctl start returns once connectd said READY=1: active, the port
  listens, STATUS "accepting connections";
- the sandbox is in force: the main process runs as nobody with no
  capabilities, the bounding set is CAP_SETUID and CAP_SETGID,
  no_new_privs and a seccomp filter are set;
- it runs the shipped connectd.conf, as make install writes it, on free
  ports and with its commented-out file log: /readyz says 200 once
  podmeta (started by connectd, inside the sandbox) answered; a CONNECT
  to this host is denied, and its line is in
  /var/log/connectd/access.log (LogsDirectory), with the pod;
- systemctl reload: the same main process, "configuration reloaded";
- the shipped logrotate file, run as it is: the next line goes to the new
  file, the one before stays in access.log.1, no reopen fails;
- systemctl stop: exit 0, result success;
- a broken connectd.conf: ExecStartPre refuses it, the start fails.
"""
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
import tap
from tap import ok, is_, like, diag, done, skip_all

binpath = h.need_connectd()
podmeta = os.environ.get("PODMETA") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(binpath))), "podmeta", "podmeta")
if os.geteuid() != 0:
    skip_all("needs root to boot systemd in namespaces")
SYSTEMD = next((p for p in ("/lib/systemd/systemd", "/usr/lib/systemd/systemd")
                if os.access(p, os.X_OK)), None)
if not SYSTEMD or not h.have("unshare", "nsenter", "systemctl", "logrotate"):
    skip_all("needs systemd, unshare, nsenter and logrotate (Debian: systemd, util-linux)")
if h.read_text("/proc/1/comm").strip() == "systemd" or os.path.isdir("/run/systemd/system"):
    skip_all("this host runs systemd: not booting a second manager beside it "
             "(install the unit and try it there: see README, Lab host)")
if not os.access(podmeta, os.X_OK):
    skip_all("podmeta not built (PODMETA=%s)" % podmeta)
h.watchdog(240)

# one booted systemd at a time on this machine
lockf = open("/run/lock/connectd-t89.lock" if os.path.isdir("/run/lock")
             else "/tmp/connectd-t89.lock", "w")
end = h.deadline(120)
while True:
    try:
        fcntl.flock(lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
    except BlockingIOError:
        if time.monotonic() > end:
            skip_all("another t/89 holds the lock")
        time.sleep(0.2)

src = os.path.dirname(h.srcdir())
d = os.path.join(h.tmpdir(), "sd")
for sub in ("bin", "etc/connectd", "etc/logrotate.d", "varlog", "out"):
    os.makedirs(os.path.join(d, sub))
os.chmod(os.path.join(d, "varlog"), 0o755)
for b in (binpath, podmeta):
    shutil.copy2(b, os.path.join(d, "bin"))
shutil.copy2(os.path.join(src, "conf", "pods.example.json"), os.path.join(d, "etc", "connectd"))
shutil.copy2(os.path.join(src, "conf", "connectd.logrotate"),
             os.path.join(d, "etc", "logrotate.d", "connectd"))
echo = h.EchoServer()
port = h.free_port()
mport = h.free_port()
while mport == port:
    mport = h.free_port()
# the shipped connectd.conf as make install writes it, on free ports and
# logging to a file
CONF = h.read_text(os.path.join(src, "conf", "connectd.conf"))
for old, new in (("http_port 127.0.0.1:3128", "http_port 127.0.0.1:%d" % port),
                 ("metrics_port 127.0.0.1:9128", "metrics_port 127.0.0.1:%d" % mport),
                 ("file:conf/pods.example.json", "file:/run/t89/etc/connectd/pods.example.json"),
                 ("access_log stdio:/dev/stdout json",
                  "access_log stdio:/var/log/connectd/access.log json")):
    ok(old in CONF,
       "the shipped connectd.conf has %s" % old)
    CONF = CONF.replace(old, new)
CONF += "dns_nameservers 127.0.0.1\n"
conf_path = os.path.join(d, "etc", "connectd", "connectd.conf")
with open(conf_path, "w") as f:
    f.write(CONF)
unit = (h.read_text(os.path.join(src, "conf", "connectd.service.in"))
        .replace("@sbindir@", "/run/t89/bin").replace("@bindir@", "/run/t89/bin")
        .replace("@sysconfdir@", "/run/t89/etc"))
h.tmpfile("sd/connectd.service", unit)
dropin = ["[Unit]", "DefaultDependencies=no", "[Service]",
          "StandardOutput=append:/run/t89/out/stdout",
          "StandardError=append:/run/t89/out/stderr"]
for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
    if os.environ.get(k):
        dropin.append("Environment=%s=%s" % (k, os.environ[k]))
if tap.sanitized(binpath):
    # LeakSanitizer stops the process with ptrace(2), which
    # @system-service leaves out; everything else stays
    dropin.append("SystemCallFilter=")
    diag("sanitized build: without the unit's SystemCallFilter")
h.tmpfile("sd/t89.conf", "\n".join(dropin) + "\n")
boot = h.tmpfile("sd/boot.sh", r"""#!/bin/sh
# PID 1 of new PID, mount and UTS namespaces: a private /run with the
# unit, the test's directory on /run/t89 and /var/log, the console a file
set -e
d=$1
mount --make-rprivate /
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/t89 /run/lock /run/systemd/system/connectd.service.d
mount --bind "$d" /run/t89
mount --bind "$d/varlog" /var/log
cp "$d/connectd.service" /run/systemd/system/
cp "$d/t89.conf" /run/systemd/system/connectd.service.d/
printf '[Unit]\nDescription=t89\n' > /run/systemd/system/t89.target
: > "$d/out/console"
mount --bind "$d/out/console" /dev/console
export container=t89
exec "$2" --system --unit=t89.target --log-target=console --log-level=info
""", mode=0o755)


def cgroup_dirs():
    out = set()
    for top in ("/sys/fs/cgroup",) + tuple(
            os.path.join("/sys/fs/cgroup", x) for x in
            (os.listdir("/sys/fs/cgroup") if os.path.isdir("/sys/fs/cgroup") else [])):
        try:
            for e in os.listdir(top):
                p = os.path.join(top, e)
                if os.path.isdir(p) and (e.endswith(".scope") or e.endswith(".slice")):
                    out.add(p)
        except OSError:
            pass
    return out


cg_before = cgroup_dirs()
unshare = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "--mount",
                            "--mount-proc", "--uts", boot, d, SYSTEMD],
                           stdin=subprocess.DEVNULL,
                           stdout=open(os.path.join(d, "out", "unshare"), "wb"),
                           stderr=subprocess.STDOUT, start_new_session=True)
init = [None]


def teardown():
    for pid in (init[0], unshare.pid):
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    try:
        unshare.wait(10)
    except subprocess.TimeoutExpired:
        pass
    # the cgroups our systemd made, deepest first
    h.wait_for(lambda: not init[0] or not os.path.exists("/proc/%d" % init[0]), timeout=10)
    for top in sorted(cgroup_dirs() - cg_before):
        for root, dirs, _ in sorted(os.walk(top, topdown=False), reverse=True):
            try:
                os.rmdir(root)
            except OSError:
                pass
    lockf.close()


h.at_cleanup(teardown)


def find_init():
    try:
        kids = h.read_text("/proc/%d/task/%d/children" % (unshare.pid, unshare.pid)).split()
    except OSError:
        return None
    for k in kids:
        if h.read_text("/proc/%s/comm" % k).strip() == "systemd":
            return int(k)
    return None


init[0] = h.wait_for(find_init, timeout=20)


def sctl(*args, timeout=60):
    """A command inside the test's namespaces: (rc, stdout, stderr)."""
    return h.run(["nsenter", "-t", str(init[0]), "-m", "-p", "-u"] + list(args), timeout=timeout)


def show(*props):
    rc, out, _ = sctl("systemctl", "show", "connectd.service", *["-p" + p for p in props])
    return dict(ln.partition("=")[::2] for ln in out.splitlines() if "=" in ln)


def booted():
    if not init[0] or unshare.poll() is not None:
        return "gone"
    rc, out, _ = sctl("systemctl", "is-system-running", timeout=10)
    return out.strip() if out.strip() in ("running", "degraded") else None


state = h.wait_for(booted, timeout=60, interval=0.2)
if state not in ("running", "degraded"):
    diag("systemd console:\n" + h.read_text(os.path.join(d, "out", "console"))[-1500:])
    diag(h.read_text(os.path.join(d, "out", "unshare"))[-500:])
    skip_all("systemd did not boot in a PID namespace here (%s)" % state)

stderr_path = os.path.join(d, "out", "stderr")
logdir = os.path.join(d, "varlog", "connectd")
log = os.path.join(logdir, "access.log")


def tunnel(ua):
    try:
        c = pu.Client(port)
    except OSError as e:
        return repr(e)
    st, _ = c.connect(echo.authority, [("Host", echo.authority), ("User-Agent", ua)])
    c.close()
    return st


def readyz():
    import urllib.request
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % mport, timeout=5) as r:
            return r.status
    except Exception:
        return None


def lines(path):
    return h.JsonLog(path).lines()


def sanitizer_report():
    m = re.search(r"(==\d+==ERROR: \w+Sanitizer.*|\S+:\d+:\d+: runtime error:.*)",
                  h.read_text(stderr_path), re.S)
    return m.group(0)[:2000] if m else ""


try:
    rc, out, err = sctl("systemctl", "start", "connectd.service", timeout=90)
    is_(rc, 0, "systemctl start returns 0 (%s)" % err.strip()[:200])
    s = show("ActiveState", "SubState", "StatusText", "MainPID", "NRestarts")
    is_((s.get("ActiveState"), s.get("SubState")), ("active", "running"), "connectd.service is active")
    is_(s.get("StatusText"), "accepting connections", "... its STATUS is connectd's")
    ok(h.listening(port), "... and the port listens")
    mainpid = s.get("MainPID")

    rc, status, _ = sctl("cat", "/proc/%s/status" % mainpid)
    f = dict((k, v.split()) for k, _, v in (ln.partition(":") for ln in status.splitlines()))
    is_((f.get("Uid") or [None])[0], "65534", "the main process runs as nobody")
    is_((f.get("CapEff") or [None])[0], "0000000000000000", "... with no capability")
    is_((f.get("CapBnd") or [None])[0], "00000000000000c0",
        "... the bounding set CAP_SETUID and CAP_SETGID")
    is_((f.get("NoNewPrivs") or [None])[0], "1", "... no_new_privs")
    is_((f.get("Seccomp") or [None])[0], "2", "... a seccomp filter")
    st = os.stat(logdir)
    is_((st.st_uid, oct(st.st_mode & 0o777)), (0, "0o755"),
        "LogsDirectory: /var/log/connectd is root's, 0755")

    ok(h.wait_for(lambda: readyz() == 200), "/readyz says 200: podmeta answered")
    # the shipped policy: never to this host
    is_(tunnel("t89-1"), 403, "a CONNECT to 127.0.0.1 is denied (the shipped policy)")
    got = h.JsonLog(log).wait_lines(1)
    is_([(x.get("user_agent"), x.get("close")) for x in got], [("t89-1", "denied")],
        "its line is in /var/log/connectd/access.log")
    pod = (got[0].get("pod") or {}) if got else {}
    is_((pod.get("namespace"), pod.get("name")), ("ci", "runner-abc"),
        "... naming the pod podmeta found, in the sandbox")

    rc, out, err = sctl("systemctl", "reload", "connectd.service")
    is_(rc, 0, "systemctl reload returns 0 (%s)" % err.strip()[:200])
    ok(h.wait_for(lambda: "configuration reloaded" in h.read_text(stderr_path)),
       "... connectd reloaded")
    s = show("ActiveState", "StatusText", "MainPID")
    is_((s.get("ActiveState"), s.get("MainPID")), ("active", mainpid), "... the same main process, active")
    is_(s.get("StatusText"), "configuration reloaded", "... STATUS says so")

    rc, out, err = sctl("logrotate", "-f", "-s", "/run/t89/out/logrotate.state",
                        "/run/t89/etc/logrotate.d/connectd")
    is_(rc, 0, "the shipped logrotate file, as it is, exits 0 (%s)" % err.strip()[:300])
    ok(os.path.exists(log + ".1"), "... access.log.1")
    ok(h.wait_for(lambda: "access log /var/log/connectd/access.log: " in h.read_text(stderr_path)),
       "... connectd got SIGUSR1 (its statistics)")
    is_(tunnel("t89-2"), 403, "a request after the rotation")
    got = h.JsonLog(log).wait_lines(1)
    is_([x.get("user_agent") for x in got], ["t89-2"], "... its line is in the new access.log")
    is_([x.get("user_agent") for x in lines(log + ".1")], ["t89-1"],
        "... and the rotated file kept the one before")
    ok("reopen failed" not in h.read_text(stderr_path), "no reopen failed")

    rc, out, err = sctl("systemctl", "stop", "connectd.service", timeout=90)
    is_(rc, 0, "systemctl stop returns 0")
    s = show("ActiveState", "Result", "ExecMainStatus")
    is_((s.get("ActiveState"), s.get("Result"), s.get("ExecMainStatus")),
        ("inactive", "success", "0"), "connectd exited 0, result success")
    like(h.read_text(stderr_path), r"info: exiting", "... after its last words")
    rep = sanitizer_report()
    ok(not rep, "no sanitizer report")
    if rep:
        diag(rep)
    h.check_schema(log, "access.log")

    with open(conf_path, "a") as f:
        f.write("no_such_directive 1\n")
    rc, out, err = sctl("systemctl", "start", "connectd.service", timeout=90)
    ok(rc != 0, "a broken connectd.conf: systemctl start fails")
    like(h.read_text(stderr_path), r"no_such_directive", "... ExecStartPre said why")
    s = show("ActiveState", "SubState", "MainPID")
    is_((s.get("ActiveState") != "active", s.get("MainPID")), (True, "0"),
        "... and connectd never ran (%s/%s: Restart=on-failure tries again)" % (
            s.get("ActiveState"), s.get("SubState")))
    sctl("systemctl", "stop", "connectd.service")
finally:
    if tap._failed:
        diag("connectd's stderr:\n" + h.read_text(stderr_path)[-2000:])
        diag("systemd:\n" + (h.read_text(os.path.join(d, "out", "console")) +
                              h.read_text(os.path.join(d, "out", "unshare")))[-2000:])

done()
