"""k8sapi: a test Kubernetes API server for podmeta's scenarios.

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
* GET /api/v1/namespaces (list: pagination, fieldSelector metadata.name and
  status.phase, labelSelector), /api/v1/namespaces/NAME, and their watch:
  Namespaces are objects in the pods' one resourceVersion sequence and
  event log (as etcd's one counter); a pod's namespace exists before it.
* PATCH of a pod or a namespace (application/merge-patch+json,
  strategic-merge-patch+json: maps such as labels and annotations;
  json-patch+json), as kubectl annotate and kubectl label send it: a
  MODIFIED event; 404/400/409/415 with Status bodies.
* watch=1/true: chunked stream, one JSON event per line and per chunk,
  ADDED/MODIFIED/DELETED/BOOKMARK/ERROR; resourceVersion honoured (only later
  events), allowWatchBookmarks, timeoutSeconds, sendInitialEvents (replays the
  recorded watch-list stream while the state is the pristine fixture), field
  selectors with the cacher's ADDED/DELETED conversion.
* Discovery (/api, /api/v1, /apis, /version) and Table output
  (Accept: application/json;as=Table;v=v1;g=meta.k8s.io) for plain
  `kubectl get pods` and `kubectl get namespaces`.

Three modules, by concern:

* fixtures.py: the recorded objects (t/fixtures/k8s/) and pods made from
  them (make_pod, variant, generate_pods, fixture_pods ...);
* server.py: the HTTP/TLS wire protocol above;
* control.py: the test-facing API, K8sAPI (in-process, thread-safe), which
  holds the state, starts the server, writes kubeconfig and token files,
  and lets a test script a scenario:

    from k8sapi import fixtures as kf
    from k8sapi.control import K8sAPI
    api = K8sAPI(); api.start()
    api.add_pod(kf.make_pod("web-1", "10.1.0.5")); api.delete_pod("default", "web-1")
    api.modify_pod("default", "web-1", phase="Succeeded")
    api.annotate_pod("default", "web-1", {"egress.connectd.io/mode": "report"})  # None removes
    api.add_namespace("ci", labels={"team": "a"}, annotations={"egress.connectd.io/allow": "*"})
    api.annotate_namespace("ci", {"egress.connectd.io/allow": None}); api.delete_namespace("ci")
    api.requests("ns_list"), api.requests("ns_watch"), api.requests("patch")  # kinds: see control.py
    api.inject_410(); api.inject_expired_error_event()
    api.fail_next(429, retry_after=1); api.fail_next(500)
    api.bad_next("list", "truncated"); api.bad_watch("close_mid_chunk")
    api.rotate_token(); api.restart()
    api.count("list"), api.requests("watch")

Run it by hand: python3 t/lib/k8sapi [--pods N] prints a kubeconfig path.
"""
