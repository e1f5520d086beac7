#!/usr/bin/env python3
# podmeta against the recorded kube-apiserver PodList: every pod IP gets its
# exact answer line, the shared hostNetwork IP names the node (ambiguous),
# unknown IPs follow --unknown; one list + one watch, nothing per lookup.
# Also: --kubeconfig (token and client certificate), --node, --namespace,
# --labels/--annotations filters and value caps on the Fluent Bit pods.
import os
import sys

sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(__file__)), "lib"))
import tap  # noqa: E402
from k8sapi import fixtures as kf  # noqa: E402
from k8sapi import server as k8s_server  # noqa: E402
import podmeta_util as pu  # noqa: E402

pu.require_podmeta(tap)

NODE = kf.FIXTURE_NODE
HOSTIP = kf.FIXTURE_HOST_IP
fixture = kf.fixture_pods()
podnet = [p for p in fixture if not p["spec"].get("hostNetwork")]
hostnet = [p for p in fixture if p["spec"].get("hostNetwork")]

api = pu.start_api()
with pu.Scenario(api):
    pm = pu.start_podmeta(api)
    # ---- exact answer lines for the pod-network pods
    for p in podnet:
        ip = p["status"]["podIP"]
        r = pm.lookup(ip)
        pu.check_known(tap, r, p, ip)
        tap.is_(r.raw, pu.expected_line(p, ip), "%s: the exact answer line" % ip)
    # with a channel ID, without the trailing %DATA, both
    p = podnet[0]
    ip = p["status"]["podIP"]
    tap.is_(pm.ask("7 %s -" % ip), pu.expected_line(p, ip, id=7), "channel ID 7 echoed")
    tap.is_(pm.ask("0 %s" % ip), pu.expected_line(p, ip, id=0), "channel ID 0, no %DATA")
    tap.is_(pm.ask(ip), pu.expected_line(p, ip), "no ID, no %DATA")

    # ---- six hostNetwork pods share the node's address
    tap.is_(len(hostnet), 6, "fixture: six hostNetwork pods on %s" % HOSTIP)
    r = pm.lookup(HOSTIP)
    pu.check_ambiguous(tap, r, HOSTIP, NODE)
    r = pm.lookup(HOSTIP, id=12)
    pu.check_ambiguous(tap, r, HOSTIP, NODE, name="... also with a channel ID", id="12")

    # ---- unknown
    pu.check_unknown(tap, pm.lookup("10.244.0.99"), "10.244.0.99")
    pu.check_unknown(tap, pm.lookup("10.244.0.99", id=3), "10.244.0.99", id="3",
                     name="unknown with a channel ID")
    r = pm.lookup("10.244.0.99")
    tap.is_(r.raw, 'OK log="{\\"ip\\":\\"10.244.0.99\\",\\"pod\\":null}"', "unknown: the exact line")

    # ---- the API saw one list and one watch from its resourceVersion
    lists, watches = api.requests("list"), api.requests("watch")
    tap.is_(len(lists), 1, "one list request")
    tap.ok(lists and lists[0]["path"] == "/api/v1/pods" and lists[0]["query"].get("limit"),
           "... of /api/v1/pods with a limit")
    tap.ok(api.wait_for(lambda: api.count("watch") >= 1, 5), "a watch request")
    w = api.requests("watch")[:1]
    tap.ok(w and w[0]["query"].get("resourceVersion") == "554", "... from the list's resourceVersion 554")
    tap.ok(w and k8s_server.truthy(w[0]["query"].get("allowWatchBookmarks", "")), "... with allowWatchBookmarks")
    tap.ok(w and w[0]["token"] == api.token and lists[0]["token"] == api.token, "bearer token from --token-file")
    tap.is_(api.count("get"), 0, "no per-pod GETs")
    tap.ok(api.count("list") == 1 and api.count("watch") == 1, "no request per lookup")
    rc = pm.close()
    tap.is_(rc, 0, "EOF on stdin: exit 0")
    pu.diag_on_fail(tap, pm, api)

    # ---- --unknown err
    pm = pu.start_podmeta(api, "--unknown", "err")
    tap.is_(pm.ask("10.1.1.1 -"), "ERR", "--unknown err: ERR")
    tap.is_(pm.ask("4 10.1.1.1 -"), "4 ERR", "--unknown err with ID: 4 ERR")
    pu.check_known(tap, pm.lookup("10.244.0.2"), podnet[1] if podnet[1]["status"]["podIP"] == "10.244.0.2"
                   else podnet[0], "10.244.0.2", name="--unknown err: known IPs still OK")
    pm.close()

    # ---- --kubeconfig: token user, then client-certificate user
    n0 = len(api.requests())
    pm = pu.Podmeta(["--kubeconfig", api.kubeconfig])
    pu.check_known(tap, pm.lookup("10.244.0.3"), podnet[0], "10.244.0.3", name="--kubeconfig (token user)")
    pm.close()
    for kc in ("kubeconfig-cert", "kubeconfig-certfile"):
        n0 = len(api.requests())
        pm = pu.Podmeta(["--kubeconfig", api.path(kc)])
        pu.check_known(tap, pm.lookup("10.244.0.3"), podnet[0], "10.244.0.3",
                       name="--kubeconfig (client certificate: %s)" % kc)
        new = api.requests()[n0:]
        tap.ok(new and all(r["cert_user"] == "podmeta-test" and r["token"] is None for r in new),
               "... authenticated by certificate, no token")
        pm.close()

    # ---- --node and --namespace reach the API as a field selector and a path
    n0 = len(api.requests())
    pm = pu.start_podmeta(api, "--node", NODE)
    pu.check_known(tap, pm.lookup("10.244.0.3"), podnet[0], "10.244.0.3", name="--node %s" % NODE)
    new = [r for r in api.requests()[n0:] if r["kind"] in ("list", "watch")]
    tap.ok(new and all(r["query"].get("fieldSelector") == "spec.nodeName=" + NODE for r in new),
           "--node: fieldSelector=spec.nodeName=NODE on list and watch")
    pm.close()
    pm = pu.start_podmeta(api, "--node", "other-node")
    pu.check_unknown(tap, pm.lookup("10.244.0.3"), "10.244.0.3", name="--node other-node: not ours")
    pm.close()
    pm = pu.start_podmeta(api, env={"NODE_NAME": "other-node"})
    pu.check_unknown(tap, pm.lookup("10.244.0.3"), "10.244.0.3", name="env NODE_NAME=other-node acts like --node")
    pm.close()
    n0 = len(api.requests())
    pm = pu.start_podmeta(api, "--namespace", "kube-system")
    pu.check_known(tap, pm.lookup("10.244.0.3"), podnet[0], "10.244.0.3", name="--namespace kube-system")
    new = [r for r in api.requests()[n0:] if r["kind"] in ("list", "watch")]
    tap.ok(new and all(r["path"] == "/api/v1/namespaces/kube-system/pods" for r in new),
           "--namespace: /api/v1/namespaces/NS/pods")
    pm.close()

    # ---- filters and caps, on the Fluent Bit pods (escaped JSON in values)
    fb = kf.fluentbit_pods()
    for p in fb:
        api.add_pod(p)
    kairos, kubelet = fb
    kip, bip = kairos["status"]["podIP"], kubelet["status"]["podIP"]
    pm = pu.start_podmeta(api, "--annotations", ".")
    r = pm.lookup(kip)
    pu.check_known(tap, r, kairos, kip, annotations_re=".", name="--annotations .: escaped JSON and \\n survive")
    pu.check_known(tap, pm.lookup(bip), kubelet, bip, annotations_re=".", name="... prometheus.io/* annotations")
    pm.close()
    pm = pu.start_podmeta(api, "--labels", "^name$", "--annotations", "^fluentbit\\.io/", "--max-value", "20")
    pu.check_known(tap, pm.lookup(kip), kairos, kip, labels_re="^name$", annotations_re="^fluentbit\\.io/",
                   max_value=20, name="--labels/--annotations regexes select keys")
    pm.close()
    pm = pu.start_podmeta(api, "--annotations", "created-by", "--max-value", "40")
    r = pm.lookup(kip)
    pu.check_known(tap, r, kairos, kip, annotations_re="created-by", max_value=40,
                   name="--max-value 40 caps a value and says so")
    pm.close()
    # last-applied-configuration is never included, even with --annotations .
    la = kf.make_pod("applied-1", "10.244.3.3", namespace="ci", annotations={
        pu.LAST_APPLIED: '{"apiVersion":"v1","kind":"Pod"}\n', "team": "infra"})
    api.add_pod(la)
    pm = pu.start_podmeta(api, "--annotations", ".")
    r = pm.lookup("10.244.3.3")
    pu.check_known(tap, r, la, "10.244.3.3", annotations_re=".", name="last-applied-configuration never included")
    tap.ok(r.log is not None and pu.LAST_APPLIED not in r.log.get("annotations", {}), "... (checked by key)")
    pm.close()
    # ---- JSON escaping of awkward values survives Squid quoting
    odd = kf.make_pod("odd-1", "10.244.3.4", namespace="ci", labels={
        "app": "odd", "ctl": "a\u0001b\tc\u001fd", "uni": "caf\u00e9 \u2603 \U0001F600",
        "html": "</script>&<b>", "sep": "x\u2028y\u2029z", "bs": "back\\slash \"q\" \r\n"},
        annotations={"multi": "\u00e9" * 30 + "tail"})
    api.add_pod(odd)
    pm = pu.start_podmeta(api, "--annotations", "^multi$", "--max-value", "11")
    r = pm.lookup("10.244.3.4")
    pu.check_known(tap, r, odd, "10.244.3.4", annotations_re="^multi$", max_value=11,
                   name="control bytes, UTF-8, HTML, U+2028, quotes and backslashes round-trip; "
                        "caps cut on a UTF-8 boundary")
    tap.ok(r.raw is not None and "\t" not in r.raw and "\x01" not in r.raw, "no raw control bytes on the reply line")
    pm.close()

    # ---- --source file:PATH reads `kubectl get pods -A -o json` output and reloads it
    src = api.path("pods.json")
    with open(src, "wb") as f:
        f.write(kf.fixture_podlist_bytes())
    n0 = len(api.requests())
    pm = pu.Podmeta(["--source", "file:" + src])
    p = podnet[0]
    tap.is_(pm.ask(p["status"]["podIP"]), pu.expected_line(p, p["status"]["podIP"]), "--source file: exact line")
    pu.check_ambiguous(tap, pm.lookup(HOSTIP), HOSTIP, NODE, name="--source file: hostNetwork IP ambiguous")
    import json
    lst = json.loads(kf.fixture_podlist_bytes())
    extra = kf.make_pod("filepod-1", "10.244.4.4", namespace="ci")
    lst["items"].append(extra)
    with open(src + ".tmp", "w") as f:
        json.dump(lst, f, indent=4)
    os.replace(src + ".tmp", src)
    r = pm.wait_reply("10.244.4.4", lambda r: r.log is not None and r.log.get("name") == "filepod-1", 6)
    pu.check_known(tap, r, extra, "10.244.4.4", name="--source file: reloaded when the file changes")
    tap.is_(len(api.requests()) - n0, 0, "--source file: no API requests")
    pm.close()
tap.done()
