"""k8sapi/control.py: the test-facing API of the test Kubernetes API server.

A K8sAPI holds the cluster state (pods, namespaces, resourceVersion, the
event log watches replay), starts the HTTPS server of server.py on
127.0.0.1, writes the token file and kubeconfig files, and lets a test
script a scenario: add/modify/delete pods and namespaces, annotate and
label them, rotate tokens, restart, scripted failures and broken
responses; it records every request for the test to check.

Request records (requests(), count(), fail_next(kind=...)) have a "kind":
pods: "list", "watch", "get", "patch"; namespaces: "ns_list", "ns_watch",
"ns_get", "ns_patch"; "discovery", "health", "other".  Each also has
"method", "resource" ("pods", "namespaces" or None), "path", "query",
"status", "token", and for a PATCH "content_type" and "body" (bytes).
"""
import atexit
import base64
import copy
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid

from .fixtures import (NS_CREATED, edit, generate_pods, load_fixture_list, make_namespace, merge_map,
                       now_rfc3339, pod_key)
from .server import Event, Handler, Server, make_certs, tls_context


_live = []
_REQUEST_KINDS = ("list", "watch", "get", "patch", "ns_list", "ns_watch", "ns_get", "ns_patch")


def _cleanup_all():
    for a in list(_live):
        try:
            a.stop()
        except Exception:
            pass


atexit.register(_cleanup_all)


class K8sAPI(object):
    def __init__(self, pods="fixture", token=None, rv=None, default_watch_timeout=1800.0,
                 bookmark_interval=None, client_certs=True, namespaces=None):
        """pods: "fixture" (the 8 recorded pods, pristine: served byte-for-byte),
        a list of pod dicts, or None/[] for an empty cluster.
        namespaces: more namespaces there from the start (no events; the pods'
        list stays pristine): names, or dicts as fixtures.make_namespace()
        makes (their resourceVersion is set to the initial one)."""
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._pods = {}
        self._ns = {}  # name -> Namespace (as a list item: no kind/apiVersion)
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
        self._expire_next = {"pods": 0, "namespaces": 0}
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
        if pods == "fixture":
            fl = load_fixture_list()
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
        # the namespaces a cluster starts with, and those the pods are in: no
        # events, at the initial resourceVersion, as old as the recorded cluster
        for n in sorted({"default", "kube-system", "kube-public", "kube-node-lease"}
                        | {p["metadata"].get("namespace") for p in self._pods.values()} - {None, ""}):
            self._ns[n] = make_namespace(n, rv=self._rv, created=NS_CREATED)
        for n in namespaces or []:
            if isinstance(n, str):
                n = make_namespace(n, created=NS_CREATED)
            n = copy.deepcopy(n)
            n.pop("kind", None)
            n.pop("apiVersion", None)
            n["metadata"]["resourceVersion"] = str(self._rv)
            self._ns[n["metadata"]["name"]] = n
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
            self._ssl_ctx = tls_context(self.dir, self.client_certs)
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
                self._server = Server(("127.0.0.1", port), Handler, self)
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
    def _append_event(self, typ, obj, old=None, resource="pods"):
        ev = Event(self._rv, typ, obj, old, resource=resource)
        self._events.append(ev)
        self._event_rvs.append(self._rv)
        self._pristine = False
        self._cond.notify_all()

    def _append_control(self, typ, obj=None, resource=None):
        with self._cond:
            ev = Event(self._rv, typ, obj, control=True)
            ev.obj_resource = resource
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
            self._ensure_namespace(pod["metadata"].get("namespace"))
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
            new = edit(copy.deepcopy(old), ip=ip, ips=ips, phase=phase, labels=labels,
                       annotations=annotations)
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
                n = p["metadata"].get("namespace")
                if n and n not in self._ns:
                    self._ns[n] = make_namespace(n, rv=self._rv)
            self._compacted_rv = self._rv
            self._pristine = False
            self._snapshots.clear()
            self._cond.notify_all()

    def annotate_pod(self, namespace, name, changes):
        """Change a pod's annotations ({key: value, or None to remove it}):
        a MODIFIED event, as `kubectl annotate pod` makes."""
        return self.modify_pod(namespace, name, fn=lambda p: merge_map(p, "annotations", changes))

    def label_pod(self, namespace, name, changes):
        """Change a pod's labels ({key: value, or None to remove it}): MODIFIED."""
        return self.modify_pod(namespace, name, fn=lambda p: merge_map(p, "labels", changes))

    # ---- namespaces: objects in the same resourceVersion sequence and event log
    def _ensure_namespace(self, name):
        """A pod's namespace exists before the pod (as the apiserver's
        NamespaceLifecycle admission insists): made here, ADDED, if new."""
        if name and name not in self._ns:
            self._rv += 1
            ns = make_namespace(name, rv=self._rv, uid=str(uuid.uuid4()))
            self._ns[name] = ns
            self._append_event("ADDED", ns, resource="namespaces")

    def _replace(self, resource, key, new, old):
        """Store a changed object at the next resourceVersion: a MODIFIED
        event.  (The server's PATCH, and modify_*, come here.)"""
        with self._cond:
            store = self._pods if resource == "pods" else self._ns
            self._rv += 1
            new["metadata"]["resourceVersion"] = str(self._rv)
            store[key] = new
            self._append_event("MODIFIED", new, old, resource=resource)
            self._count("patches" if resource == "pods" else "ns_patches")
        return new

    def add_namespace(self, name, labels=None, annotations=None):
        """A new Namespace (ADDED event); returns the stored object.  KeyError
        if it exists (the initial ones and those of pods already do: use
        annotate_namespace)."""
        with self._cond:
            if name in self._ns:
                raise KeyError("namespace %s exists" % name)
            self._rv += 1
            ns = make_namespace(name, rv=self._rv, labels=labels, annotations=annotations,
                                uid=str(uuid.uuid4()))
            self._ns[name] = ns
            self._append_event("ADDED", ns, resource="namespaces")
        return ns

    def get_namespace(self, name):
        with self._lock:
            return self._ns.get(name)

    def namespaces(self):
        with self._lock:
            return [self._ns[k] for k in sorted(self._ns)]

    def modify_namespace(self, name, fn=None, labels=None, annotations=None, phase=None):
        """Change a namespace (MODIFIED event): fn(ns) edits a deep copy in
        place; labels/annotations: {key: value, or None to remove it} merged
        into the present ones; phase: status.phase."""
        with self._cond:
            old = self._ns[name]
            new = copy.deepcopy(old)
            if labels:
                merge_map(new, "labels", labels)
            if annotations:
                merge_map(new, "annotations", annotations)
            if phase is not None:
                new["status"]["phase"] = phase
            if fn is not None:
                fn(new)
            new["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            return self._replace("namespaces", name, new, old)

    def annotate_namespace(self, name, changes):
        """Change a namespace's annotations ({key: value, or None to remove
        it}): a MODIFIED event, as `kubectl annotate namespace` makes."""
        return self.modify_namespace(name, annotations=changes)

    def label_namespace(self, name, changes):
        return self.modify_namespace(name, labels=changes)

    def delete_namespace(self, name, terminating=False):
        """Delete a namespace as the namespace controller does: with
        terminating=True first a MODIFIED (deletionTimestamp, phase
        Terminating); then each of its pods DELETED; then the namespace
        DELETED (carrying its last state at the new RV).  Returns that."""
        if terminating:
            def term(ns):
                ns["metadata"]["deletionTimestamp"] = now_rfc3339()
                ns["status"]["phase"] = "Terminating"
            self.modify_namespace(name, fn=term)
        with self._cond:
            if name not in self._ns:
                raise KeyError("namespace %s" % name)
            for k in sorted(k for k in self._pods if k.startswith(name + "/")):
                self.delete_pod(name, k[len(name) + 1:])
            old = self._ns.pop(name)
            gone = copy.copy(old)
            gone["metadata"] = dict(old["metadata"])
            self._rv += 1
            gone["metadata"]["resourceVersion"] = str(self._rv)
            self._append_event("DELETED", gone, old, resource="namespaces")
        return gone

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
    # resource: "pods" or "namespaces" for those watches only; None: every watch
    def bookmark(self, resource=None):
        """Send a BOOKMARK with the current RV on every open bookmark watch."""
        self._append_control("BOOKMARK", resource=resource)

    def _bookmark_loop(self):
        while not self._stopping:
            time.sleep(self.bookmark_interval)
            if not self._stopping:
                self.bookmark()

    def end_watches(self, resource=None):
        """End every open watch cleanly (terminating chunk), as a timeout does."""
        self._append_control("END", resource=resource)

    def abort_watches(self, resource=None):
        """Drop every open watch's connection without the terminating chunk."""
        self._append_control("ABORT", resource=resource)

    def inject_expired_error_event(self, resource=None):
        """An ERROR event (410 Expired) on the open watches, ending them; with no
        watch open, the next watch request gets it first thing."""
        with self._cond:
            if (self._open_watches if resource is None else self.open_watches(resource)) == 0:
                if resource is None:
                    self._expire_next_watch += 1
                else:
                    self._expire_next[resource] += 1
                return
        self._append_control("EXPIRE", resource=resource)

    def inject_410(self, count=1, resource="pods"):
        """The next `count` watch requests (of pods; resource="namespaces": of
        namespaces) get HTTP 410 Expired."""
        self.fail_next(410, kind="watch" if resource == "pods" else "ns_watch", count=count)

    def fail_next(self, status=500, retry_after=None, kind=None, count=1, body=None, match=None):
        """The next `count` pod requests (kind "list", "watch", "get" or None
        for any of them; match(request_record) -> bool narrows it further,
        e.g. lambda r: "continue" in r["query"]) fail with `status` and a
        Status body.  Other kinds: "patch" (a pod's), the namespace requests
        "ns_list", "ns_watch", "ns_get", "ns_patch", "ns" for any of those;
        or a tuple of kinds."""
        with self._lock:
            for _ in range(count):
                self._failures.append({"status": status, "retry_after": retry_after,
                                       "kind": kind, "body": body, "match": match})

    def _take_failure(self, kind, rec=None):
        if kind not in _REQUEST_KINDS:
            return None

        def hits(fk):
            if fk is None:
                return kind in ("list", "watch", "get")
            if isinstance(fk, (tuple, list, set, frozenset)):
                return any(hits(x) for x in fk)
            return fk == kind or (fk == "ns" and kind.startswith("ns_"))
        with self._lock:
            for i, f in enumerate(self._failures):
                if hits(f["kind"]) and (f["match"] is None or rec is None or f["match"](rec)):
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
        """The next list (kind "list"; namespaces: "ns_list") or watch
        ("watch"; "ns_watch") request gets a broken response (wrongtypes and
        huge send namespaces on a namespace request).  list modes: truncated, truncated_chunked, short_body,
        close_mid_chunk, not_json, empty, wrongtypes, wrongtypes_top, huge.
        watch modes (sent at the start of the stream): truncated_line, garbage,
        wrongtypes, huge, close_mid_chunk, close_mid_line, abort."""
        with self._lock:
            self._bad.append((kind, mode))

    def bad_watch(self, mode, resource=None):
        """Send a broken thing on the open watches now (modes as bad_next's watch
        modes, or raw bytes: one chunk); resource "pods" or "namespaces": on
        those watches only (default: every watch)."""
        self._append_control("BAD", mode, resource=resource)

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

    def open_watches(self, resource=None):
        """How many watches are open (resource "pods" or "namespaces": of those)."""
        with self._lock:
            if resource is None:
                return self._open_watches
            return sum(1 for w in self._watchers if w.get("resource") == resource)

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
            return "rv=%d pods=%d namespaces=%d open_watches=%d requests=%s" % (
                self._rv, len(self._pods), len(self._ns), self._open_watches,
                ",".join("%s=%d" % kv for kv in sorted(by.items())))


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="python3 t/lib/k8sapi", description="A test Kubernetes API server on 127.0.0.1: prints its URL, kubeconfig, token and CA files, serves until ^C.")
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
