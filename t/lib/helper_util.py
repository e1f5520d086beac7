"""helper_util.py: shared code for the external ACL helper tests (t/30..39).

Clients from many loopback source addresses (127.0.1.x: all of 127/8 is on
lo), pod lists for podmeta's --source file:, small helper scripts, and the
children of a process.  Everything is bounded by timeouts; processes are
killed by harness.py's cleanup.
"""
import json
import os
import socket
import stat
import sys
import time

import harness as h
from k8sapi import fixtures as kf
import podmeta_util as pu

PODMETA = os.environ.get("PODMETA", "")


def need_podmeta(tap):
    if not (PODMETA and os.access(PODMETA, os.X_OK)):
        tap.skip_all("podmeta not built (PODMETA=%r)" % PODMETA)
    return PODMETA


def pod_ip(i, base="127.0.1."):
    return "%s%d" % (base, i)


def make_pods(n, base="127.0.1.", prefix="pod", start=1):
    """n pods, pod i owning base+i, in namespace ns-(i%5)."""
    return [kf.make_pod("%s-%d" % (prefix, i), ip=pod_ip(i, base),
                            namespace="ns-%d" % (i % 5), node="node-%d" % (i % 3),
                            labels={"app": prefix, "index": str(i)}, slim=True)
            for i in range(start, start + n)]


def setup(seconds, n_pods, backlog=64):
    """The start of a helper test: skip it unless connectd and podmeta are
    built, fail it after `seconds`, an echo origin, n_pods pods (pod i on
    127.0.1.i).  Returns (podmeta's path, the EchoServer, the pods)."""
    import tap
    h.need_connectd()
    pm = need_podmeta(tap)
    h.watchdog(seconds)
    return pm, h.EchoServer(backlog=backlog), make_pods(n_pods)


def answers(pods):
    """{127.0.1.i: the pod JSON podmeta answers} for make_pods' pods."""
    return {pod_ip(i + 1): expected(p, pod_ip(i + 1)) for i, p in enumerate(pods)}


def write_pods(path, pods):
    """A PodList as `kubectl get pods -A -o json` writes it (atomic replace)."""
    doc = {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
           "items": pods}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)
    return path


def expected(pod, ip):
    return pu.expected_json(pod, ip)


def script(name, text):
    """An executable helper script in the test's temp dir."""
    return h.tmpfile(name, text, mode=0o755)


def base_conf(helper_line, extra=""):
    """connectd.conf text: allow loopback clients, json lines on stdout."""
    return ("%s\nhttp_access allow all\n%s" % (helper_line, extra))


class Client:
    """One tunnel from a chosen source address."""

    def __init__(self, proxy_port, authority, src="127.0.0.1", timeout=10.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout * h.SLOW)
        self.sock.bind((src, 0))
        self.local_port = self.sock.getsockname()[1]
        self.src = src
        self.sock.connect(("127.0.0.1", proxy_port))
        h.at_cleanup(self.close)
        self.sock.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" %
                           (authority, authority)).encode())
        self.head, _, self.rest = h.recv_head(self.sock).partition(b"\r\n\r\n")
        try:
            self.status = int(self.head.split(b" ")[1])
        except (IndexError, ValueError):
            self.status = None

    def echo(self, data):
        got, self.rest = self.rest, b""
        return h.send_echo(self.sock, data, got)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def children(pid):
    """Direct children of pid: {child_pid: argv0}."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        st = h.proc_stat(d)
        if st is None or st[1] != str(pid) or st[0] == "Z":
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        out[int(d)] = " ".join(a.decode("utf-8", "replace") for a in argv if a)
    return out


def helper_children(cd, match):
    return {p: a for p, a in children(cd.proc.pid).items() if match in a}


def by_port(lines):
    """Lines by (client_ip, client_port): ports repeat across addresses."""
    return {(x.get("client_ip"), x.get("client_port")): x for x in lines}


def perl_ok():
    return h.have("perl")


def diag_stderr(tap, cd, n=3000):
    if tap._failed:
        tap.diag("connectd stderr (tail):\n" + cd.stderr()[-n:])


PY = sys.executable or "python3"


class Squid(h.Squid):
    """harness.Squid, but the caller's http_access lines come first: the
    `http_access deny podmeta !all` trick must be evaluated before the
    harness's `http_access allow all`."""

    def render(self):
        text = h.Squid.render(self)
        extra = self.extra.replace("{dir}", self.dir).replace("{port}", str(self.port))
        base = text[:len(text) - len(extra) - 1] if text.endswith(extra + "\n") else text
        base = base.replace("http_access allow all\n", "")
        return base + extra + "\nhttp_access allow all\n"

    def log_lines(self):
        try:
            with open(self.access_log) as f:
                return [x for x in f.read().splitlines() if x.strip()]
        except OSError:
            return []


def readable_for_squid(*paths):
    """Squid runs helpers as `proxy` when started as root."""
    for p in paths:
        d = os.path.dirname(p)
        while d and d != "/":
            try:
                os.chmod(d, os.stat(d).st_mode | 0o755)
            except OSError:
                pass
            if d == h.tmpdir():
                break
            d = os.path.dirname(d)
        mode = os.stat(p).st_mode
        if not mode & stat.S_IROTH:
            os.chmod(p, mode | stat.S_IROTH)
