"""docker_util.py: a Docker daemon of a test's own, and its client.

Debian's docker.io, run so that nothing of the machine's own Docker (if
any) is used or touched: vfs storage (works on any file system, nested
too), no bridge, no iptables, its own data-root, exec-root, pidfile and
unix socket under a directory of the test's, in a mount namespace of its
own.  Containers can then only use --network host (the daemon's network
namespace) or none.

    need_dockerd()                       # skips the test if it cannot be
    d = Dockerd(os.path.join(h.tmpdir(), "docker"), env=...)
    why = d.start()                      # None, or dockerd's own error line
    rc, out, err = d.cli("version")
    d.stop()                             # also at exit

Two daemons may use one directory one after the other (stop() the first):
the second finds the first's images.  netns= runs a daemon in another
network namespace (a path for nsenter --net=), e.g. one that reaches a
package mirror, while the test itself runs in a private one.
"""
import json
import os
import re
import signal
import subprocess

import harness as h
import tap

DOCKER = "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else h.which("docker")


def need_dockerd(*progs):
    """Skip the whole test unless a private dockerd can run here: root,
    Debian's docker.io (dockerd, the docker client, /etc/docker),
    util-linux's unshare and nsenter, and progs."""
    for prog in ("dockerd", "nsenter", "unshare") + progs:
        if not h.have(prog):
            tap.skip_all("%s is not installed (Debian packages docker.io, util-linux)" % prog)
    if os.geteuid() != 0:
        tap.skip_all("dockerd needs root")
    if not os.path.isdir("/etc/docker"):
        tap.skip_all("/etc/docker is missing (Debian package docker.io makes it)")
    if not DOCKER:
        tap.skip_all("the docker client is not installed (Debian package docker.io)")


def no_proxy_env(**kw):
    """Our environment without any *_proxy variable, plus kw."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(kw)
    return env


class Dockerd:
    """dockerd with its roots and socket under dir.  daemon_conf: the
    daemon.json (a dict); env: dockerd's environment (default ours
    without proxy variables); netns: a network namespace to run in (a
    path for nsenter --net=), default ours.  start() returns None, or the
    reason it could not run."""

    def __init__(self, dir, daemon_conf=None, env=None, netns=None):
        self.dir = dir
        self.data = os.path.join(dir, "data")
        self.exec_root = os.path.join(dir, "exec")
        self.sock = os.path.join(dir, "docker.sock")
        self.log = os.path.join(dir, "dockerd.log")
        self.cfg = os.path.join(dir, "cli")
        for d in (self.data, self.exec_root, self.cfg):
            os.makedirs(d, exist_ok=True)
        self.conf_file = os.path.join(dir, "daemon.json")
        with open(self.conf_file, "w") as f:
            json.dump(daemon_conf or {}, f)
        self.env = dict(env if env is not None else no_proxy_env(), DOCKER_CONFIG=self.cfg)
        self.netns = netns
        self.proc = None
        h.at_cleanup(self.stop)

    def argv(self):
        """dockerd in a mount namespace of its own: whatever it mounts goes
        with it, and what it writes outside its roots whatever the flags
        (/etc/docker/key.json, /run/docker/plugins) lands in our directory
        (only an empty /run/docker is made, if there is none, to mount on)."""
        etc = os.path.join(self.dir, "etc")
        run = os.path.join(self.dir, "run")
        os.makedirs(etc, exist_ok=True)
        os.makedirs(run, exist_ok=True)
        # (a system dockerd's plugin sockets in /run/docker/plugins would
        # be found by ours, too)
        setup = ("mount --make-rprivate /; "
                 "mount --bind %s /etc/docker; "
                 "mkdir -p /run/docker; mount --bind %s /run/docker; "
                 'exec "$@"' % (etc, run))
        pre = ["nsenter", "--net=" + self.netns] if self.netns else []
        return pre + ["unshare", "-m", "sh", "-ec", setup, "sh"] + self.dockerd_argv()

    def dockerd_argv(self):
        return ["dockerd", "--config-file", self.conf_file,
                "--storage-driver=vfs", "--iptables=false", "--ip6tables=false",
                "--ip-forward=false", "--ip-masq=false", "--bridge=none",
                "--data-root", self.data, "--exec-root", self.exec_root,
                "--pidfile", os.path.join(self.dir, "docker.pid"),
                "-H", "unix://" + self.sock]

    def start(self, timeout=60):
        self.proc = h.Proc(self.argv(), stdout=self.log, stderr=self.log, env=self.env)

        def up():
            if self.proc.poll() is not None:
                return "exited"
            rc, out, err = self.cli("version", "--format", "{{.Server.Version}}",
                                    timeout=10)
            return "up" if rc == 0 and out.strip() else None
        state = h.wait_for(up, timeout=timeout, interval=0.3)
        if state == "up":
            return None
        text = h.read_text(self.log)
        bad = [ln for ln in text.splitlines()
               if re.search(r"level=(fatal|error)|failed to start|Error starting", ln)]
        line = (bad or text.strip().splitlines() or ["no output"])[-1]
        return "dockerd %s: %s" % ("exited (rc %r)" % self.proc.poll()
                                   if state == "exited" else
                                   "did not answer in %d s" % timeout,
                                   line.strip()[:300])

    def cli(self, *args, timeout=60, input=None):
        """The docker client on our socket: (rc, stdout, stderr); rc None
        on timeout."""
        return h.run([DOCKER, "-H", "unix://" + self.sock] + list(args), timeout=timeout,
                     input=input, env=no_proxy_env(DOCKER_CONFIG=self.cfg))

    def _ours(self, pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                return self.dir.encode() in f.read()
        except OSError:
            return False

    def stop(self):
        """dockerd, then its containerd (by its pid file, if it is ours and
        still there), then every mount under our roots that shows here
        (none should: they are made in dockerd's own mount namespace)."""
        if self.proc is not None:
            self.proc.stop(grace=20)
            self.proc = None
        cpid = os.path.join(self.exec_root, "containerd", "containerd.pid")
        try:
            pid = int(h.read_text(cpid).strip() or 0)
        except ValueError:
            pid = 0
        if pid and self._ours(pid):
            try:
                os.kill(pid, signal.SIGTERM)
                if not h.wait_for(lambda: not self._ours(pid), timeout=10):
                    os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        mounts = []
        for ln in h.read_text("/proc/self/mounts").splitlines():
            parts = ln.split()
            if len(parts) > 1:
                mp = parts[1].replace("\\040", " ")
                if mp == self.dir or mp.startswith(self.dir + "/"):
                    mounts.append(mp)
        for mp in reversed(mounts):
            subprocess.run(["umount", "-l", mp], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
