#!/usr/bin/env python3
"""86-deploy-consistency.t: the pieces of deploy/ agree with each other.

On the objects kubectl kustomize makes of deploy/ (the Deployment) and
deploy/daemonset, and on the examples:
- the objects each variant is made of, all in the one namespace;
- the Services select the pods, and their ports are the ports of the
  ConfigMap's http_port and metrics_port; the DaemonSet's Service is
  internalTrafficPolicy Local, the Deployment's is not;
- 2 replicas spread by anti-affinity, a PodDisruptionBudget that selects
  them; the DaemonSet's NODE_NAME from spec.nodeName, updates that start
  the new pod first;
- the probes: /healthz and /readyz on the metrics port;
  terminationGracePeriodSeconds covers the preStop sleep, shutdown_lifetime
  and 5 seconds for the logs;
- the security context the issue asks for, requests and limits set;
  ndots 1, so that internet names skip the cluster's search domains;
- the image is connectd, and kustomize's images: override reaches it;
- pod and container names that conf/fluent-bit/fluent-bit-kubernetes.conf's
  Path matches;
- the examples: the runner's proxy variables, daemon.json, dockerd.env,
  proxy.env and the Docker client's config name the Service (its DNS name
  for layers 1 and 2, its ClusterIP for layer 3), NO_PROXY keeps the
  ConfigMap's pod and service networks and cluster names direct, the
  NetworkPolicy admits the runner's label to the proxy port and
  Prometheus to the metrics port, and no CA is installed anywhere;
- the resources hold what was measured: podmeta's and connectd's memory,
  measured here (podmeta in cluster mode with 100 and 1,000 full-size
  pods, connectd with idle tunnels), extrapolated to the sizes the
  comments name, fit under the requests (steady) and the limits (peak,
  with room for busy tunnels' socket buffers).  Skipped under sanitizers."""
import fnmatch
import json
import os
import re
import resource
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h  # noqa: E402
import tap  # noqa: E402
import deploy_util as du  # noqa: E402
import podmeta_util as pu  # noqa: E402
from k8sapi import fixtures as kf  # noqa: E402
from k8sapi.control import K8sAPI  # noqa: E402

h.watchdog(600)
try:
    dep = du.rendered("deploy")
    ds = du.rendered("deploy/daemonset")
    examples = {f: [d["doc"] for d in du.parse_yaml([(f, du.read(f))])]
                for f in du.manifest_files() if f.startswith("deploy/examples/")}
except du.Skip as e:
    tap.skip_all(str(e))


def kinds(objs):
    return sorted("%s/%s" % (o["kind"], o["metadata"]["name"].split("-")[0] if o["kind"] == "ConfigMap"
                             else o["metadata"]["name"]) for o in objs)


def seconds(text):
    m = re.match(r"(\d+)\s*(second|minute|hour)", text or "")
    return int(m.group(1)) * {"second": 1, "minute": 60, "hour": 3600}[m.group(2)] if m else None


def quantity(q):
    q = str(q)
    for suf, mul in (("Ki", 1024), ("Mi", 1024 ** 2), ("Gi", 1024 ** 3), ("m", 0.001)):
        if q.endswith(suf):
            return float(q[:-len(suf)]) * mul
    return float(q)


def env_file(rel):
    out = {}
    for line in du.read(rel).splitlines():
        if line and not line.startswith("#") and "=" in line:
            k, _, v = line.partition("=")
            out[k] = v
    return out


conf = du.connectd_conf(dep) or ""
d = dict((k, v) for k, v in du.directives(conf))
http_port = int(d.get("http_port", ":0").rsplit(":", 1)[1])
metrics_port = int(d.get("metrics_port", ":0").rsplit(":", 1)[1])
tap.ok(d.get("http_port") == "0.0.0.0:3128" and d.get("metrics_port") == "0.0.0.0:9128",
       "the ConfigMap listens on 0.0.0.0:3128, metrics on 0.0.0.0:9128")
acls = [rest.split() for k, rest in du.directives(conf) if k == "acl"]
pod_net = [a[2:] for a in acls if a[0] == "pods" and a[1] == "src"][0]
svc_net = [a[2:] for a in acls if a[0] == "service_net" and a[1] == "dst"][0]

# ---- what each variant is made of
common = ["ClusterRole/connectd-podmeta", "ClusterRoleBinding/connectd-podmeta", "ConfigMap/connectd",
          "Namespace/connectd", "Service/connectd", "Service/connectd-metrics", "ServiceAccount/connectd"]
tap.is_(kinds(dep), sorted(common + ["Deployment/connectd", "PodDisruptionBudget/connectd"]),
        "deploy/: the base, a Deployment and a PodDisruptionBudget")
tap.is_(kinds(ds), sorted(common + ["DaemonSet/connectd"]), "deploy/daemonset: the base and a DaemonSet")

for variant, objs in (("Deployment", dep), ("DaemonSet", ds)):
    ns = du.find(objs, "Namespace")["metadata"]["name"]
    tap.ok(all(o["metadata"].get("namespace") == ns for o in objs
               if o["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding")),
           "%s: every namespaced object is in namespace %s" % (variant, ns))
    w = du.workload(objs)
    tmpl = w["spec"]["template"]
    spec = tmpl["spec"]
    labels = tmpl["metadata"]["labels"]
    sel = w["spec"]["selector"]["matchLabels"]
    tap.ok(all(labels.get(k) == v for k, v in sel.items()), "%s: its selector matches its pods" % variant)
    c = spec["containers"][0]
    tap.is_(len(spec["containers"]), 1, "%s: one container (podmeta runs inside it, as connectd's helper)" % variant)
    cports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    tap.is_(cports, {"proxy": http_port, "metrics": metrics_port},
            "%s: container ports proxy %d and metrics %d, as the ConfigMap says" % (variant, http_port, metrics_port))

    # Services
    svc = du.find(objs, "Service", "connectd")
    msvc = du.find(objs, "Service", "connectd-metrics")
    for s in (svc, msvc):
        tap.ok(all(labels.get(k) == v for k, v in s["spec"]["selector"].items()),
               "%s: Service %s selects the pods" % (variant, s["metadata"]["name"]))
    tap.is_([(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]], [(3128, "proxy")],
            "%s: Service connectd: 3128 to the proxy port, nothing else" % variant)
    tap.is_([(p["port"], p["targetPort"]) for p in msvc["spec"]["ports"]], [(9128, "metrics")],
            "%s: Service connectd-metrics: 9128 to the metrics port" % variant)
    tap.is_(svc["spec"].get("type", "ClusterIP"), "ClusterIP", "%s: the proxy's Service is a ClusterIP" % variant)
    tap.is_(svc["spec"].get("internalTrafficPolicy"), "Local" if variant == "DaemonSet" else None,
            "%s: internalTrafficPolicy %s" % (variant, "Local" if variant == "DaemonSet" else "unset (Cluster)"))
    ann = tmpl["metadata"].get("annotations", {})
    tap.is_(ann.get("prometheus.io/port"), str(metrics_port), "%s: prometheus.io/port is the metrics port" % variant)

    # probes and shutdown
    tap.is_((c.get("livenessProbe", {}).get("httpGet"), c.get("readinessProbe", {}).get("httpGet")),
            ({"path": "/healthz", "port": "metrics"}, {"path": "/readyz", "port": "metrics"}),
            "%s: liveness /healthz, readiness /readyz, on the metrics port" % variant)
    pre = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = spec.get("terminationGracePeriodSeconds", 30)
    sl = seconds(d.get("shutdown_lifetime"))
    tap.ok(sl is not None and grace >= pre + sl + 5,
           "%s: terminationGracePeriodSeconds %s >= preStop %s + shutdown_lifetime %s + 5" % (variant, grace, pre, sl))

    # security
    psc, csc = spec.get("securityContext", {}), c.get("securityContext", {})

    def eff(k):
        return csc.get(k, psc.get(k))
    tap.ok(eff("runAsNonRoot") is True and eff("runAsUser") == 65532 and eff("runAsGroup") == 65532,
           "%s: runAsNonRoot, uid and gid 65532" % variant)
    tap.ok(csc.get("readOnlyRootFilesystem") is True and csc.get("allowPrivilegeEscalation") is False
           and csc.get("capabilities") == {"drop": ["ALL"]} and not csc.get("privileged"),
           "%s: read-only root, no privilege escalation, every capability dropped" % variant)
    tap.is_(eff("seccompProfile"), {"type": "RuntimeDefault"}, "%s: seccomp RuntimeDefault" % variant)
    tap.ok(not spec.get("hostNetwork") and not any("hostPort" in p for p in c.get("ports", [])),
           "%s: no hostNetwork, no hostPort" % variant)
    tap.is_(spec.get("serviceAccountName"), "connectd", "%s: service account connectd" % variant)
    tap.is_(spec.get("dnsConfig", {}).get("options"), [{"name": "ndots", "value": "1"}],
            "%s: ndots 1: internet names are not tried under the search domains first" % variant)
    res = c.get("resources", {})
    tap.ok(all(k in res.get(t, {}) for t in ("requests", "limits") for k in ("cpu", "memory"))
           and all(quantity(res["requests"][k]) <= quantity(res["limits"][k]) for k in ("cpu", "memory")),
           "%s: cpu and memory requests and limits, requests under limits: %s" % (variant, json.dumps(res)))
    tap.is_(c["image"], "connectd:latest", "%s: image connectd:latest, a placeholder" % variant)

    # logs: conf/fluent-bit/fluent-bit-kubernetes.conf's Path
    fb = du.read("conf/fluent-bit/fluent-bit-kubernetes.conf")
    m = re.search(r"(?m)^\s*Path\s+(\S+)", fb)
    glob = m.group(1) if m else ""
    logfile = "/var/log/containers/%s-abcde_%s_%s-0123abcd.log" % (w["metadata"]["name"], ns, c["name"])
    tap.ok(fnmatch.fnmatch(logfile, glob), "%s: Fluent Bit's Path %s matches its log files (%s)"
           % (variant, glob, logfile))

w = du.workload(dep)
tap.is_(w["spec"]["replicas"], 2, "Deployment: 2 replicas")
aff = w["spec"]["template"]["spec"].get("affinity", {}).get("podAntiAffinity", {})
terms = [t.get("podAffinityTerm", t) for t in aff.get("preferredDuringSchedulingIgnoredDuringExecution", []) +
         aff.get("requiredDuringSchedulingIgnoredDuringExecution", [])]
tap.ok(any(t["topologyKey"] == "kubernetes.io/hostname" and
           t["labelSelector"]["matchLabels"] == w["spec"]["selector"]["matchLabels"] for t in terms),
       "Deployment: anti-affinity spreads its pods over nodes")
tap.is_(w["spec"]["strategy"].get("rollingUpdate"), {"maxSurge": 1, "maxUnavailable": 0},
        "Deployment: a new pod is ready before an old one goes")
pdb = du.find(dep, "PodDisruptionBudget")
tap.ok(pdb["spec"]["selector"]["matchLabels"] == w["spec"]["selector"]["matchLabels"]
       and 0 < pdb["spec"]["minAvailable"] < w["spec"]["replicas"],
       "PodDisruptionBudget: selects the pods, minAvailable 1 of 2")
dsw = du.workload(ds)
tap.is_(dsw["spec"]["updateStrategy"], {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "DaemonSet: the new pod on a node is ready before the old one goes")

# ---- images: override
try:
    for path, want in (("deploy", 1), ("deploy/daemonset", 1)):
        tmp = tempfile.mkdtemp(prefix="ov-", dir=h.tmpdir())
        with open(os.path.join(tmp, "kustomization.yaml"), "w") as f:
            f.write("resources:\n- %s\nimages:\n- name: connectd\n  newName: registry.example.com/ci/connectd\n"
                    "  newTag: \"1.0\"\n" % os.path.relpath(os.path.join(du.TOP, path), tmp))
        text = du.kustomize(os.path.relpath(tmp, du.TOP))
        tap.is_(re.findall(r"(?m)^[\s-]*image: (\S+)", text), ["registry.example.com/ci/connectd:1.0"] * want,
                "an overlay's images: names the image of %s" % path)
except (du.Skip, RuntimeError) as e:
    tap.ok(False, "images: override: %s" % e)

# ---- the examples
svc_dns = "connectd.connectd.svc.cluster.local"
proxy_url = "http://%s:3128" % svc_dns
runner = [o for o in examples["deploy/examples/runner-pod.yaml"] if o["kind"] == "Pod"][0]
cs = {c["name"]: c for c in runner["spec"]["containers"] + runner["spec"].get("initContainers", [])}


def env_of(c):
    """A container's env, $(VAR) references expanded as the kubelet does."""
    out = {}
    for e in c.get("env", []):
        out[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: out.get(m.group(1), m.group(0)), e.get("value", ""))
    return out


renv = env_of(cs["runner"])
tap.is_({k: renv.get(k) for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")},
        dict.fromkeys(("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"), proxy_url),
        "layer 1: the runner's proxy variables, both cases, name the Service's DNS name and port")
no_proxy = renv.get("NO_PROXY", "")
tap.is_(renv.get("no_proxy"), no_proxy, "layer 1: no_proxy as NO_PROXY")
npl = no_proxy.split(",")
need = ["localhost", "127.0.0.1", "::1", ".svc", ".cluster.local"] + pod_net + svc_net
tap.is_([x for x in need if x not in npl], [],
        "NO_PROXY keeps localhost, cluster names, the pod network %s and the service network %s direct"
        % (pod_net, svc_net))
cm = [o for o in examples["deploy/examples/runner-pod.yaml"] if o["kind"] == "ConfigMap"][0]
dj = json.loads(cm["data"]["daemon.json"])
tap.is_(dj, json.loads(du.read("deploy/examples/daemon.json")), "layer 2: the pod's daemon.json is examples/daemon.json")
tap.is_(dj.get("proxies"), {"http-proxy": proxy_url, "https-proxy": proxy_url, "no-proxy": no_proxy},
        "layer 2: daemon.json proxies (Docker >= 23) name the Service, the same NO_PROXY")
dind = cs["dind"]
mnt = [m for m in dind["volumeMounts"] if m["mountPath"] == "/etc/docker/daemon.json"]
vol = [v for v in runner["spec"]["volumes"] if mnt and v["name"] == mnt[0]["name"]]
tap.ok(mnt and mnt[0].get("subPath") == "daemon.json" and vol and
       vol[0].get("configMap", {}).get("name") == cm["metadata"]["name"],
       "layer 2: the dind container reads it at /etc/docker/daemon.json")
tap.ok(dind.get("securityContext", {}).get("privileged") is True, "the dind sidecar is privileged, as DinD must be")
tap.is_(env_file("deploy/examples/dockerd.env"), {"HTTP_PROXY": proxy_url, "HTTPS_PROXY": proxy_url, "NO_PROXY": no_proxy},
        "layer 2 for dockerd < 23: dockerd.env says the same in its environment")
tap.is_(env_file("deploy/examples/proxy.env"), {k: renv[k] for k in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
                                                                      "http_proxy", "https_proxy", "no_proxy")},
        "layer 1: proxy.env is the runner's environment")
dc = json.loads(du.read("deploy/examples/docker-config.json"))
cip = "http://CONNECTD_CLUSTER_IP:3128"
tap.is_(dc, {"proxies": {"default": {"httpProxy": cip, "httpsProxy": cip, "noProxy": no_proxy}}},
        "layer 3: docker-config.json proxies.default names the ClusterIP (a placeholder), not a DNS name")
init = cs["docker-proxy-config"]
script = " ".join(init["command"])
dmount = [m["mountPath"] for m in init["volumeMounts"]]
rmount = [m["mountPath"] for m in cs["runner"]["volumeMounts"]]
tap.ok("getent hosts %s" % svc_dns in script and "/home/runner/.docker/config.json" in script
       and '"httpProxy": "http://$ip:3128"' in script and '"noProxy": "$NO_PROXY"' in script
       and env_of(init).get("NO_PROXY") == no_proxy
       and "/home/runner/.docker" in dmount and "/home/runner/.docker" in rmount,
       "layer 3: an init container writes the runner's ~/.docker/config.json with the resolved ClusterIP")
tap.ok(cs["runner"].get("env") and renv.get("DOCKER_HOST") == "unix:///var/run/docker.sock"
       and any(m["mountPath"] == "/var/run" for m in dind["volumeMounts"]),
       "the runner talks to the DinD daemon through the shared socket")
alltext = "\n".join(du.read("deploy/examples/" + x) for x in sorted(os.listdir(du.DEPLOY + "/examples")))
tap.ok(not re.search(r"update-ca-certificates|SSL_CERT_FILE|NODE_EXTRA_CA_CERTS|REQUESTS_CA_BUNDLE|"
                     r"ca-certificates\.crt|\.pem\b|sslCAInfo", alltext),
       "no CA certificate anywhere in the examples: connectd never terminates TLS")

npol = examples["deploy/examples/networkpolicy.yaml"][0]
tap.is_(npol["spec"]["podSelector"]["matchLabels"], w["spec"]["selector"]["matchLabels"],
        "NetworkPolicy: applies to the connectd pods")
tap.is_(npol["metadata"]["namespace"], w["metadata"]["namespace"], "NetworkPolicy: in connectd's namespace")
rules = npol["spec"]["ingress"]
proxy_rule = [r for r in rules if [p["port"] for p in r["ports"]] == [http_port]]
metrics_rule = [r for r in rules if [p["port"] for p in r["ports"]] == [metrics_port]]
tap.ok(len(rules) == 2 and proxy_rule and metrics_rule, "NetworkPolicy: one rule for 3128, one for 9128")
sel = proxy_rule[0]["from"][0]["podSelector"]["matchLabels"] if proxy_rule else {}
tap.ok(sel and all(runner["metadata"]["labels"].get(k) == v for k, v in sel.items()),
       "NetworkPolicy: the example runner's labels let it reach the proxy port (%s)" % sel)
msel = metrics_rule[0]["from"][0] if metrics_rule else {}
tap.ok(msel.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") == "prometheus"
       and "namespaceSelector" in msel, "NetworkPolicy: Prometheus reaches the metrics port")

# ---- sizing: the measured figures fit the requests and limits
if tap.sanitized(pu.PODMETA) or tap.sanitized(h.connectd_bin()):
    tap.skip("memory figures are meaningless under sanitizers", 4)
    tap.done()
    sys.exit(0)


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])


MB = 1024.0
pm = {}  # pods: (RSS, peak RSS) in MB, podmeta in cluster mode once synced
for n in (110, 1000, 3000):
    pods = kf.generate_pods(n)
    api = K8sAPI(pods=pods).start()
    with open(api.path("namespace"), "w") as f:
        f.write("connectd")
    p = pu.Podmeta(["--sync-wait", "120"], env={"KUBERNETES_SERVICE_HOST": "127.0.0.1",
                                                "KUBERNETES_SERVICE_PORT": str(api.port),
                                                "PODMETA_SERVICEACCOUNT_DIR": api.dir})
    r = p.lookup(pods[-1]["status"]["podIP"], timeout=130)
    if r.status != "OK":
        tap.diag("podmeta with %d pods: %r" % (n, r.raw))
    pm[n] = (status_kb(p.p.pid, "VmRSS") / MB, status_kb(p.p.pid, "VmHWM") / MB)
    p.close()
    api.stop()
# per pod, above a page (below that, the pods reuse what parsing the page freed)
per_pod = (pm[3000][0] - pm[1000][0]) / 2000
tap.diag("podmeta: RSS (peak) %s MB: %.2f KB per pod" % (
    ", ".join("%.1f (%.1f) at %d pods" % (pm[n][0], pm[n][1], n) for n in sorted(pm)), per_pod * 1024))

# connectd with idle tunnels (the origin accepts and holds them)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
T = 500 if hard >= 4096 else 100
if soft < 4 * T + 200:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * T + 1000), hard))
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(T + 64)
held = []


def accept():
    while True:
        try:
            held.append(ls.accept()[0])
        except OSError:
            return


threading.Thread(target=accept, daemon=True).start()
h.at_cleanup(ls.close)
cd = h.Connectd("access_log /dev/null json\n")
base = status_kb(cd.proc.pid, "VmRSS") / MB
socks = []
for i in range(T):
    s = socket.create_connection(("127.0.0.1", cd.port), timeout=10 * h.SLOW)
    s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % ls.getsockname()[1])
    h.recv_head(s)
    socks.append(s)
with_t = status_kb(cd.proc.pid, "VmRSS") / MB
per_tunnel = (with_t - base) / T
tap.diag("connectd: %.1f MB, %.1f MB with %d idle tunnels: %.2f KB per tunnel" % (base, with_t, T, per_tunnel * 1024))
for s in socks:
    s.close()
cd.stop()

KERNEL_IDLE = 10 / 1024.0  # MB per idle tunnel, the two sockets (measured: under 10 KB)
BUSY = 10.0                # MB of socket buffers of a tunnel streaming to a slow client


def sizes(pods, tunnels):
    """(steady, peak) MB of the pod: podmeta's from the nearest measured
    count at or below pods, plus per_pod beyond it; connectd's."""
    n = max(k for k in pm if k <= pods)
    extra = (pods - n) * per_pod
    cdm = base + tunnels * (per_tunnel + KERNEL_IDLE)
    return pm[n][0] + extra + cdm, pm[n][1] + extra + cdm


for variant, objs, pods, tunnels, busy in (("Deployment", dep, 10000, 5000, 30), ("DaemonSet", ds, 110, 1000, 15)):
    res = du.workload(objs)["spec"]["template"]["spec"]["containers"][0]["resources"]
    steady, peak = sizes(pods, tunnels)
    req, lim = quantity(res["requests"]["memory"]) / 2 ** 20, quantity(res["limits"]["memory"]) / 2 ** 20
    tap.ok(steady <= req, "%s, %d pods and %d tunnels: steady %.0f MB fits the request %.0f MiB"
           % (variant, pods, tunnels, steady, req))
    tap.ok(peak + busy * BUSY <= lim, "%s: peak %.0f MB, with %d busy tunnels' buffers, fits the limit %.0f MiB"
           % (variant, peak, busy, lim))
tap.done()
