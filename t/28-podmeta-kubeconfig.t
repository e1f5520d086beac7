#!/usr/bin/env python3
# podmeta --kubeconfig reads YAML with libyaml: inline {...} flow mappings,
# | and >- block strings, quoted keys and comments all mean what kubectl
# takes them to mean (the hand-written subset got them wrong), and JSON
# still works.  Broken and hostile files (bad indentation, a tab, an
# unterminated quote, an empty file, a list where a mapping belongs, an exec
# user, anchors, two documents, ...) make podmeta exit 1 with one message
# that names FILE:LINE:COLUMN, never crash or start half-configured.
import base64
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(__file__)), "lib"))
import tap  # noqa: E402
from k8sapi import fixtures as kf  # noqa: E402
import podmeta_util as pu  # noqa: E402

pu.require_podmeta(tap)

fixture = kf.fixture_pods()
POD = [p for p in fixture if not p["spec"].get("hostNetwork")][0]
IP = POD["status"]["podIP"]

api = pu.start_api()
pm = None


def b64(name):
    with open(api.path(name), "rb") as f:
        return base64.b64encode(f.read()).decode()


def lines(s, width):
    """s cut into lines of width characters."""
    return [s[i:i + width] for i in range(0, len(s), width)]


def write(name, text):
    path = api.path(name)
    with open(path, "wb") as f:
        f.write(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def happy(name, text, what, cert=False):
    """podmeta starts with this kubeconfig, answers for the fixture pod, and
    authenticates as it says (bearer token, else client certificate)."""
    global pm
    path = write(name, text)
    n0 = len(api.requests())
    pm = pu.Podmeta(["--kubeconfig", path])
    pu.check_known(tap, pm.lookup(IP), POD, IP, name="%s: podmeta answers" % what)
    new = api.requests()[n0:]
    if cert:
        tap.ok(new and all(r["cert_user"] == "podmeta-test" and r["token"] is None for r in new),
               "... authenticated by the client certificate")
    else:
        tap.ok(new and all(r["token"] == api.token for r in new), "... with the bearer token")
    rc = pm.close()
    tap.is_(rc, 0, "... and exits 0 at EOF")
    pu.diag_on_fail(tap, pm, api)
    return pm


def broken(name, text, where, message, what):
    """podmeta refuses the file: exit 1, no crash, and one warning that says
    FILE:where: message."""
    global pm
    path = write(name, text)
    pm = pu.Podmeta(["--kubeconfig", path])
    rc = pm.close()
    err = pm.stderr()
    good = tap.is_(rc, 1, "%s: exit 1" % what)
    good &= tap.like(err, r"warning: %s:%s: %s" % (re.escape(path), where, message),
                     "... %s:%s: %s" % (name, where, message.replace("\\", "")))
    good &= tap.ok("Sanitizer" not in err and "runtime error" not in err, "... no crash")
    if not good:
        tap.diag("stderr: " + err[-1500:])
    return err


try:
    CA = b64("ca.crt")
    TOKEN = api.token

    # ---- happy paths, each of which the hand-written subset got wrong

    happy("flow.yaml", """\
# kubectl never writes this layout, but YAML allows it
apiVersion: v1
kind: Config
"current-context": 'flow'   # quoted key, single-quoted value
clusters:
- name: flow-cluster
  cluster: {server: "%s", certificate-authority-data: %s}
contexts:
- {name: flow, context: {cluster: flow-cluster, user: flow-user}}
users:
- name: flow-user   # the user is a flow mapping too
  user: {token: "%s"}
""" % (api.url, CA, TOKEN), "inline {...} flow mappings, quoted keys, comments")

    happy("block.yaml", """\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: |
%s
    server: %s
  name: block
contexts:
- context:
    cluster: block
    user: block
  name: block
current-context: block
users:
- name: block
  user:
    token: >-
      %s
""" % ("\n".join("      " + ln for ln in lines(CA, 64)), api.url, TOKEN),
        "certificate-authority-data: | over lines, token: >-")

    happy("cert-block.yaml", """\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: |-
%s
    server: "%s"
  name: c
contexts:
- context: {cluster: c, user: u}
  name: c
current-context: c
users:
- name: u
  user:
    "client-certificate-data": |
%s
    'client-key-data': |
%s
""" % ("\n".join("      " + ln for ln in lines(CA, 76)), api.url,
       "\n".join("      " + ln for ln in lines(b64("client.crt"), 76)),
       "\n".join("      " + ln for ln in lines(b64("client.key"), 76))),
        "client certificate and key as | blocks", cert=True)

    kc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "j",
        "clusters": [{"name": "j", "cluster": {"server": api.url, "certificate-authority-data": CA}}],
        "contexts": [{"name": "j", "context": {"cluster": "j", "user": "j"}}],
        "users": [{"name": "j", "user": {"token": TOKEN}}],
    }
    happy("kubeconfig.json", json.dumps(kc, indent=4), "JSON (kubectl config view --raw -o json)")

    # --context picks another context than current-context
    path = write("two-contexts.yaml", """\
apiVersion: v1
clusters:
- {name: good, cluster: {server: "%s", certificate-authority-data: %s}}
- {name: nowhere, cluster: {server: "https://127.0.0.1:1"}}
contexts:
- {name: good, context: {cluster: good, user: u}}
- {name: nowhere, context: {cluster: nowhere, user: u}}
current-context: nowhere
users:
- {name: u, user: {token: %s}}
""" % (api.url, CA, TOKEN))
    pm = pu.Podmeta(["--kubeconfig", path, "--context", "good"])
    pu.check_known(tap, pm.lookup(IP), POD, IP, name="--context picks a context that is not current")
    tap.is_(pm.close(), 0, "... and exits 0 at EOF")

    # an exec user that also has a token: the token is used, with a warning
    path = write("exec-and-token.yaml", """\
apiVersion: v1
clusters:
- {name: c, cluster: {server: "%s", certificate-authority-data: %s}}
contexts:
- {name: c, context: {cluster: c, user: u}}
current-context: c
users:
- name: u
  user:
    token: %s
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: aws
""" % (api.url, CA, TOKEN))
    pm = pu.Podmeta(["--kubeconfig", path])
    pu.check_known(tap, pm.lookup(IP), POD, IP, name="exec user with a token: the token is used")
    tap.is_(pm.close(), 0, "... and exits 0 at EOF")
    tap.like(pm.stderr(), r"warning: %s:11:5: user u: exec credentials are not supported; using the others"
             % re.escape(path), "... warning at the exec key, FILE:11:5")

    # ---- broken files: libyaml's own errors, at libyaml's problem mark

    ok_head = "apiVersion: v1\nclusters:\n- cluster:\n    server: %s\n" % api.url
    broken("indent.yaml", ok_head + "   name: off-by-one\n", "5:4",
           r"did not find expected key \(while parsing a block mapping at line 3, column 3\)",
           "bad indentation")
    broken("tab.yaml", "apiVersion: v1\nclusters:\n\t- cluster: {}\n", "3:1",
           "found character that cannot start any token", "a tab as indentation")
    broken("quote.yaml", 'apiVersion: v1\ncurrent-context: "x\nusers: []\n', "4:1",
           r"found unexpected end of stream \(while scanning a quoted scalar at line 2, column 18\)",
           "an unterminated quote")
    broken("flow-open.yaml", "apiVersion: v1\nusers: [{name: u, user: {token: x}}\n", "3:1",
           r"did not find expected ',' or '\]'", "an unclosed flow sequence")
    broken("empty.yaml", "", "1:1", "no YAML document: the file is empty or only comments",
           "an empty file")
    broken("comments.yaml", "# nothing\n\n# here\n", "1:1", "no YAML document", "only comments")
    broken("binary.yaml", b"apiVersion: v1\nkind: \xff\xfe\n", "2:7",
           r"invalid leading UTF-8 octet \(0xFF\)", "invalid UTF-8")
    broken("control.yaml", "apiVersion: v1\nkind: Con\x01fig\n", "2:10",
           r"control characters are not allowed \(0x1\)", "a control character")
    broken("nul.yaml", 'apiVersion: v1\ncurrent-context: "a\\0b"\n', "2:18",
           "a NUL character in a scalar", "an escaped NUL")

    # ---- what podmeta refuses on purpose (kubectl never writes it)

    broken("anchor.yaml", "apiVersion: v1\nbase: &b {server: x}\nother: *b\n", "2:7",
           r"anchors \(&b\) are not supported", "anchors")
    broken("two-docs.yaml", "apiVersion: v1\nkind: Config\n---\napiVersion: v1\n", "3:1",
           "a second document is not supported", "two documents")
    broken("dup-key.yaml", "apiVersion: v1\ncurrent-context: a\ncurrent-context: b\n", "3:1",
           r'duplicate key "current-context"', "a duplicate key")
    broken("tag.yaml", "apiVersion: v1\ncurrent-context: !!binary aGVsbG8=\n", "2:18",
           "tag tag:yaml.org,2002:binary is not supported", "a tag")
    broken("complex-key.yaml", "apiVersion: v1\n? [a, b]\n: c\n", "2:3",
           "a sequence as a mapping key is not supported", "a sequence as a key")
    broken("deep.yaml", "a: " + "[" * 70 + "]" * 70 + "\n", "1:67",
           "nested deeper than 64 levels", "70 nested sequences")

    # ---- YAML that parses but is not a kubeconfig: the wrong type, where it is

    broken("top-list.yaml", "- apiVersion: v1\n- kind: Config\n", "1:1",
           "not a kubeconfig: a mapping expected at the top, not a list", "a list at the top")
    broken("user-list.yaml", """\
apiVersion: v1
clusters:
- {name: c, cluster: {server: "https://127.0.0.1:1"}}
contexts:
- {name: c, context: {cluster: c, user: u}}
current-context: c
users:
- name: u
  user:
  - token: abc
""", "9:3", r"users\[0\]\.user: a mapping expected, not a list", "a list where a mapping belongs")
    broken("contexts-map.yaml", """\
apiVersion: v1
current-context: c
contexts:
  name: c
  context: {cluster: c}
""", "3:1", "contexts: a list expected, not a mapping", "a mapping where a list belongs")
    broken("entry-string.yaml", "apiVersion: v1\nclusters:\n- just-a-name\n", "3:3",
           r"clusters\[0\]: a mapping expected \(name: and cluster:\), not a string",
           "a string where an entry belongs")
    broken("token-map.yaml", """\
apiVersion: v1
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
users:
- name: u
  user:
    token: {value: abc}
""", "8:5", r"users\[0\]\.user\.token: a string expected, not a mapping", "a mapping where a string belongs")
    broken("insecure-string.yaml", """\
apiVersion: v1
clusters:
- name: c
  cluster:
    server: "https://127.0.0.1:1"
    insecure-skip-tls-verify: "yes"
contexts: [{name: c, context: {cluster: c}}]
current-context: c
""", "6:5", r"clusters\[0\]\.cluster\.insecure-skip-tls-verify: true or false expected, not a string",
           "a string where a boolean belongs")
    broken("bad-base64.yaml", """\
apiVersion: v1
clusters:
- name: c
  cluster:
    server: "https://127.0.0.1:1"
    certificate-authority-data: |
      not*base64
contexts: [{name: c, context: {cluster: c}}]
current-context: c
""", "6:5",
           r"clusters\[0\]\.cluster\.certificate-authority-data: bad base64", "bad base64 in a block string")
    broken("exec.yaml", """\
apiVersion: v1
clusters:
- {name: c, cluster: {server: "https://127.0.0.1:1"}}
contexts:
- {name: c, context: {cluster: c, user: aws}}
current-context: c
users:
- name: aws
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args: [eks, get-token]
""", "10:5", "user aws: exec credentials are not supported: use token, tokenFile or client-certificate",
           "an exec user and nothing else")
    broken("no-context.yaml", "apiVersion: v1\ncurrent-context: missing\ncontexts: []\n", "2:1",
           "no context missing", "current-context names no context")
    broken("no-server.yaml", """\
apiVersion: v1
clusters:
- name: c
  cluster: {certificate-authority-data: %s}
contexts: [{name: x, context: {cluster: c}}]
current-context: x
""" % CA, "4:3", "context x: no cluster with a server", "a cluster without a server")
    broken("bad-json.json", '{"apiVersion": "v1",\n "clusters": [}\n', "2:15",
           "unexpected token near '}'", "broken JSON")
finally:
    if pm is not None:
        pm.kill()
    api.stop()
tap.done()
