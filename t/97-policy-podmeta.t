#!/usr/bin/env python3
"""97-policy-podmeta.t: podmeta --policy against the test API server (issue 15).

podmeta lists and watches pods and namespaces and answers `%SRC %DST %PORT
[%ssl::>sni]` with OK or ERR, the pod's log= and a policy= JSON object
{mode, verdict, rule, from, reason}, from the annotations
egress.connectd.io/allow and egress.connectd.io/mode on the pod, with its
namespace's as defaults, key by key.

Expectations:
- names, *.suffix, CIDRs and ports match as podmeta(8) says; the first
  matching entry is the rule; enforce says ERR, report OK with would_deny,
  off OK without looking; an SNI outside the list is a deny too.
- a namespace default applies to pods without their own value, and a pod's
  own value overrides it; a change to either annotation (the test server's
  watch, and real kubectl annotate) changes the answer with no restart,
  measured;
- malformed annotations: one stderr line each, naming the object, the
  annotation and the entry, and the pod falls back to its namespace's;
- a deleted pod keeps its verdict for --delete-grace, then is no pod;
- 1,000 pods with lists, and lists of 4,096 entries: answers right, one
  list per resource; 4,097 entries is malformed;
- --unknown err: a client that is no pod gets ERR; bad requests get ERR
  with a message.
"""
import json
import os
import shutil
import subprocess
import sys
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import podmeta_util as pu
from k8sapi.fixtures import make_pod, generate_pods
from tap import ok, is_, like, diag, done

pu.require_podmeta(sys.modules["tap"])
h.watchdog(240)

ALLOW = "egress.connectd.io/allow"
MODE = "egress.connectd.io/mode"


def pol(mode, verdict, rule=None, frm=None, reason=None):
    return {"mode": mode, "verdict": verdict, "rule": rule, "from": frm, "reason": reason}


def ask(pm, src, dst, port, sni=None):
    line = "%s %s %s" % (src, dst, port) + (" %s" % sni if sni is not None else "")
    r = pu.Reply(pm.ask(line))
    p = None
    if r.kv.get("policy") is not None:
        try:
            p = json.loads(r.kv["policy"])
        except ValueError:
            p = "not JSON: %r" % r.kv["policy"]
    return r, p


def check(pm, src, dst, port, status, want, name, sni=None):
    r, p = ask(pm, src, dst, port, sni)
    good = r.status == status and p == want
    ok(good, name)
    if not good:
        diag("reply: %r" % (r.raw,))
        diag("want %s %s" % (status, json.dumps(want)))
    return r


def wait_policy(pm, src, dst, port, pred, timeout=10):
    """Ask until pred(status, policy); returns (seconds, status, policy)."""
    t0 = time.monotonic()
    end = h.deadline(timeout)
    while True:
        r, p = ask(pm, src, dst, port)
        if p is not None and pred(r.status, p):
            return time.monotonic() - t0, r.status, p
        if time.monotonic() > end:
            return None, r.status, p
        time.sleep(0.01)


pods = [
    make_pod("runner-a", "127.0.2.1", namespace="team-a", owner="ReplicaSet", annotations={
        ALLOW: "*.github.com:443, registry.npmjs.org:443\n10.0.0.0/8:22 [2001:db8::/32]:443 proxy.golang.org",
        MODE: "enforce"}),
    make_pod("runner-b", "127.0.2.2", namespace="team-a", owner="ReplicaSet"),
    make_pod("runner-c", "127.0.2.3", namespace="team-b", owner=None),
    make_pod("runner-d", "127.0.2.4", namespace="team-a", annotations={
        ALLOW: "ok.example, a..b, fine.example", MODE: "enforce"}),
    make_pod("runner-e", "127.0.2.5", namespace="team-a", annotations={MODE: "off"}),
    make_pod("runner-f", "127.0.2.6", namespace="team-b", annotations={MODE: "enforce"}),
]
api = pu.start_api(pods=pods)
api.annotate_namespace("team-a", {ALLOW: "example.com:443, *.example.org", MODE: "report"})

pm = pu.start_podmeta(api, "--policy", "--delete-grace", "2", sync_wait=10)
r = pm.wait_reply("127.0.2.1 x 1", lambda r: r.status is not None, 15)
ok(r.status is not None, "podmeta --policy answers once pods and namespaces are listed")

# --- matching, the pod's own list (enforce)
A = "127.0.2.1"
check(pm, A, "api.github.com", 443, "OK", pol("enforce", "allow", "*.github.com:443", "pod"),
      "*.github.com:443 lets api.github.com:443 through, the rule named")
check(pm, A, "a.b.github.com", 443, "OK", pol("enforce", "allow", "*.github.com:443", "pod"),
      "... and a.b.github.com, at any depth")
check(pm, A, "github.com", 443, "ERR", pol("enforce", "deny", None, "pod", "host_not_listed"),
      "... not github.com itself: ERR, host_not_listed")
check(pm, A, "api.github.com", 80, "ERR", pol("enforce", "deny", None, "pod", "host_not_listed"),
      "... nor another port")
check(pm, A, "REGISTRY.NPMJS.ORG.", 443, "OK", pol("enforce", "allow", "registry.npmjs.org:443", "pod"),
      "an exact name: case and a trailing dot do not matter")
check(pm, A, "xregistry.npmjs.org", 443, "ERR", pol("enforce", "deny", None, "pod", "host_not_listed"),
      "... a longer name is not the name")
check(pm, A, "proxy.golang.org", 8443, "OK", pol("enforce", "allow", "proxy.golang.org", "pod"),
      "an entry without a port: any port")
check(pm, A, "10.1.2.3", 22, "OK", pol("enforce", "allow", "10.0.0.0/8:22", "pod"),
      "a CIDR entry lets an address in it through")
check(pm, A, "11.1.2.3", 22, "ERR", pol("enforce", "deny", None, "pod", "host_not_listed"),
      "... not one outside it")
check(pm, A, "[2001:db8::7]", 443, "OK", pol("enforce", "allow", "[2001:db8::/32]:443", "pod"),
      "an IPv6 CIDR with a port, the destination bracketed")
check(pm, A, "2001:db8::7", 443, "OK", pol("enforce", "allow", "[2001:db8::/32]:443", "pod"),
      "... or not")
check(pm, A, "api.github.com", 443, "OK", pol("enforce", "allow", "*.github.com:443", "pod"),
      "an SNI the same as the host", sni="api.github.com")
check(pm, A, "api.github.com", 443, "OK", pol("enforce", "allow", "*.github.com:443", "pod"),
      "an SNI that is another listed name", sni="codeload.github.com")
check(pm, A, "api.github.com", 443, "ERR", pol("enforce", "deny", None, "pod", "sni_not_listed"),
      "an allowed host carrying an SNI outside the list: ERR, sni_not_listed", sni="evil.example")
check(pm, A, "api.github.com", 443, "OK", pol("enforce", "allow", "*.github.com:443", "pod"),
      "'-' is no SNI", sni="-")
r, p = ask(pm, A, "api.github.com", 443)
ok(r.log is not None and r.log.get("name") == "runner-a" and r.log.get("namespace") == "team-a",
   "the answer carries the pod's log= as well")

# --- the namespace's defaults, key by key
B = "127.0.2.2"
check(pm, B, "example.com", 443, "OK", pol("report", "allow", "example.com:443", "namespace"),
      "a pod without annotations: its namespace's list and mode")
check(pm, B, "evil.example", 443, "OK", pol("report", "would_deny", None, "namespace", "host_not_listed"),
      "report mode: OK, marked would_deny")
check(pm, "127.0.2.5", "evil.example", 443, "OK", pol("off", "allow", None, "namespace"),
      "a pod's own mode (off) with its namespace's list: not evaluated")
check(pm, "127.0.2.3", "evil.example", 443, "OK", pol("off", "allow"),
      "no annotation anywhere: off")
check(pm, "127.0.2.6", "example.com", 443, "ERR", pol("enforce", "deny", None, None, "host_not_listed"),
      "a mode with no list anywhere: an empty list (enforce denies everything)")

# --- malformed: the namespace's list instead, and one line on stderr
D = "127.0.2.4"
check(pm, D, "fine.example", 443, "ERR", pol("enforce", "deny", None, "namespace", "host_not_listed"),
      "a malformed list is not used at all: the namespace's instead, with the pod's own valid mode")
check(pm, D, "example.com", 443, "OK", pol("enforce", "allow", "example.com:443", "namespace"),
      "... which lets the namespace's entries through")
like(pm.stderr(), r'pod team-a/runner-d: egress\.connectd\.io/allow: entry 2 "a\.\.b": not a host name; '
     r"using the namespace's", "stderr names the pod, the annotation, the entry and why")

BAD = [
    ("127.0.2.21", {ALLOW: "example.com:0"}, r'entry 1 "example\.com:0": not a port'),
    ("127.0.2.22", {ALLOW: "example.com:99999"}, r'entry 1 "example\.com:99999": not a port'),
    ("127.0.2.23", {ALLOW: "exa mple.com x*y.com"}, r'entry 3 "x\*y\.com": .\*. only as .\*\.. at the start'),
    ("127.0.2.24", {ALLOW: "10.0.0.0/33"}, r'entry 1 "10\.0\.0\.0/33": bad prefix length'),
    ("127.0.2.25", {ALLOW: "[10.0.0.1]:443"}, r"brackets around an IPv4 address"),
    ("127.0.2.26", {ALLOW: "[2001:db8::1:443"}, r"no closing"),
    ("127.0.2.27", {ALLOW: "-bad.example"}, r"not a host name"),
    ("127.0.2.28", {ALLOW: "a" * 64 + ".example"}, r"not a host name"),
    ("127.0.2.29", {MODE: "Enforce"}, r'egress\.connectd\.io/mode: "Enforce" is not enforce, report or off'),
    ("127.0.2.30", {ALLOW: "*.:443"}, r"not a host name after"),
    ("127.0.2.31", {ALLOW: "ok.example,\x1b[31mred\"q"}, r'entry 2 "\?\[31mred\?q": not a host name'),
    ("127.0.2.32", {ALLOW: "x" * 400}, r"entry 1: longer than 320 characters"),
]
for i, (ip, ann, _) in enumerate(BAD):
    api.add_pod(make_pod("bad-%02d" % i, ip, namespace="team-a", annotations=ann))
for i, (ip, ann, msg) in enumerate(BAD):
    r = pm.wait_reply("%s example.com 443" % ip, lambda r: r.log is not None and r.log.get("name"), 10)
    p = json.loads(r.kv.get("policy", "null") or "null")
    want_mode = "report"
    good = r.status == "OK" and p is not None and p["from"] == "namespace" and p["mode"] == want_mode and \
        p["rule"] == "example.com:443"
    ok(good, "malformed %r: the namespace's policy applies" % (list(ann.values())[0][:30],))
    if not good:
        diag(r.raw)
    like(pm.stderr(), r"pod team-a/bad-%02d: .*%s" % (i, msg), "... and stderr says why (%s)" % msg)
ok("\x1b" not in pm.stderr(), "no control character reaches stderr")
n_before = pm.stderr().count("pod team-a/bad-00:")
api.modify_pod("team-a", "bad-00", phase="Running", ip="127.0.2.21")
time.sleep(0.5)
pm.wait_reply("127.0.2.21 example.com 443", lambda r: r.status is not None, 5)
is_(pm.stderr().count("pod team-a/bad-00:"), n_before,
    "a status update with the same annotations does not say it again")

# --- runtime changes: a pod's mode, then its list; the latency measured
def flip(ns, name, ann):
    t0 = time.monotonic()
    pod = api.get_pod(ns, name)
    new = dict(pod["metadata"].get("annotations") or {})
    for k, v in ann.items():
        if v is None:
            new.pop(k, None)
        else:
            new[k] = v
    api.modify_pod(ns, name, annotations=new)
    return t0


lat = []
t0 = flip("team-a", "runner-a", {MODE: "report"})
dt, st, p = wait_policy(pm, A, "github.com", 443, lambda s, p: p["mode"] == "report")
ok(dt is not None and st == "OK" and p == pol("report", "would_deny", None, "pod", "host_not_listed"),
   "enforce -> report on a running pod: github.com now OK, would_deny")
lat.append(dt)
flip("team-a", "runner-a", {MODE: "off"})
dt, st, p = wait_policy(pm, A, "github.com", 443, lambda s, p: p["mode"] == "off")
ok(dt is not None and st == "OK" and p == pol("off", "allow", None, "pod"), "report -> off: allowed, not evaluated")
lat.append(dt)
flip("team-a", "runner-a", {MODE: "enforce", ALLOW: "github.com:443"})
dt, st, p = wait_policy(pm, A, "github.com", 443, lambda s, p: p["mode"] == "enforce")
ok(dt is not None and st == "OK" and p == pol("enforce", "allow", "github.com:443", "pod"),
   "off -> enforce with a new list: github.com allowed by it")
lat.append(dt)
check(pm, A, "api.github.com", 443, "ERR", pol("enforce", "deny", None, "pod", "host_not_listed"),
      "... and the old list is gone")
flip("team-a", "runner-a", {ALLOW: None, MODE: None})
dt, st, p = wait_policy(pm, A, "example.com", 443, lambda s, p: p["from"] == "namespace")
ok(dt is not None and p == pol("report", "allow", "example.com:443", "namespace"),
   "the pod's annotations removed: back to the namespace's")
lat.append(dt)

# the namespace's own annotation changes (the namespaces watch)
t0 = time.monotonic()
api.annotate_namespace("team-a", {MODE: "enforce"})
dt, st, p = wait_policy(pm, B, "evil.example", 443, lambda s, p: p["mode"] == "enforce")
ok(dt is not None and st == "ERR" and p == pol("enforce", "deny", None, "namespace", "host_not_listed"),
   "the namespace switched to enforce: its pods' would_deny is now ERR")
lat.append(dt)
api.annotate_namespace("team-a", {ALLOW: "example.com:443, evil.example:443"})
dt, st, p = wait_policy(pm, B, "evil.example", 443, lambda s, p: p["verdict"] == "allow")
ok(dt is not None and st == "OK" and p["rule"] == "evil.example:443", "a namespace's new list applies to its pods")
lat.append(dt)
api.add_namespace("team-c", annotations={ALLOW: "c.example", MODE: "enforce"})
api.add_pod(make_pod("runner-g", "127.0.2.7", namespace="team-c"))
dt, st, p = wait_policy(pm, "127.0.2.7", "c.example", 443, lambda s, p: p["from"] == "namespace")
ok(dt is not None and p == pol("enforce", "allow", "c.example", "namespace"),
   "a namespace created at runtime, then a pod in it")
api.delete_namespace("team-c")
dt, st, p = wait_policy(pm, "127.0.2.7", "c.example", 443, lambda s, p: p["from"] is None)
ok(dt is not None and p == pol("off", "allow"), "the namespace deleted: its defaults go with it")
if all(x is not None for x in lat):
    diag("annotation change to changed answer: max %.0f ms, mean %.0f ms over %d changes"
         % (max(lat) * 1000, sum(lat) / len(lat) * 1000, len(lat)))

# real kubectl annotate, against the same server
kubectl = shutil.which("kubectl")
if kubectl:
    env = dict(os.environ, KUBECONFIG=api.kubeconfig)
    rc = subprocess.run([kubectl, "annotate", "--overwrite", "-n", "team-a", "pod/runner-b",
                         "%s=internal.example:443" % ALLOW, "%s=enforce" % MODE],
                        env=env, capture_output=True, text=True, timeout=30)
    ok(rc.returncode == 0, "kubectl annotate pod/runner-b (%s)" % (rc.stderr.strip()[:200]))
    dt, st, p = wait_policy(pm, B, "internal.example", 443, lambda s, p: p["from"] == "pod")
    ok(dt is not None and st == "OK" and p == pol("enforce", "allow", "internal.example:443", "pod"),
       "... the pod's own list now overrides its namespace's")
    rc = subprocess.run([kubectl, "annotate", "-n", "team-a", "pod/runner-b", "%s-" % ALLOW, "%s-" % MODE],
                        env=env, capture_output=True, text=True, timeout=30)
    dt, st, p = wait_policy(pm, B, "internal.example", 443, lambda s, p: p["from"] == "namespace")
    ok(rc.returncode == 0 and dt is not None and p["from"] == "namespace",
       "kubectl annotate KEY- removes them: back to the namespace's")
else:
    h.tap.skip("kubectl is not installed", 3)

# --- a deleted pod keeps its verdict for --delete-grace, then is no pod
api.delete_pod("team-a", "runner-d")
r, p = ask(pm, D, "example.com", 443)
ok(r.status == "OK" and p is not None and p["from"] == "namespace",
   "a deleted pod is still answered with its policy during --delete-grace")
dt, st, p = wait_policy(pm, D, "example.com", 443, lambda s, p: p["reason"] == "no_pod", 15)
ok(dt is not None and st == "OK" and p == pol("off", "allow", None, None, "no_pod"),
   "after it: no pod, mode off, reason no_pod")

# --- bad requests
for line, msg in [("127.0.2.1 example.com", "no destination and port"),
                  ("127.0.2.1 example.com http", "not a port"),
                  ("127.0.2.1 example.com 70000", "not a port"),
                  ("nope example.com 443", "not an IP address")]:
    r = pu.Reply(pm.ask(line))
    ok(r.status == "ERR" and msg in (r.kv.get("message") or ""), "%r: ERR message=%s" % (line, msg))
r, p = ask(pm, A, "x" * 300, 443)
ok(r.status == "ERR" and p is not None and p["reason"] == "host_not_listed",
   "a 300-character host is answered: not listed (only '*' could let it through)")
ok(pm.alive(), "podmeta is still running")
pm.close()
like(pm.stderr(), r"policy stats \(exit\): namespaces=\d+ namespace_events=\d+ allow=\d+ deny=\d+ would_deny=\d+",
     "the exit stats count namespaces and verdicts")

# --- --unknown err
pm2 = pu.start_podmeta(api, "--policy", "--unknown", "err", sync_wait=10)
r = pm2.wait_reply("127.9.9.9 example.com 443", lambda r: r.status is not None, 15)
p = json.loads(r.kv.get("policy") or "null")
ok(r.status == "ERR" and p == pol("enforce", "deny", None, None, "no_pod"),
   "--unknown err: a client that is no pod gets ERR, reason no_pod")
pm2.close()

# --- 1,000 pods with lists; lists of 4,096 entries
api.stop()
many = generate_pods(1000, prefix="w", namespaces=10, base="10.200.0.0", slim=True)
for i, p in enumerate(many):
    p["metadata"]["annotations"] = {
        ALLOW: ", ".join("svc-%d-%d.example:443" % (i, j) for j in range(20)) + ", *.shared.example",
        MODE: "enforce" if i % 2 == 0 else "report"}
huge = ["h%d.example:443" % j for j in range(4096)]
many.append(make_pod("huge", "10.201.0.1", namespace="ns-00", annotations={ALLOW: ", ".join(huge)}))
many.append(make_pod("huger", "10.201.0.2", namespace="ns-00",
                     annotations={ALLOW: ", ".join(huge + ["one-more.example"])}))
api = pu.start_api(pods=many)
pm = pu.start_podmeta(api, "--policy", sync_wait=30)
r = pm.wait_reply("10.200.0.1 x 1", lambda r: r.status is not None, 30)
bad = []
for i in range(0, 1000, 37):
    ip = many[i]["status"]["podIP"]
    r, p = ask(pm, ip, "svc-%d-19.example" % i, 443)
    if r.status != "OK" or p is None or p.get("rule") != "svc-%d-19.example:443" % i:
        bad.append((ip, r.raw))
    r, p = ask(pm, ip, "svc-%d-1.example" % ((i + 1) % 1000), 443)
    want = "ERR" if i % 2 == 0 else "OK"
    if r.status != want or p is None or p.get("reason") != "host_not_listed":
        bad.append((ip, r.raw))
is_(bad, [], "1,000 pods with 21-entry lists: each pod's own list decides (28 pods checked both ways)")
check(pm, "10.201.0.1", "h4095.example", 443, "OK", pol("enforce", "allow", "h4095.example:443", "pod"),
      "a list of 4,096 entries: the last one matches")
check(pm, "10.201.0.2", "h1.example", 443, "OK", pol("off", "allow"),
      "4,097 entries: malformed, not used (no namespace default here: off)")
like(pm.stderr(), r"pod ns-00/huger: egress\.connectd\.io/allow: more than 4096 entries",
     "... and stderr says so")
t0 = time.monotonic()
for j in range(200):
    ask(pm, "10.201.0.1", "h%d.example" % (4095 - j), 443)
diag("200 lookups against a 4,096-entry list: %.1f ms each" % ((time.monotonic() - t0) / 200 * 1000))
ok(pm.alive(), "podmeta is still running")
try:
    rss = int(open("/proc/%d/status" % pm.p.pid).read().split("VmRSS:")[1].split()[0])
    diag("podmeta RSS with 1,002 pods and their lists: %d KiB" % rss)
except (OSError, IndexError, ValueError):
    pass
pm.close()
api.stop()
done()
