#!/usr/bin/env python3
"""65-forward-dockerd.t: dockerd pulls from a plain-HTTP registry through connectd.

The case connectd's plain-HTTP forwarding exists for: a Docker daemon
with HTTP_PROXY in its environment and an "insecure" (plain-HTTP)
registry.  Go never proxies loopback or `localhost`, so the registry
(Debian's docker-registry, filesystem storage in the temp dir) runs on
"another host": 10.9.0.2:5000 in a second network namespace, reached
through a veth pair from the namespace this test runs in (made with
policy_util.in_netns; only lo and the veth are up, nothing leaves the
machine).  connectd runs with the shipped conf/connectd.conf policy,
which allows plain HTTP to 10.9.0.2:5000 (Safe_ports, localnet) and
refuses CONNECT to a port other than 443.

The image (one layer with one incompressible 256 KiB file) is built
here as an OCI layout and pushed with skopeo (Go, HTTP_PROXY) through
the same connectd: Docker registry uploads are POST, PATCH and PUT with
bodies and a query (?_state=..., ?digest=...).  Then a dockerd of this
test's own (vfs storage, no bridge, no iptables, its own data-root,
exec-root, pidfile and unix socket, daemon.json with the registry in
insecure-registries, HTTP_PROXY and HTTPS_PROXY pointing at connectd)
pulls it.  dockerd tries https first: its CONNECT is refused (403, the
shipped policy), and it goes on over plain HTTP, through connectd.

Expectations:
- skopeo's push through connectd succeeds;
- docker pull succeeds; docker image inspect gives the config digest as
  the image id and the manifest digest pushed; docker save holds our
  file byte for byte; a pull of a tag the registry lacks fails, and its
  404 is logged as status and http_status 404;
- the registry's own access log and connectd's plain-HTTP lines are the
  same multiset of (method, path, status): every request went through
  connectd, and each status is what the registry gave; on every line
  status == http_status;
- dockerd's lines (user_agent containing "docker/"): GET /v2/, HEAD of
  the manifest by tag, GET of it by digest, GET of the config and layer
  blobs, all 200; the layer's bytes_down covers it;
- Go's registry clients (dockerd's and skopeo's transports have
  DisableKeepAlives) send Connection: close: one request per client
  connection, request_in_connection 1;
- skopeo's upload lines: POST, PATCH, PUT, with url without the query
  (no "_state" or "digest=" in any url);
- any CONNECT (dockerd's or skopeo's https try) is the 403 of
  "http_access deny CONNECT !SSL_ports";
- every line is valid JSON.
If dockerd cannot run here, the test is skipped with dockerd's own
error line.  dockerd, its containerd, the registry and the namespaces
are stopped, and whatever is mounted under dockerd's roots unmounted,
even on failure (watchdog, cleanup).
"""
import collections
import gzip
import hashlib
import io
import json
import os
import re
import sys
import tarfile
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import docker_util as du
import policy_util as pu
from tap import ok, is_, like, diag, done, skip_all

h.need_connectd()
for prog in ("skopeo", "docker-registry"):
    if not h.have(prog):
        skip_all("%s is not installed (Debian packages skopeo, docker-registry)" % prog)
du.need_dockerd()
pu.in_netns(peer=("10.9.0.1/24", "10.9.0.2/24"))
h.watchdog(110)
D = h.tmpdir()
REG = "10.9.0.2:5000"
REPO = "connectd-t/hello"
TAG = "v1"
IMAGE = "%s/%s:%s" % (REG, REPO, TAG)
LAYER_FILE = ("hello.bin", h.pattern(256 * 1024, seed=b"dockerd-layer"))


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def build_oci(path):
    """An OCI layout with one layer; returns (config digest, layer digest, size)."""
    blobs = os.path.join(path, "blobs", "sha256")
    os.makedirs(blobs)

    def put(b):
        with open(os.path.join(blobs, sha(b)[7:]), "wb") as f:
            f.write(b)
        return sha(b)
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo(LAYER_FILE[0])
        ti.size = len(LAYER_FILE[1])
        ti.mtime = 0
        ti.mode = 0o644
        tf.addfile(ti, io.BytesIO(LAYER_FILE[1]))
    tar = tbuf.getvalue()
    layer = gzip.compress(tar, mtime=0)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["/hello.bin"]},
                         "rootfs": {"type": "layers", "diff_ids": [sha(tar)]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": put(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": put(layer), "size": len(layer)}]}).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": put(manifest), "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": TAG}}]}).encode()
    with open(os.path.join(path, "index.json"), "wb") as f:
        f.write(index)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion": "1.0.0"}')
    return sha(config), sha(layer), len(layer)


no_proxy_env = du.no_proxy_env


def proxy_env(port, **kw):
    p = "http://127.0.0.1:%d" % port
    return no_proxy_env(HTTP_PROXY=p, HTTPS_PROXY=p, http_proxy=p, https_proxy=p,
                        NO_PROXY="", no_proxy="", **kw)


# ------------------------------------------------------------ the registry

class Registry:
    """docker-registry on 10.9.0.2:5000, in the peer namespace; its access
    log (one combined-format line per request) goes to self.out."""

    def __init__(self):
        conf = h.tmpfile("registry.yml", "\n".join([
            "version: 0.1",
            "log:",
            "  level: info",
            "storage:",
            "  filesystem:",
            "    rootdirectory: %s" % os.path.join(D, "registry-data"),
            "  delete:",
            "    enabled: false",
            "http:",
            "  addr: %s" % REG,
            ""]))
        self.out = os.path.join(D, "registry.out")
        self.err = os.path.join(D, "registry.err")
        self.proc = h.Proc(["nsenter", "-t", os.environ["T_PEER_PID"], "-n",
                            "docker-registry", "serve", conf],
                           stdout=self.out, stderr=self.err)
        if not h.wait_port(5000, "10.9.0.2", proc=self.proc.p, timeout=20, probe=True):
            raise RuntimeError("docker-registry did not start: " +
                               h.read_text(self.err)[-1500:])

    ACCESS = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3}) ')

    def access(self):
        """(method, path without query, status) of each request, in order;
        the registry logs them to stdout or stderr depending on version."""
        out = []
        for text in (h.read_text(self.out), h.read_text(self.err)):
            for ln in text.splitlines():
                m = self.ACCESS.search(ln)
                if m and "10.9.0.1" in ln.split()[0]:
                    out.append((m.group(1), m.group(2).split("?")[0], int(m.group(3))))
        return out


reg = Registry()
oci = os.path.join(D, "oci")
cdigest, ldigest, lsize = build_oci(oci)

conf = "http_port {port}\ndns_nameservers 127.0.0.1\n" + pu.shipped_policy()
cd = h.Connectd(conf)
dockerd = du.Dockerd(os.path.join(D, "docker"), daemon_conf={"insecure-registries": [REG]},
                     env=proxy_env(cd.port))
why = dockerd.start()
if why:
    cd.stop()
    skip_all(why)
rc, out, err = dockerd.cli("version", "--format", "{{.Server.Version}}")
diag("dockerd %s, client %s; the registry at %s" % (out.strip(), du.DOCKER, REG))


def skopeo(proxy_port, *args):
    home = os.path.join(D, "home")
    os.makedirs(home, exist_ok=True)
    auth = h.tmpfile("auth.json", '{"auths": {}}')
    policy = h.tmpfile("policy.json", '{"default": [{"type": "insecureAcceptAnything"}]}')
    regd = os.path.join(D, "registries.d")
    if not os.path.isdir(regd):
        os.makedirs(regd)
        with open(os.path.join(regd, "default.yaml"), "w") as f:
            f.write("default-docker:\n  lookaside: file://%s\n" % os.path.join(D, "sigstore"))
    env = proxy_env(proxy_port, HOME=home, XDG_RUNTIME_DIR=home, TMPDIR=D,
                    REGISTRY_AUTH_FILE=auth)
    return h.run(["skopeo", "--policy", policy, "--registries.d", regd] + list(args),
                 timeout=60, env=env)


with cd:
    # --- the push, skopeo through connectd
    rc, out, err = skopeo(cd.port, "copy", "--retry-times", "0", "--dest-tls-verify=false",
                          "--format", "v2s2", "oci:%s:%s" % (oci, TAG), "docker://" + IMAGE)
    is_(rc, 0, "skopeo pushes %s through connectd" % IMAGE)
    if rc != 0:
        diag(err[-2000:])
    n_push = len(cd.wait_idle())
    rc, out, err = skopeo(cd.port, "inspect", "--retry-times", "0", "--tls-verify=false",
                          "--raw", "docker://" + IMAGE)
    try:
        manifest = json.loads(out)
    except ValueError:
        manifest = {}
        diag("skopeo inspect: %s" % err[-1500:])
    mdigest = sha(out.encode()) if manifest else None
    is_(manifest.get("config", {}).get("digest"), cdigest,
        "the registry holds the manifest, with our config")
    n_before_pull = len(cd.wait_idle())

    # --- the pull, dockerd through connectd
    rc, out, err = dockerd.cli("pull", IMAGE, timeout=90)
    is_(rc, 0, "docker pull %s (dockerd through connectd) succeeds" % IMAGE)
    if rc != 0:
        diag(out[-1500:] + err[-1500:])
        diag("dockerd's log:\n" + h.read_text(dockerd.log)[-3000:])
    rc, out, err = dockerd.cli("image", "inspect", IMAGE)
    try:
        info = (json.loads(out) or [{}])[0]
    except ValueError:
        info = {}
    is_(info.get("Id"), cdigest, "docker image inspect: the id is our config digest")
    ok(mdigest and "%s/%s@%s" % (REG, REPO, mdigest) in (info.get("RepoDigests") or []),
       "... and RepoDigests has the manifest digest pushed (%r)" % info.get("RepoDigests"))
    saved = os.path.join(D, "saved.tar")
    rc, out, err = dockerd.cli("save", "-o", saved, IMAGE)
    content = None
    try:
        with tarfile.open(saved) as outer:
            for m in outer.getmembers():
                if m.name.endswith("layer.tar"):
                    with tarfile.open(fileobj=outer.extractfile(m)) as inner:
                        content = inner.extractfile(LAYER_FILE[0]).read()
    except Exception as e:
        diag("docker save: %r %s" % (e, err[-500:]))
    ok(content == LAYER_FILE[1], "docker save holds our file, byte for byte")

    # --- a tag the registry does not have
    rc, out, err = dockerd.cli("pull", "%s/%s:missing" % (REG, REPO), timeout=90)
    ok(rc not in (0, None), "docker pull of a missing tag fails")
    like(err, r"manifest unknown|not found", "... with the registry's answer (%s)"
         % err.strip()[-120:])
    lines = cd.wait_idle()
    valid = h.all_valid_json(cd.log)
    # the registry writes its access line once its handler returns
    n_http = sum(1 for x in valid if x.get("method") != "CONNECT")
    access = h.wait_for(lambda: (lambda a: a if len(a) >= n_http else None)(reg.access()),
                        timeout=5) or reg.access()

http = [x for x in valid if x.get("method") != "CONNECT"]
tunnels = [x for x in valid if x.get("method") == "CONNECT"]
REGURL = "http://" + REG


def path_of(x):
    """The path of a logged url: the registry's, without the "?" that
    marks a stripped query."""
    u = str(x.get("url"))
    return (u[len(REGURL):] if u.startswith(REGURL) else u).split("?")[0]


logged = collections.Counter((x.get("method"), path_of(x), x.get("status")) for x in http)
is_(sorted(logged.items()), sorted(collections.Counter(access).items()),
    "connectd's plain-HTTP lines are the registry's access log: (method, path, status)")
for a in sorted(set(access)):
    diag("  registry: %s %s %d" % a)
ok(http and all(x.get("status") == x.get("http_status") for x in http),
   "status == http_status on every line")
ok(all(x.get("scheme") == "http" and x.get("authority") == REG and
       x.get("server_ip") == "10.9.0.2" for x in http),
   "scheme http, authority %s, server_ip 10.9.0.2 on every line" % REG)
ok(all(not re.search(r"\?.", str(x.get("url"))) for x in valid),
   "no url has a query (at most the bare '?' of a stripped one)")

# dockerd's
mine = [x for x in http if "docker/" in str(x.get("user_agent"))]
ok(mine, "dockerd's requests are logged with its user_agent (%s)"
   % (str(mine[0].get("user_agent"))[:60] if mine else None))
for x in mine:
    diag("  dockerd: %s %s %r" % (x.get("method"), path_of(x), x.get("status")))
want = [("GET", "/v2/"), ("HEAD", "/v2/%s/manifests/%s" % (REPO, TAG)),
        ("GET", "/v2/%s/manifests/%s" % (REPO, mdigest)),
        ("GET", "/v2/%s/blobs/%s" % (REPO, cdigest)),
        ("GET", "/v2/%s/blobs/%s" % (REPO, ldigest))]
for w in want:
    recs = [x for x in mine if (x.get("method"), path_of(x)) == w]
    ok(recs and all(x.get("status") == 200 for x in recs),
       "dockerd: %s %s, 200 (%r)" % (w[0], w[1], [x.get("status") for x in recs]))
missing = [x for x in mine if path_of(x) == "/v2/%s/manifests/missing" % REPO]
ok(missing and all(x.get("status") == 404 and x.get("http_status") == 404 for x in missing),
   "dockerd: the missing tag's manifest, 404 (%r)" % [(x.get("method"), x.get("status"))
                                                     for x in missing])
layer = [x for x in mine if path_of(x).endswith(ldigest)]
ok(layer and layer[-1].get("bytes_down", 0) > lsize,
   "the layer's bytes_down (%r) covers its %d bytes"
   % (layer[-1].get("bytes_down") if layer else None, lsize))
# docker's registry transport (and containers/image's, copied from it)
# has DisableKeepAlives: every request says Connection: close
ok(all(x.get("request_in_connection") == 1 for x in http) and
   len(set(x.get("client_port") for x in http)) == len(http),
   "Go's registry clients ask to close: one request per connection")

# skopeo's
push = [x for x in http if "docker/" not in str(x.get("user_agent"))]
methods = collections.Counter(x.get("method") for x in push)
ok(methods["POST"] >= 1 and methods["PATCH"] >= 1 and methods["PUT"] >= 2,
   "skopeo's upload: POST, PATCH, PUT (blobs and manifest) through connectd (%r)"
   % dict(methods))
uploads = [x for x in push if x.get("method") in ("PATCH", "PUT") and "/uploads/" in
           str(x.get("url"))]
ok(uploads and all(str(x.get("url")).endswith("?") for x in uploads),
   "the upload URLs' queries (_state, digest) are stripped: url ends in '?'")
ok(all(x.get("bytes_up", 0) > 0 for x in push), "every upload line has bytes_up")
up = sum(x.get("bytes_up", 0) for x in push if x.get("method") in ("PUT", "PATCH"))
ok(up > lsize, "the upload's bytes_up (%d) covers the %d-byte layer" % (up, lsize))

# the https tries
ok(all(x.get("authority") == REG and x.get("status") == 403 and
       x.get("rule") == "http_access deny CONNECT !SSL_ports" for x in tunnels),
   "every CONNECT (an https try) is the shipped policy's 403 (%d of them)" % len(tunnels))
ok(all(str(x.get("user_agent")).startswith("Go-http-client/") for x in tunnels),
   "... sent by Go's transport (user_agent %s)"
   % sorted(set(str(x.get("user_agent")) for x in tunnels)))
done()
