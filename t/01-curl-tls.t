#!/usr/bin/env python3
"""01-curl-tls.t: curl -p -x through connectd to an `openssl s_server -www`
origin; TLS is end to end (curl verifies the origin's own self-signed
certificate), and the log line carries every field of the json schema.

The origin listens on 127.0.0.1 only and is named `localhost` in the URL,
so connectd resolves the name itself (from /etc/hosts)."""
import os
import re
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, like, diag, done

NAME = "localhost"
PROXY = {}
CURL_WRITE_OUT = "\n%{http_connect} %{http_code} %{ssl_verify_result} %{local_port}\n"
SCHEMA = ["ts", "start", "duration_ms", "id", "client_ip", "client_port", "method",
          "authority", "host", "port", "user_agent", "server_ip", "server_port",
          "status", "bytes_up", "bytes_down", "close"]


def num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def curl(proxy_port, url, cacert, extra=()):
    return h.run(["curl", "-sS", "-p", "-x", "http://127.0.0.1:%d" % proxy_port,
                  "--cacert", cacert, "--noproxy", "", "-m", "20",
                  "-w", CURL_WRITE_OUT] + list(extra) + [url], timeout=30,
                 env=dict(os.environ, NO_PROXY="", no_proxy=""))


if not h.have("curl", "openssl"):
    h.tap.skip_all("curl and openssl are needed")
h.need_connectd()
h.watchdog(90)
UA = h.curl_ua()

origin = h.TlsOrigin(names=[NAME])
closed_port = h.free_port()

with h.Connectd(PROXY) as cd:
    url = "https://%s:%d/" % (NAME, origin.port)
    rc, out, err = curl(cd.port, url, origin.cert)
    is_(rc, 0, "curl through connectd exits 0")
    if rc != 0:
        diag(err)
    like(out, r"s_server", "curl got s_server's -www page over TLS")
    m = re.search(r"\n(\d+) (\d+) (\d+) (\d+)\n$", out)
    ok(m, "curl's --write-out is there")
    http_connect, http_code, verify, local_port = (int(x) for x in m.groups()) if m else (0, 0, -1, 0)
    is_(http_connect, 200, "the proxy answered CONNECT with 200")
    is_(http_code, 200, "the origin answered GET with 200")
    is_(verify, 0, "curl verified the origin's own certificate (no TLS termination)")

    line = cd.wait_client(local_port)
    ok(line is not None, "a log line for curl's connection (client_port %d)" % local_port)
    line = line or {}
    for f in SCHEMA:
        ok(f in line, "field %s is in the log line" % f)
    like(line.get("ts"), h.RFC3339_MS, "ts is RFC 3339 UTC with milliseconds")
    like(line.get("start"), h.RFC3339_MS, "start is RFC 3339 UTC with milliseconds")
    ok(str(line.get("start")) <= str(line.get("ts")), "start <= ts")
    ok(num(line.get("duration_ms")) and line["duration_ms"] >= 0, "duration_ms is a number >= 0")
    ok(line.get("id") not in (None, ""), "id is set (%r)" % line.get("id"))
    h.check_record(line, {
        "client_ip": "127.0.0.1",
        "client_port": local_port,
        "method": "CONNECT",
        "authority": "%s:%d" % (NAME, origin.port),
        "host": NAME,
        "port": origin.port,
        "user_agent": UA,
        "server_ip": "127.0.0.1",
        "server_port": origin.port,
        "status": 200,
        "bytes_up": lambda v: num(v) and v > 0,
        "bytes_down": lambda v: num(v) and v > 0,
        "close": lambda v: v in ("client_eof", "server_eof"),
    })
    ok(line.get("bytes_down", 0) > line.get("bytes_up", 0),
       "more bytes down (certificate, page) than up")

    # a second run: a new id
    rc2, out2, err2 = curl(cd.port, url, origin.cert)
    is_(rc2, 0, "a second curl run works")
    m2 = re.search(r"(\d+)\n$", out2)
    line2 = cd.wait_client(int(m2.group(1))) if m2 else None
    ok(line2 and line2.get("id") != line.get("id"), "each tunnel has its own id")

    # the failing path next to the happy one: nothing listens on the port
    rc3, out3, err3 = curl(cd.port, "https://%s:%d/" % (NAME, closed_port), origin.cert)
    ok(rc3 not in (0, None), "curl fails when the origin refuses (rc %r)" % rc3)
    like(err3, r"503", "curl reports the proxy's 503")
    m3 = re.search(r"(\d+)\n$", out3)
    line3 = cd.wait_client(int(m3.group(1))) if m3 else None
    h.check_record(line3, {"status": 503, "close": "connect_failed",
                           "authority": "%s:%d" % (NAME, closed_port),
                           "user_agent": UA, "server_ip": None,
                           "bytes_up": 0, "bytes_down": 0}, prefix="refused: ")
    h.all_valid_json(cd.log)
done()
