#!/usr/bin/env python3
"""87-systemd-unit.t: conf/connectd.service passes systemd-analyze verify; connectd speaks sd_notify.

The lab host runs connectd under systemd (issue 12): Type=notify, with
the protocol written in connectd/sdnotify.c rather than libsystemd.

Expectations:
- the unit made at build time names the configured paths, nothing of
  the template is left, and it keeps the choices connectd(8) documents
  (Type=notify, reload by SIGHUP from outside the sandbox, root with
  CAP_SETUID and CAP_SETGID only, LogsDirectory, LimitNOFILE);
- `systemd-analyze verify` says nothing about the template with its paths
  set to the built programs and MANPATH to the built man pages (and it
  does complain about a misspelled key: it really reads the file);
- with NOTIFY_SOCKET a path or an abstract '@name': READY=1 comes once
  the port listens, the log is open, the privileges are dropped (as
  root) and startup is logged; RELOADING=1 with MONOTONIC_USEC then
  READY=1 around SIGHUP, for a refused reload too (STATUS says so);
  STOPPING=1 with EXTEND_TIMEOUT_USEC on SIGTERM, and exit 0;
- as root, the socket in a directory only root may search still gets
  the notifications sent after the drop to nobody;
- no READY=1 when connectd cannot start (its port is taken);
- a helper connectd starts does not see NOTIFY_SOCKET;
- a NOTIFY_SOCKET that is no address is a warning, not a failure.

The unit is run for real, under systemd, by t/89.
"""
import os
import pwd
import re
import socket
import sys
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
from tap import ok, is_, like, diag, done, skip

binpath = h.need_connectd()
h.watchdog(120)
src = os.path.dirname(h.srcdir())
template = os.path.join(src, "conf", "connectd.service.in")
builddir = os.path.dirname(os.path.dirname(os.path.abspath(binpath)))
root = os.geteuid() == 0
try:
    nobody = pwd.getpwnam("nobody")
except KeyError:
    nobody = None


def unit_settings(text):
    """{(section, key): [values]} of a unit file's text."""
    out, sect = {}, None
    for ln in text.splitlines():
        ln = ln.strip()
        if not ln or ln[0] in "#;":
            continue
        if ln.startswith("["):
            sect = ln.strip("[]")
            continue
        k, _, v = ln.partition("=")
        out.setdefault((sect, k.strip()), []).append(v.strip())
    return out


# ---------------------------------------------------------------- the unit

tmpl = h.read_text(template)
u = unit_settings(tmpl)
is_(u.get(("Service", "Type")), ["notify"], "Type=notify")
is_(u.get(("Service", "ExecReload")), ["+/bin/kill -HUP $MAINPID"],
    "reload by SIGHUP, sent from outside the sandbox")
is_(u.get(("Service", "CapabilityBoundingSet")), ["CAP_SETUID CAP_SETGID"],
    "capabilities: only what the privilege drop needs")
is_(u.get(("Service", "LogsDirectory")), ["connectd"], "LogsDirectory=connectd")
is_(u.get(("Service", "LimitNOFILE")), ["65536"], "LimitNOFILE=65536")
ok(("Service", "User") not in u, "no User=: connectd starts as root and drops privileges itself")
is_(u.get(("Service", "RestrictAddressFamilies")), ["AF_INET AF_INET6 AF_UNIX AF_NETLINK"],
    "address families: IP, unix (syslog, notify) and netlink (interface addresses)")
like(" ".join(u.get(("Service", "ExecStartPre"), [])), r"^@sbindir@/connectd -t -f ",
     "ExecStartPre checks the configuration")

built = os.path.join(builddir, "conf", "connectd.service")
if os.path.exists(built):
    text = h.read_text(built)
    is_(re.findall(r"@[a-z]+@", text), [], "the built unit has no @VARIABLE@ left")
    bu = unit_settings(text)
    like(" ".join(bu.get(("Service", "ExecStart"), [])),
         r"^/\S*/connectd -f /\S*/connectd/connectd\.conf$",
         "the built unit's ExecStart names the configured sbindir and sysconfdir")
else:
    skip("no built conf/connectd.service beside %s" % binpath, 2)

if not h.which("systemd-analyze"):
    skip("no systemd-analyze (Debian: systemd)", 3)
else:
    d = os.path.join(h.tmpdir(), "unit")
    os.makedirs(os.path.join(d, "etc", "connectd"))
    mandir = os.path.join(d, "man")
    for sec, page in (("8", "connectd.8"), ("5", "connectd.conf.5"), ("8", "podmeta.8")):
        os.makedirs(os.path.join(mandir, "man" + sec), exist_ok=True)
        os.symlink(os.path.join(src, "man", page), os.path.join(mandir, "man" + sec, page))
    podmeta = os.environ.get("PODMETA") or os.path.join(builddir, "podmeta", "podmeta")
    text = (tmpl.replace("@sbindir@", os.path.dirname(os.path.abspath(binpath)))
            .replace("@bindir@", os.path.dirname(os.path.abspath(podmeta)))
            .replace("@sysconfdir@", os.path.join(d, "etc")))
    unit = h.tmpfile("unit/connectd.service", text)
    env = dict(os.environ, MANPATH=mandir, SYSTEMD_LOG_LEVEL="notice")
    rc, out, err = h.run(["systemd-analyze", "verify", unit], env=env, timeout=60)
    is_(rc, 0, "systemd-analyze verify exits 0")
    is_((out + err).strip(), "", "... and says nothing")
    bad = h.tmpfile("unit/bad.service", text.replace("ProtectSystem=", "ProtectSytem="))
    rc, out, err = h.run(["systemd-analyze", "verify", bad], env=env, timeout=60)
    like(out + err, r"Unknown key .ProtectSytem", "... while it complains about a misspelled key")

# --------------------------------------------------------------- sd_notify

echo = h.EchoServer()


class Notify:
    """A datagram socket for NOTIFY_SOCKET: a path, or an abstract name."""

    def __init__(self, name):
        self.name = name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + name[1:] if name.startswith("@") else name)
        h.at_cleanup(self.sock.close)

    def recv(self, timeout=h.DEFAULT_WAIT):
        """The next message as {key: value}, or None at the deadline."""
        self.sock.settimeout(timeout * h.SLOW)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        return dict(ln.partition("=")[::2] for ln in data.decode().split("\n") if ln)

    def pending(self):
        """Every message already queued, without waiting."""
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            return out
        finally:
            self.sock.setblocking(True)


def uid_of(pid):
    for ln in h.read_text("/proc/%d/status" % pid).splitlines():
        if ln.startswith("Uid:"):
            return int(ln.split()[1])
    return None


def start(conf, notify, port=None):
    """connectd with NOTIFY_SOCKET set, without waiting for its port."""
    cd = h.Connectd(conf, start=False)
    cd.port = port or h.free_port()
    cd.write_conf()
    env = dict(os.environ, NOTIFY_SOCKET=notify.name)
    cd.proc = h.Proc([binpath, "-f", cd.conf_path], stdout=cd.stdout_path,
                     stderr=cd.stderr_path, env=env)
    return cd


def tunnel(cd):
    c = pu.Client(cd.port)
    st, _ = c.connect(echo.authority)
    c.close()
    return st


def scenario(name, notify_name, privdrop):
    what = "%s (%s)" % (name, "as root, dropping to nobody" if privdrop else "no privilege drop")
    logdir = os.path.join(h.tmpdir(), "log-" + name)
    os.mkdir(logdir, 0o755)
    log = os.path.join(logdir, "access.log")
    conf = "access_log stdio:%s json\n" % log + pu.LOOPBACK_ALLOW
    if privdrop:
        conf = "cache_effective_user nobody\n" + conf
    n = Notify(notify_name)
    cd = start(conf, n)
    msg = n.recv()
    # what must be true by now, whatever comes next
    bound = h.listening(cd.port)
    opened = os.path.exists(log)
    uid = uid_of(cd.proc.pid) if cd.proc.poll() is None else None
    is_(msg and msg.get("READY"), "1", "%s: READY=1" % what)
    ok(bound, "... once the port listens")
    ok(opened, "... and the log is open")
    like(cd.stderr(), r"started with", "... and startup is logged")
    if privdrop:
        is_(uid, nobody.pw_uid, "... and connectd runs as nobody")
    ok(msg and msg.get("STATUS"), "... with a STATUS (%r)" % (msg or {}).get("STATUS"))
    is_(n.pending(), [], "... and nothing else")

    # SIGHUP
    before = int(time.monotonic() * 1e6)
    cd.hup()
    msg = n.recv()
    after = int(time.monotonic() * 1e6)
    is_(msg and msg.get("RELOADING"), "1", "%s: SIGHUP: RELOADING=1" % name)
    usec = int((msg or {}).get("MONOTONIC_USEC", "0") or 0)
    ok(before <= usec <= after, "... with MONOTONIC_USEC, CLOCK_MONOTONIC's microseconds "
       "(%d <= %d <= %d)" % (before, usec, after))
    msg = n.recv()
    is_(msg and msg.get("READY"), "1", "... then READY=1")
    is_((msg or {}).get("STATUS"), "configuration reloaded", "... STATUS: reloaded")

    # a reload that is refused still ends with READY=1
    good = h.read_text(cd.conf_path)
    with open(cd.conf_path, "a") as f:
        f.write("no_such_directive 1\n")
    cd.hup()
    msg = n.recv()
    is_(msg and msg.get("RELOADING"), "1", "%s: a refused reload: RELOADING=1" % name)
    msg = n.recv()
    is_(msg and msg.get("READY"), "1", "... then READY=1")
    like((msg or {}).get("STATUS"), r"refused", "... STATUS says it was refused")
    with open(cd.conf_path, "w") as f:
        f.write(good)
    is_(tunnel(cd), 200, "%s: still serving" % name)

    # SIGTERM
    cd.term()
    msg = n.recv()
    is_(msg and msg.get("STOPPING"), "1", "%s: SIGTERM: STOPPING=1" % name)
    like((msg or {}).get("EXTEND_TIMEOUT_USEC"), r"^[1-9][0-9]*$",
         "... with EXTEND_TIMEOUT_USEC for the drain")
    is_(cd.wait_exit(), 0, "... and exits 0")
    cd.finish()


privdrop = root and nobody is not None
sockdir = os.path.join(h.tmpdir(), "notify")
os.mkdir(sockdir, 0o700)          # only root may reach a socket in there
scenario("path", os.path.join(sockdir, "notify.sock"), privdrop)
scenario("abstract", "@connectd-t87-%d" % os.getpid(), privdrop)
if not privdrop:
    diag("not root: the privilege drop was not tried")

# no READY=1 from a connectd that cannot start
n = Notify("@connectd-t87-busy-%d" % os.getpid())
busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
busy.bind(("127.0.0.1", 0))
busy.listen(1)
cd = start(pu.LOOPBACK_ALLOW, n, port=busy.getsockname()[1])
rc = cd.wait_exit()
ok(rc is not None and rc > 0, "port taken: connectd fails (%r)" % rc)
is_(n.pending(), [], "... and never said READY=1")
busy.close()

# helpers do not inherit NOTIFY_SOCKET
envdir = os.path.join(h.tmpdir(), "env")
os.mkdir(envdir)
os.chmod(envdir, 0o777)          # the helper may run as nobody
envfile = os.path.join(envdir, "helper.env")
script = h.tmpfile("envdump.sh", "#!/bin/sh\nenv > \"$1.tmp\" && mv \"$1.tmp\" \"$1\"\n"
                   "while read -r line; do echo OK; done\n", mode=0o755)
n = Notify("@connectd-t87-helper-%d" % os.getpid())
conf = ("external_acl_type envdump ttl=0 children-startup=1 %%SRC %s %s\n" % (script, envfile) +
        ("cache_effective_user nobody\n" if privdrop else "") + pu.LOOPBACK_ALLOW)
cd = start(conf, n)
is_((n.recv() or {}).get("READY"), "1", "with a helper: READY=1")
ok(h.wait_for(lambda: os.path.exists(envfile)), "the helper wrote its environment")
env = h.read_text(envfile)
like(env, r"(?m)^PATH=", "... (it has PATH)")
ok("NOTIFY_SOCKET" not in env, "... and no NOTIFY_SOCKET")
cd.finish()

# a NOTIFY_SOCKET that is no address
cd = h.Connectd(pu.LOOPBACK_ALLOW, env=dict(os.environ, NOTIFY_SOCKET="relative/path"))
like(cd.stderr(), r"warning: NOTIFY_SOCKET relative/path", "a bad NOTIFY_SOCKET is a warning")
is_(tunnel(cd), 200, "... and connectd serves")
cd.finish()

done()
