#!/usr/bin/env python3
"""85-deploy-rbac.t: the ClusterRole grants what podmeta asks, and no more.

podmeta runs as the ConfigMap's external_acl_type line runs it, in cluster
mode, against the test API server, in both ways deploy/ ships: cluster-wide
(the Deployment: no NODE_NAME) and per node (the DaemonSet: NODE_NAME from
the downward API).  Each goes through what it does in a long life: the
first list in pages (continue), watch events, a watch that ends and is
opened again, an ERROR 410 Expired event and an HTTP 410 (both make it
list again), a rotated token (401, then the new one).  Every request the
server saw is turned into what RBAC authorizes, as kube-apiserver's
request-info resolver does (verb from the method, the name and ?watch;
API group, resource, subresource; or a non-resource URL), and:
- every one of them is granted by the ClusterRole of deploy/ (no call it
  lacks), and each verb and resource the ClusterRole grants was used (no
  verb it does not need), with no wildcards and no non-resource URLs;
  that is list and watch on pods and on namespaces (issue 15: podmeta
  watches Namespaces for their egress.connectd.io/* annotations; a podmeta
  that makes no namespace request yet leaves that rule unchecked for use,
  and says so);
- the ClusterRoleBinding gives that ClusterRole to the service account
  that the Deployment and the DaemonSet run as;
- podmeta(8)'s RBAC section grants the same."""
import os
import re
import sys
from urllib.parse import unquote

sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h  # noqa: E402
import tap  # noqa: E402
import deploy_util as du  # noqa: E402
import podmeta_util as pu  # noqa: E402
from k8sapi import fixtures as kf  # noqa: E402
from k8sapi.control import K8sAPI  # noqa: E402

h.watchdog(600)
pu.require_podmeta(tap)
try:
    objs = du.rendered("deploy")
    ds_objs = du.rendered("deploy/daemonset")
except du.Skip as e:
    tap.skip_all(str(e))

TRUE = ("1", "true", "True")


def request_info(rec):
    """What RBAC sees of a GET request: (verb, apiGroup, resource,
    subresource, namespace) or ("nonresource", path)."""
    path = rec["path"]
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return ("nonresource", path)
    if not rest:
        return ("nonresource", path)
    ns = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        ns, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else ""
    if name is None:
        verb = "watch" if rec["query"].get("watch") in TRUE else "list"
    else:
        verb = "get"
    if resource == "namespaces" and name is not None and ns is None:
        ns = name  # the apiserver's request-info: a namespace is in itself
    return (verb, group, resource, sub, ns)


def resource_name(rec):
    """The name RBAC's resourceNames see: the path's, or for a list or watch
    the value of a fieldSelector metadata.name=NAME (as kube-apiserver's
    request-info resolver takes it)."""
    info = request_info(rec)
    if info[0] in ("list", "watch"):
        m = re.match(r"^metadata\.name==?([^,]+)$", rec["query"].get("fieldSelector") or "")
        return m.group(1) if m else None
    parts = rec["path"].strip("/").split("/")
    return unquote(parts[-1]) if info[0] == "get" else None


def granted(rules, info):
    if info[0] == "nonresource":
        return any(info[1] in (r.get("nonResourceURLs") or []) and "get" in r.get("verbs", [])
                   for r in rules)
    verb, group, resource, sub, _ = info
    res = resource + ("/" + sub if sub else "")
    return any(group in r.get("apiGroups", []) and res in r.get("resources", [])
               and verb in r.get("verbs", []) for r in rules)


# ---- the ClusterRole and who has it
role = du.find(objs, "ClusterRole")
binding = du.find(objs, "ClusterRoleBinding")
tap.ok(role and binding, "deploy/ has one ClusterRole and one ClusterRoleBinding")
rules = (role or {}).get("rules") or []
flat = [(g, res, v) for r in rules for g in r.get("apiGroups", []) for res in r.get("resources", [])
        for v in r.get("verbs", [])]
tap.ok(flat and not any("*" in x for t in flat for x in t) and not any("nonResourceURLs" in r for r in rules)
       and not any("resourceNames" in r for r in rules),
       "no wildcards, no non-resource URLs: %s" % sorted(flat))
for what, o in (("deploy/", objs), ("deploy/daemonset", ds_objs)):
    w = du.workload(o)
    sa = w["spec"]["template"]["spec"].get("serviceAccountName")
    b = du.find(o, "ClusterRoleBinding")
    tap.ok(b and b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
           and {"kind": "ServiceAccount", "name": sa, "namespace": w["metadata"]["namespace"]}
           in b.get("subjects", [])
           and du.find(o, "ServiceAccount", sa) is not None,
           "%s: the %s runs as service account %s, bound to the ClusterRole" % (what, w["kind"], sa))
    tap.is_(du.find(o, "ClusterRole"), role, "%s: the same ClusterRole" % what)

conf = du.connectd_conf(objs) or ""
argv = du.helper_argv(conf) or ["podmeta"]
ds = du.workload(ds_objs)
env = {e["name"]: e for e in ds["spec"]["template"]["spec"]["containers"][0].get("env", [])}
tap.is_(env.get("NODE_NAME", {}).get("valueFrom"), {"fieldRef": {"fieldPath": "spec.nodeName"}},
        "the DaemonSet sets NODE_NAME from spec.nodeName")
dep_env = [e["name"] for e in du.workload(objs)["spec"]["template"]["spec"]["containers"][0].get("env", [])]
tap.ok("NODE_NAME" not in dep_env, "the Deployment does not: its podmeta watches every node")

# ---- podmeta's requests, in both modes
N = 1200  # three pages of 500
pods = kf.generate_pods(N, nodes=2)
NODE = pods[0]["spec"]["nodeName"]
api = K8sAPI(pods=pods).start()
sa_dir = api.dir
with open(api.path("namespace"), "w") as f:
    f.write("connectd")
seen = []
with pu.Scenario(api):
    for mi, (mode, node) in enumerate((("cluster-wide", ""), ("per node", NODE))):
        mark = api.mark()
        pm = pu.Podmeta(argv[1:] + ["--sync-wait", "120"],
                        env={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api.port),
                             "PODMETA_SERVICEACCOUNT_DIR": sa_dir, "NODE_NAME": node})
        mine = [p for p in pods if not node or p["spec"]["nodeName"] == node]
        r = pm.lookup(mine[-1]["status"]["podIP"], timeout=130)
        pu.check_known(tap, r, mine[-1], mine[-1]["status"]["podIP"], name="%s: synced" % mode)
        tap.ok(api.wait_watching_since(mark, 20), "%s: watching" % mode)
        n = 0

        def step(what, fn):
            global n
            n += 1
            m = api.mark()
            fn()
            p = kf.make_pod("late-%s-%d" % (mode[:3], n), "10.250.%d.%d" % (mi, n),
                            namespace="ci", node=NODE)
            api.add_pod(p)
            r = pm.wait_known(p["status"]["podIP"], p["metadata"]["name"], 30)
            tap.ok(r.log is not None and r.log.get("name") == p["metadata"]["name"],
                   "%s: %s, then a new pod is known" % (mode, what))
            return api.requests_since(m)

        step("a watch event", lambda: None)
        new = step("the watch ends", api.end_watches)
        tap.ok(any(x["kind"] == "watch" for x in new), "%s: ... and is opened again" % mode)
        lists0 = api.count("list")
        step("an ERROR 410 Expired event", api.inject_expired_error_event)
        tap.ok(api.wait_for(lambda: api.count("list") > lists0, 10), "%s: ... and it lists again" % mode)
        lists0 = api.count("list")

        def http410():
            api.inject_410()
            api.end_watches()
        step("a watch answered HTTP 410", http410)
        tap.ok(api.wait_for(lambda: api.count("list") > lists0, 10), "%s: ... and it lists again" % mode)
        def rotate():
            api.rotate_token()
            api.end_watches()
        new = step("a rotated token, and a new watch", rotate)
        tap.ok(any(x["status"] == 401 for x in new) and
               api.wait_for(lambda: api.count(status=200, token=api.token) > 0, 10),
               "%s: ... the old token got 401, and it uses the new one" % mode)
        mine_reqs = api.requests_since(mark)
        tap.ok(any(x["query"].get("continue") for x in mine_reqs if x["kind"] == "list"),
               "%s: the list came in pages (continue)" % mode)
        if node:
            tap.ok(all(x["query"].get("fieldSelector") == "spec.nodeName=" + node for x in mine_reqs
                       if x["kind"] in ("list", "watch")), "%s: every list and watch for %s only" % (mode, node))
        pm.close()
        seen.extend(mine_reqs)
    errors = api.errors()

infos = [request_info(x) for x in seen]
kinds = sorted(set(i[:3] for i in infos if i[0] != "nonresource"))
tap.diag("podmeta asked: %s (%d requests)" % (kinds, len(infos)))
kinds_seen = sorted(set(x["kind"] for x in seen))
tap.ok(kinds_seen in (["list", "watch"], ["list", "ns_list", "ns_watch", "watch"]),
       "podmeta made only list and watch requests of pods (and of namespaces), by the test server's own "
       "count: %s" % kinds_seen)
missing = sorted(set(i for i in infos if not granted(rules, i)), key=str)
tap.is_(missing, [], "every request podmeta made is granted by the ClusterRole")
used = set((i[1], i[2] + ("/" + i[3] if i[3] else ""), i[0]) for i in infos if i[0] != "nonresource")
unused = set(flat) - used
NS_RULE = {("", "namespaces", "list"), ("", "namespaces", "watch")}
if not any(i[2] == "namespaces" for i in infos if i[0] != "nonresource"):
    tap.diag("podmeta made no namespace request: the namespaces rule (list, watch) is for the podmeta of "
             "issue 15 that watches Namespaces; its use is checked once podmeta makes them")
    unused -= NS_RULE
tap.is_(sorted(unused), [], "every verb the ClusterRole grants was used: none it does not need")
tap.is_(sorted(set(flat)), [("", "namespaces", "list"), ("", "namespaces", "watch"),
                            ("", "pods", "list"), ("", "pods", "watch")],
        "... list and watch on pods and on namespaces")
tap.is_(errors, [], "no server-side exceptions")
# the check itself: a missing verb, a wrong resource or group, a named get
lw = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]
watch = request_info({"path": "/api/v1/pods", "query": {"watch": "1"}})
tap.ok(watch == ("watch", "", "pods", "", None) and not granted(lw, watch),
       "(the check: a watch is not granted by list alone)")
tap.is_([request_info({"path": p, "query": {}}) for p in
         ("/api/v1/namespaces/ci/pods/x", "/api/v1/nodes", "/apis/apps/v1/deployments", "/version")],
        [("get", "", "pods", "", "ci"), ("list", "", "nodes", "", None), ("list", "apps", "deployments", "", None),
         ("nonresource", "/version")], "(the check: get, other resources and groups, non-resource URLs)")
podmeta_ns = [{"path": "/api/v1/namespaces", "query": {"limit": "500"}},
              {"path": "/api/v1/namespaces", "query": {"watch": "1", "allowWatchBookmarks": "true",
                                                       "resourceVersion": "9", "fieldSelector": "metadata.name=ci"}},
              {"path": "/api/v1/namespaces/ci", "query": {}}]
tap.is_([(request_info(r), resource_name(r)) for r in podmeta_ns],
        [(("list", "", "namespaces", "", None), None), (("watch", "", "namespaces", "", None), "ci"),
         (("get", "", "namespaces", "", "ci"), "ci")],
        "(the check: podmeta's namespace list and watch are cluster-scoped; a metadata.name selector names one)")
tap.ok(all(granted(rules, request_info(r)) for r in podmeta_ns[:2]) and not granted(rules, request_info(podmeta_ns[2])),
       "(the ClusterRole grants podmeta's namespace list and watch, and no get)")

# ---- podmeta(8) says the same
man = du.read("man/podmeta.8")
m = re.search(r"\.Ss RBAC(.*?)\.Sh ", man, re.S)
sect = m.group(1) if m else ""
man_rules = sorted((res.strip().strip('"'), v.strip().strip('"'))
                   for rs, vs in re.findall(r'resources: \[([^\]]*)\]\s*\n\s*verbs: \[([^\]]*)\]', sect)
                   for res in rs.split(",") for v in vs.split(","))
tap.is_(man_rules, sorted((r, v) for g, r, v in flat), "podmeta(8)'s RBAC section grants the same verbs")
tap.done()
