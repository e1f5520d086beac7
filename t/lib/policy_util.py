"""policy_util.py: shared code for the access-policy tests t/40..49.

    import policy_util as pu
    pu.in_netns()                  # re-exec inside `unshare -n`, lo up
    lines = pu.shipped_policy()    # acl/http_access lines of conf/connectd.conf
    st, rec = pu.attempt(cd, "127.0.0.1:22")
"""
import os
import resource
import subprocess
import sys
import time

import harness as h
import tap


LOOPBACK_ALLOW = ("acl t_loopback src 127.0.0.0/8 ::1\n"
                  "http_access allow t_loopback\n"
                  "http_access deny all\n")


def local_names(hosts_text):
    """connectd.conf lines that resolve names from a hosts file holding
    hosts_text (in the temp dir) and send no DNS query off the machine."""
    return "hosts_file %s\ndns_nameservers 127.0.0.1\n" % h.tmpfile("hosts", hosts_text)


def shipped_conf_path():
    return os.path.join(h.topdir(), "conf", "connectd.conf")


def shipped_policy():
    """The acl and http_access lines of the shipped conf/connectd.conf, in
    order, as text, with the external_acl_type lines their external acls
    need: the egress allow-list's podmeta --policy runs as built, on the
    example pods (conf/pods.example.json), whose lists never refuse what
    these tests try (report mode, or none)."""
    out = []
    confdir = os.path.dirname(shipped_conf_path())
    podmeta = os.environ.get("PODMETA") or os.path.join(h.topdir(), "podmeta", "podmeta")
    with open(shipped_conf_path()) as f:
        for ln in f:
            w = ln.split()
            if w and w[0] == "external_acl_type":
                w = [podmeta if x == "podmeta" else
                     "file:" + os.path.join(confdir, x[len("file:conf/"):])
                     if x.startswith("file:conf/") else x for x in w]
                out.append(" ".join(w))
            elif w and w[0] in ("acl", "http_access"):
                out.append(ln.strip())
    return "\n".join(out) + "\n"


def in_netns(reason="needs a private network namespace (unshare -n)",
             addrs=(), peer=None, keep_host=False):
    """Re-exec this test inside a new network namespace with only lo up,
    so no packet can leave the machine.  addrs ("169.254.169.254/32", ...)
    are added to lo in there.  peer ("10.9.0.1/24", "10.9.0.2/24") also
    makes "another host": a second namespace reached through a veth pair,
    with the first address on our end and the second on its end, where
    PeerEcho servers run.  keep_host: the namespace the test started in
    stays at hand, for what must reach a package mirror (debootstrap, a
    dockerd that builds): host_netns() names it for nsenter --net=.
    Skips the test when that is not allowed."""
    if os.environ.get("T_NETNS") == "1":
        pid = os.environ.get("T_PEER_PID")
        if pid:
            h.at_cleanup(lambda: _kill(int(pid)))
        return True
    if not h.which("unshare") or not h.which("ip"):
        tap.skip_all("%s: unshare or ip missing" % reason)
    if peer and not h.which("nsenter"):
        tap.skip_all("%s: nsenter missing" % reason)
    base = ["unshare", "-n"]
    if os.geteuid() != 0:
        base = ["unshare", "-r", "-n"]
    rc, _, err = h.run(base + ["ip", "link", "set", "lo", "up"], timeout=10)
    if rc != 0:
        tap.skip_all("%s: not permitted here (%s)" % (reason, err.strip()[:100]))
    script = ["ip link set lo up"]
    for a in addrs:
        script.append("ip addr add %s dev lo" % a)
    if peer:
        script += [
            "unshare -n sleep 3600 & P=$!",
            # wait until it is in its own namespace
            "while [ \"$(readlink /proc/$P/ns/net)\" = \"$(readlink /proc/self/ns/net)\" ]; "
            "do sleep 0.01; done",
            "ip link add vpeer0 type veth peer name vpeer1",
            "ip link set vpeer1 netns $P",
            "ip addr add %s dev vpeer0" % peer[0],
            "ip link set vpeer0 up",
            "nsenter -t $P -n sh -ec 'ip link set lo up; ip addr add %s dev vpeer1; "
            "ip link set vpeer1 up'" % peer[1],
            "export T_PEER_PID=$P"]
    script.append('exec "$@"')
    env = dict(os.environ, T_NETNS="1")
    if keep_host:
        # an open descriptor of it, inherited through the exec()s below
        # (unshare without --fork and sh's exec keep our pid)
        fd = os.open("/proc/self/ns/net", os.O_RDONLY)
        os.set_inheritable(fd, True)
        env["T_HOST_NETNS"] = "/proc/%d/fd/%d" % (os.getpid(), fd)
    argv = base + ["sh", "-ec", "; ".join(script), "sh", sys.executable,
                   os.path.abspath(sys.argv[0])] + sys.argv[1:]
    sys.stdout.flush()
    sys.stderr.flush()
    import signal
    signal.alarm(0)
    h.cleanup()
    os.execvpe(argv[0], argv, env)


def host_netns():
    """The network namespace the test started in (in_netns(keep_host=True)),
    as a path for nsenter --net=; None if there is no such handle."""
    p = os.environ.get("T_HOST_NETNS")
    try:
        if p and os.readlink(p) != os.readlink("/proc/self/ns/net"):
            return p
    except OSError:
        pass
    return None


def _kill(pid):
    import signal
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


_PEER_ECHO = r"""
import socket, sys, threading
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
print("ready", flush=True)
def serve(c):
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
    except OSError:
        pass
    c.close()
while True:
    c, _ = s.accept()
    print("conn", flush=True)
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


class PeerEcho:
    """An echo server on the other host of in_netns(peer=...): conns
    counts the connections it accepted."""

    def __init__(self, host, port):
        import threading
        self.host, self.port, self.conns = host, port, []
        self.authority = ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)
        self.proc = subprocess.Popen(
            ["nsenter", "-t", os.environ["T_PEER_PID"], "-n", sys.executable, "-c",
             _PEER_ECHO, host, str(port)], stdout=subprocess.PIPE)
        h.at_cleanup(self.proc.kill)
        if self.proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("peer echo server did not start")

        def count():
            for ln in self.proc.stdout:
                if ln.strip() == b"conn":
                    self.conns.append(1)
        threading.Thread(target=count, daemon=True).start()


def attempt(cd, authority, headers=(), host="127.0.0.1"):
    """CONNECT authority through cd; returns (status, reply bytes,
    log record of this connection or None)."""
    c = h.ProxyClient(cd.port, host=host)
    st, head = c.connect_tunnel(authority, headers=headers)
    port = c.local_port
    c.close()
    rec = cd.wait_client(port)
    return st, head, rec


def expect_denied(cd, authority, rule, name=None, host="127.0.0.1", origin=None):
    """Assert a 403 for authority, logged close=denied with this rule, and
    (if given) that the origin saw no connection."""
    name = name or authority
    before = len(origin.conns) if origin is not None else 0
    st, head, rec = attempt(cd, authority, host=host)
    tap.is_(st, 403, "%s: 403" % name)
    tap.ok(rec is not None, "%s: logged" % name)
    rec = rec or {}
    tap.is_(rec.get("close"), "denied", "%s: close denied" % name)
    tap.is_(rec.get("status"), 403, "%s: status 403 in the log" % name)
    tap.is_(rec.get("rule"), rule, "%s: rule %r" % (name, rule))
    tap.ok("detail" not in rec, "%s: no detail repeating the rule" % name)
    tap.is_(rec.get("server_ip"), None, "%s: no server connected" % name)
    if origin is not None:
        time.sleep(0.05)
        tap.is_(len(origin.conns), before, "%s: the origin saw nothing" % name)
    return rec


def expect_allowed(cd, authority, name=None, host="127.0.0.1", rule=None):
    """Assert a working tunnel (a byte echoed) and a log line without
    close=denied.  The origin must echo."""
    name = name or authority
    c = h.ProxyClient(cd.port, host=host)
    st, head = c.connect_tunnel(authority)
    tap.is_(st, 200, "%s: 200" % name)
    if st == 200:
        c.sendall(b"x")
        tap.is_(c.recv_exact(1), b"x", "%s: a byte goes through" % name)
    port = c.local_port
    c.close()
    rec = cd.wait_client(port) or {}
    tap.ok(rec.get("close") not in (None, "denied"),
           "%s: logged, not denied (close %r)" % (name, rec.get("close")))
    if rule is not None:
        tap.is_(rec.get("rule"), rule, "%s: rule %r" % (name, rule))
    return rec


def raise_nofile(n):
    """Raise our own soft RLIMIT_NOFILE to n (at most the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(n, hard) if hard != resource.RLIM_INFINITY else n
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


cpu_seconds = h.cpu_seconds


def fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def prlimit_nofile(pid, n):
    """Set another process's soft RLIMIT_NOFILE to n (the hard limit stays,
    so it can be raised again)."""
    rc, out, err = h.run(["prlimit", "--pid", str(pid), "--nofile=%d:" % n],
                         timeout=10)
    return rc == 0


class Client:
    """A raw client socket to the proxy, optionally from a given source
    address; every read has a deadline."""

    def __init__(self, port, host="127.0.0.1", source=None, timeout=h.DEFAULT_WAIT):
        import socket
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout * h.SLOW)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.local_port = self.sock.getsockname()[1]
        h.at_cleanup(self.close)

    def connect(self, authority, headers=()):
        """Send CONNECT; (status, reply head)."""
        self.sock.sendall(h.make_connect(authority, headers))
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                d = self.sock.recv(65536)
                if not d:
                    break
                buf += d
        except OSError:
            pass
        return h.parse_status(buf), buf

    def echo(self, data=b"x"):
        try:
            return h.send_echo(self.sock, data)
        except OSError:
            return b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def check(cd, authority, want, name=None, host="127.0.0.1", source=None,
          headers=()):
    """want: "allow" (a byte is echoed, not denied) or the rule text of a
    denial (403, logged close=denied with that rule)."""
    name = name or authority
    c = Client(cd.port, host=host, source=source)
    st, head = c.connect(authority, headers)
    if want == "allow":
        ok = st == 200 and c.echo(b"x") == b"x"
        c.close()
        rec = cd.wait_client(c.local_port) or {}
        if not tap.ok(ok and rec.get("close") != "denied",
                      "%s: allowed (status %r, close %r)" % (name, st, rec.get("close"))):
            tap.diag("log %r" % (rec,))
        return rec
    c.close()
    rec = cd.wait_client(c.local_port) or {}
    good = st == 403 and rec.get("close") == "denied" and \
        rec.get("status") == 403 and rec.get("rule") == want and \
        rec.get("server_ip") is None
    tap.ok(good, "%s: denied by %r" % (name, want))
    if not good:
        tap.diag("status %r, log %r" % (st, rec))
    return rec


# An echo server for thousands of connections: one process, epoll, no
# threads.  It prints its port on the first line of stdout.
_EPOLL_ECHO = r'''
import os, resource, select, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0)); ls.listen(4096); ls.setblocking(False)
print(ls.getsockname()[1], flush=True)
ep = select.epoll(); ep.register(ls.fileno(), select.EPOLLIN)
conns = {}
while True:
    for fd, ev in ep.poll(1.0):
        if fd == ls.fileno():
            while True:
                try:
                    c, _ = ls.accept()
                except (BlockingIOError, OSError):
                    break
                c.setblocking(False)
                conns[c.fileno()] = c
                ep.register(c.fileno(), select.EPOLLIN)
            continue
        c = conns.get(fd)
        if c is None:
            continue
        try:
            d = c.recv(65536)
        except BlockingIOError:
            continue
        except OSError:
            d = b""
        if d:
            try:
                c.sendall(d)
            except OSError:
                d = b""
        if not d:
            ep.unregister(fd); del conns[fd]; c.close()
'''


def epoll_echo():
    """Start the epoll echo server in its own process; returns (Proc, port)."""
    path = os.path.join(h.tmpdir(), "epoll_echo.out")
    p = h.Proc([sys.executable, "-c", _EPOLL_ECHO], stdout=path,
               stderr=os.path.join(h.tmpdir(), "epoll_echo.err"))
    port = h.wait_for(lambda: (lambda t: int(t.split()[0]) if t.strip() else None)(
        h.read_text(path)), timeout=10)
    if not port:
        raise RuntimeError("epoll echo server did not start")
    return p, port


def nonblocking_client(port, source=None):
    """A non-blocking socket connecting to 127.0.0.1:port from source, the
    port picked at connect time (IP_BIND_ADDRESS_NO_PORT) so that several
    source addresses multiply the ephemeral ports."""
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    if source:
        try:
            s.setsockopt(socket.IPPROTO_IP, 24, 1)   # IP_BIND_ADDRESS_NO_PORT
        except OSError:
            pass
        s.bind((source, 0))
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    return s


class RawConnectd(h.Connectd):
    """A Connectd whose text is used as written: no test policy added (only
    http_port, if missing, and {port})."""

    def render(self, conf=None, port=None):
        conf = self.conf if conf is None else conf
        port = self.port if port is None else port
        text = conf.replace("{port}", str(port))
        if "http_port" not in text:
            text = "http_port 127.0.0.1:%d\n" % port + text
        return text
