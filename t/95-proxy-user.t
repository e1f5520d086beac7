#!/usr/bin/env python3
"""95-proxy-user.t: who below the pod, from the proxy credential (issue 15,
its identity part): the user name of a Proxy-Authorization: Basic is the
line's "user" and Squid's %un; the password appears nowhere.

Real clients given a proxy URL with user:password:
  - curl (-x http://job-42:PASSWORD@...), a CONNECT tunnel and a
    forwarded plain-HTTP GET: the origin's copy of the request has no
    Proxy-Authorization;
  - git (libcurl; http.proxyAuthMethod=basic, since git's default
    "anyauth" sends the credential only after a 407);
  - kubectl (Go's client; the kubeconfig's proxy-url) against the test
    API server.
Hostile: not Basic, base64 that does not decode, no colon, an empty
name, quotes, backslashes, control and non-UTF-8 bytes in the name, a
name longer than 128 bytes, two Proxy-Authorization fields (the first
counts), a credential on a refused request: each line valid JSON, "user"
a string or null, the Squid template's %un escaped.
Every output (the JSON log, the Squid-format log, stderr, every reply)
is searched for the passwords."""
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, like, diag, done

if not h.have("curl", "openssl"):
    h.tap.skip_all("curl and openssl are needed")
h.need_connectd()
h.watchdog(150)

PW = "s3cr3t-pw-95"             # every password here has this in it
D = h.tmpdir()
SQLOG = os.path.join(D, "squid.log")
origin = h.TlsOrigin(names=["localhost"])
web = h.HttpOrigin(body=b"plain\n")
replies = []                    # every reply connectd sent, to search


def basic(cred):
    return "Basic " + base64.b64encode(cred).decode()


def raw(cd, head):
    """Send a request head; the reply (read to EOF) and the line."""
    c = h.ProxyClient(cd.port)
    c.send(head)
    c.shut_wr()                 # a tunnel ends at once: the origin sees EOF
    data, how = c.read_to_eof(timeout=10)
    port = c.local_port
    c.close()
    replies.append(data)
    return data, cd.wait_client(port) or {}


CONF = {"logformat": "sq %ts %>a %un %rm %ru",
        "access_log": ["stdio:/dev/stdout json", "stdio:%s sq" % SQLOG]}

with h.Connectd(CONF) as cd:
    proxy = "http://job-42:%s@127.0.0.1:%d" % (PW, cd.port)
    # ---------------------------------------------------------------- curl
    rc, out, err = h.run(["curl", "-sS", "-x", proxy, "--cacert", origin.cert,
                          "https://localhost:%d/" % origin.port], timeout=30)
    ok(rc == 0, "curl -x http://job-42:PASSWORD@proxy, a CONNECT tunnel: through")
    line = cd.wait_lines(1)[-1] if cd.wait_lines(1) else {}
    is_((line.get("method"), line.get("user")), ("CONNECT", "job-42"), "... user job-42 on its line")

    rc, out, err = h.run(["curl", "-sS", "-x", proxy, "http://127.0.0.1:%d/x" % web.port],
                         timeout=30)
    ok(rc == 0 and out == "plain\n", "curl, a forwarded plain-HTTP GET: through")
    line = cd.wait_lines(2)[-1] if len(cd.wait_lines(2)) >= 2 else {}
    is_((line.get("method"), line.get("user")), ("GET", "job-42"), "... user job-42 on its line")
    r = web.wait_done(1)
    got = (r or {}).get("got") or b""
    ok(got.startswith(b"GET /x") and b"proxy-authorization" not in got.lower() and
       PW.encode() not in got, "... the origin got the request without Proxy-Authorization")

    # ----------------------------------------------------------------- git
    if h.have("git"):
        rc, out, err = h.run(["git", "-c", "http.proxy=http://git-job:%s@127.0.0.1:%d" %
                              (PW, cd.port), "-c", "http.proxyAuthMethod=basic",
                              "ls-remote", "https://localhost:%d/nothing.git" % origin.port],
                             env=dict(os.environ, GIT_SSL_NO_VERIFY="1", HOME=D), timeout=30)
        n = len(cd.lines())
        ls = [x for x in cd.wait_lines(3) if x.get("user") == "git-job"]
        ok(ls and ls[-1].get("method") == "CONNECT",
           "git with http.proxy=http://git-job:PASSWORD@proxy: user git-job on its CONNECT line")
        ok(PW not in (out or "") + (err or ""), "... git printed no password (nor did connectd)")
    else:
        h.tap.skip("git is not installed")

    # ------------------------------------------------------------- kubectl
    kubectl = shutil.which("kubectl")
    if kubectl:
        from k8sapi.control import K8sAPI
        api = K8sAPI().start()
        with open(api.kubeconfig) as f:
            kc = f.read()
        # client-go's proxy-url: used for every host, loopback too
        kc = re.sub(r"(\n    server: [^\n]+)", r"\1\n    proxy-url: http://kube-job:%s@127.0.0.1:%d"
                    % (PW, cd.port), kc, count=1)
        kcpath = os.path.join(D, "kubeconfig-proxy")
        with open(kcpath, "w") as f:
            f.write(kc)
        r = subprocess.run([kubectl, "--kubeconfig", kcpath, "--request-timeout", "10s",
                            "get", "pods", "-A"], capture_output=True, timeout=30,
                           env=dict(os.environ, HOME=D))
        kout = (r.stdout + r.stderr).decode("utf-8", "replace")
        ok(r.returncode == 0, "kubectl through connectd (kubeconfig proxy-url with a user)")
        if r.returncode != 0:
            diag(kout[-500:])
        ls = [x for x in cd.wait_lines(4) if x.get("user") == "kube-job"]
        ok(ls and ls[-1].get("method") == "CONNECT" and
           re.match(r"^Go-http-client/|^kubectl/", str(ls[-1].get("user_agent"))),
           "... user kube-job on Go's CONNECT line (%s)" % (ls[-1].get("user_agent") if ls else None))
        ok(PW not in kout, "... kubectl printed no password")
        api.stop()
    else:
        h.tap.skip("kubectl is not installed")

    # ------------------------------------------------------------- hostile
    tgt = "127.0.0.1:%d" % web.port
    cases = [
        ("Bearer %s" % PW, None, "not Basic"),
        ("Basic %s!!" % PW, None, "base64 that does not decode"),
        (basic(b"no-colon-" + PW.encode()), None, "no colon"),
        (basic(b":" + PW.encode()), "", "an empty name"),
        (basic(b'q"u\\o\x01t\xffe:' + PW.encode()), None, "quotes, a backslash, control and "
         "non-UTF-8 bytes"),
        (basic(b"L" * 300 + b":" + PW.encode()), "L" * 128, "a 300-byte name, cut to 128"),
        ("basic   " + base64.b64encode(b"lower:" + PW.encode()).decode(), "lower",
         "the scheme in lower case, spaces after it"),
    ]
    for value, want, what in cases:
        data, line = raw(cd, ("CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n"
                              % (tgt, tgt, value)).encode("latin-1"))
        if want is None and "quotes" in what:
            u = line.get("user")
            ok(isinstance(u, str) and u.startswith('q"u\\o\x01t') and PW not in u,
               "%s: user is the name as a JSON string (%r)" % (what, u))
        else:
            is_(line.get("user"), want, "%s: user %r" % (what, want))
    data, line = raw(cd, ("CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n"
                          "Proxy-Authorization: %s\r\n\r\n" % (
                              tgt, tgt, basic(b"first:" + PW.encode()),
                              basic(b"second:" + PW.encode()))).encode())
    is_(line.get("user"), "first", "two Proxy-Authorization fields: the first counts")
    data, line = raw(cd, ("CONNECT %s HTTP/1.1\r\nHost %s\r\nProxy-Authorization: %s\r\n\r\n"
                          % (tgt, tgt, basic(b"bad-head:" + PW.encode()))).encode())
    is_(line.get("status"), 400, "a refused head (a field without colon): 400")
    ok(PW.encode() not in data, "... its error page has no password")
    data, line = raw(cd, ("GET http://job:%s@127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\n"
                          "Proxy-Authorization: %s\r\n\r\n" % (PW, web.port,
                                                               basic(b"t:" + PW.encode()))).encode())
    is_(line.get("status"), 400, "userinfo in the target as well: 400")
    ok(PW.encode() not in data, "... its error page has no password")

    lines = h.all_valid_json(cd.log)
    ok(lines and all(x.get("user") is None or isinstance(x.get("user"), str) for x in lines),
       "every line is valid JSON, user a string or null (%d lines)" % len(lines))

cd_stdout = h.read_text(cd.stdout_path)
cd_stderr = h.read_text(cd.stderr_path)
sq = h.read_text(SQLOG)
ok(PW not in cd_stdout and PW not in cd_stderr and PW not in sq and
   all(PW.encode() not in x for x in replies),
   "no password anywhere: the JSON log, the Squid-format log, stderr, every reply")
ok(re.search(r"^\S+ 127\.0\.0\.1 job-42 CONNECT ", sq, re.M) and
   re.search(r"^\S+ 127\.0\.0\.1 - CONNECT ", sq, re.M),
   "the Squid template: %un is the name, - where none") or diag(sq[:600])
qline = [x for x in sq.splitlines() if "q%22u" in x or 'q"u' in x]
ok(qline and "\x01" not in qline[0] and "\xff" not in qline[0],
   "... a hostile name is escaped there (%r)" % (qline[0][:60] if qline else None))
done()
