#!/usr/bin/env python3
"""84-deploy-conf.t: the ConfigMap's connectd.conf loads, and wires podmeta.

The connectd.conf that kubectl kustomize puts in the ConfigMap that the
Deployment (and the DaemonSet) mount at /etc/connectd:
- is deploy/base/connectd.conf, and has conf/connectd-kubernetes.conf's
  policy, directive for directive (external_acl_type egress, podmeta
  --policy, the same but for its children);
- passes `connectd -t`.  connectd -t does not look for a helper's program
  (shown here: it passes with podmeta nowhere in PATH), so the file names
  podmeta without a path, as the image's PATH finds it, and the test puts
  the built podmeta first in PATH;
- runs: connectd on it, unchanged but for its two ports (moved to free
  loopback ports) and as uid 65532 like the pod when the test is root,
  with podmeta in cluster mode against the test API server (service
  account token, CA and namespace in a directory like the one the kubelet
  mounts, KUBERNETES_SERVICE_HOST/PORT set): /readyz turns 200 once podmeta
  has listed the pods, and the line of a CONNECT from 127.0.0.1 (refused:
  to_localhost, so nothing leaves the machine) names the pod that has that
  address;
- with NODE_NAME set as the DaemonSet sets it, podmeta asks only for that
  node's pods, and a pod of another node is not found."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h  # noqa: E402
import tap  # noqa: E402
import deploy_util as du  # noqa: E402
import metrics_util as mu  # noqa: E402
import podmeta_util as pu  # noqa: E402
from k8sapi import fixtures as kf  # noqa: E402
from k8sapi.control import K8sAPI  # noqa: E402

h.watchdog(600)
CONNECTD = h.need_connectd()
PODMETA = os.environ.get("PODMETA") or os.path.join(h.topdir(), "podmeta", "podmeta")
if not os.access(PODMETA, os.X_OK):
    tap.skip_all("podmeta not built (PODMETA=%s)" % PODMETA)

try:
    objs = du.rendered("deploy")
    ds_objs = du.rendered("deploy/daemonset")
except du.Skip as e:
    # Debian 12's kubectl (1.20) has no kustomize that builds deploy/:
    # the ConfigMap's file is still deploy/base/connectd.conf (its
    # configMapGenerator's source), so the rest runs on that
    objs = None
    tap.skip("the rendered ConfigMap and its mounts: %s" % e, count=5)

# ---- the file
if objs is not None:
    conf = du.connectd_conf(objs)
    tap.ok(conf is not None, "the Deployment mounts a ConfigMap holding connectd.conf")
    conf = conf or ""
    tap.is_(conf, du.read("deploy/base/connectd.conf"), "... deploy/base/connectd.conf")
    tap.is_(du.connectd_conf(ds_objs), conf, "the DaemonSet mounts the same")
    for what, o in (("Deployment", du.workload(objs)), ("DaemonSet", du.workload(ds_objs))):
        c = o["spec"]["template"]["spec"]["containers"][0]
        vol = [v["name"] for v in o["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
        mounts = [m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] in vol]
        tap.is_(mounts, ["/etc/connectd"], "%s: mounted at /etc/connectd, where the image reads "
                "/etc/connectd/connectd.conf" % what)
else:
    conf = du.read("deploy/base/connectd.conf")

ours = du.directives(conf)
theirs = du.directives(du.read("conf/connectd-kubernetes.conf"))
tap.is_([d for d in ours if d[0] != "external_acl_type"],
        [d for d in theirs if d[0] != "external_acl_type"],
        "the policy is conf/connectd-kubernetes.conf's, directive for directive")
argv = du.helper_argv(conf)
tap.ok(argv and argv[0] == "podmeta" and "--policy" in argv,
       "external_acl_type egress runs podmeta --policy, looked up in PATH")
argv = argv or ["podmeta"]
tap.ok(not any(a.split("=")[0] in ("--server", "--kubeconfig", "--source", "--token-file",
                                  "--ca-file", "--node", "--namespace") for a in argv[1:]),
       "... in cluster mode, every namespace, every node unless NODE_NAME says (%s)" % " ".join(argv))
tap.like(conf, r"(?m)^external_acl_type egress .*\bchildren-max=1\b", "... one child: one list and watch")
tap.like(conf, r"(?m)^external_acl_type egress .*%SRC %DST %PORT %ssl::>sni podmeta",
         "... asked with the source, the destination and the SNI")

# ---- connectd -t
confpath = h.tmpfile("connectd.conf", conf)
bindir = os.path.dirname(h.runnable_copy(PODMETA))
path_with = bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin")
rc, out, err = h.run([CONNECTD, "-t", "-f", confpath], env=dict(os.environ, PATH=path_with))
tap.ok(rc == 0 and "configuration OK" in err, "connectd -t: configuration OK")
if rc != 0:
    tap.diag(err)
rc, out, err = h.run([CONNECTD, "-t", "-f", confpath], env=dict(os.environ, PATH="/nonexistent"))
tap.is_(rc, 0, "connectd -t does not look for the helper's program: running it is the check")

# ---- running it, as the pod does
RUNNER = kf.make_pod("runner-abc", "127.0.0.1", namespace="ci", node="node-a",
                     labels={"app": "runner", "connectd-client": "true"})
OTHER = kf.make_pod("web-xyz", "10.244.1.9", namespace="web", node="node-b")
api = K8sAPI(pods=[RUNNER, OTHER]).start()
# the kubelet's projected service account volume: token, ca.crt, namespace
sa = os.path.join(h.tmpdir(), "serviceaccount")
os.makedirs(sa, exist_ok=True)
os.chmod(sa, 0o755)
for f in ("token", "ca.crt"):
    shutil.copy(api.path(f), os.path.join(sa, f))
with open(os.path.join(sa, "namespace"), "w") as f:
    f.write("connectd")
for f in os.listdir(sa):
    os.chmod(os.path.join(sa, f), 0o644)

run_conf = re.sub(r"(?m)^http_port 0\.0\.0\.0:3128$", "http_port 127.0.0.1:{port}", conf)
run_conf = re.sub(r"(?m)^metrics_port 0\.0\.0\.0:9128$", "metrics_port 127.0.0.1:{metrics_port}", run_conf)
tap.ok(run_conf.count("{port}") == 1 and run_conf.count("{metrics_port}") == 1,
       "the ports, 0.0.0.0:3128 and 0.0.0.0:9128, moved to free loopback ports")

wrapper = []
if os.geteuid() == 0 and shutil.which("setpriv"):
    wrapper = ["setpriv", "--reuid=65532", "--regid=65532", "--clear-groups"]
    os.environ["CONNECTD"] = h.runnable_copy(CONNECTD)


def start(node_name):
    env = dict(os.environ, PATH=path_with, KUBERNETES_SERVICE_HOST="127.0.0.1",
               KUBERNETES_SERVICE_PORT=str(api.port), PODMETA_SERVICEACCOUNT_DIR=sa,
               NODE_NAME=node_name)
    return h.Connectd(run_conf, env=env, wrapper=wrapper, metrics=True)


def ready(cd):
    got = [None]

    def probe():
        try:
            got[0] = mu.get(cd.metrics_port, "/readyz", timeout=5)
        except OSError:
            return False
        return got[0][0] == 200
    h.wait_for(probe, 60)
    return got[0]


def connect_line(cd):
    """A CONNECT from 127.0.0.1 to 127.0.0.1:443 (denied: to_localhost, so
    nothing leaves the machine); its status and line."""
    s = socket.create_connection(("127.0.0.1", cd.port), timeout=10 * h.SLOW)
    s.sendall(b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n")
    head = h.recv_head(s)
    port = s.getsockname()[1]
    s.close()
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return (int(m.group(1)) if m else None), cd.wait_client(port, 15)


for variant, node, want_pod in (("Deployment", "", True), ("DaemonSet, node-a", "node-a", True),
                                ("DaemonSet, node-b", "node-b", False)):
    mark = api.mark()
    cd = start(node)
    st = ready(cd)
    tap.is_(st and st[0], 200, "%s: /readyz 200 once podmeta has the pods" % variant)
    if wrapper:
        uids = set(open("/proc/%d/status" % cd.proc.pid).read().split("Uid:")[1].split()[:3])
        tap.is_(uids, {"65532"}, "%s: connectd runs as uid 65532, as in the pod" % variant)
    status, line = connect_line(cd)
    tap.is_(status, 403, "%s: CONNECT 127.0.0.1:443 is refused: 403" % variant)
    line = line or {}
    pod = line.get("pod") or {}
    if want_pod:
        tap.ok(pod.get("name") == "runner-abc" and pod.get("namespace") == "ci" and pod.get("node") == "node-a",
               "%s: the line names the client's pod, ci/runner-abc" % variant)
    else:
        tap.ok(line.get("pod") == {"ip": "127.0.0.1", "pod": None},
               "%s: a pod of node-a is not this node's: {\"pod\":null}" % variant)
    if not (pod.get("name") == "runner-abc") == want_pod:
        tap.diag("line: %s" % json.dumps(line)[:1500])
        tap.diag(cd.stderr()[-2000:])
    reqs = [x for x in api.requests_since(mark) if x["kind"] in ("list", "watch")]
    sel = sorted(set(x["query"].get("fieldSelector") for x in reqs), key=str)
    tap.is_(sel, ["spec.nodeName=" + node] if node else [None],
            "%s: podmeta's list and watch %s" % (variant, "ask for node %s only" % node if node
                                                   else "ask for every node"))
    tap.ok(all(x["token"] == api.token for x in reqs) and reqs,
           "%s: ... with the service account's token" % variant)
    cd.stop()
    tap.is_(cd.sanitizer_report(), "", "%s: no sanitizer report" % variant)
api.stop()
tap.done()
