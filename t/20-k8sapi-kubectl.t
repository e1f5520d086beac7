#!/usr/bin/env python3
# The test API server speaks the real protocol: kubectl lists, pages, filters
# and watches against it; bad tokens, anonymous requests and a wrong CA fail
# the way they fail against a real kube-apiserver.
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(__file__)), "lib"))
import tap  # noqa: E402
from k8sapi import fixtures as kf  # noqa: E402
from k8sapi.control import K8sAPI  # noqa: E402
from podmeta_util import Proc  # noqa: E402

KUBECTL = shutil.which("kubectl")
if not KUBECTL:
    tap.skip_all("kubectl not installed (Debian: kubernetes-client)")

api = K8sAPI().start()


def kubectl(*args, kubeconfig=None, timeout=20):
    argv = [KUBECTL, "--kubeconfig", kubeconfig or api.kubeconfig, "--cache-dir", api.path("kcache"),
            "--request-timeout", "10s"] + list(args)
    try:
        r = subprocess.run(argv, capture_output=True, timeout=timeout,
                           env=dict(os.environ, HOME=api.dir))
    except subprocess.TimeoutExpired:
        return 124, "", "timeout"
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def decode_stream(text):
    """Concatenated JSON documents (kubectl -w -o json prints one per event)."""
    dec = json.JSONDecoder()
    out, i = [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        try:
            obj, i = dec.raw_decode(text, i)
        except ValueError:
            return out
        out.append(obj)


fixture = kf.fixture_pods()
names = sorted(p["metadata"]["name"] for p in fixture)

try:
    # ---- the raw wire: the pristine list goes out as recorded
    import ssl
    import http.client
    ctx = ssl.create_default_context(cafile=api.ca_file)
    c = http.client.HTTPSConnection("127.0.0.1", api.port, context=ctx, timeout=10)
    c.request("GET", "/api/v1/pods", headers={"Authorization": "Bearer " + api.token})
    resp = c.getresponse()
    body = resp.read()
    tap.is_(resp.status, 200, "GET /api/v1/pods: 200")
    tap.ok(body == kf.fixture_podlist_bytes(), "body is the recorded PodList, byte for byte")
    tap.is_(resp.getheader("Content-Type"), "application/json", "Content-Type application/json")
    tap.is_(resp.getheader("Cache-Control"), "no-cache, private", "Cache-Control like the apiserver")
    tap.ok(resp.getheader("Audit-Id") and resp.getheader("X-Kubernetes-Pf-Flowschema-Uid"),
           "Audit-Id and X-Kubernetes-Pf-* headers")
    c.request("GET", "/api/v1/pods", headers={"Authorization": "Bearer nope"})
    resp = c.getresponse()
    body = resp.read()
    tap.is_(resp.status, 401, "bad token: 401")
    tap.is_(json.loads(body), {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": "Unauthorized", "reason": "Unauthorized", "code": 401},
            "bad token: a Status body")
    c.close()

    # ---- kubectl get pods -A -o json
    rc, out, err = kubectl("get", "pods", "-A", "-o", "json")
    tap.is_(rc, 0, "kubectl get pods -A -o json exits 0")
    try:
        lst = json.loads(out)
    except ValueError:
        lst = {}
        tap.diag(err)
    items = lst.get("items") or []
    tap.is_(sorted(i["metadata"]["name"] for i in items), names, "kubectl lists the 8 fixture pods")
    # kubectl >= 1.21 hides managedFields unless --show-managed-fields; 1.20 (Debian 12) prints them
    for p in fixture + items:
        p["metadata"].pop("managedFields", None)
    tap.ok(items == [kf.with_kind(p) for p in fixture], "each item is the recorded pod, field for field")
    tap.ok(any(r["query"].get("limit") == "500" for r in api.requests("list")),
           "kubectl listed with limit=500 (chunked list)")

    # ---- pagination through kubectl
    n0 = len(api.requests("list"))
    rc, out, err = kubectl("get", "pods", "-A", "-o", "json", "--chunk-size=3")
    got = [i["metadata"]["name"] for i in (json.loads(out).get("items") if rc == 0 else [])]
    tap.is_(sorted(got), names, "--chunk-size=3: all 8 pods across pages")
    pages = api.requests("list")[n0:]
    tap.is_(len(pages), 3, "three list requests (3+3+2)")
    tap.ok(all(p["query"].get("continue") for p in pages[1:]), "later pages carry the continue token")

    # ---- Table output, field selectors, -o name
    rc, out, err = kubectl("get", "pods", "-A")
    tap.like(out, r"(?m)^NAMESPACE\s+NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s*$",
             "kubectl get pods -A prints the server-side Table header")
    tap.ok(rc == 0 and all(("kube-system   " + n) in out for n in names), "... and a row per pod")
    rc, out, err = kubectl("get", "pods", "-A", "--field-selector", "spec.nodeName=" + kf.FIXTURE_NODE,
                           "-o", "name")
    tap.is_(sorted(out.split()), ["pod/" + n for n in names], "fieldSelector spec.nodeName=<node>: all 8")
    rc, out, err = kubectl("get", "pods", "-A", "--field-selector", "spec.nodeName=no-such-node", "-o", "name")
    tap.ok(rc == 0 and out.strip() == "", "fieldSelector spec.nodeName=no-such-node: none")
    rc, out, err = kubectl("get", "pods", "-A", "--field-selector", "spec.bogus=x")
    tap.ok(rc != 0 and "field label not supported: spec.bogus" in err, "unsupported field label: 400")
    rc, out, err = kubectl("get", "pod", "-n", "kube-system", "kindnet-4pxt7", "-o", "json")
    tap.ok(rc == 0 and json.loads(out)["metadata"]["uid"] == "a69231e3-187c-41e3-b626-722e701fb78c",
           "kubectl get pod NAME")
    rc, out, err = kubectl("get", "pod", "-n", "kube-system", "nope")
    tap.like(err, r'pods "nope" not found', "missing pod: NotFound")

    # ---- kubectl get pods -A -w --output-watch-events -o json
    kc = [KUBECTL, "--kubeconfig", api.kubeconfig, "--cache-dir", api.path("kcache")]
    w0 = len(api.requests("watch"))
    w = Proc(kc + ["get", "pods", "-A", "-w", "--output-watch-events", "-o", "json"],
             env={"HOME": api.dir}, stdin=False)
    ok = api.wait_for(lambda: api.open_watches() >= 1, 15)
    tap.ok(ok, "kubectl opened a watch")
    wr = api.requests("watch")[w0:]
    tap.ok(wr and wr[0]["query"].get("resourceVersion") == "554",
           "kubectl watches from the list's resourceVersion (554)")
    newpod = api.add_pod(kf.make_pod("web-7c9d-abcde", "10.244.1.7", namespace="ci",
                                         labels={"app": "web"}))
    txt = w.read_until(lambda t: "web-7c9d-abcde" in t and t.rstrip().endswith("}")
                       and any(e.get("type") == "ADDED" and e["object"]["metadata"]["name"] == "web-7c9d-abcde"
                               for e in decode_stream(t)), 15)
    evs = decode_stream(txt or w.buf.decode())
    added = [e for e in evs if e.get("type") == "ADDED" and e["object"]["metadata"]["name"] == "web-7c9d-abcde"]
    tap.ok(len(added) == 1, "kubectl -w receives ADDED for a pod added during the watch")
    tap.ok(added and added[0]["object"]["metadata"]["resourceVersion"] == newpod["metadata"]["resourceVersion"]
           and added[0]["object"]["status"]["podIP"] == "10.244.1.7", "... with the new resourceVersion and podIP")
    api.modify_pod("ci", "web-7c9d-abcde", phase="Succeeded")
    api.delete_pod("ci", "web-7c9d-abcde")
    txt = w.read_until(lambda t: any(e.get("type") == "DELETED" for e in decode_stream(t)), 15)
    evs = decode_stream(txt or w.buf.decode())
    tap.is_([e.get("type") for e in evs if e.get("object", {}).get("metadata", {}).get("name") == "web-7c9d-abcde"],
            ["ADDED", "MODIFIED", "DELETED"], "... then MODIFIED and DELETED, in order")
    w.kill()

    # ---- plain `kubectl get pods -A -w` (Table rows through the watch)
    w = Proc(kc + ["get", "pods", "-A", "-w"], env={"HOME": api.dir}, stdin=False)
    txt = w.read_until(lambda t: "kube-scheduler-v1.36-control-plane" in t, 15)
    tap.ok(txt is not None, "kubectl get pods -A -w prints the initial table")
    api.wait_for(lambda: api.open_watches() >= 1, 15)
    api.add_pod(kf.make_pod("job-runner-xyz12", "10.244.1.8", namespace="ci", owner="Job"))
    row = r"(?m)^ci\s+job-runner-xyz12\s+1/1\s+Running\s+0\s+\d+s"
    # wait for the whole row, not just the name: kubectl may be mid-line
    txt = w.read_until(lambda t: re.search(row, t) is not None, 15)
    tap.like(txt or w.buf.decode(), row, "... and a row for the added pod")
    w.kill()

    # ---- watch protocol details kubectl does not show
    c = http.client.HTTPSConnection("127.0.0.1", api.port, context=ctx, timeout=10)
    rv = api.resource_version
    api.add_pod(kf.make_pod("early-1", "10.244.1.9", namespace="ci"))
    c.request("GET", "/api/v1/pods?watch=1&resourceVersion=%d&allowWatchBookmarks=true&timeoutSeconds=1" % rv,
              headers={"Authorization": "Bearer " + api.token})
    resp = c.getresponse()
    tap.is_(resp.getheader("Transfer-Encoding"), "chunked", "watch: chunked transfer encoding")
    t0 = time.time()
    api.bookmark()
    lines = resp.read().decode().splitlines()
    evs = [json.loads(line) for line in lines]
    tap.is_([e["type"] for e in evs], ["ADDED", "BOOKMARK"],
            "watch from RV: only the later event, then a bookmark")
    tap.ok(evs[-1]["object"]["metadata"] == {"resourceVersion": str(api.resource_version)},
           "bookmark carries only the current resourceVersion")
    tap.ok(0.5 < time.time() - t0 < 5, "timeoutSeconds=1 ends the stream cleanly")
    c.request("GET", "/api/v1/namespaces/kube-system/pods?watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
              "&resourceVersion=&resourceVersionMatch=NotOlderThan&timeoutSeconds=1",
              headers={"Authorization": "Bearer " + api.token})
    evs = [json.loads(x) for x in c.getresponse().read().decode().splitlines()]
    tap.is_([e["type"] for e in evs], ["ADDED"] * 8 + ["BOOKMARK"],
            "sendInitialEvents: 8 ADDED and the initial-events-end BOOKMARK")
    tap.is_(evs[-1]["object"]["metadata"].get("annotations"), {"k8s.io/initial-events-end": "true"},
            "... annotated k8s.io/initial-events-end")
    c.request("GET", "/api/v1/pods?limit=2", headers={"Authorization": "Bearer " + api.token})
    first = json.loads(c.getresponse().read())
    tok = first["metadata"].get("continue")
    tap.is_(first["metadata"].get("remainingItemCount"), len(api.pods()) - 2, "remainingItemCount")
    api.compact()
    api.add_pod(kf.make_pod("late-1", "10.244.1.10", namespace="ci"))
    c.request("GET", "/api/v1/pods?limit=2&continue=" + tok, headers={"Authorization": "Bearer " + api.token})
    resp = c.getresponse()
    st = json.loads(resp.read())
    tap.ok(resp.status == 410 and st.get("reason") == "Expired", "expired continue token: 410 Expired")
    c.request("GET", "/api/v1/pods?watch=1&resourceVersion=%d" % rv, headers={"Authorization": "Bearer " + api.token})
    evs = [json.loads(x) for x in c.getresponse().read().decode().splitlines()]
    tap.ok(len(evs) == 1 and evs[0]["type"] == "ERROR" and evs[0]["object"]["code"] == 410
           and evs[0]["object"]["reason"] == "Expired", "watch from a compacted RV: in-stream ERROR 410 Expired")
    c.close()

    # ---- authentication failures as kubectl reports them
    rc, out, err = kubectl("get", "pods", "-A", "-o", "json", kubeconfig=api.path("kubeconfig-badtoken"))
    tap.ok(rc != 0 and ("Unauthorized" in err or "must be logged in" in err), "bad token: kubectl fails (Unauthorized)")
    tap.ok(api.count("discovery", status=401) + api.count("list", status=401) > 0, "... the server answered 401")
    rc, out, err = kubectl("get", "pods", "-A", "-o", "name", "--certificate-authority", api.path("other-ca.crt"),
                           "--server", api.url)
    tap.ok(rc != 0 and ("x509" in err or "certificate" in err), "wrong CA: kubectl refuses the server certificate")
    rc, out, err = kubectl("get", "pods", "-A", "-o", "name", kubeconfig=api.path("kubeconfig-cert"))
    tap.ok(rc == 0 and "pod/kindnet-4pxt7" in out, "client-certificate kubeconfig works")
    old_kc = open(api.kubeconfig).read()
    api.rotate_token()
    with open(api.path("stale-kubeconfig"), "w") as f:
        f.write(old_kc)
    rc, out, err = kubectl("get", "pods", "-A", "-o", "name", kubeconfig=api.path("stale-kubeconfig"))
    tap.ok(rc != 0 and ("Unauthorized" in err or "must be logged in" in err), "after rotation the old token gets 401")
    rc, out, err = kubectl("get", "pods", "-A", "-o", "name", kubeconfig=api.path("kubeconfig-tokenfile"))
    tap.ok(rc == 0 and "pod/kindnet-4pxt7" in out, "tokenFile kubeconfig picks up the new token")
    tap.is_(api.errors(), [], "no server-side exceptions")
    tap.ok(len(api.tls_errors) >= 1, "the wrong-CA client aborted the TLS handshake")
finally:
    api.stop()
tap.done()
