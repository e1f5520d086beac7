#!/usr/bin/env python3
# The test API server's Namespaces are real objects, in the pods'
# resourceVersion sequence and event log: kubectl lists (Table and JSON,
# in pages, by field and label), watches and annotates them, and annotates
# and labels pods, through PATCH; a watch sees the change as MODIFIED.
# Then the raw wire of the requests podmeta makes for namespaces (issue 15):
#   GET /api/v1/namespaces?limit=500[&continue=TOKEN][&fieldSelector=metadata.name%3DNS]
#   GET /api/v1/namespaces?watch=1&allowWatchBookmarks=true&timeoutSeconds=N&resourceVersion=RV[&fieldSelector=...]
# with bookmarks, 410 for an expired resourceVersion, and PATCH's errors.
import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(__file__)), "lib"))
import harness as h  # noqa: E402
import tap  # noqa: E402
from k8sapi import fixtures as kf  # noqa: E402
from k8sapi.control import K8sAPI  # noqa: E402
from podmeta_util import Proc  # noqa: E402

KUBECTL = shutil.which("kubectl")
if not KUBECTL:
    tap.skip_all("kubectl not installed (Debian: kubernetes-client)")
h.watchdog(300)

ALLOW = "egress.connectd.io/allow"
MODE = "egress.connectd.io/mode"
INITIAL = ["default", "kube-node-lease", "kube-public", "kube-system"]

api = K8sAPI().start()
kc = [KUBECTL, "--kubeconfig", api.kubeconfig, "--cache-dir", api.path("kcache")]


def kubectl(*args, timeout=20):
    try:
        r = subprocess.run(kc + ["--request-timeout", "10s"] + list(args), capture_output=True,
                           timeout=timeout, env=dict(os.environ, HOME=api.dir))
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


def events_of(w, name, pred, timeout=15):
    """Wait until pred(events about `name` so far); those events."""
    def about(t):
        return [e for e in decode_stream(t) if e.get("object", {}).get("metadata", {}).get("name") == name]
    txt = w.read_until(lambda t: pred(about(t)), timeout)
    return about(txt if txt is not None else w.buf.decode("utf-8", "replace"))


ctx = ssl.create_default_context(cafile=api.ca_file)


def req(method, path, body=None, ctype=None, token=True):
    c = http.client.HTTPSConnection("127.0.0.1", api.port, context=ctx, timeout=15)
    hd = {"Authorization": "Bearer " + api.token} if token else {}
    if ctype:
        hd["Content-Type"] = ctype
    c.request(method, path, body=body, headers=hd)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data, r


def lines(data):
    return [json.loads(x) for x in data.decode().splitlines() if x.strip()]


try:
    # ---- the namespaces a cluster starts with, as objects
    nss = api.namespaces()
    tap.is_([n["metadata"]["name"] for n in nss], INITIAL, "initial namespaces: default, kube-*")
    tap.ok(all(n["metadata"]["labels"] == {"kubernetes.io/metadata.name": n["metadata"]["name"]}
               and n["status"] == {"phase": "Active"} and n["metadata"]["uid"]
               and int(n["metadata"]["resourceVersion"]) <= api.resource_version
               and n["metadata"]["creationTimestamp"] for n in nss),
           "each with uid, resourceVersion, creationTimestamp, the metadata.name label, phase Active")
    rv0 = api.resource_version
    ci = api.add_namespace("ci", labels={"team": "a"}, annotations={ALLOW: "*.github.com:443"})
    tap.is_(ci["metadata"]["resourceVersion"], str(rv0 + 1), "add_namespace: the next resourceVersion")
    runner = api.add_pod(kf.make_pod("runner-1", "10.244.1.5", namespace="ci"))
    tap.is_(runner["metadata"]["resourceVersion"], str(rv0 + 2), "a pod after it: the next one (one counter)")
    api.add_pod(kf.make_pod("web-1", "10.244.2.5", namespace="web"))
    web = api.get_namespace("web")
    tap.ok(web is not None and web["metadata"]["resourceVersion"] == str(rv0 + 3)
           and api.get_pod("web", "web-1")["metadata"]["resourceVersion"] == str(rv0 + 4),
           "a pod in a new namespace: the namespace is ADDED first, then the pod")

    # ---- kubectl get namespaces: Table and JSON
    rc, out, err = kubectl("get", "namespaces")
    tap.like(out, r"(?m)^NAME\s+STATUS\s+AGE\s*$", "kubectl get namespaces: the server-side Table header")
    tap.ok(rc == 0 and all(re.search(r"(?m)^%s\s+Active\s+\S+\s*$" % re.escape(n), out)
                           for n in INITIAL + ["ci", "web"]), "... a row per namespace, Active")
    rc, out, err = kubectl("get", "namespaces", "-o", "json")
    items = json.loads(out).get("items", []) if rc == 0 else []
    tap.is_([i["metadata"]["name"] for i in items], sorted(INITIAL + ["ci", "web"]), "kubectl get ns -o json: all, by name")
    tap.ok(items and items[0]["kind"] == "Namespace" and
           [dict(i, kind=None, apiVersion=None) for i in items] ==
           [dict(kf.with_kind(n, "Namespace"), kind=None, apiVersion=None) for n in api.namespaces()],
           "... each item the stored object, field for field")
    got_ci = [i for i in items if i["metadata"]["name"] == "ci"]
    tap.is_(got_ci[0]["metadata"].get("annotations") if got_ci else None, {ALLOW: "*.github.com:443"},
            "... ci with its annotation")
    rc, out, err = kubectl("get", "namespace", "ci", "-o", "json")
    tap.ok(rc == 0 and json.loads(out)["metadata"]["uid"] == ci["metadata"]["uid"], "kubectl get namespace NAME")
    rc, out, err = kubectl("get", "namespace", "nope")
    tap.like(err, r'namespaces "nope" not found', "missing namespace: NotFound")
    n0 = len(api.requests("ns_list"))
    rc, out, err = kubectl("get", "namespaces", "-o", "name", "--chunk-size=2")
    tap.is_(out.split(), ["namespace/" + n for n in sorted(INITIAL + ["ci", "web"])], "--chunk-size=2: all six")
    pages = api.requests("ns_list")[n0:]
    tap.ok(len(pages) == 3 and all(p["query"].get("continue") for p in pages[1:])
           and not pages[0]["query"].get("continue"), "... in three pages, the later ones with continue")
    rc, out, err = kubectl("get", "namespaces", "--field-selector", "metadata.name=ci", "-o", "name")
    tap.is_(out.split(), ["namespace/ci"], "--field-selector metadata.name=ci")
    rc, out, err = kubectl("get", "namespaces", "--field-selector", "status.phase=Active", "-o", "name")
    tap.is_(len(out.split()), 6, "--field-selector status.phase=Active")
    rc, out, err = kubectl("get", "namespaces", "--field-selector", "spec.nodeName=x")
    tap.ok(rc != 0 and "field label not supported: spec.nodeName" in err, "a pod's field label: 400")
    rc, out, err = kubectl("get", "namespaces", "-l", "team=a", "-o", "name")
    tap.is_(out.split(), ["namespace/ci"], "-l team=a")

    # ---- kubectl -w sees kubectl annotate / label on a namespace
    w0 = api.mark()
    w = Proc(kc + ["get", "namespaces", "-w", "--output-watch-events", "-o", "json"],
             env={"HOME": api.dir}, stdin=False)
    tap.ok(api.wait_for(lambda: api.open_watches("namespaces") >= 1, 15), "kubectl get ns -w opened a watch")
    wr = api.requests_since(w0, "ns_watch")
    tap.ok(wr and wr[0]["query"].get("resourceVersion") == str(api.resource_version),
           "... from the list's resourceVersion")
    p0 = api.mark()
    rc, out, err = kubectl("annotate", "namespace", "ci", MODE + "=report")
    tap.ok(rc == 0 and "namespace/ci annotated" in out, "kubectl annotate namespace ci mode=report")
    evs = events_of(w, "ci", lambda e: any(x["type"] == "MODIFIED" for x in e))
    mod = [e for e in evs if e["type"] == "MODIFIED"]
    tap.ok(mod and mod[-1]["object"]["metadata"]["annotations"] == {ALLOW: "*.github.com:443", MODE: "report"}
           and mod[-1]["object"]["metadata"]["resourceVersion"] == str(api.resource_version),
           "... the watch gets MODIFIED with both annotations, at the new resourceVersion")
    patches = api.requests_since(p0, "ns_patch")
    tap.ok(len(patches) == 1 and patches[0]["content_type"] == "application/merge-patch+json"
           and json.loads(patches[0]["body"]) == {"metadata": {"annotations": {MODE: "report"}}}
           and patches[0]["status"] == 200, "... kubectl sent one merge patch of the annotation: 200")
    rc, out, err = kubectl("annotate", "namespace", "ci", ALLOW + "=registry.npmjs.org")
    tap.ok(rc != 0 and "overwrite" in err, "without --overwrite kubectl refuses to change it")
    rc, out, err = kubectl("annotate", "namespace", "ci", "--overwrite", ALLOW + "=registry.npmjs.org, *.github.com:443")
    evs = events_of(w, "ci", lambda e: sum(x["type"] == "MODIFIED" for x in e) >= 2)
    tap.ok(rc == 0 and sum(e["type"] == "MODIFIED" for e in evs) == 2
           and evs[-1]["object"]["metadata"]["annotations"][ALLOW] == "registry.npmjs.org, *.github.com:443",
           "--overwrite: MODIFIED with the new value")
    rc, out, err = kubectl("annotate", "namespace", "ci", ALLOW + "-")
    evs = events_of(w, "ci", lambda e: sum(x["type"] == "MODIFIED" for x in e) >= 3)
    tap.ok(rc == 0 and sum(e["type"] == "MODIFIED" for e in evs) == 3
           and evs[-1]["object"]["metadata"]["annotations"] == {MODE: "report"},
           "KEY-: MODIFIED without the annotation")
    tap.is_(api.get_namespace("ci")["metadata"]["annotations"], {MODE: "report"}, "... and the stored one too")
    rc, out, err = kubectl("label", "namespace", "ci", "team=b", "--overwrite")
    evs = events_of(w, "ci", lambda e: sum(x["type"] == "MODIFIED" for x in e) >= 4)
    tap.ok(rc == 0 and evs[-1]["object"]["metadata"]["labels"] ==
           {"kubernetes.io/metadata.name": "ci", "team": "b"}, "kubectl label namespace: MODIFIED")
    p0 = api.mark()
    rc, out, err = kubectl("patch", "namespace", "ci", "-p", '{"metadata":{"annotations":{"x.example/a":"1"}}}')
    rc2, out2, err2 = kubectl("patch", "namespace", "ci", "--type", "json", "-p",
                              '[{"op":"remove","path":"/metadata/annotations/x.example~1a"}]')
    evs = events_of(w, "ci", lambda e: sum(x["type"] == "MODIFIED" for x in e) >= 6)
    tap.ok(rc == 0 and rc2 == 0 and [x["content_type"] for x in api.requests_since(p0, "ns_patch")] ==
           ["application/strategic-merge-patch+json", "application/json-patch+json"]
           and evs[-2]["object"]["metadata"]["annotations"].get("x.example/a") == "1"
           and "x.example/a" not in evs[-1]["object"]["metadata"]["annotations"],
           "kubectl patch (strategic merge, then --type json): two MODIFIED")
    rc, out, err = kubectl("annotate", "namespace", "ci", "--resource-version=1", "x.example/b=1")
    tap.ok(rc != 0 and "the object has been modified" in err, "kubectl annotate --resource-version=<stale>: Conflict")
    api.annotate_namespace("web", {ALLOW: "*"})
    evs = events_of(w, "web", lambda e: any(x["type"] == "MODIFIED" for x in e))
    tap.ok(evs and evs[-1]["type"] == "MODIFIED" and evs[-1]["object"]["metadata"]["annotations"] == {ALLOW: "*"},
           "annotate_namespace(): MODIFIED")
    api.add_namespace("tmp", annotations={MODE: "off"})
    api.delete_namespace("tmp")
    evs = events_of(w, "tmp", lambda e: any(x["type"] == "DELETED" for x in e))
    tap.is_([e["type"] for e in evs], ["ADDED", "DELETED"], "add_namespace, delete_namespace: ADDED, DELETED")
    w.kill()

    # ---- plain kubectl get ns -w: Table rows
    w = Proc(kc + ["get", "namespaces", "-w"], env={"HOME": api.dir}, stdin=False)
    txt = w.read_until(lambda t: re.search(r"(?m)^web\s+Active", t) is not None, 15)
    tap.ok(txt is not None, "kubectl get ns -w prints the initial table")
    api.wait_for(lambda: api.open_watches("namespaces") >= 1, 15)
    api.add_namespace("late")
    txt = w.read_until(lambda t: re.search(r"(?m)^late\s+Active\s+\d+s", t) is not None, 15)
    tap.ok(txt is not None, "... and a row for a namespace added during the watch")
    w.kill()

    # ---- kubectl annotate / label pod: MODIFIED on the pod watch
    w0 = api.mark()
    w = Proc(kc + ["get", "pods", "-n", "ci", "-w", "--output-watch-events", "-o", "json"],
             env={"HOME": api.dir}, stdin=False)
    tap.ok(api.wait_for(lambda: api.open_watches("pods") >= 1, 15), "kubectl get pods -n ci -w opened a watch")
    rc, out, err = kubectl("annotate", "pod", "-n", "ci", "runner-1", ALLOW + "=api.github.com:443")
    evs = events_of(w, "runner-1", lambda e: any(x["type"] == "MODIFIED" for x in e))
    mod = [e for e in evs if e["type"] == "MODIFIED"]
    tap.ok(rc == 0 and mod and mod[-1]["object"]["metadata"]["annotations"].get(ALLOW) == "api.github.com:443",
           "kubectl annotate pod: the pod watch gets MODIFIED with the annotation")
    tap.ok(all(x["status"] == 200 and x["content_type"] == "application/merge-patch+json"
               for x in api.requests_since(w0, "patch")) and api.requests_since(w0, "patch"),
           "... through a merge patch of the pod")
    rc, out, err = kubectl("annotate", "pod", "-n", "ci", "runner-1", ALLOW + "-")
    evs = events_of(w, "runner-1", lambda e: sum(x["type"] == "MODIFIED" for x in e) >= 2)
    tap.ok(rc == 0 and ALLOW not in (evs[-1]["object"]["metadata"].get("annotations") or {}),
           "kubectl annotate pod KEY-: MODIFIED without it")
    rc, out, err = kubectl("label", "pod", "-n", "ci", "runner-1", "tier=ci")
    evs = events_of(w, "runner-1", lambda e: sum(x["type"] == "MODIFIED" for x in e) >= 3)
    tap.ok(rc == 0 and evs[-1]["object"]["metadata"]["labels"].get("tier") == "ci", "kubectl label pod: MODIFIED")
    api.annotate_pod("ci", "runner-1", {MODE: "enforce"})
    evs = events_of(w, "runner-1", lambda e: sum(x["type"] == "MODIFIED" for x in e) >= 4)
    tap.ok(evs[-1]["object"]["metadata"]["annotations"].get(MODE) == "enforce", "annotate_pod(): MODIFIED")
    tap.ok(not any(e["object"].get("kind") == "Namespace" for e in decode_stream(w.buf.decode())),
           "the pod watch carries no namespace events")
    rc, out, err = kubectl("annotate", "pod", "-n", "ci", "nope", "a=b")
    tap.like(err, r'pods "nope" not found', "kubectl annotate a missing pod: NotFound")
    w.kill()

    # ---- the raw wire of podmeta's namespace requests
    st, data, r = req("GET", "/api/v1/namespaces?limit=500")
    lst = json.loads(data)
    names = [n["metadata"]["name"] for n in api.namespaces()]
    tap.ok(st == 200 and lst["kind"] == "NamespaceList" and lst["apiVersion"] == "v1"
           and lst["metadata"] == {"resourceVersion": str(api.resource_version)}
           and [i["metadata"]["name"] for i in lst["items"]] == names,
           "GET /api/v1/namespaces?limit=500: every namespace, one page, the current resourceVersion")
    tap.ok("kind" not in lst["items"][0] and data.endswith(b"}\n") and data.count(b"\n") == 1,
           "... items without kind, compact JSON and a newline, like the apiserver")
    got, tok, n = [], None, 0
    while True:
        st, data, r = req("GET", "/api/v1/namespaces?limit=2" + ("&continue=" + tok if tok else ""))
        page = json.loads(data)
        n += 1
        got += [i["metadata"]["name"] for i in page.get("items", [])]
        tok = page["metadata"].get("continue")
        if n == 1:
            tap.is_(page["metadata"].get("remainingItemCount"), len(names) - 2, "limit=2: remainingItemCount")
        if not tok or n > 10:
            break
    tap.ok(got == names and n == (len(names) + 1) // 2, "limit/continue: all of them in %d pages" % n)
    st, data, r = req("GET", "/api/v1/namespaces?limit=500&fieldSelector=metadata.name%3Dci")
    tap.is_([i["metadata"]["name"] for i in json.loads(data)["items"]], ["ci"], "fieldSelector=metadata.name%3Dci")
    st, data, r = req("GET", "/api/v1/namespaces?limit=500&fieldSelector=metadata.name%3Dnope")
    tap.ok(st == 200 and json.loads(data)["items"] == [], "... of a missing one: an empty list")

    rv = api.resource_version
    api.annotate_namespace("ci", {ALLOW: "10.0.0.0/8"})
    api.add_pod(kf.make_pod("runner-2", "10.244.1.6", namespace="ci"))
    api.annotate_pod("ci", "runner-2", {ALLOW: "example.com"})
    api.add_pod(kf.make_pod("batch-1", "10.244.3.5", namespace="batch"))  # namespace ADDED, then the pod
    api.annotate_namespace("web", {ALLOW: None})
    api.bookmark()  # no watch open: only the live ones get it
    st, data, r = req("GET", "/api/v1/namespaces?watch=1&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion=%d" % rv)
    evs = lines(data)
    tap.ok(st == 200 and r.getheader("Transfer-Encoding") == "chunked", "namespace watch: 200, chunked")
    tap.is_([(e["type"], e["object"]["metadata"]["name"]) for e in evs],
            [("MODIFIED", "ci"), ("ADDED", "batch"), ("MODIFIED", "web")],
            "watch from RV: the later namespace events only, in order (no pod events)")
    tap.ok(all(e["object"]["kind"] == "Namespace" for e in evs)
           and [int(e["object"]["metadata"]["resourceVersion"]) for e in evs] == [rv + 1, rv + 4, rv + 6],
           "... as Namespaces, at their places in the one resourceVersion sequence")
    tap.ok("annotations" not in evs[-1]["object"]["metadata"], "... the removed annotation is gone")
    st, data, r = req("GET", "/api/v1/pods?watch=1&timeoutSeconds=1&resourceVersion=%d" % rv)
    tap.is_([(e["type"], e["object"]["metadata"]["name"]) for e in lines(data)],
            [("ADDED", "runner-2"), ("MODIFIED", "runner-2"), ("ADDED", "batch-1")],
            "the pod watch from the same RV: the pod events only")
    st, data, r = req("GET", "/api/v1/namespaces?watch=1&allowWatchBookmarks=true&timeoutSeconds=1"
                       "&resourceVersion=%d&fieldSelector=metadata.name%%3Dci" % rv)
    tap.is_([(e["type"], e["object"]["metadata"]["name"]) for e in lines(data)], [("MODIFIED", "ci")],
            "watch with fieldSelector=metadata.name%3Dci: that namespace's only")

    # a live watch: an event, then a bookmark of the namespace kind
    res = {}

    def watch_live():
        res["out"] = req("GET", "/api/v1/namespaces?watch=1&allowWatchBookmarks=true&timeoutSeconds=2"
                          "&resourceVersion=%d" % api.resource_version)
    m = api.mark()
    t = threading.Thread(target=watch_live)
    t.start()
    api.wait_watching_since(m, 10)
    api.annotate_namespace("batch", {MODE: "enforce"})
    api.bookmark()
    t.join(15)
    evs = lines(res["out"][1]) if "out" in res else []
    tap.is_([e["type"] for e in evs], ["MODIFIED", "BOOKMARK"], "live namespace watch: MODIFIED, then BOOKMARK")
    tap.ok(evs and evs[-1]["object"]["kind"] == "Namespace"
           and evs[-1]["object"]["metadata"] == {"resourceVersion": str(api.resource_version)},
           "... the bookmark a Namespace carrying only the resourceVersion")
    # initial state without a resourceVersion: ADDED for each
    st, data, r = req("GET", "/api/v1/namespaces?watch=1&timeoutSeconds=1")
    tap.is_([(e["type"], e["object"]["metadata"]["name"]) for e in lines(data)],
            [("ADDED", n["metadata"]["name"]) for n in api.namespaces()], "watch without RV: ADDED for each first")
    # expired resourceVersions
    old = rv
    api.compact()
    api.annotate_namespace("ci", {MODE: "off"})
    st, data, r = req("GET", "/api/v1/namespaces?watch=1&allowWatchBookmarks=true&timeoutSeconds=1"
                       "&resourceVersion=%d" % old)
    evs = lines(data)
    tap.ok(st == 200 and len(evs) == 1 and evs[0]["type"] == "ERROR" and evs[0]["object"]["code"] == 410
           and evs[0]["object"]["reason"] == "Expired", "watch from a compacted RV: ERROR 410 Expired in the stream")
    api.fail_next(410, kind="ns_watch")
    st, data, r = req("GET", "/api/v1/namespaces?watch=1&allowWatchBookmarks=true&timeoutSeconds=1"
                       "&resourceVersion=%d" % api.resource_version)
    tap.ok(st == 410 and json.loads(data)["reason"] == "Expired", "fail_next(410, kind=\"ns_watch\"): HTTP 410")
    st, data, r = req("GET", "/api/v1/namespaces?limit=2")
    tok = json.loads(data)["metadata"]["continue"]
    api.compact()
    api.annotate_namespace("ci", {MODE: None})
    st, data, r = req("GET", "/api/v1/namespaces?limit=2&continue=" + tok)
    tap.ok(st == 410 and json.loads(data)["reason"] == "Expired", "an expired continue token: 410 Expired")
    st, data, r = req("GET", "/api/v1/pods?limit=2")
    ptok = json.loads(data)["metadata"]["continue"]
    st, data, r = req("GET", "/api/v1/namespaces?limit=2&continue=" + ptok)
    tap.is_(st, 410, "a pod list's continue token does not continue a namespace list")
    st, data, r = req("GET", "/api/v1/namespaces?limit=500", token=False)
    tap.ok(st == 403 and 'cannot list resource "namespaces"' in json.loads(data)["message"],
           "anonymous: 403 Forbidden for namespaces")

    # delete_namespace: its pods go first
    rv = api.resource_version
    api.delete_namespace("batch", terminating=True)
    st, data, r = req("GET", "/api/v1/namespaces?watch=1&timeoutSeconds=1&resourceVersion=%d" % rv)
    evs = lines(data)
    tap.is_([(e["type"], e["object"]["status"]["phase"]) for e in evs], [("MODIFIED", "Terminating"),
                                                                          ("DELETED", "Terminating")],
            "delete_namespace(terminating=True): MODIFIED Terminating, then DELETED")
    st, data, r = req("GET", "/api/v1/pods?watch=1&timeoutSeconds=1&resourceVersion=%d" % rv)
    pe = lines(data)
    tap.ok([(e["type"], e["object"]["metadata"]["name"]) for e in pe] == [("DELETED", "batch-1")]
           and int(pe[0]["object"]["metadata"]["resourceVersion"]) < int(evs[-1]["object"]["metadata"]["resourceVersion"]),
           "... its pods DELETED before it")

    # ---- PATCH over the wire: types and errors
    rv = api.resource_version
    st, data, r = req("PATCH", "/api/v1/namespaces/ci", b'{"metadata":{"annotations":{"a":"1"}}}',
                       "application/strategic-merge-patch+json")
    tap.ok(st == 200 and json.loads(data)["metadata"]["annotations"].get("a") == "1"
           and json.loads(data)["kind"] == "Namespace", "strategic merge patch: 200, the patched Namespace")
    st, data, r = req("PATCH", "/api/v1/namespaces/ci",
                       b'[{"op":"add","path":"/metadata/annotations/egress.connectd.io~1mode","value":"report"},'
                       b'{"op":"remove","path":"/metadata/annotations/a"}]', "application/json-patch+json")
    tap.ok(st == 200 and json.loads(data)["metadata"]["annotations"] == {ALLOW: "10.0.0.0/8", MODE: "report"},
           "JSON patch (add with ~1, remove): 200")
    st, data, r = req("PATCH", "/api/v1/namespaces/ci", b'{"metadata":{"annotations":{"egress.connectd.io/mode":"report"}}}',
                       "application/merge-patch+json")
    tap.ok(st == 200 and api.resource_version == rv + 2, "a patch that changes nothing: 200, no new resourceVersion")
    st, data, r = req("PATCH", "/api/v1/namespaces/ci", b'{"metadata":{"name":"other","uid":"x","labels":{"kubernetes.io/metadata.name":"z"}}}',
                       "application/merge-patch+json")
    tap.ok(st == 200 and json.loads(data)["metadata"]["name"] == "ci"
           and json.loads(data)["metadata"]["uid"] == ci["metadata"]["uid"]
           and json.loads(data)["metadata"]["labels"]["kubernetes.io/metadata.name"] == "ci",
           "name, uid and the metadata.name label stay")
    st, data, r = req("PATCH", "/api/v1/namespaces/ci", b'{"metadata":{"resourceVersion":"1","annotations":{"b":"2"}}}',
                       "application/merge-patch+json")
    tap.ok(st == 409 and json.loads(data)["reason"] == "Conflict", "a stale resourceVersion in the patch: 409 Conflict")
    st, data, r = req("PATCH", "/api/v1/namespaces/nope", b'{"metadata":{"annotations":{"a":"1"}}}',
                       "application/merge-patch+json")
    s = json.loads(data)
    tap.ok(st == 404 and s["kind"] == "Status" and s["reason"] == "NotFound"
           and s["details"] == {"name": "nope", "kind": "namespaces"}, "PATCH of a missing namespace: 404 Status")
    st, data, r = req("PATCH", "/api/v1/namespaces/ci/pods/nope", b'{"metadata":{"annotations":{"a":"1"}}}',
                       "application/merge-patch+json")
    tap.ok(st == 404 and json.loads(data)["message"] == 'pods "nope" not found', "PATCH of a missing pod: 404 Status")
    rv = api.resource_version
    for body, what in ((b'{"metadata":', "truncated JSON"), (b'[1,2]', "not an object"),
                       (b'{"metadata":{"annotations":{"a":1}}}', "an annotation that is not a string"),
                       (b'{"metadata":{"annotations":"x"}}', "annotations not a map")):
        st, data, r = req("PATCH", "/api/v1/namespaces/ci/pods/runner-1", body, "application/merge-patch+json")
        tap.ok(st == 400 and json.loads(data)["reason"] == "BadRequest", "malformed merge patch (%s): 400" % what)
    st, data, r = req("PATCH", "/api/v1/namespaces/ci", b'{"op":"add"}', "application/json-patch+json")
    tap.is_(st, 400, "a JSON patch that is not a list: 400")
    st, data, r = req("PATCH", "/api/v1/namespaces/ci", b'{}', "text/plain")
    tap.is_(st, 415, "an unsupported Content-Type: 415")
    tap.is_(api.resource_version, rv, "... none of them changed anything")
    # ---- stream control aimed at the namespace watches
    out = {}

    def watch_bg(key, path):
        out[key] = (time.time(), req("GET", path), time.time())
    m = api.mark()
    rvq = api.resource_version
    ts = [threading.Thread(target=watch_bg, args=("ns", "/api/v1/namespaces?watch=1&allowWatchBookmarks=true"
                                                  "&timeoutSeconds=5&resourceVersion=%d" % rvq)),
          threading.Thread(target=watch_bg, args=("pods", "/api/v1/pods?watch=1&allowWatchBookmarks=true"
                                                  "&timeoutSeconds=3&resourceVersion=%d" % rvq))]
    for t in ts:
        t.start()
    api.wait_for(lambda: api.open_watches("namespaces") >= 1 and api.open_watches("pods") >= 1, 10)
    api.bookmark(resource="pods")
    api.end_watches(resource="namespaces")
    ts[0].join(10)
    tap.ok("ns" in out and "pods" not in out and out["ns"][2] - out["ns"][0] < 2.5
           and lines(out["ns"][1][1]) == [], "end_watches(resource=\"namespaces\") ends only the namespace watch")
    ts[1].join(10)
    tap.is_([e["type"] for e in lines(out["pods"][1][1])] if "pods" in out else None, ["BOOKMARK"],
            "... bookmark(resource=\"pods\") went to the pod watch alone")
    api.inject_expired_error_event(resource="namespaces")
    st, data, r = req("GET", "/api/v1/pods?watch=1&timeoutSeconds=1&resourceVersion=%d" % api.resource_version)
    tap.is_(lines(data), [], "inject_expired_error_event(resource=\"namespaces\"): not the next pod watch")
    st, data, r = req("GET", "/api/v1/namespaces?watch=1&timeoutSeconds=1&resourceVersion=%d" % api.resource_version)
    tap.ok([e["type"] for e in lines(data)] == ["ERROR"] and lines(data)[0]["object"]["code"] == 410,
           "... the next namespace watch: ERROR 410")
    api.inject_410(resource="namespaces")
    st, data, r = req("GET", "/api/v1/namespaces?watch=1&timeoutSeconds=1&resourceVersion=%d" % api.resource_version)
    tap.is_(st, 410, "inject_410(resource=\"namespaces\"): HTTP 410")

    # ---- broken responses and failures on namespace requests only
    api.bad_next("ns_list", "not_json")
    st, data, r = req("GET", "/api/v1/pods?limit=500")
    tap.ok(st == 200 and json.loads(data)["kind"] == "PodList", "bad_next(\"ns_list\"): a pod list is not hit")
    st, data, r = req("GET", "/api/v1/namespaces?limit=500")
    tap.ok(st == 200 and data.startswith(b"<html>"), "... the next namespace list is")
    api.bad_next("ns_list", "wrongtypes")
    st, data, r = req("GET", "/api/v1/namespaces?limit=500")
    tap.ok(json.loads(data)["kind"] == "NamespaceList" and json.loads(data)["items"][0]["metadata"]["name"] == 42,
           "bad_next(\"ns_list\", \"wrongtypes\"): a NamespaceList of wrong types")
    api.bad_next("ns_watch", "wrongtypes")
    st, data, r = req("GET", "/api/v1/namespaces?watch=1&timeoutSeconds=1&resourceVersion=%d" % api.resource_version)
    tap.ok(st == 200 and b'"kind":"Namespace","metadata":{"name":42}' in data, "bad_next(\"ns_watch\", \"wrongtypes\")")
    api.fail_next(503, kind="ns", count=2)
    st1 = req("GET", "/api/v1/pods?limit=500")[0]
    st2 = req("GET", "/api/v1/namespaces?limit=500")[0]
    st3 = req("GET", "/api/v1/namespaces/ci")[0]
    tap.is_((st1, st2, st3, api.pending_failures()), (200, 503, 503, 0),
            "fail_next(kind=\"ns\"): namespace requests fail, pod requests do not")
    api.fail_next(500)
    st1 = req("GET", "/api/v1/namespaces?limit=500")[0]
    st2 = req("GET", "/api/v1/pods?limit=500")[0]
    tap.is_((st1, st2), (200, 500), "fail_next() without a kind: pod requests only, as before")
    a2 = K8sAPI(namespaces=[kf.make_namespace("ci", annotations={ALLOW: "*"}), "web"]).start()
    try:
        st, data, r = req("GET", "/api/v1/pods")
        c = http.client.HTTPSConnection("127.0.0.1", a2.port, context=ssl.create_default_context(cafile=a2.ca_file),
                                        timeout=10)
        c.request("GET", "/api/v1/pods", headers={"Authorization": "Bearer " + a2.token})
        pristine = c.getresponse().read() == kf.fixture_podlist_bytes()
        c.request("GET", "/api/v1/namespaces?limit=500", headers={"Authorization": "Bearer " + a2.token})
        nl = json.loads(c.getresponse().read())
        c.close()
        tap.ok(pristine and [i["metadata"]["name"] for i in nl["items"]] == sorted(INITIAL + ["ci", "web"])
               and nl["items"][0]["metadata"]["annotations"] == {ALLOW: "*"}
               and nl["metadata"]["resourceVersion"] == "554",
               "K8sAPI(namespaces=...): there from the start, the pod list still the recorded bytes")
    finally:
        a2.stop()
    tap.is_(api.errors(), [], "no server-side exceptions")
finally:
    api.stop()
tap.done()
