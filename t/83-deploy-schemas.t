#!/usr/bin/env python3
"""83-deploy-schemas.t: every Kubernetes object of deploy/ is valid, offline.

Each YAML file under deploy/ (the examples too), and what `kubectl
kustomize` makes of each kustomization (deploy/, deploy/base,
deploy/deployment, deploy/daemonset), is checked against the Kubernetes
API's OpenAPI schemas, as npm's kubernetes-models compiles them (installed
by npm on first use, see t/lib/deploy_util.py), with no API server: types,
required fields, enums, quantities, and no field the schema does not have
(kubectl apply refuses those: --validate=strict).  The checker is shown to
catch each kind of mistake on a broken copy of the Deployment.  Where
PyYAML is installed, each file reads the same under YAML 1.1 (what
Kubernetes' Go YAML reads) as under js-yaml's YAML 1.2: no unquoted
yes/no/on/off that one takes for a boolean and the other for a string."""
import copy
import json
import os
import sys

sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h  # noqa: E402
import tap  # noqa: E402
import deploy_util as du  # noqa: E402

h.watchdog(900)


def check(docs, what):
    """One test point per document: schema errors and unknown fields."""
    for d in docs:
        label = "%s: %s %s" % (what or d["name"], d.get("kind"),
                               (d["doc"].get("metadata") or {}).get("name"))
        bad = d.get("errors") or []
        unk = d.get("unknown") or []
        tap.ok(not bad and not unk, "%s valid (schema of %s)" % (label, d.get("apiVersion")))
        for e in bad[:10]:
            tap.diag("  " + e)
        for u in unk[:10]:
            tap.diag("  unknown field " + u)


try:
    du.npm_modules()
except du.Skip as e:
    tap.skip_all(str(e))

# ---- every file
files = du.manifest_files()
tap.ok(len(files) >= 10, "%d manifest files under deploy/" % len(files))
texts = [(f, du.read(f)) for f in files]
docs = du.parse_yaml(texts, validate=True)
tap.is_(sorted(set(d["name"] for d in docs)), sorted(files), "every file holds Kubernetes objects")
check(docs, None)

# ---- YAML 1.1 (Go) and 1.2 (js-yaml) agree
try:
    import yaml
except ImportError:
    yaml = None
if yaml is None:
    tap.skip("PyYAML not installed: YAML 1.1 reading not compared")
else:
    differ = []
    for f, t in texts:
        a = [json.loads(json.dumps(x, default=str)) for x in yaml.safe_load_all(t) if x is not None]
        b = [d["doc"] for d in docs if d["name"] == f]
        if a != b:
            differ.append(f)
    tap.is_(differ, [], "each file reads the same as YAML 1.1 and 1.2")

# ---- the kustomizations, rendered
try:
    du.need_kustomize()
    dirs = du.kustomization_dirs()
    tap.is_(dirs, ["deploy", "deploy/base", "deploy/daemonset", "deploy/deployment"],
            "kustomizations: deploy/, base, daemonset, deployment")
    for k in dirs:
        try:
            text = du.kustomize(k)
        except RuntimeError as e:
            tap.ok(False, "kubectl kustomize %s" % k)
            tap.diag(str(e))
            continue
        rdocs = du.parse_yaml([(k, text)], validate=True)
        tap.ok(len(rdocs) >= 5, "kubectl kustomize %s: %d objects" % (k, len(rdocs)))
        check(rdocs, "kustomize " + k)
except du.Skip as e:
    tap.skip(str(e), 1)

# ---- the checker catches mistakes (so that a pass means something)
dep = [d["doc"] for d in docs if d.get("kind") == "Deployment"][0]


def broken(fn):
    d = copy.deepcopy(dep)
    fn(d)
    return du.parse_yaml([("broken", json.dumps(d))], validate=True)[0]


def c0(d):
    return d["spec"]["template"]["spec"]["containers"][0]


r = broken(lambda d: d["spec"].__setitem__("replicas", "2"))
tap.ok(any("/spec/replicas" in e for e in r["errors"]), "a string for an integer is caught")
r = broken(lambda d: d["spec"].pop("selector"))
tap.ok(any("selector" in e for e in r["errors"]), "a missing required field is caught")
r = broken(lambda d: c0(d)["resources"]["limits"].__setitem__("memory", "512 MB"))
tap.ok(any("memory" in e for e in r["errors"]), "a malformed quantity is caught")
r = broken(lambda d: c0(d).__setitem__("readinesProbe", c0(d)["readinessProbe"]))
tap.is_(r["unknown"], ["/spec/template/spec/containers/0/readinesProbe"],
        "a misspelt field is caught, and nothing else")
r = broken(lambda d: c0(d)["securityContext"]["capabilities"].__setitem__("dropp", ["ALL"]))
tap.is_(r["unknown"], ["/spec/template/spec/containers/0/securityContext/capabilities/dropp"],
        "... at any depth")
r = broken(lambda d: d["spec"]["template"]["metadata"]["labels"].__setitem__("x.example/y", "z"))
tap.ok(not r["errors"] and not r["unknown"], "labels are free-form: a new key is no unknown field")
r = broken(lambda d: d.__setitem__("kind", "Deploymnet"))
tap.ok(r["errors"] and "no schema" in r["errors"][0], "an unknown kind is caught")
tap.done()
