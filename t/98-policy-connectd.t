#!/usr/bin/env python3
"""98-policy-connectd.t: connectd's side of the egress policy (issue 15),
with a stub policy helper written here (Squid's helper protocol with
channel IDs; it answers by the DST and SNI tokens), not podmeta.

Expectations:
- external_acl_type ... %SRC %DST %PORT %ssl::>sni: the acl waits for the
  ClientHello; the helper is asked with the SNI while the client's bytes
  are held, and its answer releases them or closes the tunnel with none
  sent.  openssl s_client and curl to an allowed host with its SNI get
  through; an SNI the helper denies (on an allowed host) is closed
  before any byte reaches the origin.  The helper is asked at the
  CONNECT too, with "-" as the SNI: a host it refuses then gets a 403
  there (as Squid's http_access before any SslBump step).  A
  tunnel that is not TLS and a plain-HTTP request are asked with "-".
- Every line has "policy": an object of exactly mode, verdict, rule,
  from, reason (strings or null), from the helper's policy= note; a
  report-mode OK with verdict would_deny passes; an enforce ERR denies
  with close denied and the rule.  Interim records and forwarded
  requests carry it too.
- Hostile policy= values (not JSON, an array, nested objects, a huge
  string, extra keys, numbers and booleans for strings, deep nesting, a
  NUL) still give a valid line: policy null, or its five members strings
  or null, at most 512 bytes each.
- on_failure=open|closed with a helper that is missing, hangs (its
  timeout=, also while a hello is held), says BH or dies: open lets the
  tunnel through, closed denies it, and policy is the stand-in
  {"mode":null,"verdict":"fail_open"|"fail_closed",...,"reason":why};
  without on_failure= the line's policy stays null.
- Answers are cached by every FORMAT field: the helper sees one request
  for two identical tunnels, another for another port.
- connectd -t: %ssl::>sni with tls_peek off and a bad on_failure value
  are errors at the external_acl_type's FILE:LINE; -t -v prints
  on_failure= back."""
import json
import os
import socket
import sys
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import helper_util as hu
from tap import ok, is_, like, diag, done

if not h.have("openssl", "curl"):
    h.tap.skip_all("openssl and curl are needed")
h.need_connectd()
h.watchdog(240)
CD = h.connectd_bin()

from tls_util import hello  # noqa: E402

D = h.tmpdir()
REQLOG = os.path.join(D, "requests.log")

# ------------------------------------------------------ the stub helper
# argv: the file it appends each request line to, and a mode: normal
# (answer by the tokens), hang (never answer), bh, die (exit at the
# first request).  In normal mode a client address picks a variant:
# report mode, or one of the hostile policy= values.
STUB = r'''#!%s
import json, sys, time, urllib.parse
LOG, MODE = sys.argv[1], sys.argv[2]
LISTED = {"localhost", "127.0.0.1"}
HUGE = "r" * 3000 + "\u00e9" * 2000
HOSTILE = {
    "127.0.3.1": "this is not json",
    "127.0.3.2": "[1,2,3]",
    "127.0.3.3": json.dumps({"mode": {"a": {"b": {}}}, "verdict": ["allow"], "rule": {"x": 1},
                             "from": "pod", "reason": None}),
    "127.0.3.4": json.dumps({"mode": "enforce", "verdict": "allow", "rule": HUGE,
                             "from": "namespace", "reason": None}),
    "127.0.3.5": json.dumps({"mode": "enforce", "verdict": "allow", "rule": "localhost",
                             "from": "pod", "reason": None, "extra": "x",
                             "nested": {"deep": [1, {"k": "v"}]}}),
    "127.0.3.6": json.dumps({"mode": 1, "verdict": True, "rule": 1.5, "from": None,
                             "reason": ["no_pod"]}),
    "127.0.3.7": "[" * 200 + "]" * 200,
    "127.0.3.8": '{"mode":"en\\u0000force","verdict":"allow","rule":null,"from":null,"reason":null}',
    "127.0.3.9": '{"mode":"off","verdict":"allow","rule":"line\\nbreak \\"q\\" \\\\ \\u0001",'
                 '"from":null,"reason":null,"mode":"report"}',
}


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def policy(mode, verdict, rule, frm, reason):
    return json.dumps({"mode": mode, "verdict": verdict, "rule": rule, "from": frm,
                       "reason": reason}, separators=(",", ":"))


def answer(src, dst, port, sni):
    if src in HOSTILE:
        return "OK log=%%s policy=%%s" %% (quote('{"name":"hostile"}'), quote(HOSTILE[src]))
    report = src == "127.0.2.1"
    mode = "report" if report else "enforce"
    if dst not in LISTED:
        why, rule = "host_not_listed", None
    elif sni != "-" and sni not in LISTED:
        why, rule = "sni_not_listed", None
    else:
        why, rule = None, dst
    if why is None:
        return "OK policy=%%s" %% quote(policy(mode, "allow", rule, "pod", None))
    if report:
        return "OK policy=%%s" %% quote(policy(mode, "would_deny", None, "pod", why))
    return "ERR policy=%%s" %% quote(policy(mode, "deny", None, "pod", why))


for line in sys.stdin:
    with open(LOG, "a") as f:
        f.write(line)
    w = line.split()
    if MODE == "hang":
        continue
    if MODE == "die":
        sys.exit(3)
    if MODE == "bh":
        out = "BH message=stub"
    else:
        src, dst, port = w[1], urllib.parse.unquote(w[2]), w[3]
        sni = urllib.parse.unquote(w[4]) if len(w) > 4 else "-"
        if src == "127.0.2.2" and sni != "-":
            time.sleep(1.5)             # slow, once the hello is known
        out = answer(src, dst, port, sni)
    sys.stdout.write("%%s %%s\n" %% (w[0], out))
    sys.stdout.flush()
''' % hu.PY
stub = hu.script("policy-stub.py", STUB)


def stub_line(name, mode="normal", opts="", fmt="%SRC %DST %PORT %ssl::>sni", log=REQLOG):
    return ("external_acl_type %s ttl=60 negative_ttl=60 children-max=1 concurrency=10 "
            "log-wait=0 %s %s %s %s %s\n" % (name, opts, fmt, stub, log, mode))


def requests(src=None):
    try:
        with open(REQLOG) as f:
            lines = [ln.split(None, 1)[1].strip() for ln in f if ln.strip()]
    except OSError:
        return []
    return [x for x in lines if src is None or x.split()[0] == src]


def final(cd, port, timeout=15):
    ls = cd.wait_lines(1, timeout, pred=lambda x: x.get("client_port") == port and
                       x.get("record") == "final")
    return ls[0] if ls else {}


def tun(cd, rec, authority, data, src="127.0.0.1", shut=True):
    """A tunnel from src: send data, half-close, read to EOF.  Returns
    (status, its final line, what the origin got or None)."""
    n = len(rec.conns) if rec is not None else 0
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(15 * h.SLOW)
    s.bind((src, 0))
    port = s.getsockname()[1]
    s.connect(("127.0.0.1", cd.port))
    h.at_cleanup(s.close)
    s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority)).encode())
    head = h.recv_head(s)
    try:
        st = int(head.split(b" ")[1])
    except (IndexError, ValueError):
        st = None
    if st == 200:
        if data:
            s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        try:
            while s.recv(65536):
                pass
        except OSError:
            pass
    s.close()
    line = final(cd, port)
    got = None
    if rec is not None and st == 200:
        r = rec.wait_done(n + 1)
        got = r.get("got") if r else None
    return st, line, got


def pol(mode, verdict, rule, frm, reason):
    return {"mode": mode, "verdict": verdict, "rule": rule, "from": frm, "reason": reason}


def policy_shape(p):
    return p is None or (isinstance(p, dict) and sorted(p) == sorted(h.POLICY_MEMBERS) and
                         all(v is None or isinstance(v, str) for v in p.values()))


origin = h.TlsOrigin(names=["localhost"])
rec = h.Recorder()                              # listed: 127.0.0.1
rec2 = h.Recorder()                             # another port
unlisted = h.Recorder(host="127.0.0.3")         # not listed
web = h.HttpOrigin(body=b"plain\n")
web3 = h.HttpOrigin(host="127.0.0.3", body=b"plain3\n")
REC = "127.0.0.1:%d" % rec.port

MAIN = ("tls_peek_timeout 2 seconds\n"
        "access_log_interval 1 second\n" +
        stub_line("egress", opts="timeout=5") +
        "acl egress_ok external egress\n"
        "http_access deny !egress_ok\n"
        "http_access allow all\n")


def s_client(cd, target, sni):
    rc, out, err = h.run(["openssl", "s_client", "-proxy", "127.0.0.1:%d" % cd.port,
                          "-connect", target, "-CAfile", origin.cert, "-servername", sni],
                         input=b"", timeout=30)
    return rc, (out or "") + (err or "")


with h.Connectd(MAIN, name="main") as cd:
    # ------------------------------------------------ allowed and denied
    rc, out = s_client(cd, "localhost:%d" % origin.port, "localhost")
    ok(rc == 0 and "Verify return code: 0" in out,
       "s_client to localhost, SNI localhost: the helper allows it after the hello")
    line = cd.wait_lines(1)[-1] if cd.wait_lines(1) else {}
    is_((line.get("status"), line.get("close") in ("client_eof", "server_eof"),
         (line.get("tls") or {}).get("sni")),
        (200, True, "localhost"), "... its line: 200, not denied, sni localhost")
    is_(line.get("policy"), pol("enforce", "allow", "localhost", "pod", None),
        "... policy: enforce, allow, the rule, from pod, no reason")

    rc, out = s_client(cd, "localhost:%d" % origin.port, "evil.test")
    ok(rc != 0 or "Verify return code" not in out,
       "s_client to localhost with SNI evil.test: no handshake")
    line = cd.wait_lines(2)[-1] if len(cd.wait_lines(2)) >= 2 else {}
    is_((line.get("close"), line.get("rule"), line.get("bytes_up")),
        ("denied", "http_access deny !egress_ok", 0),
        "... close denied by the rule, no byte up")
    is_(line.get("policy"), pol("enforce", "deny", None, "pod", "sni_not_listed"),
        "... policy: enforce, deny, reason sni_not_listed")

    rc, cout, err = h.run(["curl", "-sS", "-p", "-x", "http://127.0.0.1:%d" % cd.port,
                           "--cacert", origin.cert, "--noproxy", "", "-m", "20",
                           "https://localhost:%d/" % origin.port], timeout=30,
                          env=dict(os.environ, NO_PROXY="", no_proxy=""))
    ok(rc == 0, "curl https://localhost through the held hello: allowed (%s)" % err.strip()[:80])
    line = cd.wait_lines(3)[-1] if len(cd.wait_lines(3)) >= 3 else {}
    is_(((line.get("tls") or {}).get("sni"), (line.get("policy") or {}).get("verdict")),
        ("localhost", "allow"), "... its line: sni localhost, verdict allow")

    # the origin records what it got: nothing for a denied SNI
    hv = hello(b"evil.test")
    st, line, got = tun(cd, rec, REC, hv)
    is_((st, line.get("close"), got), (200, "denied", b""),
        "a listed host (127.0.0.1), SNI evil.test: closed, the origin got zero bytes")
    is_((line.get("policy") or {}).get("reason"), "sni_not_listed", "... reason sni_not_listed")
    hv = hello(b"localhost")
    st, line, got = tun(cd, rec, REC, hv)
    is_((line.get("close"), got), ("client_eof", hv), "... SNI localhost: the held hello goes through")
    st, line, got = tun(cd, unlisted, "127.0.0.3:%d" % unlisted.port, hello(b"localhost"))
    is_((st, line.get("close"), len(unlisted.conns), line.get("policy")),
        (403, "denied", 0, pol("enforce", "deny", None, "pod", "host_not_listed")),
        "a host not listed (127.0.0.3): 403 at the CONNECT (asked with '-': an ERR then is final), "
        "no connection to it, reason host_not_listed")

    # a slow answer after the hello: the bytes stay held until it comes
    n = len(rec.conns)
    s = socket.socket()
    s.bind(("127.0.2.2", 0))
    s.settimeout(15)
    s.connect(("127.0.0.1", cd.port))
    s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (REC, REC)).encode())
    h.recv_head(s)
    hv = hello(b"localhost")
    s.sendall(hv + b"after the hello")
    ok(h.wait_for(lambda: len(rec.conns) > n), "a helper that answers 1.5 s after the hello: "
       "the tunnel is open")
    time.sleep(0.7)
    is_(rec.conns[n].get("got", b"") if len(rec.conns) > n else None, b"",
        "... 0.7 s later the origin has no byte yet: held while the helper is asked")
    ok(h.wait_for(lambda: rec.conns[n].get("got", b"") == hv + b"after the hello", timeout=10),
       "... its answer releases the hello and what followed, in order")
    s.close()
    rec.wait_done(n + 1)

    # not TLS: asked with "-"
    plain = b"GET / HTTP/1.0\r\n\r\n"
    st, line, got = tun(cd, rec, REC, plain)
    is_((line.get("proto"), line.get("close"), got), ("http", "client_eof", plain),
        "a tunnel that is not TLS: asked with '-', allowed, the bytes go")
    # the last "-" is the acl's %DATA, which Squid appends without one in FORMAT
    ok(any(x.endswith(" 127.0.0.1 %d - -" % rec.port) for x in requests("127.0.0.1")),
       "... the helper's request line has '-' for %ssl::>sni")

    # report mode: OK would_deny passes
    st, line, got = tun(cd, unlisted, "127.0.0.3:%d" % unlisted.port, hello(b"localhost"),
                        src="127.0.2.1")
    is_((line.get("close"), line.get("rule")), ("client_eof", None),
        "report mode, a host not listed: OK, the tunnel passes")
    ok(got and got.startswith(b"\x16\x03"), "... the origin got the hello")
    is_(line.get("policy"), pol("report", "would_deny", None, "pod", "host_not_listed"),
        "... policy: report, would_deny, host_not_listed")

    # plain HTTP: the request line has the policy too
    for o, want in ((web, (200, "allow")), (web3, (403, "deny"))):
        c = h.ProxyClient(cd.port)
        st, reply, how = c.request(b"GET http://%s/x HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                                   % (o.authority.encode(), o.authority.encode()))
        port = c.local_port
        c.close()
        line = final(cd, port)
        is_((st, line.get("scheme"), (line.get("policy") or {}).get("verdict")),
            (want[0], "http", want[1]),
            "plain-HTTP GET %s: %d, its line has policy verdict %s" % (o.authority, want[0], want[1]))
    ok(any(x == "127.0.0.1 127.0.0.3 %d - -" % web3.port for x in requests()),
       "... asked with '-' for the SNI")

    # interim records carry it
    echo = h.EchoServer()
    c = h.tunnel(cd.port, echo.authority)
    c.send(hello(b"localhost"))
    time.sleep(2.5)
    port = c.local_port
    c.close()
    ls = cd.wait_lines(1, pred=lambda x: x.get("client_port") == port and x.get("record") == "interim")
    is_((ls[0].get("policy") or {}).get("verdict") if ls else None, "allow",
        "an interim record has the policy")

    # hostile policy= values
    for i, what in ((1, "not JSON"), (2, "an array"), (3, "nested objects"), (4, "a huge string"),
                    (5, "extra keys"), (6, "numbers for strings"), (7, "200 levels deep"),
                    (8, "a NUL"), (9, "control bytes, a duplicate key")):
        st, line, got = tun(cd, rec, REC, plain, src="127.0.3.%d" % i)
        p = line.get("policy", "absent")
        ok(line and st == 200 and policy_shape(p) and not h.schema_errors(line),
           "hostile policy= (%s): a valid line, policy %s" % (what, json.dumps(p)[:70]))
        if i in (1, 2, 7, 8):
            is_(p, None, "... not a JSON object jansson takes: policy null")
        elif i == 3:
            is_(p, pol(None, None, None, "pod", None), "... members that are not strings: null")
        elif i == 4:
            r = (p or {}).get("rule") or ""
            ok(0 < len(r.encode()) <= 512 and r.startswith("rrr"),
               "... a huge rule is cut to %d bytes (at most 512), on a character" % len(r.encode()))
        elif i == 5:
            is_(p, pol("enforce", "allow", "localhost", "pod", None), "... other keys are dropped")
        elif i == 6:
            is_(p, pol(None, None, None, None, None), "... numbers, booleans, arrays: null")
        elif i == 9:
            is_(p, pol("report", "allow", "line\nbreak \"q\" \\ \x01", None, None),
                "... escaped back as they were; the last of two keys")
        is_(line.get("pod"), {"name": "hostile"}, "... log= still gives the pod") if i == 5 else None

    # the cache: keyed by every field
    for i in range(2):
        tun(cd, rec, REC, plain, src="127.0.4.1")
    is_(requests("127.0.4.1"), ["127.0.4.1 127.0.0.1 %d - -" % rec.port],
        "two identical tunnels: the helper saw one request")
    tun(cd, rec2, "127.0.0.1:%d" % rec2.port, plain, src="127.0.4.1")
    is_(len(requests("127.0.4.1")), 2, "... another port: a second request")
    for i in range(2):
        tun(cd, rec, REC, hello(b"localhost"), src="127.0.4.2")
    is_(sorted(requests("127.0.4.2")), ["127.0.4.2 127.0.0.1 %d - -" % rec.port,
                                        "127.0.4.2 127.0.0.1 %d localhost -" % rec.port],
        "two identical TLS tunnels: one request with the SNI (the acl's), one with '-' "
        "(the line's, before the hello)")
    lines = cd.lines()
    ok(lines and all(policy_shape(x.get("policy", "absent")) for x in lines),
       "every line (%d) has policy: null or the five members, strings or null" % len(lines))

# ---------------------------------------------------------- on_failure
FAILREQ = os.path.join(D, "fail-requests.log")
pools = [  # name, mode, options, client address, expected (close, policy or None)
    ("hang_open", "hang", "on_failure=open timeout=1", "127.0.5.1", ("client_eof", "fail_open", "timeout")),
    ("hang_closed", "hang", "on_failure=closed timeout=1", "127.0.5.2", ("denied", "fail_closed", "timeout")),
    ("bh_open", "bh", "on_failure=open", "127.0.5.3", ("client_eof", "fail_open", "bh")),
    ("bh_closed", "bh", "on_failure=closed", "127.0.5.4", ("denied", "fail_closed", "bh")),
    ("gone_open", "missing", "on_failure=open", "127.0.5.5", ("client_eof", "fail_open", "helper_down")),
    ("gone_closed", "missing", "on_failure=closed", "127.0.5.6", ("denied", "fail_closed", "helper_down")),
    ("die_open", "die", "on_failure=open", "127.0.5.7", ("client_eof", "fail_open", "helper_down")),
    ("bh_default", "bh", "", "127.0.5.8", ("denied", None, None)),
]
conf = "tls_peek_timeout 2 seconds\n"
for name, mode, opts, src, want in pools:
    if mode == "missing":
        conf += ("external_acl_type %s ttl=60 children-max=1 concurrency=10 log-wait=0 %s "
                 "%%SRC %%DST %%PORT %%ssl::>sni %s/no/such/helper\n" % (name, opts, D))
    else:
        conf += stub_line(name, mode=mode, opts=opts, log=FAILREQ)
    conf += ("acl c_%s src %s\nacl ok_%s external %s\n"
             "http_access deny c_%s !ok_%s\n" % (name, src, name, name, name, name))
conf += "http_access allow all\n"
with h.Connectd(conf, name="failure") as cd:
    for name, mode, opts, src, want in pools:
        hv = hello(b"localhost")
        t0 = time.time()
        st, line, got = tun(cd, rec, REC, hv, src=src)
        close, verdict, why = want
        # closed: the lookup at the CONNECT fails, and so it is a 403
        # there, before any connection; open: the hello goes through
        is_((st, line.get("close"), got), (200, close, hv) if close == "client_eof" else
            (403, close, None),
            "%s (%s): %s" % (name, opts or "no on_failure=",
                             "the held hello goes through" if close == "client_eof" else
                             "403 at the CONNECT, close denied"))
        # a helper that hangs is restarted by its pool at the same
        # timeout=: whichever comes first names the failure
        got_p = line.get("policy")
        if mode == "hang" and got_p and got_p.get("reason") == "helper_down":
            got_p = dict(got_p, reason="timeout")
        is_(got_p, pol(None, verdict, None, None, why) if verdict else None,
            "... policy %s" % ("%s, reason %s" % (verdict, why) if verdict else "null"))
        if mode == "hang":
            ok(time.time() - t0 < 8, "... decided after the helper's timeout=1 (%.1f s)" %
               (time.time() - t0))
    ok("/no/such/helper" in cd.stderr(), "the missing helper is named on stderr")

# ------------------------------------------------------- configuration
bad = h.tmpfile("sni-nopeek.conf", "http_port 127.0.0.1:3128\ntls_peek off\n" +
                stub_line("egress") + "acl e external egress\nhttp_access deny !e\n")
rc, out, err = h.run([CD, "-t", "-f", bad], timeout=10)
ok(rc not in (0, None) and "%s:3:" % bad in err and "%ssl::>sni" in err and "tls_peek" in err,
   "-t: %%ssl::>sni with tls_peek off is an error at FILE:3 (%s)" % err.strip()[-90:])
bad = h.tmpfile("onfail.conf", "http_port 127.0.0.1:3128\n\n" +
                stub_line("egress", opts="on_failure=ajar") + "acl e external egress\n"
                "http_access deny !e\n")
rc, out, err = h.run([CD, "-t", "-f", bad], timeout=10)
ok(rc not in (0, None) and "%s:3:" % bad in err and "on_failure=ajar" in err,
   "-t: on_failure=ajar is an error at FILE:3 (%s)" % err.strip()[-90:])
good = h.tmpfile("onfail-ok.conf", "http_port 127.0.0.1:3128\n" +
                 stub_line("egress", opts="on_failure=open") +
                 stub_line("other", fmt="%SRC") + "acl e external egress\nhttp_access deny !e\n")
rc, out, err = h.run([CD, "-t", "-v", "-f", good], timeout=10)
defs = [x for x in out.splitlines() if x.startswith("external_acl_type")]
ok(rc == 0 and len(defs) == 2 and " on_failure=open " in defs[0] and "%ssl::>sni" in defs[0]
   and "on_failure" not in defs[1],
   "-t -v prints on_failure=open and %ssl::>sni back, and no on_failure= where none was set")
again = h.tmpfile("onfail-again.conf", out)
rc2, out2, err2 = h.run([CD, "-t", "-v", "-f", again], timeout=10)
is_((rc2, [x for x in out2.splitlines() if x.startswith("external_acl_type")]), (0, defs),
    "... and its output loads back the same")

done()
