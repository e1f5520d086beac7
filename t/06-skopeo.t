#!/usr/bin/env python3
"""06-skopeo.t: skopeo (Go's net/http, as dockerd uses) through connectd to
Debian's docker-registry over TLS, with HTTPS_PROXY set.

Go never proxies `localhost` or loopback literals, so the registry is
called registry.connectd.test.  Only connectd resolves it (a proxied Go
client sends the name in its CONNECT), through its own hosts_file, and
the harness points connectd's DNS at 127.0.0.1 so no query leaves the
machine; the system's /etc/hosts is not touched.

A tiny OCI image (one incompressible 256 KiB layer) is built here in
Python, pushed with `skopeo copy oci:... docker://...`, inspected, and
copied back to a dir: layout.  TLS is verified end to end with the
registry's own self-signed certificate (connectd never terminates TLS).
Every tunnel's log line must be CONNECT registry.connectd.test:PORT with
Go's user agent, status 200, and the byte counts must cover the layer."""
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
from tap import ok, is_, like, diag, done

NAME = "registry.connectd.test"
REPO = "connectd/hello"
TAG = "v1"
LAYER_FILE = ("hello.bin", h.pattern(256 * 1024, seed=b"skopeo-layer"))

for prog in ("skopeo", "docker-registry", "openssl"):
    if not h.have(prog):
        h.tap.skip_all("%s is not installed" % prog)
HOSTS = h.tmpfile("hosts", "127.0.0.1 %s\n" % NAME)
h.need_connectd()
h.watchdog(150)
D = h.tmpdir()


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def build_oci(path):
    """An OCI image layout with one layer; returns (manifest digest, layer digest)."""
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
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
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
    return sha(manifest), sha(layer), len(layer)


class Registry:
    def __init__(self):
        self.cert, self.key = h.make_cert(names=[NAME], prefix="registry")
        self.certdir = os.path.join(D, "certs.d")
        os.makedirs(self.certdir)
        with open(self.cert) as f, open(os.path.join(self.certdir, "ca.crt"), "w") as g:
            g.write(f.read())
        self.port = h.free_port()
        conf = h.tmpfile("registry.yml", "\n".join([
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            "    rootdirectory: %s" % os.path.join(D, "registry-data"),
            "http:",
            "  addr: 127.0.0.1:%d" % self.port,
            "  tls:",
            "    certificate: %s" % self.cert,
            "    key: %s" % self.key,
            ""]))
        self.proc = h.Proc(["docker-registry", "serve", conf],
                           stdout=os.path.join(D, "registry.out"),
                           stderr=os.path.join(D, "registry.err"))
        if not h.wait_port(self.port, proc=self.proc.p, timeout=20):
            raise RuntimeError("docker-registry did not start: " +
                               h.read_text(os.path.join(D, "registry.err"))[-1500:])


def skopeo(proxy_port, *args):
    home = os.path.join(D, "home")
    os.makedirs(home, exist_ok=True)
    auth = h.tmpfile("auth.json", '{"auths": {}}')
    policy = h.tmpfile("policy.json", '{"default": [{"type": "insecureAcceptAnything"}]}')
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(HTTPS_PROXY="http://127.0.0.1:%d" % proxy_port,
               HTTP_PROXY="http://127.0.0.1:%d" % proxy_port,
               NO_PROXY="", HOME=home, XDG_RUNTIME_DIR=home, TMPDIR=D,
               REGISTRY_AUTH_FILE=auth)
    # signatures in the temp dir, not /var/lib/containers/sigstore
    regd = os.path.join(D, "registries.d")
    if not os.path.isdir(regd):
        os.makedirs(regd)
        with open(os.path.join(regd, "default.yaml"), "w") as f:
            f.write("default-docker:\n  lookaside: file://%s\n" % os.path.join(D, "sigstore"))
    return h.run(["skopeo", "--policy", policy, "--registries.d", regd] + list(args),
                 timeout=60, env=env)


reg = Registry()
oci = os.path.join(D, "oci")
mdigest, ldigest, lsize = build_oci(oci)
ref = "docker://%s:%d/%s:%s" % (NAME, reg.port, REPO, TAG)
AUTH = "%s:%d" % (NAME, reg.port)

with h.Connectd({"hosts_file": HOSTS}) as cd:
    # push
    rc, out, err = skopeo(cd.port, "copy", "--retry-times", "0", "--dest-cert-dir", reg.certdir,
                          "oci:%s:%s" % (oci, TAG), ref)
    is_(rc, 0, "skopeo copy oci: -> docker:// through connectd")
    if rc != 0:
        diag(err[-2000:])
    like(out, r"Writing manifest", "skopeo wrote the manifest")
    push_lines = cd.wait_idle()
    n_push = len(push_lines)

    # inspect
    rc, out, err = skopeo(cd.port, "inspect", "--retry-times", "0", "--cert-dir", reg.certdir, ref)
    is_(rc, 0, "skopeo inspect through connectd")
    if rc != 0:
        diag(err[-2000:])
    try:
        info = json.loads(out)
    except ValueError:
        info = {}
    is_(info.get("Layers"), [ldigest], "inspect lists the one layer we pushed")
    is_(info.get("Digest"), mdigest, "inspect gives the manifest digest we built")
    is_(info.get("Os"), "linux", "inspect reads the config blob")

    # pull back
    out_dir = os.path.join(D, "pulled")
    rc, out, err = skopeo(cd.port, "copy", "--retry-times", "0", "--src-cert-dir", reg.certdir,
                          ref, "dir:%s" % out_dir)
    is_(rc, 0, "skopeo copy docker:// -> dir: through connectd")
    if rc != 0:
        diag(err[-2000:])
    blob = os.path.join(out_dir, ldigest[7:])
    data = open(blob, "rb").read() if os.path.exists(blob) else b""
    is_(sha(data), ldigest, "the pulled layer has the pushed digest")
    try:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tf:
            content = tf.extractfile(LAYER_FILE[0]).read()
    except Exception as e:
        content = repr(e).encode()
    ok(content == LAYER_FILE[1], "the pulled layer holds our file, byte for byte")

    # the log
    cd.wait_idle()
    lines = h.all_valid_json(cd.log)
    ok(len(lines) >= 3, "connectd logged the tunnels (%d)" % len(lines))
    ok(all(x.get("authority") == AUTH for x in lines), "every line is CONNECT %s" % AUTH)
    ok(all(x.get("method") == "CONNECT" and x.get("status") == 200 for x in lines),
       "every tunnel got 200")
    ok(all(x.get("host") == NAME and x.get("port") == reg.port for x in lines), "host and port")
    ok(all(x.get("server_ip") == "127.0.0.1" for x in lines), "server_ip 127.0.0.1 (from connectd's hosts_file)")
    uas = sorted(set(str(x.get("user_agent")) for x in lines))
    ok(uas and all(u.startswith("Go-http-client/") for u in uas),
       "user_agent is Go's (%s)" % ", ".join(uas))
    ok(all(x.get("bytes_up", 0) > 0 and x.get("bytes_down", 0) > 0 for x in lines),
       "every tunnel moved bytes both ways (TLS)")
    # what the hellos said (peek.c): Go's crypto/tls, read without decrypting
    tls = [x.get("tls") if isinstance(x.get("tls"), dict) else {} for x in lines]
    ok(all(x.get("proto") == "tls" for x in lines), "every tunnel's proto is tls")
    ok(all(t.get("hello") == "complete" and t.get("sni") == NAME and t.get("sni_match") == "match"
           for t in tls), "every ClientHello was read whole: sni %s, sni_match match" % NAME)
    ok(all(re.match(r"^t1[23]d", t.get("ja4") or "") and t.get("version") in ("TLS/1.2", "TLS/1.3")
           and re.match(r"^0x[0-9a-f]{4}$", t.get("cipher") or "") for t in tls),
       "Go's JA4, negotiated version and cipher are on every line (%s)" %
       sorted(set("%s %s %s" % (t.get("ja4"), t.get("version"), t.get("cipher")) for t in tls)))
    up_push = sum(x.get("bytes_up", 0) for x in push_lines)
    ok(up_push > lsize, "the push's bytes_up (%d) covers the %d-byte layer" % (up_push, lsize))
    down_all = sum(x.get("bytes_down", 0) for x in lines[n_push:])
    ok(down_all > lsize, "the pull's bytes_down (%d) covers the layer" % down_all)
    # Go closes idle keep-alive connections when skopeo exits, sometimes
    # with an RST, and the registry may answer a close_notify with one:
    # any end of stream is fine, a timeout or an error is not
    ok(all(x.get("close") in ("client_eof", "server_eof", "client_reset", "server_reset")
           for x in lines),
       "tunnels end with an EOF or a peer's reset (%s)" % sorted(set(str(x.get("close")) for x in lines)))
done()
