#!/usr/bin/env python3
"""96-proxy-auth.t: the optional credential check (issue 15): auth_param
basic, proxy_auth acls, 407 with Proxy-Authenticate, and the shipped
helper basic_file_auth (user:hash lines; bcrypt and SHA-256-crypt).

Expectations:
- No credential, or a wrong one: 407 with `Proxy-Authenticate: Basic
  realm="..."`, the line says close denied and the rule, and the
  password is in no output.  A right one (a bcrypt user, a SHA-256-crypt
  user): the tunnel opens, user on the line.
- Real clients that answer the challenge: curl --proxy-anyauth and git
  (its default, anyauth) send the credential only after the 407, and get
  through; curl and Go's client (kubectl's proxy-url) send it at once.
- proxy_auth with names: only those users; an implicit deny after an
  `allow` proxy_auth line is a 407 too (Squid).  A plain-HTTP GET is
  challenged the same way, and forwarded without the credential.
- The file is read again when it changes: a user added works at once.
- Squid compatibility both ways: Squid's own basic_ncsa_auth as
  connectd's program, and basic_file_auth under Squid 5.7.
- connectd -t: proxy_auth without auth_param, auth_param digest, a quote
  in the realm, a bad count, and no program line are FILE:LINE errors."""
import base64
import os
import re
import socket
import shutil
import subprocess
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, like, diag, done

AUTH = os.environ.get("BASIC_FILE_AUTH") or os.path.join(h.topdir(), "auth", "basic_file_auth")
if not os.access(AUTH, os.X_OK):
    h.tap.skip_all("basic_file_auth not built (BASIC_FILE_AUTH=%r)" % AUTH)
if not h.have("curl", "openssl"):
    h.tap.skip_all("curl and openssl are needed")
h.need_connectd()
h.watchdog(150)
CD = h.connectd_bin()

PW = {"alice": "s3cr3t-pw-96a", "bob": "s3cr3t-pw-96b"}
SECRET = "s3cr3t-pw-96"           # in every password: searched for in every output
D = h.tmpdir()


def sha256_crypt(pw):
    rc, out, err = h.run(["openssl", "passwd", "-5", pw], timeout=20)
    return out.strip()


def bcrypt(pw):
    """bcrypt through libcrypt, as htpasswd -B makes it (cost 5: quick)."""
    code = ("import crypt,sys,warnings; warnings.simplefilter('ignore'); "
            "print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=32)))")
    r = subprocess.run([sys.executable, "-c", code, pw], capture_output=True, timeout=20)
    out = r.stdout.decode().strip()
    if not out.startswith("$2"):
        r = subprocess.run(["/usr/bin/python3", "-c", code, pw], capture_output=True, timeout=20)
        out = r.stdout.decode().strip()
    return out


PWFILE = h.tmpfile("passwd", "# users\nalice:%s\nbob:%s\n" % (bcrypt(PW["alice"]),
                                                              sha256_crypt(PW["bob"])))
HASHES = dict(x.split(":", 1) for x in open(PWFILE).read().splitlines() if ":" in x)
ok(HASHES.get("alice", "").startswith("$2") and HASHES.get("bob", "").startswith("$5$"),
   "a password file with a bcrypt user and a SHA-256-crypt user")
origin = h.TlsOrigin(names=["localhost"])
web = h.HttpOrigin(body=b"plain\n")
TGT = "https://localhost:%d/" % origin.port
outputs = []                    # everything a client printed, to search


def status(err, code):
    """curl -v's stderr has a response with that status code (a bare
    "407" would also match a port such as 34071)."""
    return re.search(r"(?m)^< HTTP/1\.[01] %d " % code, err or "") is not None


def curl(cd, *args, user=None):
    proxy = "http://127.0.0.1:%d" % cd.port
    if user is not None:
        proxy = "http://%s:%s@127.0.0.1:%d" % (user[0], user[1], cd.port)
    rc, out, err = h.run(["curl", "-sS", "-v", "--cacert", origin.cert, "-x", proxy] +
                         list(args), timeout=30)
    outputs.append((out or "") + (err or ""))
    return rc, out or "", err or ""


def raw_connect(cd, cred=None):
    c = h.ProxyClient(cd.port)
    auth = "Proxy-Authorization: Basic %s\r\n" % base64.b64encode(cred.encode()).decode() \
        if cred else ""
    c.send(("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n%s\r\n" % (web.port, auth)).encode())
    c.shut_wr()
    data, how = c.read_to_eof(timeout=10)
    port = c.local_port
    c.close()
    outputs.append(data.decode("latin-1"))
    return data, cd.wait_client(port) or {}


CONF = ("auth_param basic program %s %s\n" % (AUTH, PWFILE) +
        "auth_param basic realm CI egress\n"
        "auth_param basic children 2\n"
        "acl authed proxy_auth REQUIRED\n"
        "acl admins proxy_auth alice\n"
        "acl web_port port %d\n" % web.port +
        "http_access deny !authed\n"
        "http_access allow web_port admins\n"
        "http_access deny web_port\n"
        "http_access allow all\n")

with h.Connectd(CONF) as cd:
    data, line = raw_connect(cd)
    like(data.decode("latin-1"), r"^HTTP/1\.1 407 Proxy Authentication Required\r\n",
         "no credential: 407")
    like(data.decode("latin-1"), r'\r\nProxy-Authenticate: Basic realm="CI egress", charset="UTF-8"\r\n',
         "... with Proxy-Authenticate: Basic realm=\"CI egress\"")
    is_((line.get("status"), line.get("close"), line.get("rule"), line.get("user")),
        (407, "denied", "http_access deny !authed", None), "... its line: 407, denied, the rule")

    rc, out, err = curl(cd, TGT, user=("alice", PW["alice"]))
    ok(rc == 0, "curl with alice (bcrypt) through a CONNECT")
    ls = cd.wait_lines(2)
    line = ls[1] if len(ls) >= 2 else {}
    is_((line.get("status"), line.get("user")), (200, "alice"), "... 200, user alice")
    rc, out, err = curl(cd, TGT, user=("bob", PW["bob"]))
    ok(rc == 0, "curl with bob (SHA-256-crypt) through a CONNECT")
    rc, out, err = curl(cd, TGT, user=("bob", "wrong-" + SECRET))
    ok(rc != 0 and status(err, 407), "bob with a wrong password: 407")
    ls = cd.wait_lines(4)
    line = ls[3] if len(ls) >= 4 else {}
    is_((line.get("status"), line.get("user"), line.get("close")), (407, "bob", "denied"),
        "... its line: 407, the claimed user, denied")
    rc, out, err = curl(cd, TGT, user=("mallory", SECRET))
    ok(rc != 0 and status(err, 407), "an unknown user: 407")

    rc, out, err = curl(cd, "--proxy-anyauth", TGT, user=("alice", PW["alice"]))
    ok(rc == 0 and re.search(r"< HTTP/1\.1 407", err) and re.search(r"< HTTP/1\.1 200", err),
       "curl --proxy-anyauth: 407 first, then through with the credential")

    # proxy_auth with names: the web port is alice's only; plain HTTP too
    rc, out, err = curl(cd, "http://127.0.0.1:%d/x" % web.port, user=("alice", PW["alice"]))
    ok(rc == 0 and out == "plain\n", "a plain-HTTP GET with alice: allowed by proxy_auth alice")
    r = web.wait_done(1)
    got = (r or {}).get("got") or b""
    ok(got and b"proxy-authorization" not in got.lower(), "... forwarded without the credential")
    rc, out, err = curl(cd, "http://127.0.0.1:%d/x" % web.port, user=("bob", PW["bob"]))
    if not ok(status(err, 403) and not status(err, 407),
              "the same with bob: 403 (the deciding line's last acl is not proxy_auth)"):
        diag("curl %s: %s" % (rc, re.findall(r"(?m)^< HTTP/.*|^curl: .*", err)))
    rc, out, err = curl(cd, "http://127.0.0.1:%d/x" % web.port)
    ok(status(err, 407), "the same with no credential: 407")

    # git: anyauth, so the credential goes only after a 407
    if h.have("git"):
        rc, out, err = h.run(["git", "-c", "http.proxy=http://alice:%s@127.0.0.1:%d" %
                              (PW["alice"], cd.port), "ls-remote", TGT + "x.git"],
                             env=dict(os.environ, GIT_SSL_NO_VERIFY="1", HOME=D), timeout=30)
        outputs.append((out or "") + (err or ""))
        h.wait_for(lambda: any(x.get("user") == "alice" and str(x.get("user_agent")).startswith(
            "git/") for x in cd.lines()))
        ls = cd.lines()
        ok(any(x.get("user") == "alice" and x.get("status") == 200 and
               str(x.get("user_agent")).startswith("git/") for x in ls) and
           any(x.get("status") == 407 and str(x.get("user_agent")).startswith("git/")
               for x in ls),
           "git (anyauth): a 407 without a credential, then a tunnel as alice")
    else:
        h.tap.skip("git is not installed")

    # kubectl: Go sends the credential of proxy-url at once
    kubectl = shutil.which("kubectl")
    if kubectl:
        from k8sapi.control import K8sAPI
        api = K8sAPI().start()
        kc = open(api.kubeconfig).read()
        kc = re.sub(r"(\n    server: [^\n]+)", r"\1\n    proxy-url: http://bob:%s@127.0.0.1:%d"
                    % (PW["bob"], cd.port), kc, count=1)
        kcp = os.path.join(D, "kc")
        with open(kcp, "w") as f:
            f.write(kc)
        r = subprocess.run([kubectl, "--kubeconfig", kcp, "--request-timeout", "10s", "get",
                            "ns"], capture_output=True, timeout=30, env=dict(os.environ, HOME=D))
        outputs.append((r.stdout + r.stderr).decode("utf-8", "replace"))
        ok(r.returncode == 0 and h.wait_for(lambda: any(
            x.get("user") == "bob" and x.get("status") == 200 and
            str(x.get("user_agent")).startswith(("Go-http", "kubectl")) for x in cd.lines())),
           "kubectl (Go, proxy-url with bob): through, user bob")
        api.stop()
    else:
        h.tap.skip("kubectl is not installed")

    # a user added to the file works at once: the helper reads it again
    with open(PWFILE, "a") as f:
        f.write("carol:%s\n" % sha256_crypt("carol-" + SECRET))
    rc, out, err = curl(cd, TGT, user=("carol", "carol-" + SECRET))
    ok(rc == 0, "a user added to the file: through at once, no reload")
    h.wait_for(lambda: any(x.get("user") == "carol" for x in cd.lines()))
    lines = h.all_valid_json(cd.log)

stderr = h.read_text(cd.stderr_path)
ok(lines and all(SECRET not in str(x) for x in lines), "no password in any line (%d)" % len(lines))
ok(SECRET not in stderr and SECRET not in h.read_text(cd.stdout_path),
   "no password in connectd's stdout or stderr (the helper's stderr goes there)")
# what connectd sent: raw replies, and the "< " lines of curl -v
sent = "\n".join(o if o.startswith("HTTP/") else
                 "\n".join(x for x in o.splitlines() if x.startswith("< ")) for o in outputs)
ok(sent.count("HTTP/1.1 407") >= 3 and SECRET not in sent,
   "no password in any reply connectd sent (%d 407s among them)" % sent.count("HTTP/1.1 407"))

# implicit deny after an allow proxy_auth line: a 407 too (Squid)
with h.Connectd("auth_param basic program %s %s\nacl authed proxy_auth REQUIRED\n"
                "http_access allow authed\n" % (AUTH, PWFILE)) as cd:
    data, line = raw_connect(cd)
    like(data.decode("latin-1"), r"^HTTP/1\.1 407 [\s\S]*\r\nProxy-Authenticate: Basic realm=\"connectd\"",
         "the implicit deny after `allow authed`: 407, realm connectd by default")
    data, line = raw_connect(cd, "alice:" + PW["alice"])
    like(data.decode("latin-1"), r"^HTTP/1\.1 200 ", "... and alice gets through")

# Squid's basic_ncsa_auth as connectd's helper (it uses crypt(3) too)
NCSA = "/usr/lib/squid/basic_ncsa_auth"
if os.access(NCSA, os.X_OK):
    with h.Connectd("auth_param basic program %s %s\nacl authed proxy_auth REQUIRED\n"
                    "http_access deny !authed\nhttp_access allow all\n" % (NCSA, PWFILE)) as cd:
        rc, out, err = curl(cd, TGT, user=("bob", PW["bob"]))
        ok(rc == 0, "Squid's basic_ncsa_auth as auth_param basic program: bob through")
        rc, out, err = curl(cd, TGT, user=("bob", "wrong-" + SECRET))
        ok(status(err, 407), "... a wrong password: 407")
else:
    h.tap.skip("Squid's basic_ncsa_auth is not installed", 2)

# basic_file_auth under Squid 5.7
if h.Squid.available():
    import helper_util as hu
    # Squid runs it as `proxy`: a copy in the test's own directory, since
    # the build may sit under a 0700 or read-only tree (CI's checkout).
    sq_auth = h.runnable_copy(AUTH)
    hu.readable_for_squid(PWFILE)
    sq = hu.Squid("auth_param basic program %s %s\nauth_param basic realm squid-test\n"
                  "acl authed proxy_auth REQUIRED\nhttp_access deny !authed\n" % (sq_auth, PWFILE))
    # the origin by address: Squid tries only the first address of a
    # name, and a fresh Debian's /etc/hosts gives localhost ::1 as well
    rc, out, err = h.run(["curl", "-sS", "-v", "-k", "-x",
                          "http://alice:%s@127.0.0.1:%d" % (PW["alice"], sq.port),
                          "https://127.0.0.1:%d/" % origin.port], timeout=30)
    if not ok(rc == 0, "basic_file_auth under Squid 5.7: alice (bcrypt) through"):
        diag(re.sub(r"(?i)(Proxy-Authorization:).*", r"\1 <cut>", (err or "")[-800:]))
        diag(h.read_text(sq.cache_log)[-1500:])
    rc, out, err = h.run(["curl", "-sS", "-v", "-x", "http://alice:x@127.0.0.1:%d" % sq.port,
                          TGT], timeout=30)
    ok(status(err, 407) and re.search(r'Proxy-Authenticate: Basic realm="squid-test"',
                                                  err or ""),
       "... a wrong password: Squid's 407 with its realm")
    sq.stop()
else:
    h.tap.skip("squid is not installed", 2)

# --- config errors, each with FILE:LINE
BAD = [
    ("acl a proxy_auth REQUIRED\nhttp_access deny !a\n", 2, r"needs an 'auth_param basic program'"),
    ("auth_param digest program /bin/true\n", 2, r"only basic"),
    ("auth_param basic realm a \"quoted\" realm\n", 2, r"no quote"),
    ("auth_param basic children many\n", 2, r"not a count"),
    ("auth_param basic realm x\nauth_param basic children 3\n", 2, r"no 'auth_param basic program"),
    ("auth_param basic credentialsttl soon\n", 2, r"not a time"),
]
for i, (text, lineno, msg) in enumerate(BAD):
    path = h.tmpfile("bad%02d.conf" % i, "http_port 127.0.0.1:3128\n" + text)
    rc, out, err = h.run([CD, "-t", "-f", path], timeout=10)
    ok(rc not in (0, None) and "%s:%d:" % (path, lineno) in (err or "") and re.search(msg, err or ""),
       "-t refuses %r at FILE:%d (%s)" % (text.splitlines()[0], lineno, msg))
    if not ("%s:%d:" % (path, lineno) in (err or "") and re.search(msg, err or "")):
        diag(err)
good = h.tmpfile("good.conf", "http_port 127.0.0.1:3128\n" + CONF)
rc, out, err = h.run([CD, "-t", "-v", "-f", good], timeout=10)
ok(rc == 0 and "auth_param basic realm CI egress" in out and "acl authed proxy_auth REQUIRED" in out,
   "-t -v prints auth_param and the proxy_auth acls back")
done()
