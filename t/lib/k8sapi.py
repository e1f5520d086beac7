"""k8sapi.py: a test Kubernetes API server for podmeta's scenarios.

Stdlib only.  It speaks the wire protocol of a real kube-apiserver closely
enough for kubectl and for podmeta (libcurl + jansson):

* HTTPS (HTTP/1.1, ALPN http/1.1) with a CA and server certificate generated
  by the openssl CLI into a temporary directory at start(); bearer tokens
  (401 with a Status body for a bad one; 403 for anonymous requests except
  /version and the health endpoints); optional client certificates.
* GET /api/v1/pods and /api/v1/namespaces/NS/pods: limit/continue pagination
  from a consistent snapshot (continue tokens shaped like the apiserver's,
  remainingItemCount), fieldSelector (spec.nodeName, metadata.name,
  metadata.namespace, status.phase, status.podIP), equality labelSelector.
  Bodies are serialized like Go's encoding/json (compact, HTML-escaped), so
  the pristine fixture PodList goes out byte-for-byte as recorded.
* watch=1/true: chunked stream, one JSON event per line and per chunk,
  ADDED/MODIFIED/DELETED/BOOKMARK/ERROR; resourceVersion honoured (only later
  events), allowWatchBookmarks, timeoutSeconds, sendInitialEvents (replays the
  recorded watch-list stream while the state is the pristine fixture), field
  selectors with the cacher's ADDED/DELETED conversion.
* Discovery (/api, /api/v1, /apis, /version) and Table output
  (Accept: application/json;as=Table;v=v1;g=meta.k8s.io) for plain
  `kubectl get pods`.

The control API (in-process, thread-safe) lets a test script a scenario:

    api = K8sAPI(); api.start()
    api.add_pod(make_pod("web-1", "10.1.0.5")); api.delete_pod("default", "web-1")
    api.modify_pod("default", "web-1", phase="Succeeded")
    api.inject_410(); api.inject_expired_error_event()
    api.fail_next(429, retry_after=1); api.fail_next(500)
    api.bad_next("list", "truncated"); api.bad_watch("close_mid_chunk")
    api.rotate_token(); api.restart()
    api.count("list"), api.requests("watch")

Run it by hand: python3 t/lib/k8sapi.py [--pods N] prints a kubeconfig path.
"""
import base64
import bisect
import copy
import datetime
import json
import os
import re
import secrets
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, unquote, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
T_SRCDIR = os.environ.get("T_SRCDIR") or os.path.dirname(HERE)
FIXTURES = os.path.join(T_SRCDIR, "fixtures", "k8s")
PODLIST_FIXTURE = os.path.join(FIXTURES, "derived_v1-36_podlist_response_body.json")
WATCHLIST_FIXTURE = os.path.join(FIXTURES, "derived_v1-36_watchlist_response_body.ndjson")

FIXTURE_NODE = "v1.36-control-plane"
FIXTURE_HOST_IP = "172.18.0.3"


# --------------------------------------------------------------------------
# JSON like Go's encoding/json (what kube-apiserver writes)

def go_json(obj):
    """Compact JSON with Go's HTML escaping, as bytes (no trailing newline)."""
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    if "<" in s or ">" in s or "&" in s or "\u2028" in s or "\u2029" in s:
        s = (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
             .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return s.encode("utf-8", "surrogatepass")


def status_obj(code, reason, message, details=None):
    d = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason}
    if details is not None:
        d["details"] = details
    d["code"] = code
    return d


def now_rfc3339(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _truthy(v):
    return v in ("1", "t", "T", "true", "TRUE", "True")


# --------------------------------------------------------------------------
# Pods: fixtures, copies and generated ones

_fixture_cache = {}


def _load_fixture_list():
    if "list" not in _fixture_cache:
        with open(PODLIST_FIXTURE, "rb") as f:
            raw = f.read()
        _fixture_cache["raw"] = raw
        _fixture_cache["list"] = json.loads(raw)
    return _fixture_cache["list"]


def fixture_podlist_bytes():
    _load_fixture_list()
    return _fixture_cache["raw"]


def fixture_pods():
    """Deep copies of the 8 recorded pods (as PodList items: no kind/apiVersion)."""
    return copy.deepcopy(_load_fixture_list()["items"])


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
    for p in _load_fixture_list()["items"]:
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
    if labels is not None:
        md["labels"] = labels
    if annotations is not None:
        md["annotations"] = annotations
    if node is not None:
        spec["nodeName"] = node
    if host_network is not None:
        spec["hostNetwork"] = host_network
    if ip is not None and ips is None:
        ips = [ip]
    if ips is not None:
        st["podIP"] = ips[0]
        st["podIPs"] = [{"ip": a} for a in ips]
    if phase is not None:
        st["phase"] = phase
    return p


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


# --------------------------------------------------------------------------
# Selectors

_FIELDS = {
    "metadata.name": lambda p: p["metadata"].get("name", ""),
    "metadata.namespace": lambda p: p["metadata"].get("namespace", ""),
    "spec.nodeName": lambda p: (p.get("spec") or {}).get("nodeName", ""),
    "spec.restartPolicy": lambda p: (p.get("spec") or {}).get("restartPolicy", ""),
    "spec.schedulerName": lambda p: (p.get("spec") or {}).get("schedulerName", ""),
    "spec.serviceAccountName": lambda p: (p.get("spec") or {}).get("serviceAccountName", ""),
    "spec.hostNetwork": lambda p: "true" if (p.get("spec") or {}).get("hostNetwork") else "false",
    "status.phase": lambda p: (p.get("status") or {}).get("phase", ""),
    "status.podIP": lambda p: (p.get("status") or {}).get("podIP", ""),
    "status.nominatedNodeName": lambda p: (p.get("status") or {}).get("nominatedNodeName", ""),
}


class SelectorError(Exception):
    pass


def _parse_selector(text, fields):
    terms = []
    for part in [t for t in text.split(",") if t.strip()]:
        m = re.match(r"^\s*([^!=\s]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            if fields:
                raise SelectorError("invalid selector: '%s'; can't understand '%s'" % (text, part))
            m2 = re.match(r"^\s*(!?)([A-Za-z0-9./_-]+)\s*$", part)
            if not m2:
                raise SelectorError("unable to parse requirement: %s" % part)
            terms.append((m2.group(2), "!exists" if m2.group(1) else "exists", None))
            continue
        k, op, v = m.groups()
        if fields and k not in _FIELDS:
            raise SelectorError('field label not supported: %s' % k)
        terms.append((k, "!=" if op == "!=" else "=", v))
    return terms


def selector_matcher(field_sel, label_sel):
    fterms = _parse_selector(field_sel or "", True)
    lterms = _parse_selector(label_sel or "", False)

    def match(p):
        try:
            for k, op, v in fterms:
                if (_FIELDS[k](p) == v) != (op == "="):
                    return False
            labels = p["metadata"].get("labels") or {}
            for k, op, v in lterms:
                if op == "exists" and k not in labels:
                    return False
                if op == "!exists" and k in labels:
                    return False
                if op == "=" and labels.get(k) != v:
                    return False
                if op == "!=" and labels.get(k) == v:
                    return False
        except (KeyError, TypeError, AttributeError):
            return False
        return True
    return match, bool(fterms or lterms)


# --------------------------------------------------------------------------
# Table output (kubectl get pods without -o)

_POD_COLUMNS = [
    ("Name", "name", "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names", 0),
    ("Ready", "", "The aggregate readiness state of this pod for accepting traffic.", 0),
    ("Status", "", "The aggregate status of the containers in this pod.", 0),
    ("Restarts", "", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.", 0),
    ("Age", "", "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata", 0),
    ("IP", "", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.", 1),
    ("Node", "", "nodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for preemption by the pod in the nominated node.", 1),
    ("Nominated Node", "", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot schedule right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node.", 1),
    ("Readiness Gates", "", "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates", 1),
]


def _human_age(created):
    try:
        t = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return "<unknown>"
    d = int(time.time() - t)
    if d < -1:
        return "<invalid>"
    d = max(d, 0)
    if d < 120:
        return "%ds" % d
    m = d // 60
    if m < 10:
        return "%dm%ds" % (m, d % 60) if d % 60 else "%dm" % m
    if m < 180:
        return "%dm" % m
    h = d // 3600
    if h < 8:
        return "%dh%dm" % (h, m % 60) if m % 60 else "%dh" % h
    if h < 48:
        return "%dh" % h
    if h < 192:
        return "%dd%dh" % (h // 24, h % 24) if h % 24 else "%dd" % (h // 24)
    if h < 24 * 365 * 2:
        return "%dd" % (h // 24)
    return "%dy" % (h // (24 * 365))


def table_row(pod):
    md, spec, st = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    cs = st.get("containerStatuses") or []
    ready = sum(1 for c in cs if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in cs)
    status = st.get("reason") or st.get("phase") or "Unknown"
    if md.get("deletionTimestamp"):
        status = "Terminating"
    gates = spec.get("readinessGates")
    cells = [md.get("name"), "%d/%d" % (ready, len(spec.get("containers") or [])), status,
             str(restarts), _human_age(md.get("creationTimestamp")),
             st.get("podIP") or "<none>", spec.get("nodeName") or "<none>",
             st.get("nominatedNodeName") or "<none>",
             ("%d/%d" % (0, len(gates))) if gates else "<none>"]
    meta = {k: v for k, v in md.items()}
    return {"cells": cells, "object": {"kind": "PartialObjectMetadata",
                                       "apiVersion": "meta.k8s.io/v1", "metadata": meta}}


def table(pods, rv, cont=None, remaining=None, headers=True):
    lm = {"resourceVersion": str(rv)}
    if cont:
        lm["continue"] = cont
        if remaining is not None:
            lm["remainingItemCount"] = remaining
    t = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": lm}
    if headers:
        t["columnDefinitions"] = [{"name": n, "type": "string", "format": f, "description": d,
                                   "priority": pr} for n, f, d, pr in _POD_COLUMNS]
    t["rows"] = [table_row(p) for p in pods]
    return t


# --------------------------------------------------------------------------
# Certificates

def make_certs(d):
    """CA, server (IP:127.0.0.1, DNS:localhost) and client certs in directory d."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3",
        "-subj", "/CN=k8sapi-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,"
                "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=clientAuth\n")
    for name, subj in (("server", "/CN=kube-apiserver"),
                       ("client", "/O=system:masters/CN=podmeta-test")):
        run("req", "-new", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", subj)
        run("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "3", "-extfile", name + ".ext")
    # a second, unrelated CA: for "wrong CA" scenarios
    run("req", "-x509", *ec, "-keyout", "other-ca.key", "-out", "other-ca.crt", "-days", "3",
        "-subj", "/CN=k8sapi-other-ca", "-addext", "basicConstraints=critical,CA:TRUE")


# --------------------------------------------------------------------------
# HTTP server plumbing

class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, api):
        self.api = api
        socketserver.TCPServer.__init__(self, addr, handler)

    def finish_request(self, request, client_address):
        api = self.api
        try:
            request.settimeout(10)
            tls = api._ssl_ctx.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as e:
            with api._lock:
                api.tls_errors.append(str(e))
            try:
                request.close()
            except OSError:
                pass
            return
        tls.settimeout(120)
        with api._lock:
            api._conns.add(tls)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            with api._lock:
                api._conns.discard(tls)
            try:
                tls.close()
            except OSError:
                pass

    def shutdown_request(self, request):
        try:
            request.close()
        except OSError:
            pass

    def handle_error(self, request, client_address):
        e = sys.exc_info()[1]
        if not isinstance(e, (BrokenPipeError, ConnectionResetError, ssl.SSLError,
                              socket.timeout, OSError)):
            import traceback
            self.api._note_error(traceback.format_exc())


class _Abort(Exception):
    """Stop handling this connection (already closed or poisoned)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "k8sapi"

    def log_message(self, fmt, *args):
        pass

    def send_response(self, code, message=None):
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    # ---- helpers
    def _std_headers(self, ctype="application/json"):
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Type", ctype)
        self.send_header("X-Kubernetes-Pf-Flowschema-Uid", self.server.api._pf_fs)
        self.send_header("X-Kubernetes-Pf-Prioritylevel-Uid", self.server.api._pf_pl)

    def _send_body(self, code, body, ctype="application/json", extra=(), chunked=None):
        """Go's net/http: Content-Length for small bodies, chunked above 4 KB."""
        if chunked is None:
            chunked = len(body) > 4096
        self.send_response(code)
        self._std_headers(ctype)
        for k, v in extra:
            self.send_header(k, v)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if chunked:
            # Go flushes its 4 KB bufio writer as it fills: emulate with 32 KB chunks
            for i in range(0, len(body), 32768):
                self._chunk(body[i:i + 32768])
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)
        self._rec["status"] = code

    def _send_json(self, code, obj, extra=(), chunked=None):
        self._send_body(code, go_json(obj) + b"\n", extra=extra, chunked=chunked)

    def _send_status(self, code, reason, message, details=None, extra=()):
        self._send_json(code, status_obj(code, reason, message, details), extra=extra)

    def _chunk(self, data):
        if not data:
            return
        step = getattr(self, "_split_chunks", 0)
        if step:
            for i in range(0, len(data), step):
                part = data[i:i + step]
                self.wfile.write(b"%x\r\n" % len(part) + part + b"\r\n")
        else:
            self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")

    def _kill_connection(self):
        self.close_connection = True
        try:
            socket.socket.shutdown(self.connection, socket.SHUT_RDWR)
        except OSError:
            pass
        raise _Abort()

    # ---- dispatch
    def do_GET(self):
        try:
            self._do_get()
        except _Abort:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout, OSError):
            self.close_connection = True

    def _method_not_allowed(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        self._rec = {"status": None}
        self._send_status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    do_POST = do_PUT = do_PATCH = do_DELETE = _method_not_allowed

    def _do_get(self):
        api = self.server.api
        self._split_chunks = 0
        u = urlsplit(self.path)
        path = u.path
        q = dict(parse_qsl(u.query, keep_blank_values=True))
        auth = self.headers.get("Authorization") or ""
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        cert_user = None
        try:
            pc = self.connection.getpeercert()
            if pc:
                for rdn in pc.get("subject", ()):
                    for k, v in rdn:
                        if k == "commonName":
                            cert_user = v
        except (ValueError, AttributeError):
            pass
        kind, ns, name = "other", None, None
        m = re.match(r"^/api/v1(?:/namespaces/([^/]+))?/pods(?:/([^/]+))?/?$", path)
        if m:
            ns = unquote(m.group(1)) if m.group(1) else None
            name = unquote(m.group(2)) if m.group(2) else None
            if name:
                kind = "get"
            elif _truthy(q.get("watch", "")):
                kind = "watch"
            else:
                kind = "list"
        elif re.match(r"^/api/v1/namespaces(/[^/]+)?/?$", path):
            kind = "namespace"
            name = unquote(path.rstrip("/").split("/")[4]) if path.rstrip("/").count("/") == 4 else None
        elif path in ("/api", "/api/", "/apis", "/apis/", "/api/v1", "/api/v1/", "/version",
                      "/version/") or path.startswith("/openapi"):
            kind = "discovery"
        elif path in ("/healthz", "/livez", "/readyz"):
            kind = "health"
        rec = {"t": time.time(), "kind": kind, "path": path, "query": q, "token": token,
               "cert_user": cert_user, "accept": self.headers.get("Accept"),
               "user_agent": self.headers.get("User-Agent"), "status": None,
               "peer": self.client_address[0]}
        self._rec = rec
        with api._lock:
            api._requests.append(rec)
        # ---- authentication
        valid_token = token is not None and token in api._valid_tokens()
        if token is not None and not valid_token:
            self._send_status(401, "Unauthorized", "Unauthorized")
            return
        if token is None and cert_user is None:
            if kind in ("health",) or path.startswith("/version"):
                pass
            else:
                what = "pods" if kind in ("list", "watch", "get") else None
                if what:
                    scope = ('in the namespace "%s"' % ns) if ns else "at the cluster scope"
                    verb = kind
                    msg = ('pods is forbidden: User "system:anonymous" cannot %s resource "pods" '
                           'in API group "" %s' % (verb, scope))
                    self._send_status(403, "Forbidden", msg, {"kind": "pods"})
                else:
                    self._send_status(403, "Forbidden", 'forbidden: User "system:anonymous" cannot get path "%s"' % path)
                return
        # ---- scripted failures
        f = api._take_failure(kind, rec)
        if f is not None:
            self._send_failure(f)
            return
        if kind == "discovery":
            self._discovery(path)
        elif kind == "health":
            self._send_body(200, b"ok", ctype="text/plain; charset=utf-8")
        elif kind == "get":
            self._get_pod(ns, name)
        elif kind == "namespace":
            self._namespace(name)
        elif kind == "list":
            self._list(ns, q)
        elif kind == "watch":
            self._watch(ns, q)
        else:
            self._send_status(404, "NotFound", "the server could not find the requested resource",
                              {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})

    def _send_failure(self, f):
        code = f["status"]
        extra = []
        if f.get("retry_after") is not None:
            extra.append(("Retry-After", str(f["retry_after"])))
        if f.get("body") is not None:
            self._send_body(code, f["body"], extra=extra)
            return
        if code == 429:
            det = {"retryAfterSeconds": int(f.get("retry_after") or 1)}
            self._send_status(429, "TooManyRequests", "Too many requests, please try again later.", det, extra)
        elif code == 410:
            self._send_status(410, "Expired", "too old resource version: %s (%s)" % (
                self._rec["query"].get("resourceVersion", "0"), self.server.api._rv), extra=extra)
        elif code == 401:
            self._send_status(401, "Unauthorized", "Unauthorized", extra=extra)
        elif code == 403:
            self._send_status(403, "Forbidden", 'pods is forbidden: User "system:serviceaccount:default:podmeta" cannot list resource "pods" in API group "" at the cluster scope', {"kind": "pods"}, extra)
        elif code == 503:
            self._send_status(503, "ServiceUnavailable", "The server is currently unable to handle the request", extra=extra)
        elif code == 504:
            self._send_status(504, "Timeout", "Timeout: request did not complete within the allotted timeout", extra=extra)
        else:
            self._send_status(code, "InternalError", "Internal error occurred: injected failure",
                              {"causes": [{"message": "injected failure"}]}, extra)

    # ---- discovery
    def _discovery(self, path):
        api = self.server.api
        path = path.rstrip("/")
        if path == "/api":
            self._send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                  "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                                  "serverAddress": "127.0.0.1:%d" % api.port}]})
        elif path == "/apis":
            self._send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        elif path == "/api/v1":
            verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
            self._send_json(200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
                 "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                 "shortNames": ["ns"], "storageVersionHash": "Q3oi5N2YM8M="},
                {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": verbs,
                 "shortNames": ["po"], "categories": ["all"], "storageVersionHash": "xPOwRZ+Yhw8="},
                {"name": "pods/status", "singularName": "", "namespaced": True, "kind": "Pod",
                 "verbs": ["get", "patch", "update"]},
            ]})
        elif path == "/version":
            self._send_json(200, {"major": "1", "minor": "36", "emulationMajor": "1", "emulationMinor": "36",
                                  "minCompatibilityMajor": "1", "minCompatibilityMinor": "35",
                                  "gitVersion": "v1.36.0", "gitCommit": "0" * 40, "gitTreeState": "clean",
                                  "buildDate": "2026-04-22T00:00:00Z", "goVersion": "go1.25.9",
                                  "compiler": "gc", "platform": "linux/amd64"})
        else:  # /openapi/*: not served
            self._send_status(404, "NotFound", "the server could not find the requested resource")

    def _wants_table(self):
        return "as=Table" in (self.headers.get("Accept") or "")

    # ---- namespaces (kubectl checks the one it lists in)
    def _namespace(self, name):
        api = self.server.api
        with api._lock:
            names = set(api._namespaces) | {p["metadata"].get("namespace") for p in api._pods.values()}
            rv = api._rv
        names.discard(None)

        def ns_obj(n):
            return {"metadata": {"name": n, "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, "ns/" + n)),
                                 "resourceVersion": "1", "creationTimestamp": "2026-06-15T04:14:40Z",
                                 "labels": {"kubernetes.io/metadata.name": n}},
                    "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
        if name is None:
            self._send_json(200, {"kind": "NamespaceList", "apiVersion": "v1",
                                  "metadata": {"resourceVersion": str(rv)},
                                  "items": [ns_obj(n) for n in sorted(names)]})
        elif name in names:
            d = {"kind": "Namespace", "apiVersion": "v1"}
            d.update(ns_obj(name))
            self._send_json(200, d)
        else:
            self._send_status(404, "NotFound", 'namespaces "%s" not found' % name,
                              {"name": name, "kind": "namespaces"})

    # ---- GET one pod
    def _get_pod(self, ns, name):
        api = self.server.api
        with api._lock:
            p = api._pods.get("%s/%s" % (ns, name))
        if p is None:
            self._send_status(404, "NotFound", 'pods "%s" not found' % name, {"name": name, "kind": "pods"})
            return
        if self._wants_table():
            self._send_json(200, table([p], p["metadata"].get("resourceVersion", "")))
        else:
            self._send_json(200, with_kind(p))

    # ---- list
    def _list(self, ns, q):
        api = self.server.api
        try:
            match, selective = selector_matcher(q.get("fieldSelector"), q.get("labelSelector"))
        except SelectorError as e:
            self._send_status(400, "BadRequest", str(e))
            return
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            self._send_status(400, "BadRequest", "limit: Invalid value")
            return
        cont = q.get("continue")
        bad = api._take_bad("list")
        start_key = ""
        with api._lock:
            if cont:
                try:
                    tok = json.loads(base64.urlsafe_b64decode(cont + "=" * (-len(cont) % 4)))
                    rv = int(tok["rv"])
                    start_key = tok["start"]
                except (ValueError, KeyError, TypeError):
                    snap = None
                    rv = None
                else:
                    snap = api._snapshots.get(rv)
                if rv is None:
                    self._send_status(400, "BadRequest", "continue key is not valid: illegal base64 data")
                    return
                if snap is None:
                    self._send_status(410, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
                    return
                keys, objs = snap
            else:
                rv = api._rv
                if limit and rv in api._snapshots:
                    keys, objs = api._snapshots[rv]
                else:
                    keys = sorted(api._pods)
                    objs = [api._pods[k] for k in keys]
                    if limit:
                        api._snapshots[rv] = (keys, objs)
                        while len(api._snapshots) > 8:
                            del api._snapshots[min(api._snapshots)]
            pristine = api._pristine
        i = bisect.bisect_left(keys, start_key) if start_key else 0
        sel = []
        more = 0
        n = len(keys)
        while i < n:
            k, p = keys[i], objs[i]
            i += 1
            if ns is not None and not k.startswith(ns + "/"):
                continue
            if selective and not match(p):
                continue
            if limit and len(sel) >= limit:
                i -= 1
                break
            sel.append(p)
        next_cont = None
        remaining = None
        if limit and i < n:
            # anything left that would match?
            rest = 0
            for j in range(i, n):
                if (ns is None or keys[j].startswith(ns + "/")) and (not selective or match(objs[j])):
                    rest += 1
            if rest:
                next_cont = base64.urlsafe_b64encode(go_json(
                    {"v": "meta.k8s.io/v1", "rv": rv, "start": keys[i - 1] + "\x00" if sel else start_key})).decode().rstrip("=")
                remaining = rest if not selective else None
            more = rest
        if self._wants_table():
            self._send_json(200, table(sel, rv, next_cont, remaining))
            return
        if (bad is None and pristine and ns in (None, "kube-system") and not selective and not cont
                and (not limit or limit >= len(sel)) and next_cont is None):
            body = fixture_podlist_bytes()
        else:
            lm = {"resourceVersion": str(rv)}
            if next_cont:
                lm["continue"] = next_cont
                if remaining is not None:
                    lm["remainingItemCount"] = remaining
            body = go_json({"kind": "PodList", "apiVersion": "v1", "metadata": lm, "items": sel}) + b"\n"
        api._list_pages_served(len(sel), more)
        if bad is None:
            self._send_body(200, body)
        else:
            self._send_bad_body(bad, body, rv)

    def _send_bad_body(self, mode, body, rv):
        """Serve a broken list response (see K8sAPI.bad_next)."""
        if mode == "truncated":
            body = body[:max(1, len(body) // 2)]
            self._send_body(200, body, chunked=False)
        elif mode == "truncated_chunked":
            self._send_body(200, body[:max(1, len(body) // 2)], chunked=True)
        elif mode == "short_body":  # Content-Length promises more than is sent, then close
            self.send_response(200)
            self._std_headers()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:len(body) // 2])
            self._rec["status"] = 200
            self._kill_connection()
        elif mode == "close_mid_chunk":
            self.send_response(200)
            self._std_headers()
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            half = len(body) // 2
            self._chunk(body[:half // 2])
            self.wfile.write(b"%x\r\n" % (len(body) - half // 2) + body[half // 2:half])
            self._rec["status"] = 200
            self._kill_connection()
        elif mode == "not_json":
            self._send_body(200, b"<html><body>502 Bad Gateway</body></html>\n", ctype="text/html")
        elif mode == "empty":
            self._send_body(200, b"", chunked=False)
        elif mode == "wrongtypes":
            self._send_json(200, wrongtypes_podlist(rv))
        elif mode == "wrongtypes_top":
            self._send_json(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": int(rv)},
                                  "items": {"not": "an array"}})
        elif mode == "huge":
            obj = json.loads(body)
            obj["items"].append(huge_pod())
            self._send_json(200, obj)
        else:
            raise ValueError("unknown bad mode %r" % mode)

    # ---- watch
    def _watch(self, ns, q):
        api = self.server.api
        try:
            match, selective = selector_matcher(q.get("fieldSelector"), q.get("labelSelector"))
        except SelectorError as e:
            self._send_status(400, "BadRequest", str(e))
            return
        rv_s = q.get("resourceVersion", "")
        bookmarks = _truthy(q.get("allowWatchBookmarks", ""))
        send_initial = _truthy(q.get("sendInitialEvents", ""))
        try:
            timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else api.default_watch_timeout
            rv_req = int(rv_s) if rv_s else 0
        except ValueError:
            self._send_status(400, "BadRequest", 'resourceVersion: Invalid value: "%s"' % rv_s)
            return
        if send_initial and q.get("resourceVersionMatch") not in (None, "", "NotOlderThan"):
            self._send_status(422, "Invalid", "resourceVersionMatch: Forbidden: sendInitialEvents requires NotOlderThan")
            return
        if api.watch_lifetime is not None:
            timeout = min(timeout, api.watch_lifetime)
        deadline = time.time() + timeout
        bad = api._take_bad("watch")
        initial = []
        expired = False
        with api._lock:
            gen = api._generation
            if api._expire_next_watch > 0:
                api._expire_next_watch -= 1
                expired = True
            elif rv_req and rv_req < api._compacted_rv:
                expired = True
            start_idx = len(api._events)
            if send_initial:
                if api._pristine and ns in (None, "kube-system") and not selective:
                    initial = [("raw", line) for line in fixture_watchlist_lines()
                               if bookmarks or b'"type":"BOOKMARK"' not in line]
                else:
                    for k in sorted(api._pods):
                        p = api._pods[k]
                        if (ns is None or p["metadata"].get("namespace") == ns) and match(p):
                            initial.append(("ADDED", p))
                    if bookmarks:
                        initial.append(("BOOKMARK", {"resourceVersion": str(api._rv),
                                                     "annotations": {"k8s.io/initial-events-end": "true"}}))
            elif not rv_s or rv_req == 0:
                for k in sorted(api._pods):
                    p = api._pods[k]
                    if (ns is None or p["metadata"].get("namespace") == ns) and match(p):
                        initial.append(("ADDED", p))
            else:
                # events strictly after rv_req
                rvs = api._event_rvs
                start_idx = bisect.bisect_right(rvs, rv_req)
            pos = start_idx
            live_from = len(api._events)
            api._open_watches += 1
            wrec = {"rec": self._rec, "bookmarks": bookmarks}
            api._watchers.append(wrec)
        try:
            self.send_response(200)
            self._std_headers()
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._rec["status"] = 200
            if expired:
                self._chunk(watch_line("ERROR", status_obj(410, "Expired", "too old resource version: %d (%d)" % (rv_req, api._compacted_rv))))
                self.wfile.write(b"0\r\n\r\n")
                return
            if bad is not None:
                self._bad_watch_action(bad)
            as_table = self._wants_table()
            for typ, obj in initial:
                if typ == "raw":
                    self._chunk(obj)
                elif typ == "BOOKMARK":
                    self._chunk(bookmark_line(obj["resourceVersion"], obj.get("annotations")))
                elif as_table:
                    self._chunk(watch_line(typ, table([obj], obj["metadata"].get("resourceVersion", ""))))
                else:
                    self._chunk(watch_line(typ, with_kind(obj)))
            while True:
                with api._cond:
                    while True:
                        if api._generation != gen:
                            self._kill_connection()
                        if pos < len(api._events):
                            break
                        left = deadline - time.time()
                        if left <= 0:
                            break
                        api._cond.wait(min(left, 0.5))
                        if self._peer_closed():
                            self._kill_connection()
                    batch = api._events[pos:]
                    pos = len(api._events)
                if not batch and time.time() >= deadline:
                    self.wfile.write(b"0\r\n\r\n")
                    return
                for idx, ev in enumerate(batch, start=pos - len(batch)):
                    if ev.control:
                        if idx < live_from:
                            continue
                        if ev.type == "BOOKMARK":
                            if bookmarks:
                                with api._lock:
                                    cur = str(api._rv)
                                self._chunk(bookmark_line(cur))
                        elif ev.type == "EXPIRE":
                            self._chunk(watch_line("ERROR", status_obj(410, "Expired", "too old resource version: %s (%d)" % (rv_s or "0", api._rv))))
                            self.wfile.write(b"0\r\n\r\n")
                            return
                        elif ev.type == "END":
                            self.wfile.write(b"0\r\n\r\n")
                            return
                        elif ev.type == "ABORT":
                            self._kill_connection()
                        elif ev.type == "BAD":
                            self._bad_watch_action(ev.obj)
                        continue
                    if ns is not None and ev.ns != ns:
                        continue
                    out = ev.convert(match) if selective else (ev.type, ev.obj)
                    if out is None:
                        continue
                    if as_table:
                        self._chunk(watch_line(out[0], table([out[1]], out[1]["metadata"].get("resourceVersion", ""))))
                    elif out[0] == ev.type and out[1] is ev.obj:
                        self._chunk(ev.line())
                    else:
                        self._chunk(watch_line(out[0], with_kind(out[1])))
        finally:
            with api._lock:
                api._open_watches -= 1
                if wrec in api._watchers:
                    api._watchers.remove(wrec)

    def _peer_closed(self):
        import select
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            if not r:
                return False
            self.connection.setblocking(False)
            try:
                data = self.connection.recv(1)
            finally:
                self.connection.setblocking(True)
                self.connection.settimeout(120)
            return data == b""
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except (OSError, ValueError):
            return True

    def _bad_watch_action(self, mode):
        api = self.server.api
        if mode == "truncated_line":
            line = watch_line("ADDED", with_kind(make_pod("trunc-1", "10.99.0.1")))
            self._chunk(line[:len(line) // 2] + b"\n")
        elif mode == "garbage":
            self._chunk(b"this is not json\n")
            self._chunk(b"\x00\xff\xfe{]]\n")
        elif mode == "wrongtypes":
            for line in wrongtypes_watch_lines():
                self._chunk(line)
        elif mode == "huge":
            self._chunk(watch_line("ADDED", with_kind(huge_pod())))
        elif mode == "split":
            # from now on every event is split over many 7-byte chunks (valid HTTP)
            self._split_chunks = 7
        elif mode == "close_mid_chunk":
            line = watch_line("ADDED", with_kind(make_pod("midchunk-1", "10.99.0.2")))
            self.wfile.write(b"%x\r\n" % len(line) + line[:len(line) // 2])
            self._kill_connection()
        elif mode == "close_mid_line":
            line = watch_line("ADDED", with_kind(make_pod("midline-1", "10.99.0.3")))
            self._chunk(line[:len(line) // 2])
            self._kill_connection()
        elif mode == "abort":
            self._kill_connection()
        elif isinstance(mode, (bytes, bytearray)):
            self._chunk(bytes(mode))
        else:
            raise ValueError("unknown bad watch mode %r" % (mode,))


def with_kind(p):
    if "kind" in p:
        return p
    d = {"kind": "Pod", "apiVersion": "v1"}
    d.update(p)
    return d


def watch_line(typ, obj):
    return b'{"type":"' + typ.encode() + b'","object":' + go_json(obj) + b"}\n"


def bookmark_line(rv, annotations=None):
    md = {"resourceVersion": str(rv)}
    if annotations:
        md["annotations"] = annotations
    return watch_line("BOOKMARK", {"kind": "Pod", "apiVersion": "v1", "metadata": md,
                                   "spec": {"containers": None}, "status": {}})


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


class _Event(object):
    __slots__ = ("rv", "type", "obj", "old", "ns", "control", "_line")

    def __init__(self, rv, typ, obj=None, old=None, control=False):
        self.rv, self.type, self.obj, self.old, self.control = rv, typ, obj, old, control
        self.ns = obj["metadata"].get("namespace") if (obj is not None and not control) else None
        self._line = None

    def line(self):
        if self._line is None:
            self._line = watch_line(self.type, with_kind(self.obj))
        return self._line

    def convert(self, match):
        """The cacher's view through a selector: (type, obj) or None."""
        if self.type == "ADDED":
            return ("ADDED", self.obj) if match(self.obj) else None
        if self.type == "DELETED":
            return ("DELETED", self.obj) if match(self.old if self.old is not None else self.obj) else None
        old_m = self.old is not None and match(self.old)
        new_m = match(self.obj)
        if old_m and new_m:
            return ("MODIFIED", self.obj)
        if new_m:
            return ("ADDED", self.obj)
        if old_m:
            return ("DELETED", self.obj)
        return None


# --------------------------------------------------------------------------
# The server object and its control API

_live = []


def _cleanup_all():
    for a in list(_live):
        try:
            a.stop()
        except Exception:
            pass


import atexit  # noqa: E402
atexit.register(_cleanup_all)


class K8sAPI(object):
    def __init__(self, pods="fixture", token=None, rv=None, default_watch_timeout=1800.0,
                 bookmark_interval=None, client_certs=True):
        """pods: "fixture" (the 8 recorded pods, pristine: served byte-for-byte),
        a list of pod dicts, or None/[] for an empty cluster."""
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._pods = {}
        self._events = []
        self._event_rvs = []
        self._snapshots = {}
        self._requests = []
        self._errors = []
        self.tls_errors = []
        self._failures = []
        self._bad = []
        self._conns = set()
        self._watchers = []
        self._open_watches = 0
        self._expire_next_watch = 0
        self._generation = 0
        self._compacted_rv = 0
        self._counters = {}
        self._pf_fs = str(uuid.uuid4())
        self._pf_pl = str(uuid.uuid4())
        self.default_watch_timeout = default_watch_timeout
        self.watch_lifetime = None  # seconds: every watch ends (cleanly) after this
        self.bookmark_interval = bookmark_interval
        self.client_certs = client_certs
        self.token = token or ("k8sapi-" + secrets.token_hex(16))
        self._old_tokens = {}  # token -> valid-until
        self._pristine = False
        self._namespaces = {"default", "kube-system", "kube-public", "kube-node-lease"}
        if pods == "fixture":
            fl = _load_fixture_list()
            self._rv = int(fl["metadata"]["resourceVersion"])
            for p in fl["items"]:
                self._pods[pod_key(p)] = p  # shared, never mutated
            self._pristine = True
        else:
            self._rv = rv or 1000
            for p in pods or []:
                p["metadata"]["resourceVersion"] = str(self._rv)
                self._pods[pod_key(p)] = p
        if rv is not None:
            self._rv = rv
        self.dir = None
        self.port = None
        self._server = None
        self._thread = None
        self._bm_thread = None
        self._stopping = False

    # ---- lifecycle
    def start(self, port=0):
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="k8sapi-")
            make_certs(self.dir)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.path("server.crt"), self.path("server.key"))
            ctx.set_alpn_protocols(["http/1.1"])
            if self.client_certs:
                ctx.verify_mode = ssl.CERT_OPTIONAL
                ctx.load_verify_locations(self.path("ca.crt"))
            self._ssl_ctx = ctx
            self._write_token_file(self.token)
            _live.append(self)
        self._listen(port)
        self.url = "https://127.0.0.1:%d" % self.port
        self._write_kubeconfigs()
        if self.bookmark_interval and self._bm_thread is None:
            self._bm_thread = threading.Thread(target=self._bookmark_loop, daemon=True)
            self._bm_thread.start()
        return self

    def _listen(self, port):
        last = None
        for _ in range(50):
            try:
                self._server = _Server(("127.0.0.1", port), _Handler, self)
                break
            except OSError as e:  # port still held (restart): retry briefly
                last = e
                time.sleep(0.1)
        else:
            raise last
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def _close_listener_and_streams(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._cond:
            self._generation += 1
            conns = list(self._conns)
            self._cond.notify_all()
        for c in conns:
            try:
                socket.socket.shutdown(c, socket.SHUT_RDWR)
            except OSError:
                pass

    def restart(self, down=0.0):
        """Close the listening socket and every connection (streams end without
        their last chunk, as when an apiserver dies), keep the state, and listen
        again on the same port after `down` seconds."""
        self._close_listener_and_streams()
        if down:
            time.sleep(down)
        self._listen(self.port)
        self._count("restarts")

    def stop(self):
        if self._stopping:
            return
        self._stopping = True
        try:
            self._close_listener_and_streams()
        finally:
            if self in _live:
                _live.remove(self)
            if self.dir and not os.environ.get("K8SAPI_KEEP"):
                shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    def path(self, name):
        return os.path.join(self.dir, name)

    @property
    def ca_file(self):
        return self.path("ca.crt")

    @property
    def token_file(self):
        return self.path("token")

    @property
    def kubeconfig(self):
        return self.path("kubeconfig")

    def podmeta_args(self):
        return ["--server", self.url, "--token-file", self.token_file, "--ca-file", self.ca_file]

    # ---- tokens
    def _write_token_file(self, tok):
        tmp = self.path(".token.tmp")
        with open(tmp, "w") as f:
            f.write(tok)
        os.replace(tmp, self.token_file)

    def _valid_tokens(self):
        now = time.time()
        v = {self.token}
        for t, until in list(self._old_tokens.items()):
            if until > now:
                v.add(t)
        return v

    def rotate_token(self, grace=0.0, write_file=True):
        """New token; the old one gets 401 after `grace` seconds.  The token
        file is replaced atomically (like the kubelet)."""
        with self._lock:
            old = self.token
            self.token = "k8sapi-" + secrets.token_hex(16)
            if grace > 0:
                self._old_tokens[old] = time.time() + grace
            if write_file:
                self._write_token_file(self.token)
        self._write_kubeconfigs()
        return self.token

    def _write_kubeconfigs(self):
        ca = base64.b64encode(open(self.ca_file, "rb").read()).decode()

        def b64(name):
            return base64.b64encode(open(self.path(name), "rb").read()).decode()

        def kc(user_lines, ca_line):
            return ("apiVersion: v1\nclusters:\n- cluster:\n    %s\n    server: %s\n  name: k8sapi-test\n"
                    "contexts:\n- context:\n    cluster: k8sapi-test\n    namespace: default\n"
                    "    user: k8sapi-test\n  name: k8sapi-test\ncurrent-context: k8sapi-test\n"
                    "kind: Config\npreferences: {}\nusers:\n- name: k8sapi-test\n  user:\n%s"
                    % (ca_line, self.url, "".join("    %s\n" % line for line in user_lines)))
        ca_data = "certificate-authority-data: " + ca
        ca_path = "certificate-authority: " + self.ca_file
        files = {
            "kubeconfig": kc(["token: " + self.token], ca_data),
            "kubeconfig-tokenfile": kc(["tokenFile: " + self.token_file], ca_path),
            "kubeconfig-cert": kc(["client-certificate-data: " + b64("client.crt"),
                                   "client-key-data: " + b64("client.key")], ca_data),
            "kubeconfig-certfile": kc(["client-certificate: " + self.path("client.crt"),
                                       "client-key: " + self.path("client.key")], ca_path),
            "kubeconfig-badtoken": kc(["token: not-a-valid-token"], ca_data),
        }
        for name, text in files.items():
            tmp = self.path("." + name + ".tmp")
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, self.path(name))

    # ---- state changes
    def _append_event(self, typ, obj, old=None):
        ev = _Event(self._rv, typ, obj, old)
        self._events.append(ev)
        self._event_rvs.append(self._rv)
        self._pristine = False
        self._cond.notify_all()

    def _append_control(self, typ, obj=None):
        with self._cond:
            ev = _Event(self._rv, typ, obj, control=True)
            self._events.append(ev)
            self._event_rvs.append(self._rv)
            self._cond.notify_all()

    def add_pod(self, pod):
        """Add a pod (dict); returns the stored object (with resourceVersion)."""
        pod = copy.deepcopy(pod)
        pod.pop("kind", None)
        pod.pop("apiVersion", None)
        with self._cond:
            k = pod_key(pod)
            if k in self._pods:
                raise KeyError("pod %s exists" % k)
            self._rv += 1
            pod["metadata"]["resourceVersion"] = str(self._rv)
            self._pods[k] = pod
            self._append_event("ADDED", pod)
        return pod

    def get_pod(self, namespace, name):
        with self._lock:
            return self._pods.get("%s/%s" % (namespace, name))

    def pods(self):
        with self._lock:
            return [self._pods[k] for k in sorted(self._pods)]

    def modify_pod(self, namespace, name, fn=None, phase=None, ip=None, ips=None, labels=None,
                   annotations=None, deletion=False):
        """Change a pod: fn(pod) edits a deep copy in place; or the keywords."""
        with self._cond:
            k = "%s/%s" % (namespace, name)
            old = self._pods[k]
            new = copy.deepcopy(old)
            st = new.setdefault("status", {})
            if phase is not None:
                st["phase"] = phase
            if ip is not None and ips is None:
                ips = [ip]
            if ips is not None:
                st["podIP"] = ips[0]
                st["podIPs"] = [{"ip": a} for a in ips]
            if labels is not None:
                new["metadata"]["labels"] = labels
            if annotations is not None:
                new["metadata"]["annotations"] = annotations
            if deletion:
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                new["metadata"]["deletionGracePeriodSeconds"] = 30
            if fn is not None:
                fn(new)
            self._rv += 1
            new["metadata"]["resourceVersion"] = str(self._rv)
            self._pods[k] = new
            self._append_event("MODIFIED", new, old)
        return new

    def delete_pod(self, namespace, name, graceful=False):
        """Delete a pod: DELETED event carrying the last state at the new RV.
        graceful=True first sends the MODIFIED with deletionTimestamp."""
        if graceful:
            self.modify_pod(namespace, name, deletion=True)
        with self._cond:
            k = "%s/%s" % (namespace, name)
            old = self._pods.pop(k)
            gone = copy.copy(old)
            gone["metadata"] = dict(old["metadata"])
            self._rv += 1
            gone["metadata"]["resourceVersion"] = str(self._rv)
            self._append_event("DELETED", gone, old)
        return gone

    def set_pods(self, pods):
        """Replace the whole state without events (as after an etcd restore):
        watchers from an older RV get an Expired error."""
        with self._cond:
            self._rv += 1
            self._pods = {}
            for p in pods:
                p["metadata"]["resourceVersion"] = str(self._rv)
                self._pods[pod_key(p)] = p
            self._compacted_rv = self._rv
            self._pristine = False
            self._snapshots.clear()
            self._cond.notify_all()

    def compact(self):
        """Forget history: a watch from any older RV gets an Expired ERROR."""
        with self._cond:
            self._compacted_rv = self._rv
            self._snapshots.clear()

    @property
    def resource_version(self):
        with self._lock:
            return self._rv

    # ---- stream control
    def bookmark(self):
        """Send a BOOKMARK with the current RV on every open bookmark watch."""
        self._append_control("BOOKMARK")

    def _bookmark_loop(self):
        while not self._stopping:
            time.sleep(self.bookmark_interval)
            if not self._stopping:
                self.bookmark()

    def end_watches(self):
        """End every open watch cleanly (terminating chunk), as a timeout does."""
        self._append_control("END")

    def abort_watches(self):
        """Drop every open watch's connection without the terminating chunk."""
        self._append_control("ABORT")

    def inject_expired_error_event(self):
        """An ERROR event (410 Expired) on the open watches, ending them; with no
        watch open, the next watch request gets it first thing."""
        with self._cond:
            if self._open_watches == 0:
                self._expire_next_watch += 1
                return
        self._append_control("EXPIRE")

    def inject_410(self, count=1):
        """The next `count` watch requests get HTTP 410 Expired."""
        self.fail_next(410, kind="watch", count=count)

    def fail_next(self, status=500, retry_after=None, kind=None, count=1, body=None, match=None):
        """The next `count` pod requests (kind "list", "watch", "get" or None
        for any of them; match(request_record) -> bool narrows it further,
        e.g. lambda r: "continue" in r["query"]) fail with `status` and a
        Status body."""
        with self._lock:
            for _ in range(count):
                self._failures.append({"status": status, "retry_after": retry_after,
                                       "kind": kind, "body": body, "match": match})

    def _take_failure(self, kind, rec=None):
        if kind not in ("list", "watch", "get"):
            return None
        with self._lock:
            for i, f in enumerate(self._failures):
                if f["kind"] in (None, kind) and (f["match"] is None or rec is None or f["match"](rec)):
                    del self._failures[i]
                    f["used_at"] = time.time()
                    return f
        return None

    def clear_failures(self):
        with self._lock:
            self._failures = []
            self._bad = []

    def pending_failures(self):
        with self._lock:
            return len(self._failures)

    def bad_next(self, kind, mode):
        """The next list (kind "list") or watch ("watch") request gets a broken
        response.  list modes: truncated, truncated_chunked, short_body,
        close_mid_chunk, not_json, empty, wrongtypes, wrongtypes_top, huge.
        watch modes (sent at the start of the stream): truncated_line, garbage,
        wrongtypes, huge, close_mid_chunk, close_mid_line, abort."""
        with self._lock:
            self._bad.append((kind, mode))

    def bad_watch(self, mode):
        """Send a broken thing on the open watches now (modes as bad_next's watch
        modes, or raw bytes: one chunk)."""
        self._append_control("BAD", mode)

    def _take_bad(self, kind):
        with self._lock:
            for i, (k, mode) in enumerate(self._bad):
                if k == kind:
                    del self._bad[i]
                    return mode
        return None

    # ---- observation
    def requests(self, kind=None):
        with self._lock:
            return [r for r in self._requests if kind is None or r["kind"] == kind]

    def count(self, kind=None, status=None, token=None):
        return len([r for r in self.requests(kind)
                    if (status is None or r["status"] == status) and (token is None or r["token"] == token)])

    def open_watches(self):
        with self._lock:
            return self._open_watches

    def wait_for(self, pred, timeout=10.0, interval=0.02):
        end = time.time() + timeout
        while time.time() < end:
            if pred():
                return True
            time.sleep(interval)
        return bool(pred())

    def watchers(self):
        """Request records of the watches open now."""
        with self._lock:
            return [w["rec"] for w in self._watchers]

    def mark(self):
        """A position in the request log (for watching_since / requests_since)."""
        with self._lock:
            return len(self._requests)

    def requests_since(self, mark, kind=None):
        with self._lock:
            return [r for r in self._requests[mark:] if kind is None or r["kind"] == kind]

    def watching_since(self, mark):
        """Is a watch that was requested after `mark` open now?"""
        with self._lock:
            new = self._requests[mark:]
            return any(any(w["rec"] is r for r in new) for w in self._watchers)

    def wait_watching_since(self, mark, timeout=10.0):
        return self.wait_for(lambda: self.watching_since(mark), timeout)

    def wait_watch(self, n=1, timeout=10.0):
        """Wait until at least n watches are open."""
        return self.wait_for(lambda: self.open_watches() >= n, timeout)

    def _list_pages_served(self, n, more):
        self._count("list_items", n)

    def _count(self, what, n=1):
        with self._lock:
            self._counters[what] = self._counters.get(what, 0) + n

    def counter(self, what):
        with self._lock:
            return self._counters.get(what, 0)

    def _note_error(self, text):
        with self._lock:
            self._errors.append(text)

    def errors(self):
        with self._lock:
            return list(self._errors)

    def summary(self):
        """One line for diagnostics."""
        with self._lock:
            by = {}
            for r in self._requests:
                key = "%s:%s" % (r["kind"], r["status"])
                by[key] = by.get(key, 0) + 1
            return "rv=%d pods=%d open_watches=%d requests=%s" % (
                self._rv, len(self._pods), self._open_watches,
                ",".join("%s=%d" % kv for kv in sorted(by.items())))


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pods", type=int, default=None, help="generate N pods instead of the fixture")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args(argv)
    api = K8sAPI(pods=generate_pods(a.pods) if a.pods is not None else "fixture")
    api.start(a.port)
    print("server:     %s" % api.url)
    print("kubeconfig: %s" % api.kubeconfig)
    print("token-file: %s\nca-file:    %s" % (api.token_file, api.ca_file), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        api.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
