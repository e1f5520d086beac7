#!/usr/bin/env python3
"""64-forward-pip.t: pip download through connectd, from a PEP 503 index on loopback.

pip (requests and urllib3 inside) is the other everyday plain-HTTP
client of a build machine: `pip download --proxy` against an internal
index.  This test builds a wheel (a zip with METADATA, WHEEL and RECORD)
and a PEP 503 simple index, serves them with http_util.FileOrigin, and
runs `python3 -m pip download --no-deps --index-url http://ORIGIN/simple/
--proxy http://127.0.0.1:PORT`, with no pip configuration (PIP_CONFIG_FILE
is /dev/null, no PIP_* variables) and NO_PROXY empty, so pip must send
everything to connectd.  requests never bypasses a proxy it was given for
127.0.0.1 (only NO_PROXY could make it), and the origin's own log shows
that every request came from connectd (a Via field).

The index page is what a real index may send: gzip-encoded (pip asks
with Accept-Encoding: gzip) and chunked; the wheel's link carries a
query (a download token) and a #sha256 fragment.

Expectations:
- pip succeeds; the wheel in the target directory has the sha256 built;
- the origin saw GET /simple/connectd-t-hello/ and GET of the wheel with
  its query, each with Via "1.1 connectd" and a pip User-Agent;
- connectd logged exactly those two GETs, status == http_status == 200,
  url without the query (the token appears nowhere in connectd's output),
  user_agent starting with "pip/", the wheel's request on the same
  client connection as the index's (request_in_connection 2), its
  bytes_down covering the wheel;
- a project the index does not have: pip fails ("No matching
  distribution"), connectd logs the 404 as status and http_status 404;
- every line is valid JSON.
"""
import base64
import gzip
import hashlib
import io
import os
import sys
import zipfile
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import http_util as hu
from tap import ok, is_, like, diag, done, skip_all

h.need_connectd()


def find_pip():
    """An interpreter whose `-m pip` works: Debian's python3-pip first."""
    for py in ("/usr/bin/python3", sys.executable):
        if py and os.access(py, os.X_OK):
            rc, out, _ = h.run([py, "-m", "pip", "--version"], timeout=60,
                               env=dict(os.environ, PIP_CONFIG_FILE=os.devnull))
            if rc == 0 and out.startswith("pip "):
                return py, out.split()[1]
    return None, None


PY, PIP_VERSION = find_pip()
if not PY:
    skip_all("pip is not installed (Debian package python3-pip)")
h.watchdog(100)
D = h.tmpdir()
PROJECT = "connectd-t-hello"
WHEEL = "connectd_t_hello-1.0-py3-none-any.whl"
TOKEN = "q-secret-7f3a"
PAYLOAD = h.pattern(200 * 1024, seed=b"pip-payload")


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def build_wheel():
    """A py3-none-any wheel with a module and a 200 KiB data file, stored."""
    files = {"connectd_t_hello/__init__.py": b'"""made by t/64-forward-pip.t"""\n',
             "connectd_t_hello/payload.bin": PAYLOAD,
             "connectd_t_hello-1.0.dist-info/METADATA":
                 b"Metadata-Version: 2.1\nName: connectd-t-hello\nVersion: 1.0\n"
                 b"Summary: connectd test package\n",
             "connectd_t_hello-1.0.dist-info/WHEEL":
                 b"Wheel-Version: 1.0\nGenerator: t/64-forward-pip.t\n"
                 b"Root-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join("%s,sha256=%s,%d\n" % (
        name, base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode(),
        len(data)) for name, data in files.items())
    record += "connectd_t_hello-1.0.dist-info/RECORD,,\n"
    files["connectd_t_hello-1.0.dist-info/RECORD"] = record.encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in files.items():
            zi = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            z.writestr(zi, data)
    return buf.getvalue()


wheel = build_wheel()
root = os.path.join(D, "www")
os.makedirs(os.path.join(root, "files"))
with open(os.path.join(root, "files", WHEEL), "wb") as f:
    f.write(wheel)
INDEX_PATH = "/simple/%s/" % PROJECT
WHEEL_PATH = "/files/%s" % WHEEL
page = ('<!DOCTYPE html>\n<html><body><h1>Links for %s</h1>\n'
        '<a href="../../files/%s?token=%s#sha256=%s">%s</a><br/>\n'
        '</body></html>\n' % (PROJECT, WHEEL, TOKEN, sha256(wheel), WHEEL)).encode()


def index_page(hd):
    """The project page, gzip-encoded and chunked in 100-byte chunks."""
    z = gzip.compress(page, mtime=0)
    body = b"".join(b"%x\r\n%s\r\n" % (len(z[i:i + 100]), z[i:i + 100])
                    for i in range(0, len(z), 100)) + b"0\r\n\r\n"
    return 200, [("Content-Type", "text/html; charset=utf-8"),
                 ("Content-Encoding", "gzip"), ("Transfer-Encoding", "chunked")], body


web = hu.FileOrigin(root, special={INDEX_PATH: index_page})


def pip(cd, project, dest):
    env = {k: v for k, v in os.environ.items()
           if not k.lower().endswith("_proxy") and not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, NO_PROXY="", no_proxy="", LC_ALL="C.UTF-8",
               HOME=os.path.join(D, "home"), PYTHONDONTWRITEBYTECODE="1")
    argv = [PY, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
            "--disable-pip-version-check", "--no-input", "--retries", "0",
            "--timeout", str(int(20 * h.SLOW)), "--only-binary", ":all:",
            "--index-url", web.url("/simple/"),
            "--proxy", "http://127.0.0.1:%d" % cd.port, "-d", dest, project]
    rc, out, err = h.run(argv, timeout=90, env=env)
    if rc != 0:
        diag("pip download %s: rc %r\n%s%s" % (project, rc, out[-1500:], err[-1500:]))
    return rc, out, err


diag("%s -m pip: pip %s" % (PY, PIP_VERSION))
with h.Connectd({}) as cd:
    dest = os.path.join(D, "dl")
    rc, out, err = pip(cd, PROJECT, dest)
    is_(rc, 0, "pip download %s through connectd succeeds" % PROJECT)
    got = os.path.join(dest, WHEEL)
    data = open(got, "rb").read() if os.path.exists(got) else b""
    is_(sha256(data), sha256(wheel), "the downloaded wheel has the sha256 built")
    lines = cd.wait_idle()
    n_ok = len(lines)

    rc, out, err = pip(cd, "connectd-t-nothing", os.path.join(D, "dl2"))
    ok(rc not in (0, None), "pip download of a project the index lacks fails")
    like(out + err, r"No matching distribution found for connectd-t-nothing",
         "... with pip's 'No matching distribution'")
    cd.wait_idle()
    valid = h.all_valid_json(cd.log)

out = h.read_text(cd.stdout_path) + h.read_text(cd.stderr_path)
ok(TOKEN not in out, "the download token (a query) appears nowhere in connectd's output")

# what the origin saw
seen = [(m, p) for m, p, hdr in web.requests]
is_(seen[:2], [("GET", INDEX_PATH), ("GET", WHEEL_PATH + "?token=" + TOKEN)],
    "the origin got the index page, then the wheel with its query")
ok(all(hdr.get("Via") == "1.1 connectd" for m, p, hdr in web.requests),
   "every request reached the origin through connectd (Via: 1.1 connectd)")
ok(all(hdr.get("User-Agent", "").startswith("pip/") for m, p, hdr in web.requests),
   "... with pip's User-Agent")
ok("gzip" in web.requests[0][2].get("Accept-Encoding", ""),
   "pip asked for gzip (so the gzip-encoded index page is fair)")

# what connectd logged
is_(len(valid), len(web.requests), "one log line for each request (%d)" % len(web.requests))
first = valid[:n_ok]
is_([(x.get("method"), x.get("url")) for x in first],
    [("GET", web.url(INDEX_PATH)), ("GET", web.url(WHEEL_PATH + "?"))],
    "logged: GET of the index page, GET of the wheel (url without its query)")
ok(all(x.get("status") == 200 and x.get("http_status") == 200 for x in first),
   "... both status and http_status 200")
uas = sorted(set(str(x.get("user_agent")) for x in valid))
ok(uas and all(u.startswith("pip/") for u in uas), "user_agent starts with pip/ (%s)"
   % ", ".join(u[:40] for u in uas))
ok(len(first) == 2 and first[0].get("client_port") == first[1].get("client_port") and
   first[1].get("request_in_connection") == 2,
   "the wheel came on pip's kept-alive connection (request_in_connection %r)"
   % [x.get("request_in_connection") for x in first])
ok(len(first) == 2 and first[1].get("bytes_down", 0) > len(wheel),
   "the wheel's bytes_down (%r) covers its %d bytes"
   % (first[-1].get("bytes_down") if first else None, len(wheel)))
ok(len(first) == 2 and first[0].get("bytes_down", 0) > len(gzip.compress(page)),
   "the index page's bytes_down (%r) counts it as sent (gzip, chunked)"
   % (first[0].get("bytes_down") if first else None))
miss = valid[n_ok:]
ok(miss and all(x.get("status") == 404 and x.get("http_status") == 404 and
                x.get("url") == web.url("/simple/connectd-t-nothing/") for x in miss),
   "the missing project: GET /simple/connectd-t-nothing/ logged 404 (%r)"
   % [(x.get("url"), x.get("status")) for x in miss])
ok(all(x.get("scheme") == "http" and x.get("authority") == web.authority for x in valid),
   "scheme http and the origin's authority on every line")
done()
