#!/usr/bin/env python3
"""02-curl-plain.t: curl -p -x through connectd to plain TCP origins.

- http:// to a tiny HTTP server: curl tunnels (-p) and speaks HTTP inside
  the tunnel; the origin records exactly what it got, so bytes_up and
  bytes_down must equal what crossed the tunnel.
- telnet:// to a banner server that sends one line and closes.
- a CONNECT to a port nothing listens on: curl reports 503."""
import os
import re
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, like, diag, done

BODY = b"plain hello through the tunnel\n" * 100
BANNER = b"220 connectd-test banner\r\n"
PROXY = {}


def curl(proxy_port, url, extra=()):
    return h.run(["curl", "-sS", "-p", "-x", "http://127.0.0.1:%d" % proxy_port,
                  "--noproxy", "", "-m", "20", "-w", "\n%{local_port}"] +
                 list(extra) + [url], timeout=30, input=b"",
                 env=dict(os.environ, NO_PROXY="", no_proxy=""))


def split_port(out):
    m = re.search(r"\n(\d+)$", out)
    return (out[:m.start()], int(m.group(1))) if m else (out, None)


if not h.have("curl"):
    h.tap.skip_all("curl is needed")
h.need_connectd()
h.watchdog(60)
UA = h.curl_ua()

web = h.HttpOrigin(body=BODY)
banner = h.HalfCloser(hello=BANNER)
closed_port = h.free_port()

with h.Connectd(PROXY) as cd:
    # http:// inside the tunnel
    rc, out, err = curl(cd.port, "http://127.0.0.1:%d/hello" % web.port)
    body, lport = split_port(out)
    is_(rc, 0, "curl http:// through the tunnel exits 0")
    ok(body.encode() == BODY, "curl got the origin's body")
    rec = web.wait_done()
    like(rec and rec["got"].decode("latin-1"), r"^GET /hello HTTP/1\.1\r\n",
         "origin got an origin-form GET (curl tunnels, not proxies)")
    line = cd.wait_client(lport) if lport else None
    h.check_record(line, {
        "method": "CONNECT", "status": 200,
        "authority": "127.0.0.1:%d" % web.port, "host": "127.0.0.1", "port": web.port,
        "server_ip": "127.0.0.1", "server_port": web.port, "user_agent": UA,
        "bytes_up": len(rec["got"]) if rec else -1,
        "bytes_down": len(rec["sent"]) if rec else -1,
        "close": lambda v: v in ("client_eof", "server_eof"),
    }, prefix="http: ")

    # telnet:// banner
    rc, out, err = curl(cd.port, "telnet://127.0.0.1:%d" % banner.port)
    text, lport = split_port(out)
    is_(rc, 0, "curl telnet:// through the tunnel exits 0")
    is_(text.encode(), BANNER, "curl got the banner")
    line = cd.wait_client(lport) if lport else None
    h.check_record(line, {"status": 200, "bytes_down": len(BANNER), "bytes_up": 0,
                          "authority": "127.0.0.1:%d" % banner.port,
                          "close": lambda v: v in ("client_eof", "server_eof")},
                   prefix="telnet: ")

    # refused
    rc, out, err = curl(cd.port, "http://127.0.0.1:%d/" % closed_port)
    ok(rc not in (0, None), "curl fails when the origin refuses (rc %r)" % rc)
    like(err, r"503", "curl reports the 503")
    _, lport = split_port(out)
    line = cd.wait_client(lport) if lport else None
    h.check_record(line, {"status": 503, "close": "connect_failed",
                          "server_ip": None, "server_port": None,
                          "bytes_up": 0, "bytes_down": 0}, prefix="refused: ")
    h.all_valid_json(cd.log)
done()
