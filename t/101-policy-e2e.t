#!/usr/bin/env python3
"""101-policy-e2e.t: egress allow-lists per workload, end to end (issue 15):
the test API server, podmeta --policy under connectd, real clients.

Pods are source addresses: runner-a (127.0.3.1) has its own list in
enforce mode; runner-b (127.0.3.2) takes its namespace's, in report mode;
runner-c (127.0.3.3) allows everything.  connectd asks podmeta with
`%SRC %DST %PORT %ssl::>sni`, so the rule is evaluated after the
ClientHello, with the client's bytes held until then.

Expectations:
- curl from runner-a to a listed name gets through, and its line has
  policy {enforce, allow, the rule, pod}; to a name outside the list it
  gets 403, the line says why (policy reason host_not_listed, the
  http_access rule).
- A tunnel from runner-a to a listed address carrying an SNI outside the
  list: closed before a byte reaches the server, close denied, policy
  reason sni_not_listed, tls.sni the SNI.
- runner-b, report mode: the unlisted name goes through, its line marked
  would_deny; then the namespace is switched to enforce with kubectl-like
  annotation and the same request is refused, with no reload.
- runner-c's pod is deleted while its tunnel is open: the tunnel goes on,
  and its line has the pod and its policy.
- on_failure: a policy helper that cannot start fails closed (403,
  policy verdict fail_closed) or open (through, fail_open) as configured.
- Every line is valid JSON with policy an object of five strings-or-null.
"""
import json
import re
import os
import socket
import sys
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import podmeta_util as pu
from k8sapi.fixtures import make_pod
from tls_util import hello
from tap import ok, is_, like, diag, done

pu.require_podmeta(sys.modules["tap"])
if not h.have("curl", "openssl"):
    h.tap.skip_all("curl and openssl are needed")
NAMES = ["allowed.example", "evil.example", "other.example"]
h.private_files({"/etc/hosts": h.hosts_file(*[("127.0.0.1", n) for n in NAMES]),
                 "/etc/resolv.conf": h.LOOPBACK_RESOLV})
h.need_connectd()
h.watchdog(200)

ALLOW = "egress.connectd.io/allow"
MODE = "egress.connectd.io/mode"
A, B, C = "127.0.3.1", "127.0.3.2", "127.0.3.3"

origin = h.TlsOrigin(names=NAMES)
rec = h.Recorder()
P = origin.port

pods = [
    make_pod("runner-a", A, namespace="team-a", annotations={
        ALLOW: "allowed.example, 127.0.0.1:%d" % rec.port, MODE: "enforce"}),
    make_pod("runner-b", B, namespace="team-a"),
    make_pod("runner-c", C, namespace="team-b", annotations={ALLOW: "*", MODE: "enforce"}),
]
api = pu.start_api(pods=pods)
api.annotate_namespace("team-a", {ALLOW: "allowed.example", MODE: "report"})

PM = pu.PODMETA


def conf(program, failure="closed"):
    return ("external_acl_type egress ttl=5 negative_ttl=5 children-max=1 concurrency=100 "
            "on_failure=%s %%SRC %%DST %%PORT %%ssl::>sni %s\n"
            "acl egress_ok external egress\n"
            "http_access deny !egress_ok\n"
            "http_access allow all\n" % (failure, program))


def replied(err, code):
    """curl -v's stderr has a response with that status (not a port that
    holds the digits)."""
    return re.search(r"(?m)^< HTTP/1\.[01] %d " % code, err or "") is not None


def curl(cd, src, url):
    rc, out, err = h.run(["curl", "-sS", "-v", "--interface", src, "--cacert", origin.cert,
                          "-x", "http://127.0.0.1:%d" % cd.port, url], timeout=30)
    return rc, out or "", err or ""


def line_for(cd, pred, what):
    got = h.wait_for(lambda: [x for x in cd.lines() if pred(x)], 15)
    if not got:
        diag("no line for %s; lines: %s" % (what, json.dumps(cd.lines())[-1500:]))
        return {}
    return got[-1]


def pol(mode, verdict, rule=None, frm=None, reason=None):
    return {"mode": mode, "verdict": verdict, "rule": rule, "from": frm, "reason": reason}


def raw_tunnel(cd, src, authority, data):
    """CONNECT from src, then send data; returns (status, what came back, sock)."""
    s = socket.socket()
    s.settimeout(15 * h.SLOW)
    s.bind((src, 0))
    s.connect(("127.0.0.1", cd.port))
    s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority)).encode())
    head = h.recv_head(s)
    try:
        status = int(head.split(b" ")[1])
    except (IndexError, ValueError):
        status = None
    if data:
        s.sendall(data)
    return status, s


env = dict(os.environ, KUBERNETES_SERVICE_HOST="", NODE_NAME="")
program = "%s --policy %s" % (PM, " ".join(api.podmeta_args()))
with h.Connectd(conf(program), env=env) as cd:
    # runner-a: its own list, enforced
    rc, out, err = curl(cd, A, "https://allowed.example:%d/" % P)
    ok(rc == 0 and replied(err, 200), "curl from runner-a to a listed name: through")
    x = line_for(cd, lambda x: x.get("client_ip") == A and x.get("host") == "allowed.example", "a allowed")
    is_(x.get("policy"), pol("enforce", "allow", "allowed.example", "pod"),
        "... its line: policy enforce, allow, the rule, from the pod")
    is_((x.get("pod") or {}).get("name"), "runner-a", "... and the pod")
    rc, out, err = curl(cd, A, "https://other.example:%d/" % P)
    ok(rc != 0 and replied(err, 403), "curl from runner-a to a name outside its list: 403")
    x = line_for(cd, lambda x: x.get("client_ip") == A and x.get("host") == "other.example", "a denied")
    is_((x.get("status"), x.get("policy")),
        (403, pol("enforce", "deny", None, "pod", "host_not_listed")),
        "... its line: 403, policy deny, host_not_listed")
    like(x.get("rule") or "", r"deny !egress_ok", "... and the http_access rule that denied it")

    # a listed address, an SNI outside the list
    before = len(rec.conns)
    status, s = raw_tunnel(cd, A, "127.0.0.1:%d" % rec.port, hello(b"evil.example"))
    try:
        rest = s.recv(100)
    except OSError:
        rest = b""
    s.close()
    x = line_for(cd, lambda x: x.get("client_ip") == A and x.get("port") == rec.port, "a sni")
    is_((x.get("close"), x.get("policy"), (x.get("tls") or {}).get("sni")),
        ("denied", pol("enforce", "deny", None, "pod", "sni_not_listed"), "evil.example"),
        "a listed address with SNI evil.example: close denied, sni_not_listed")
    time.sleep(0.3)
    got = b"".join(c.get("got", b"") for c in rec.conns[before:])
    is_(len(got), 0, "... and no byte of it reached the server")
    status, s = raw_tunnel(cd, A, "127.0.0.1:%d" % rec.port, hello(b"allowed.example"))
    ok(h.wait_for(lambda: any(c.get("got") for c in rec.conns[before:]), 10),
       "the same address with SNI allowed.example: the hello goes through")
    s.close()

    # runner-b: the namespace's list, report mode; then enforce, at runtime
    rc, out, err = curl(cd, B, "https://other.example:%d/" % P)
    ok(rc == 0, "curl from runner-b (report mode) to an unlisted name: through")
    x = line_for(cd, lambda x: x.get("client_ip") == B and x.get("host") == "other.example", "b report")
    is_(x.get("policy"), pol("report", "would_deny", None, "namespace", "host_not_listed"),
        "... its line is marked would_deny, the list from the namespace")
    api.annotate_namespace("team-a", {MODE: "enforce"})
    # the answer is cached for ttl=5: wait for a fresh one
    res = h.wait_for(lambda: replied(curl(cd, B, "https://other.example:%d/" % P)[2], 403), 20)
    ok(res, "the namespace annotated enforce: the same request is refused, no reload")

    # runner-c: deleted while its tunnel is open
    status, s = raw_tunnel(cd, C, "127.0.0.1:%d" % rec.port, b"first\n")
    ok(status == 200, "runner-c opens a tunnel (not TLS: the rule is decided without an SNI)")
    before_c = len(rec.conns)
    api.delete_pod("team-b", "runner-c")
    time.sleep(0.5)
    s.sendall(b"after the delete\n")
    ok(h.wait_for(lambda: any(b"after the delete" in c.get("got", b"") for c in rec.conns), 10),
       "its pod deleted: the open tunnel goes on")
    s.close()
    x = line_for(cd, lambda x: x.get("client_ip") == C and x.get("close") not in (None, "denied"), "c")
    is_(((x.get("pod") or {}).get("name"), (x.get("policy") or {}).get("verdict"), x.get("proto")),
        ("runner-c", "allow", "unknown"), "... its line has the pod and the verdict it was let through on")

    lines = cd.lines()
    bad = [x for x in lines if x.get("policy") is not None and (
        not isinstance(x["policy"], dict) or sorted(x["policy"]) != ["from", "mode", "reason", "rule", "verdict"]
        or any(v is not None and not isinstance(v, str) for v in x["policy"].values()))]
    is_(bad, [], "every line's policy is null or an object of five strings or nulls (%d lines)" % len(lines))

# on_failure, with a policy helper that cannot start
for failure, want_ok, verdict in (("closed", False, "fail_closed"), ("open", True, "fail_open")):
    with h.Connectd(conf("/nonexistent/podmeta --policy", failure), env=env) as cd:
        rc, out, err = curl(cd, A, "https://allowed.example:%d/" % P)
        ok((rc == 0) == want_ok and (want_ok or replied(err, 403)),
           "on_failure=%s, a helper that cannot start: %s" % (failure, "through" if want_ok else "403"))
        x = line_for(cd, lambda x: x.get("host") == "allowed.example", failure)
        is_((x.get("policy") or {}).get("verdict"), verdict, "... its line: policy verdict %s" % verdict)
api.stop()
done()
