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

debian_base() makes (once, then keeps) a tarball of a minimal Debian to
`docker import` as debian:bookworm-slim, since no registry is reachable.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

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
    path for nsenter --net=), default ours; storage: the storage driver
    (vfs works on any file system; overlay2, where it works, does not
    copy the whole tree for each layer).  start() returns None, or the
    reason it could not run."""

    def __init__(self, dir, daemon_conf=None, env=None, netns=None, storage="vfs"):
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
        self.storage = storage
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
                "--storage-driver=" + self.storage, "--iptables=false", "--ip6tables=false",
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

    def cli(self, *args, timeout=60, input=None, env=None):
        """The docker client on our socket (env: more variables for it):
        (rc, stdout, stderr); rc None on timeout."""
        return h.run([DOCKER, "-H", "unix://" + self.sock] + list(args), timeout=timeout,
                     input=input, env=no_proxy_env(DOCKER_CONFIG=self.cfg, **(env or {})))

    def build(self, *args, timeout=1500):
        """docker build ARGS with the classic builder, which every docker.io
        has (BuildKit may be absent): (rc, its output, [(step, seconds)]),
        the time each Dockerfile step took (until the next one began, or
        the end); rc None on timeout."""
        p = subprocess.Popen([DOCKER, "-H", "unix://" + self.sock, "build"] + list(args),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True,
                             env=no_proxy_env(DOCKER_CONFIG=self.cfg, DOCKER_BUILDKIT="0"))

        def kill():
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        h.at_cleanup(kill)
        lines = []

        def read():
            for raw in p.stdout:
                lines.append((time.monotonic(), raw.decode("utf-8", "replace")))
        t = threading.Thread(target=read, daemon=True)
        t.start()
        try:
            rc = p.wait(timeout * h.SLOW)
        except subprocess.TimeoutExpired:
            kill()
            rc = None
        t.join(10)
        end = time.monotonic()
        starts = [(at, ln.strip()) for at, ln in lines if re.match(r"Step \d+/\d+ :", ln)]
        steps = [(text, (starts[i + 1][0] if i + 1 < len(starts) else end) - at)
                 for i, (at, text) in enumerate(starts)]
        return rc, "".join(ln for _, ln in lines), steps

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


# ------------------------------------------------------------- base image

# what debuerreotype, which makes the official debian:*-slim images, sets
# up in them: dpkg without fsync (a layer is written once), apt keeping
# no .debs, no translations, gzipped indexes; and no documentation, man
# pages or locales (its --slimify), copyright files kept
SLIM_FILES = {
    "etc/dpkg/dpkg.cfg.d/docker-apt-speedup": "force-unsafe-io\n",
    "etc/apt/apt.conf.d/docker-clean":
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";\n',
    "etc/apt/apt.conf.d/docker-no-languages": 'Acquire::Languages "none";\n',
    "etc/apt/apt.conf.d/docker-gzip-indexes":
        'Acquire::GzipIndexes "true"; Acquire::CompressionTypes::Order:: "gz";\n',
    "etc/apt/apt.conf.d/docker-autoremove-suggests":
        'Apt::AutoRemove::SuggestsImportant "false";\n',
    "etc/dpkg/dpkg.cfg.d/docker":
        "".join("path-exclude /usr/share/%s/*\n" % d for d in
                ("doc", "groff", "info", "linda", "lintian/overrides", "locale", "man")) +
        "path-include /usr/share/doc/*/copyright\n",
}
# bump when the recipe changes: the cached tarball's name carries it
BASE_RECIPE = 1
MIRROR = "http://deb.debian.org/debian"
# what debootstrap or apt say when the mirror cannot be reached
MIRROR_DOWN = (r"Failed getting release file|Temporary failure resolving|"
               r"Could not resolve|Failed to fetch|Couldn't download|"
               r"Network is unreachable|Connection timed out|No route to host")


class MirrorDown(Exception):
    """The Debian mirror could not be reached: a reason to skip."""


def _slim(root):
    for rel, text in SLIM_FILES.items():
        with open(os.path.join(root, rel), "w") as f:
            f.write(text)
    usr = os.path.join(root, "usr", "share")
    for d in ("doc", "groff", "info", "linda", "lintian/overrides", "locale", "man"):
        top = os.path.join(usr, d)
        for dirpath, dirs, files in os.walk(top, topdown=False):
            for f in files:
                if d == "doc" and f == "copyright" and os.path.dirname(dirpath) == top:
                    continue
                os.unlink(os.path.join(dirpath, f))
            if dirpath != top and not os.listdir(dirpath):
                os.rmdir(dirpath)
    # the package lists and caches (apt-get update makes them again)
    for d in ("var/cache/apt", "var/cache/apt/archives", "var/lib/apt/lists"):
        p = os.path.join(root, d)
        for f in os.listdir(p):
            fp = os.path.join(p, f)
            if os.path.isfile(fp) and f != "lock":
                os.unlink(fp)


def debian_base(cache="/var/cache/connectd-tests", suite="bookworm", netns=None):
    """A tarball of Debian SUITE for `docker import - debian:SUITE-slim`:
    debootstrap --variant=minbase from deb.debian.org, slimmed as the
    official image is (SLIM_FILES).  Made once and kept in cache (its
    name carries the architecture and BASE_RECIPE: remove it to make a
    fresh one).  netns: where debootstrap runs (it needs the mirror).
    Returns (path, seconds it took to make, None when it was cached);
    raises MirrorDown, or RuntimeError with debootstrap's last lines."""
    arch = subprocess.run(["dpkg", "--print-architecture"], stdout=subprocess.PIPE,
                          universal_newlines=True).stdout.strip() or "unknown"
    path = os.path.join(cache, "debian-%s-minbase-%s-r%d.tar" % (suite, arch, BASE_RECIPE))
    if os.path.isfile(path):
        return path, None
    os.makedirs(cache, exist_ok=True)
    work = tempfile.mkdtemp(prefix="base-", dir=cache)
    root = os.path.join(work, "root")
    t0 = time.monotonic()
    try:
        # in a mount namespace of its own: the /proc and /sys it mounts
        # in root go with it, even if it is killed, so that removing root
        # never reaches the host's
        pre = ["nsenter", "--net=" + netns] if netns else []
        rc, out, err = h.run(pre + ["unshare", "-m", "debootstrap", "--variant=minbase",
                                    suite, root, MIRROR], timeout=1200)
        if rc != 0:
            text = (out + err).strip()
            m = re.search(r"^.*(%s).*$" % MIRROR_DOWN, text, re.M)
            if m:
                raise MirrorDown("debootstrap: %s" % m.group(0).strip()[:200])
            raise RuntimeError("debootstrap %s: %s" % (
                "timed out" if rc is None else "exited %d" % rc, text[-1500:]))
        _slim(root)
        tmp = path + ".tmp"
        rc, out, err = h.run(["tar", "--numeric-owner", "-C", root, "-cf", tmp, "."],
                             timeout=300)
        if rc != 0:
            raise RuntimeError("tar: %s" % err[-500:])
        os.replace(tmp, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path, time.monotonic() - t0
