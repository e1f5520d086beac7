"""deploy_util.py: the Kubernetes manifests of deploy/ for t/83-t/86.

    import deploy_util as du
    objs = du.rendered("deploy")          # kubectl kustomize, parsed: [dict]
    cm = du.find(objs, "ConfigMap")
    conf = du.connectd_conf(objs)         # the ConfigMap's connectd.conf

YAML is read by js-yaml under Node.js (npm's js-yaml and kubernetes-models,
installed on first use by npm_modules() into a cache shared by every build
tree: $T_NPM_CACHE, else $XDG_CACHE_HOME/connectd-tests, else
~/.cache/connectd-tests), or by PyYAML when Node.js is missing.  Whatever
cannot be had is a Skip with the reason; nothing here needs a network but
npm's first install."""
import json
import os
import re
import shutil
import subprocess
import tempfile

import harness as h

TOP = h.topdir()
DEPLOY = os.path.join(TOP, "deploy")

# Pinned: kubernetes-models 5 wants Node.js >= 22; 4.5.1 carries the
# Kubernetes 1.30+ schemas (the preStop sleep action) and runs on Node.js
# >= 14 (Debian 12 has 18).
NPM_PACKAGES = ["kubernetes-models@4.5.1", "js-yaml@4.1.0"]


class Skip(Exception):
    pass


# ---------------------------------------------------------------- tools

def kubectl():
    return shutil.which("kubectl")


def kustomize_version():
    """(major, minor) of the kustomize built into kubectl, or None."""
    k = kubectl()
    if not k:
        return None
    try:
        r = subprocess.run([k, "version", "--client"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"Kustomize Version: v?(\d+)\.(\d+)", r.stdout + r.stderr)
    return (int(m.group(1)), int(m.group(2))) if m else None


def need_kustomize():
    """Raise Skip unless kubectl kustomize can build deploy/ (kustomize >=
    4: directories in resources:, as kubectl >= 1.21 has)."""
    if not kubectl():
        raise Skip("kubectl not installed (Debian: kubernetes-client)")
    v = kustomize_version()
    if v is None or v < (4, 0):
        raise Skip("kubectl's kustomize is %s: deploy/ needs kustomize >= 4 (kubectl >= 1.21)"
                   % ("missing" if v is None else "v%d.%d" % v))


def _cache_root():
    if os.environ.get("T_NPM_CACHE"):
        return os.environ["T_NPM_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "connectd-tests")


_modules = None


# npm's error codes for a registry it cannot reach or cannot trust
NPM_NET_ERRORS = ("ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|"
                  "EHOSTUNREACH|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|"
                  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY_LEAF_SIGNATURE|"
                  "CERT_HAS_EXPIRED|ERR_SOCKET_TIMEOUT")


def npm_modules():
    """A node_modules directory holding NPM_PACKAGES; installs them the
    first time (npm install into a fresh directory, renamed into place, so
    tests running at once cannot see half an install).  Raises Skip when
    Node.js or npm is missing, RuntimeError when npm fails."""
    global _modules
    if _modules:
        return _modules
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise Skip("Node.js and npm are not installed (Debian: nodejs, npm)")
    name = "npm-" + "-".join(p.replace("@", "").replace("/", "_") for p in NPM_PACKAGES)
    root = _cache_root()
    try:
        os.makedirs(root, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=".probe-", dir=root)
        os.rmdir(probe)
    except OSError:
        root = h.tmpdir()  # no writable cache: install for this test only
    final = os.path.join(root, name)
    mods = os.path.join(final, "node_modules")
    if not all(os.path.isdir(os.path.join(mods, p.rsplit("@", 1)[0])) for p in NPM_PACKAGES):
        work = tempfile.mkdtemp(prefix=".install-", dir=root)
        try:
            with open(os.path.join(work, "package.json"), "w") as f:
                f.write('{"name": "connectd-tests", "private": true}\n')
            r = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--no-package-lock",
                                "--loglevel=error", "--prefix", work] + NPM_PACKAGES,
                               capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                # the registry out of reach (no network, a proxy, a TLS
                # interceptor whose CA this system lacks) is the machine's
                # doing: a skip that says so, as t/81 does for the mirror
                out = r.stderr or r.stdout
                m = re.search(r"npm ERR! code (%s)\b" % NPM_NET_ERRORS, out)
                if m:
                    why = re.search(r"reason: (.*)", out)
                    raise Skip("the npm registry cannot be reached for %s: %s%s" % (
                        " ".join(NPM_PACKAGES), m.group(1),
                        " (%s)" % why.group(1).strip() if why else ""))
                raise RuntimeError("npm install %s failed (%d): %s" % (
                    " ".join(NPM_PACKAGES), r.returncode, (r.stderr or r.stdout)[-2000:]))
            try:
                os.rename(work, final)
                work = None
            except OSError:
                if not os.path.isdir(mods):  # not another test's install
                    raise
        finally:
            if work:
                shutil.rmtree(work, ignore_errors=True)
    _modules = mods
    return mods


def node_run(script, request, timeout=300):
    """Run t/lib/SCRIPT under Node.js with the npm modules, request (a JSON
    value) on stdin; returns its JSON output."""
    mods = npm_modules()
    r = subprocess.run([shutil.which("node"), os.path.join(h.srcdir(), "lib", script)],
                       input=json.dumps(request), capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, NODE_PATH=mods))
    if r.returncode != 0:
        raise RuntimeError("node %s: exit %d: %s" % (script, r.returncode, r.stderr[-3000:]))
    return json.loads(r.stdout)


# ---------------------------------------------------------------- YAML

def parse_yaml(texts, validate=False):
    """texts: [(name, yaml text)].  Returns k8s_validate.js's answer: a list
    of {name, index, doc[, errors, unknown]}, one per document."""
    try:
        out = node_run("k8s_validate.js", {"texts": [{"name": n, "yaml": t} for n, t in texts],
                                           "validate": validate})
    except Skip:
        if validate:
            raise
        try:
            import yaml
        except ImportError:
            raise Skip("neither Node.js with npm nor PyYAML to read YAML")
        out = {"docs": [], "errors": []}
        for n, t in texts:
            for i, d in enumerate(yaml.safe_load_all(t)):
                if d is not None:
                    out["docs"].append({"name": n, "index": i, "doc": d,
                                        "apiVersion": d.get("apiVersion"), "kind": d.get("kind")})
    if out["errors"]:
        raise RuntimeError("YAML: " + "; ".join(out["errors"]))
    return out["docs"]


def kustomize(path):
    """kubectl kustomize PATH (relative to the top of the tree): the YAML
    text.  Raises Skip (see need_kustomize) or RuntimeError."""
    need_kustomize()
    r = subprocess.run([kubectl(), "kustomize", os.path.join(TOP, path)],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("kubectl kustomize %s: %s" % (path, r.stderr.strip()[-2000:]))
    return r.stdout


_rendered = {}


def rendered(path="deploy"):
    """The objects kubectl kustomize PATH makes, as dicts."""
    if path not in _rendered:
        _rendered[path] = [d["doc"] for d in parse_yaml([(path, kustomize(path))])]
    return _rendered[path]


def manifest_files():
    """Every YAML file under deploy/ but the kustomization files (the
    objects they make are checked rendered), relative to the top."""
    out = []
    for d, dirs, files in os.walk(DEPLOY):
        dirs.sort()
        for f in sorted(files):
            if f.endswith((".yaml", ".yml")) and f != "kustomization.yaml":
                out.append(os.path.relpath(os.path.join(d, f), TOP))
    return out


def kustomization_dirs():
    """Every directory under deploy/ with a kustomization.yaml."""
    return sorted(os.path.relpath(d, TOP) for d, _, files in os.walk(DEPLOY)
                  if "kustomization.yaml" in files)


def read(rel):
    with open(os.path.join(TOP, rel)) as f:
        return f.read()


# ---------------------------------------------------------------- objects

def find(objs, kind, name=None):
    """The one object of this kind (and name), or None."""
    got = [o for o in objs if o.get("kind") == kind and
           (name is None or o.get("metadata", {}).get("name") == name)]
    return got[0] if len(got) == 1 else None


def find_all(objs, kind):
    return [o for o in objs if o.get("kind") == kind]


def workload(objs):
    """The Deployment or DaemonSet."""
    w = [o for o in objs if o.get("kind") in ("Deployment", "DaemonSet")]
    return w[0] if len(w) == 1 else None


def connectd_conf(objs):
    """The connectd.conf of the ConfigMap that the workload mounts."""
    w = workload(objs)
    vols = w["spec"]["template"]["spec"].get("volumes") or []
    names = [v["configMap"]["name"] for v in vols if "configMap" in v]
    for o in find_all(objs, "ConfigMap"):
        if o["metadata"]["name"] in names and "connectd.conf" in (o.get("data") or {}):
            return o["data"]["connectd.conf"]
    return None


def directives(conf):
    """connectd.conf text -> [(directive, rest of the line)], comments and
    blank lines left out."""
    out = []
    for line in conf.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            d, _, rest = line.partition(" ")
            out.append((d, rest.strip()))
    return out


def helper_argv(conf, name="egress"):
    """The program and arguments of external_acl_type NAME."""
    for d, rest in directives(conf):
        if d == "external_acl_type":
            words = rest.split()
            if words and words[0] == name:
                # name, then option=value words and FORMAT codes (%...), then the program
                i = 1
                while i < len(words) and ("=" in words[i] and not words[i].startswith("/")
                                          or words[i].startswith("%")):
                    i += 1
                return words[i:]
    return None
