"""k8sapi/server.py: the wire protocol of the test Kubernetes API server.

HTTPS (HTTP/1.1, ALPN http/1.1) with certificates made by the openssl CLI;
bodies serialized like Go's encoding/json; list with pagination and
selectors, chunked watch streams, discovery and Table output; the broken
responses the control API scripts.  The state it serves (pods, events,
tokens, scripted failures) belongs to the K8sAPI object of control.py,
reached as self.server.api.
"""
import base64
import bisect
import datetime
import json
import re
import socket
import socketserver
import ssl
import subprocess
import os
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, unquote, urlsplit

from .fixtures import (fixture_podlist_bytes, fixture_watchlist_lines, huge_namespace, huge_pod,
                       make_namespace, make_pod, with_kind, wrongtypes_podlist, wrongtypes_watch_lines)


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


def truthy(v):
    return v in ("1", "t", "T", "true", "TRUE", "True")


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


# Namespaces' field labels (the apiserver's namespace field-label conversion)
_NS_FIELDS = {
    "metadata.name": lambda n: n["metadata"].get("name", ""),
    "status.phase": lambda n: (n.get("status") or {}).get("phase", ""),
}


class SelectorError(Exception):
    pass


def _parse_selector(text, fields, known=_FIELDS):
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
        if fields and k not in known:
            raise SelectorError('field label not supported: %s' % k)
        terms.append((k, "!=" if op == "!=" else "=", v))
    return terms


def selector_matcher(field_sel, label_sel, fields=_FIELDS):
    fterms = _parse_selector(field_sel or "", True, fields)
    lterms = _parse_selector(label_sel or "", False)

    def match(p):
        try:
            for k, op, v in fterms:
                if (fields[k](p) == v) != (op == "="):
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


_NS_COLUMNS = [
    _POD_COLUMNS[0],
    ("Status", "", "The status of the namespace", 0),
    _POD_COLUMNS[4],
]


def _ns_table_row(ns):
    md = ns["metadata"]
    cells = [md.get("name"), (ns.get("status") or {}).get("phase") or "",
             _human_age(md.get("creationTimestamp"))]
    return {"cells": cells, "object": {"kind": "PartialObjectMetadata",
                                       "apiVersion": "meta.k8s.io/v1", "metadata": dict(md)}}


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


def table(pods, rv, cont=None, remaining=None, headers=True, resource="pods"):
    lm = {"resourceVersion": str(rv)}
    if cont:
        lm["continue"] = cont
        if remaining is not None:
            lm["remainingItemCount"] = remaining
    t = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": lm}
    cols, row = (_NS_COLUMNS, _ns_table_row) if resource == "namespaces" else (_POD_COLUMNS, table_row)
    if headers:
        t["columnDefinitions"] = [{"name": n, "type": "string", "format": f, "description": d,
                                   "priority": pr} for n, f, d, pr in cols]
    t["rows"] = [row(p) for p in pods]
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


def tls_context(d, client_certs=True):
    """The server's TLS context from the certificates make_certs(d) made;
    client_certs: also accept (not require) client certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, "server.crt"), os.path.join(d, "server.key"))
    ctx.set_alpn_protocols(["http/1.1"])
    if client_certs:
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(os.path.join(d, "ca.crt"))
    return ctx


# --------------------------------------------------------------------------
# HTTP server plumbing

class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
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


class Handler(BaseHTTPRequestHandler):
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
        self._guarded("GET")

    def do_PATCH(self):
        self._guarded("PATCH")

    def _guarded(self, method):
        try:
            self._handle(method)
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

    do_POST = do_PUT = do_DELETE = _method_not_allowed

    def _read_body(self):
        """The request body (Content-Length or chunked), at most 3 MB as the apiserver."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
                if len(out) > 3 * 1024 * 1024:
                    return None
        n = int(self.headers.get("Content-Length") or 0)
        if n > 3 * 1024 * 1024:
            self.rfile.read(n)
            return None
        return self.rfile.read(n) if n else b""

    def _handle(self, method):
        api = self.server.api
        self._split_chunks = 0
        u = urlsplit(self.path)
        path = u.path
        q = dict(parse_qsl(u.query, keep_blank_values=True))
        body = self._read_body() if method != "GET" else None
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
        kind, ns, name, res = "other", None, None, None
        m = re.match(r"^/api/v1(?:/namespaces/([^/]+))?/pods(?:/([^/]+))?/?$", path)
        m2 = re.match(r"^/api/v1/namespaces(?:/([^/]+))?/?$", path)
        if m or m2:
            if m:
                res = RESOURCES["pods"]
                ns = unquote(m.group(1)) if m.group(1) else None
                name = unquote(m.group(2)) if m.group(2) else None
            else:
                res = RESOURCES["namespaces"]
                name = unquote(m2.group(1)) if m2.group(1) else None
            if method == "PATCH":
                verb = "patch" if name and (ns or not res.namespaced) else "other"
            elif name:
                verb = "get"
            elif truthy(q.get("watch", "")):
                verb = "watch"
            else:
                verb = "list"
            kind = res.prefix + verb if verb != "other" else "other"
        elif method != "GET":
            pass
        elif path in ("/api", "/api/", "/apis", "/apis/", "/api/v1", "/api/v1/", "/version",
                      "/version/") or path.startswith("/openapi"):
            kind = "discovery"
        elif path in ("/healthz", "/livez", "/readyz"):
            kind = "health"
        rec = {"t": time.time(), "kind": kind, "path": path, "query": q, "token": token,
               "cert_user": cert_user, "accept": self.headers.get("Accept"),
               "user_agent": self.headers.get("User-Agent"), "status": None,
               "peer": self.client_address[0], "method": method,
               "resource": res.name if res is not None else None}
        if body is not None:
            rec["content_type"] = self.headers.get("Content-Type")
            rec["body"] = body
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
                if res is not None and kind != "other":
                    scope = ('in the namespace "%s"' % ns) if ns else "at the cluster scope"
                    verb = kind[len(res.prefix):]
                    msg = ('%s%s is forbidden: User "system:anonymous" cannot %s resource "%s" '
                           'in API group "" %s' % (res.name, (' "%s"' % name) if name else "", verb,
                                                   res.name, scope))
                    self._send_status(403, "Forbidden", msg, {"kind": res.name} if not name else
                                      {"name": name, "kind": res.name})
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
        elif res is not None and kind == res.prefix + "get":
            self._get(res, ns, name)
        elif res is not None and kind == res.prefix + "list":
            self._list(ns, q, res)
        elif res is not None and kind == res.prefix + "watch":
            self._watch(ns, q, res)
        elif res is not None and kind == res.prefix + "patch":
            self._patch(res, ns, name, q, body)
        elif method != "GET":
            self._send_status(405, "MethodNotAllowed",
                              "the server does not allow this method on the requested resource")
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

    # ---- GET one object
    def _get(self, res, ns, name):
        api = self.server.api
        with api._lock:
            p = res.store(api).get(res.key(ns, name))
        if p is None:
            self._send_status(404, "NotFound", '%s "%s" not found' % (res.name, name),
                              {"name": name, "kind": res.name})
            return
        if self._wants_table():
            self._send_json(200, table([p], p["metadata"].get("resourceVersion", ""), resource=res.name))
        else:
            self._send_json(200, with_kind(p, res.kind))

    # ---- PATCH one object (kubectl annotate / label)
    def _patch(self, res, ns, name, q, body):
        api = self.server.api
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype not in PATCH_TYPES:
            self._send_status(415, "UnsupportedMediaType",
                              '%s is unsupported media type, supported: ["application/json-patch+json" '
                              '"application/merge-patch+json" "application/strategic-merge-patch+json"]'
                              % (ctype or '""'))
            return
        if body is None:
            self._send_status(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")
            return
        try:
            patch = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            self._send_status(400, "BadRequest", "error decoding patch: %s" % e)
            return
        if ctype == "application/json-patch+json" and not isinstance(patch, list):
            self._send_status(400, "BadRequest", "error decoding patch: json: cannot unmarshal %s into Go "
                              "value of type jsonpatch.Patch" % type(patch).__name__)
            return
        if ctype != "application/json-patch+json" and not isinstance(patch, dict):
            self._send_status(400, "BadRequest", "error decoding patch: json: cannot unmarshal %s into Go "
                              "value of type map[string]interface {}" % type(patch).__name__)
            return
        dry = bool(q.get("dryRun"))
        key = res.key(ns, name)
        with api._cond:
            old = res.store(api).get(key)
            if old is None:
                self._send_status(404, "NotFound", '%s "%s" not found' % (res.name, name),
                                  {"name": name, "kind": res.name})
                return
            cur = json.loads(go_json(old))
            try:
                if ctype == "application/json-patch+json":
                    new = json_patch(json.loads(go_json(old)), patch)
                else:
                    new = merge_patch(cur, patch, strategic=ctype.startswith("application/strategic"))
                    want_rv = (patch.get("metadata") or {}).get("resourceVersion") \
                        if isinstance(patch.get("metadata"), dict) else None
                    if want_rv is not None and str(want_rv) != old["metadata"].get("resourceVersion"):
                        self._send_status(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the '
                                          'object has been modified; please apply your changes to the latest '
                                          'version and try again' % (res.name, name),
                                          {"name": name, "kind": res.name})
                        return
                check_object(new, res)
            except PatchError as e:
                self._send_status(e.code, e.reason, e.message)
                return
            md = new["metadata"]
            for k in ("name", "namespace", "uid", "creationTimestamp", "resourceVersion"):
                if k in old["metadata"]:
                    md[k] = old["metadata"][k]
                else:
                    md.pop(k, None)
            if res.name == "namespaces":
                md.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            for k in ("labels", "annotations"):
                if k in md and not md[k]:
                    del md[k]
            if new != cur and not dry:
                new = api._replace(res.name, key, new, old)
            elif new == cur:
                new = old
        self._send_json(200, with_kind(new, res.kind))

    def _selectors(self, q, res=None):
        """selector_matcher() of the request's field and label selectors,
        or None after answering 400 for a bad one."""
        try:
            return selector_matcher(q.get("fieldSelector"), q.get("labelSelector"),
                                    res.fields if res is not None else _FIELDS)
        except SelectorError as e:
            self._send_status(400, "BadRequest", str(e))
            return None

    # ---- list
    def _list(self, ns, q, res=None):
        api = self.server.api
        res = res or RESOURCES["pods"]
        pods = res.name == "pods"
        sel = self._selectors(q, res)
        if sel is None:
            return
        match, selective = sel
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            self._send_status(400, "BadRequest", "limit: Invalid value")
            return
        cont = q.get("continue")
        bad = api._take_bad(res.prefix + "list")
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
                    snap = api._snapshots.get((res.name, rv))
                if rv is None:
                    self._send_status(400, "BadRequest", "continue key is not valid: illegal base64 data")
                    return
                if snap is None:
                    self._send_status(410, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
                    return
                keys, objs = snap
            else:
                rv = api._rv
                store = res.store(api)
                if limit and (res.name, rv) in api._snapshots:
                    keys, objs = api._snapshots[(res.name, rv)]
                else:
                    keys = sorted(store)
                    objs = [store[k] for k in keys]
                    if limit:
                        api._snapshots[(res.name, rv)] = (keys, objs)
                        while len(api._snapshots) > 8:
                            del api._snapshots[next(iter(api._snapshots))]
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
            self._send_json(200, table(sel, rv, next_cont, remaining, resource=res.name))
            return
        if (bad is None and pods and pristine and ns in (None, "kube-system") and not selective and not cont
                and (not limit or limit >= len(sel)) and next_cont is None):
            body = fixture_podlist_bytes()
        else:
            lm = {"resourceVersion": str(rv)}
            if next_cont:
                lm["continue"] = next_cont
                if remaining is not None:
                    lm["remainingItemCount"] = remaining
            body = go_json({"kind": res.kind + "List", "apiVersion": "v1", "metadata": lm, "items": sel}) + b"\n"
        if pods:
            api._list_pages_served(len(sel), more)
        else:
            api._count("ns_list_items", len(sel))
        if bad is None:
            self._send_body(200, body)
        else:
            self._send_bad_body(bad, body, rv, res)

    def _send_bad_body(self, mode, body, rv, res=None):
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
            self._send_json(200, wrongtypes_podlist(rv) if res is None or res.name == "pods"
                            else wrongtypes_nslist(rv))
        elif mode == "wrongtypes_top":
            self._send_json(200, {"kind": (res.kind if res else "Pod") + "List", "apiVersion": "v1",
                                  "metadata": {"resourceVersion": int(rv)}, "items": {"not": "an array"}})
        elif mode == "huge":
            obj = json.loads(body)
            obj["items"].append(huge_pod() if res is None or res.name == "pods" else huge_namespace())
            self._send_json(200, obj)
        else:
            raise ValueError("unknown bad mode %r" % mode)

    # ---- watch
    def _watch(self, ns, q, res=None):
        api = self.server.api
        res = res or RESOURCES["pods"]
        pods = res.name == "pods"
        sel = self._selectors(q, res)
        if sel is None:
            return
        match, selective = sel
        rv_s = q.get("resourceVersion", "")
        bookmarks = truthy(q.get("allowWatchBookmarks", ""))
        send_initial = truthy(q.get("sendInitialEvents", ""))
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
        bad = api._take_bad(res.prefix + "watch")
        initial = []
        expired = False
        with api._lock:
            gen = api._generation
            if api._expire_next_watch > 0:
                api._expire_next_watch -= 1
                expired = True
            elif api._expire_next.get(res.name, 0) > 0:
                api._expire_next[res.name] -= 1
                expired = True
            elif rv_req and rv_req < api._compacted_rv:
                expired = True
            start_idx = len(api._events)
            store = res.store(api)
            if send_initial:
                if pods and api._pristine and ns in (None, "kube-system") and not selective:
                    initial = [("raw", line) for line in fixture_watchlist_lines()
                               if bookmarks or b'"type":"BOOKMARK"' not in line]
                else:
                    for k in sorted(store):
                        p = store[k]
                        if (ns is None or p["metadata"].get("namespace") == ns) and match(p):
                            initial.append(("ADDED", p))
                    if bookmarks:
                        initial.append(("BOOKMARK", {"resourceVersion": str(api._rv),
                                                     "annotations": {"k8s.io/initial-events-end": "true"}}))
            elif not rv_s or rv_req == 0:
                for k in sorted(store):
                    p = store[k]
                    if (ns is None or p["metadata"].get("namespace") == ns) and match(p):
                        initial.append(("ADDED", p))
            else:
                # events strictly after rv_req
                rvs = api._event_rvs
                start_idx = bisect.bisect_right(rvs, rv_req)
            pos = start_idx
            live_from = len(api._events)
            api._open_watches += 1
            wrec = {"rec": self._rec, "bookmarks": bookmarks, "resource": res.name}
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
                self._bad_watch_action(bad, res)
            as_table = self._wants_table()
            for typ, obj in initial:
                if typ == "raw":
                    self._chunk(obj)
                elif typ == "BOOKMARK":
                    self._chunk(bookmark_line(obj["resourceVersion"], obj.get("annotations"), res))
                elif as_table:
                    self._chunk(watch_line(typ, table([obj], obj["metadata"].get("resourceVersion", ""),
                                                      resource=res.name)))
                else:
                    self._chunk(watch_line(typ, with_kind(obj, res.kind)))
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
                        if idx < live_from or ev.obj_resource not in (None, res.name):
                            continue
                        if ev.type == "BOOKMARK":
                            if bookmarks:
                                with api._lock:
                                    cur = str(api._rv)
                                self._chunk(bookmark_line(cur, None, res))
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
                            self._bad_watch_action(ev.obj, res)
                        continue
                    if ev.resource != res.name:
                        continue
                    if ns is not None and ev.ns != ns:
                        continue
                    out = ev.convert(match) if selective else (ev.type, ev.obj)
                    if out is None:
                        continue
                    if as_table:
                        self._chunk(watch_line(out[0], table([out[1]], out[1]["metadata"].get("resourceVersion", ""),
                                                             resource=res.name)))
                    elif out[0] == ev.type and out[1] is ev.obj:
                        self._chunk(ev.line())
                    else:
                        self._chunk(watch_line(out[0], with_kind(out[1], res.kind)))
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

    def _bad_watch_action(self, mode, res=None):
        if res is not None and res.name == "namespaces":
            def sample(name, ip):
                return with_kind(make_namespace(name, rv=1), "Namespace")
        else:
            def sample(name, ip):
                return with_kind(make_pod(name, ip))
        if mode == "truncated_line":
            line = watch_line("ADDED", sample("trunc-1", "10.99.0.1"))
            self._chunk(line[:len(line) // 2] + b"\n")
        elif mode == "garbage":
            self._chunk(b"this is not json\n")
            self._chunk(b"\x00\xff\xfe{]]\n")
        elif mode == "wrongtypes":
            for line in (wrongtypes_watch_lines() if res is None or res.name == "pods"
                         else wrongtypes_ns_watch_lines()):
                self._chunk(line)
        elif mode == "huge":
            self._chunk(watch_line("ADDED", with_kind(huge_pod()) if res is None or res.name == "pods"
                                   else with_kind(huge_namespace(), "Namespace")))
        elif mode == "split":
            # from now on every event is split over many 7-byte chunks (valid HTTP)
            self._split_chunks = 7
        elif mode == "close_mid_chunk":
            line = watch_line("ADDED", sample("midchunk-1", "10.99.0.2"))
            self.wfile.write(b"%x\r\n" % len(line) + line[:len(line) // 2])
            self._kill_connection()
        elif mode == "close_mid_line":
            line = watch_line("ADDED", sample("midline-1", "10.99.0.3"))
            self._chunk(line[:len(line) // 2])
            self._kill_connection()
        elif mode == "abort":
            self._kill_connection()
        elif isinstance(mode, (bytes, bytearray)):
            self._chunk(bytes(mode))
        else:
            raise ValueError("unknown bad watch mode %r" % (mode,))


def watch_line(typ, obj):
    return b'{"type":"' + typ.encode() + b'","object":' + go_json(obj) + b"}\n"


def bookmark_line(rv, annotations=None, res=None):
    md = {"resourceVersion": str(rv)}
    if annotations:
        md["annotations"] = annotations
    if res is not None and res.name == "namespaces":
        return watch_line("BOOKMARK", {"kind": "Namespace", "apiVersion": "v1", "metadata": md,
                                       "spec": {}, "status": {}})
    return watch_line("BOOKMARK", {"kind": "Pod", "apiVersion": "v1", "metadata": md,
                                   "spec": {"containers": None}, "status": {}})


def wrongtypes_nslist(rv):
    """A NamespaceList whose items have fields of the wrong JSON types."""
    return {"kind": "NamespaceList", "apiVersion": "v1", "metadata": {"resourceVersion": str(rv)},
            "items": [{"metadata": {"name": 42, "annotations": {"egress.connectd.io/allow": 7}}},
                      {"metadata": "not an object"},
                      {"metadata": {"name": "wt-ns", "annotations": ["a", "b"], "labels": "x"}},
                      "not an object"]}


def wrongtypes_ns_watch_lines():
    return [b'{"type":"ADDED","object":{"kind":"Namespace","metadata":{"name":42}}}\n',
            b'{"type":"MODIFIED","object":{"kind":"Namespace","metadata":"x"}}\n',
            b'{"type":"ADDED","object":{"kind":"Namespace","metadata":{"name":"wt-ns",'
            b'"annotations":{"egress.connectd.io/allow":["a"]}}}}\n',
            b'{"type":7,"object":[]}\n']


PATCH_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json",
               "application/json-patch+json")


class PatchError(Exception):
    def __init__(self, code, reason, message):
        Exception.__init__(self, message)
        self.code, self.reason, self.message = code, reason, message


def merge_patch(target, patch, strategic=False):
    """RFC 7386 JSON merge patch (null removes a key).  strategic: the
    strategic-merge directives ($patch, $retainKeys, $setElementOrder/...,
    $deleteFromPrimitiveList/...) are dropped; lists are replaced whole, which
    is what a strategic merge does for maps such as labels and annotations
    (list merge keys are not modelled)."""
    if not isinstance(patch, dict):
        return patch
    if strategic and patch.get("$patch") == "delete":
        return None
    if strategic and patch.get("$patch") == "replace":
        return {k: v for k, v in patch.items() if not k.startswith("$")}
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if strategic and k.startswith("$"):
            continue
        if v is None:
            out.pop(k, None)
        else:
            r = merge_patch(out.get(k), v, strategic)
            if r is None:
                out.pop(k, None)
            else:
                out[k] = r
    return out


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(422, "Invalid", "the server rejected our request due to an error in our request: "
                         "JSON pointer must be empty or start with a \"/\": %s" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc, ops):
    """RFC 6902 (add, remove, replace, test, move, copy)."""
    def walk(d, parts, create=False):
        for p in parts:
            if isinstance(d, dict):
                if p not in d:
                    raise PatchError(422, "Invalid", "the server rejected our request due to an error in our request")
                d = d[p]
            elif isinstance(d, list):
                try:
                    d = d[int(p)]
                except (ValueError, IndexError):
                    raise PatchError(422, "Invalid", "the server rejected our request due to an error in our request")
            else:
                raise PatchError(422, "Invalid", "the server rejected our request due to an error in our request")
        return d

    def get(d, path):
        return walk(d, _pointer(path))

    def remove(d, path):
        parts = _pointer(path)
        parent = walk(d, parts[:-1])
        try:
            if isinstance(parent, list):
                return parent.pop(int(parts[-1]))
            return parent.pop(parts[-1])
        except (KeyError, ValueError, IndexError, AttributeError):
            raise PatchError(422, "Invalid", 'the server rejected our request due to an error in our request: '
                             'unable to remove nonexistent key: %s' % parts[-1])

    def add(d, path, value):
        parts = _pointer(path)
        if not parts:
            return value
        parent = walk(d, parts[:-1])
        last = parts[-1]
        if isinstance(parent, dict):
            parent[last] = value
        elif isinstance(parent, list):
            if last == "-":
                parent.append(value)
            else:
                try:
                    parent.insert(int(last), value)
                except ValueError:
                    raise PatchError(422, "Invalid", "the server rejected our request due to an error in our request")
        else:
            raise PatchError(422, "Invalid", "the server rejected our request due to an error in our request")
        return d

    for op in ops:
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise PatchError(400, "BadRequest", "error decoding patch: an operation needs op and path")
        kind, path = op.get("op"), op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(400, "BadRequest", 'error decoding patch: missing value for "%s"' % kind)
        if kind == "add":
            doc = add(doc, path, op["value"])
        elif kind == "remove":
            remove(doc, path)
        elif kind == "replace":
            remove(doc, path)
            doc = add(doc, path, op["value"])
        elif kind == "test":
            if get(doc, path) != op["value"]:
                raise PatchError(422, "Invalid", 'the server rejected our request due to an error in our '
                                 'request: testing value %s failed' % path)
        elif kind in ("move", "copy"):
            if not isinstance(op.get("from"), str):
                raise PatchError(400, "BadRequest", "error decoding patch: %s needs from" % kind)
            v = get(doc, op["from"])
            if kind == "move":
                remove(doc, op["from"])
            else:
                v = json.loads(json.dumps(v))
            doc = add(doc, path, v)
        else:
            raise PatchError(400, "BadRequest", 'error decoding patch: unexpected kind of operation: "%s"' % kind)
    return doc


def check_object(obj, res):
    """The patched object still decodes as a Pod / Namespace (the parts
    the server looks at): metadata an object, labels and annotations maps of
    strings; a 400 otherwise, as a failed decode."""
    md = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(md, dict):
        raise PatchError(400, "BadRequest", "json: cannot unmarshal into Go struct field %s.metadata of type "
                         "v1.ObjectMeta" % res.kind)
    for k in ("labels", "annotations"):
        m = md.get(k)
        if m is None:
            continue
        if not isinstance(m, dict) or not all(isinstance(v, str) for v in m.values()):
            raise PatchError(400, "BadRequest", "json: cannot unmarshal into Go struct field ObjectMeta.metadata.%s "
                             "of type map[string]string" % k)
        if k == "labels":
            for lk, lv in m.items():
                if len(lv) > 63 or not re.match(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$", lv):
                    raise PatchError(422, "Invalid", '%s "%s" is invalid: metadata.labels: Invalid value: "%s": '
                                     "a valid label must be an empty string or consist of alphanumeric "
                                     "characters, '-', '_' or '.', and must start and end with an "
                                     "alphanumeric character" % (res.kind, md.get("name"), lv))


class Resource(object):
    """What the server needs to know of a kind of object: its name in URLs,
    kind, field labels, whether it is namespaced, where K8sAPI keeps it
    (attribute `attr`, keyed "NS/NAME" or "NAME"), and the prefix of its
    request kinds in the request log ("" for pods: list, watch, get, patch;
    "ns_" for namespaces: ns_list, ns_watch, ns_get, ns_patch)."""

    def __init__(self, name, kind, fields, namespaced, attr, prefix):
        self.name, self.kind, self.fields, self.namespaced = name, kind, fields, namespaced
        self.attr, self.prefix = attr, prefix

    def store(self, api):
        return getattr(api, self.attr)

    def key(self, ns, name):
        return "%s/%s" % (ns, name) if self.namespaced else name


RESOURCES = {
    "pods": Resource("pods", "Pod", _FIELDS, True, "_pods", ""),
    "namespaces": Resource("namespaces", "Namespace", _NS_FIELDS, False, "_ns", "ns_"),
}


class Event(object):
    __slots__ = ("rv", "type", "obj", "old", "ns", "control", "resource", "obj_resource", "_line")

    def __init__(self, rv, typ, obj=None, old=None, control=False, resource="pods"):
        self.rv, self.type, self.obj, self.old, self.control = rv, typ, obj, old, control
        self.resource = resource
        self.obj_resource = None  # control events: only watches of this resource (None: all)
        self.ns = (obj["metadata"].get("namespace") if (obj is not None and not control
                                                         and resource == "pods") else None)
        self._line = None

    def line(self):
        if self._line is None:
            self._line = watch_line(self.type, with_kind(self.obj, RESOURCES[self.resource].kind))
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
