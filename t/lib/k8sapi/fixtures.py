"""k8sapi/fixtures.py: the pods the test API server serves.

The recorded kube-apiserver bytes in t/fixtures/k8s/ (a PodList of 8 pods
from a v1.36 cluster, its watch-list stream, Fluent Bit's test pods), and
pods made from them: make_pod() (the recorded coredns pod with another
identity), variant(), generate_pods(), and the deliberately broken objects
the bad_next()/bad_watch() modes send.  No I/O but reading the fixtures.
"""
import copy
import json
import os
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
T_SRCDIR = os.environ.get("T_SRCDIR") or os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(T_SRCDIR, "fixtures", "k8s")
PODLIST_FIXTURE = os.path.join(FIXTURES, "derived_v1-36_podlist_response_body.json")
WATCHLIST_FIXTURE = os.path.join(FIXTURES, "derived_v1-36_watchlist_response_body.ndjson")

FIXTURE_NODE = "v1.36-control-plane"
FIXTURE_HOST_IP = "172.18.0.3"


def now_rfc3339(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# --------------------------------------------------------------------------
# Pods: fixtures, copies and generated ones

_fixture_cache = {}


def load_fixture_list():
    if "list" not in _fixture_cache:
        with open(PODLIST_FIXTURE, "rb") as f:
            raw = f.read()
        _fixture_cache["raw"] = raw
        _fixture_cache["list"] = json.loads(raw)
    return _fixture_cache["list"]


def fixture_podlist_bytes():
    load_fixture_list()
    return _fixture_cache["raw"]


def fixture_pods():
    """Deep copies of the 8 recorded pods (as PodList items: no kind/apiVersion)."""
    return copy.deepcopy(load_fixture_list()["items"])


def fixture_watchlist_lines():
    with open(WATCHLIST_FIXTURE, "rb") as f:
        return [line + b"\n" for line in f.read().split(b"\n") if line]


def fluentbit_pods():
    """The two pods from Fluent Bit's tests (kairosdb: escaped JSON with a
    trailing newline in an annotation; use-kubelet-enabled: prometheus.io/*
    annotations), as PodList items."""
    out = []
    with open(os.path.join(FIXTURES, "fluent-bit_default_kairosdb-914055854-b63vq.meta.json")) as f:
        p = json.load(f)
    p.pop("kind", None)
    p.pop("apiVersion", None)
    out.append(p)
    with open(os.path.join(FIXTURES, "fluent-bit_options_use-kubelet-enabled.meta.json")) as f:
        for p in json.load(f)["items"]:
            p.pop("kind", None)
            p.pop("apiVersion", None)
            out.append(p)
    return out


def pod_key(pod):
    m = pod["metadata"]
    return "%s/%s" % (m.get("namespace", ""), m["name"])


def pod_ips(pod):
    st = pod.get("status") or {}
    ips = [e.get("ip") for e in (st.get("podIPs") or []) if isinstance(e, dict)]
    if not ips and st.get("podIP"):
        ips = [st["podIP"]]
    return ips


def _template_pod():
    for p in load_fixture_list()["items"]:
        if p["metadata"]["name"].startswith("coredns-"):
            return p
    raise RuntimeError("no coredns pod in the fixture")


def make_pod(name, ip=None, namespace="default", ips=None, node="node-1", uid=None,
             phase="Running", labels=None, annotations=None, owner="ReplicaSet",
             owner_name=None, host_network=False, created=None, started=None,
             host_ip="192.168.49.2", slim=False):
    """A pod derived from the recorded coredns pod, with its identity changed.

    ip: the primary address; ips: all podIPs (default [ip]); owner: kind of the
    controller ownerReference (None for a bare pod); created/started: epoch
    seconds or RFC 3339 strings.  Spec, managedFields and conditions are shared
    (read-only) with the template so that 10,000 pods stay cheap; slim=True
    drops managedFields and most of the spec altogether.
    """
    tpl = _template_pod()
    if ips is None:
        ips = [ip] if ip else []
    ip = ips[0] if ips else None
    uid = uid or str(uuid.uuid4())
    if created is None:
        created = time.time()
    if not isinstance(created, str):
        created = now_rfc3339(created)
    if started is None:
        started = created
    if not isinstance(started, str):
        started = now_rfc3339(started)
    if labels is None:
        labels = {"app": name.rsplit("-", 1)[0]}
    md = {"name": name}
    if owner in ("ReplicaSet", "Job", "DaemonSet", "StatefulSet"):
        owner_name = owner_name or name.rsplit("-", 1)[0]
        md["generateName"] = owner_name + "-"
    md.update({"namespace": namespace, "uid": uid, "resourceVersion": "0",
               "generation": 1, "creationTimestamp": created})
    if labels:
        md["labels"] = dict(labels)
    if annotations:
        md["annotations"] = dict(annotations)
    if owner:
        owner_name = owner_name or (node if owner == "Node" else name.rsplit("-", 1)[0])
        md["ownerReferences"] = [{
            "apiVersion": "v1" if owner == "Node" else ("batch/v1" if owner == "Job" else "apps/v1"),
            "kind": owner, "name": owner_name,
            "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, owner + "/" + owner_name)),
            "controller": True, "blockOwnerDeletion": True}]
    if not slim:
        md["managedFields"] = tpl["metadata"]["managedFields"]
    spec = dict(tpl["spec"]) if not slim else {
        "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}],
        "restartPolicy": "Always"}
    spec["nodeName"] = node
    if host_network:
        spec["hostNetwork"] = True
    st = dict(tpl["status"]) if not slim else {}
    st["phase"] = phase
    st["hostIP"] = host_ip
    st["hostIPs"] = [{"ip": host_ip}]
    if ip:
        st["podIP"] = ip
        st["podIPs"] = [{"ip": a} for a in ips]
    else:
        st.pop("podIP", None)
        st.pop("podIPs", None)
    st["startTime"] = started
    if phase in ("Succeeded", "Failed") and not slim:
        st["conditions"] = [dict(c, status="False") if c.get("type") in ("Ready", "ContainersReady")
                            else c for c in st.get("conditions", [])]
    return {"metadata": md, "spec": spec, "status": st}


def edit(pod, ip=None, ips=None, phase=None, labels=None, annotations=None):
    """Change a pod's addresses (ip: the only one; ips: all, the first
    primary), phase, labels or annotations, in place."""
    st = pod.setdefault("status", {})
    if phase is not None:
        st["phase"] = phase
    if ip is not None and ips is None:
        ips = [ip]
    if ips is not None:
        st["podIP"] = ips[0]
        st["podIPs"] = [{"ip": a} for a in ips]
    if labels is not None:
        pod["metadata"]["labels"] = labels
    if annotations is not None:
        pod["metadata"]["annotations"] = annotations
    return pod


def variant(pod, name=None, ip=None, ips=None, uid=None, created=None, phase=None,
            namespace=None, node=None, labels=None, annotations=None, host_network=None):
    """A copy of a (fixture) pod with some identity fields changed."""
    p = copy.deepcopy(pod)
    md, spec, st = p["metadata"], p["spec"], p.setdefault("status", {})
    if name is not None:
        md["name"] = name
    if namespace is not None:
        md["namespace"] = namespace
    md["uid"] = uid or str(uuid.uuid4())
    if created is not None:
        md["creationTimestamp"] = created if isinstance(created, str) else now_rfc3339(created)
        st["startTime"] = md["creationTimestamp"]
    if node is not None:
        spec["nodeName"] = node
    if host_network is not None:
        spec["hostNetwork"] = host_network
    return edit(p, ip=ip, ips=ips, phase=phase, labels=labels, annotations=annotations)


def generate_pods(n, prefix="gen", namespaces=20, nodes=10, base="10.128.0.0", slim=False):
    """n distinct pods with distinct IPs counting up from base."""
    b = [int(x) for x in base.split(".")]
    start = (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]
    t0 = time.time() - 3600
    out = []
    for i in range(n):
        a = start + 1 + i + (i // 254) * 2  # skip .0 and .255
        ip = "%d.%d.%d.%d" % (a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255)
        out.append(make_pod("%s-%05d" % (prefix, i), ip, namespace="ns-%02d" % (i % namespaces),
                            node="node-%d" % (i % nodes),
                            uid="00000000-0000-4000-8000-%012d" % i,
                            labels={"app": "%s-%d" % (prefix, i % 50), "idx": str(i)},
                            owner="ReplicaSet", owner_name="%s-%d-7d9c" % (prefix, i % 50),
                            created=t0 + i, slim=slim))
    return out


def with_kind(p, kind="Pod"):
    if "kind" in p:
        return p
    d = {"kind": kind, "apiVersion": "v1"}
    d.update(p)
    return d


# --------------------------------------------------------------------------
# Namespaces

NS_CREATED = "2026-06-15T04:14:40Z"  # the recorded cluster's namespaces' age


def make_namespace(name, rv=None, labels=None, annotations=None, created=None, uid=None):
    """A Namespace as kube-apiserver stores it (no kind/apiVersion, as a list
    item): the kubernetes.io/metadata.name label it always sets, the
    kubernetes finalizer, phase Active.  uid: stable per name unless given."""
    md = {"name": name, "uid": uid or str(uuid.uuid5(uuid.NAMESPACE_DNS, "ns/" + name))}
    if rv is not None:
        md["resourceVersion"] = str(rv)
    if created is None:
        created = time.time()
    md["creationTimestamp"] = created if isinstance(created, str) else now_rfc3339(created)
    lb = {"kubernetes.io/metadata.name": name}
    lb.update(labels or {})
    lb["kubernetes.io/metadata.name"] = name
    md["labels"] = lb
    if annotations:
        md["annotations"] = dict(annotations)
    return {"metadata": md, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def merge_map(obj, field, changes):
    """metadata[field] updated from changes ({key: value, or None to remove
    the key}), in place; an emptied map goes (as the apiserver omits it)."""
    md = obj["metadata"]
    m = dict(md.get(field) or {})
    for k, v in changes.items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    if m:
        md[field] = m
    else:
        md.pop(field, None)
    return obj


def huge_namespace(size=8 * 1024 * 1024, name="huge-ns"):
    return make_namespace(name, annotations={"example.com/huge": "x" * size})


def huge_pod(size=8 * 1024 * 1024, name="huge-1", ip="10.99.9.9"):
    """A pod with one enormous annotation value (default 8 MiB)."""
    return make_pod(name, ip, annotations={"example.com/huge": "x" * size,
                                           "kubectl.kubernetes.io/last-applied-configuration": "{" + "y" * 1000 + "}\n"})


def wrongtypes_podlist(rv):
    """A PodList whose items have the wrong JSON types in every field podmeta reads."""
    ok = make_pod("typesok-1", "10.98.0.1", namespace="types")
    items = [
        "not an object",
        42,
        None,
        {"metadata": "str", "status": []},
        {"metadata": {"name": 5, "namespace": ["x"], "uid": None, "labels": "a=b",
                      "annotations": [1, 2], "ownerReferences": {"kind": "X"},
                      "creationTimestamp": 12},
         "spec": {"nodeName": 7, "hostNetwork": "yes"},
         "status": {"podIP": 10, "podIPs": "10.98.0.2", "phase": 3}},
        {"metadata": {"name": "wt-2", "namespace": "types", "uid": "u-2",
                      "labels": {"a": 1, "b": None, "c": {"d": "e"}, "e": [1]},
                      "ownerReferences": [None, 5, {"kind": 1, "name": None}]},
         "spec": {"nodeName": None},
         "status": {"phase": "Running", "podIP": "10.98.0.3",
                    "podIPs": [None, 5, "10.98.0.3", {"ip": 7}, {"ip": "not-an-ip"},
                               {"ip": "10.98.0.3\u0000x"}]}},
        {"metadata": {"name": "wt-3", "namespace": "types", "uid": "u-3",
                      "creationTimestamp": "yesterday"},
         "status": {"phase": "Running", "podIPs": [{"ip": "10.98.0.4"}], "startTime": "never"}},
        {"metadata": {"name": "wt-4" * 3000, "namespace": "types", "uid": "u-4"},
         "status": {"phase": "Running", "podIPs": [{"ip": "999.1.1.1"}, {"ip": ""},
                                                    {"ip": "::ffff:10.98.0.5"}]}},
        {"status": {"phase": "Running", "podIPs": [{"ip": "10.98.0.6"}]}},
        ok,
    ]
    return {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": str(rv)}, "items": items}


def wrongtypes_watch_lines():
    lines = [
        b'{"type":5,"object":{}}\n',
        b'{"type":"ADDED","object":"str"}\n',
        b'{"type":"ADDED"}\n',
        b'{"object":{"kind":"Pod"}}\n',
        b'[1,2,3]\n',
        b'"just a string"\n',
        b'{"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":1,"namespace":null,"resourceVersion":7}}}\n',
        b'{"type":"DELETED","object":{"kind":"Pod","apiVersion":"v1","metadata":{}}}\n',
        b'{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":12}}}\n',
        b'{"type":"ERROR","object":{"kind":"Status","code":"x"}}\n',
        b'{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"wtw-1","namespace":"types","uid":"w-1","labels":[]},"status":{"phase":"Running","podIPs":{"ip":"10.98.1.1"}}}}\n',
        b'{"type":"UNKNOWN","object":{"kind":"Pod"}}\n',
        b'\n',
        b'{}\n',
    ]
    return lines
