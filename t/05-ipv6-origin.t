#!/usr/bin/env python3
"""05-ipv6-origin.t: an origin on [::1].

CONNECT [::1]:PORT (brackets, as RFC 9110 wants) reaches an echo server
listening on ::1 only; the log has host "::1" and server_ip "::1" and the
authority as sent.  connectd also listens on [::1] (a second http_port):
a client over IPv6 is logged with client_ip "::1".  The malformed
neighbours: no brackets, and an unclosed bracket."""
import os
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, diag, done

PAYLOAD = b"hello over ipv6\n"

h.need_connectd()
if not h.have_ipv6_loopback():
    h.tap.skip_all("no IPv6 loopback (::1) here")
h.watchdog(60)

echo6 = h.EchoServer(host="::1")
v6port = h.free_port("::1")
PROXY = "http_port 127.0.0.1:{port}\nhttp_port [::1]:%d\n" % v6port

with h.Connectd(PROXY) as cd:
    ok(h.wait_port(v6port), "connectd listens on [::1]:%d too" % v6port)
    CASES = [
        # proxy address, authority, expected status, log expectations
        {"name": "v4 client, [::1] origin", "via": "127.0.0.1", "port": cd.port,
         "authority": "[::1]:%d" % echo6.port, "status": 200,
         "log": {"host": "::1", "port": echo6.port, "server_ip": "::1",
                 "server_port": echo6.port, "client_ip": "127.0.0.1"}},
        {"name": "v6 client, [::1] origin", "via": "::1", "port": v6port,
         "authority": "[::1]:%d" % echo6.port, "status": 200,
         "log": {"host": "::1", "server_ip": "::1", "client_ip": "::1"}},
        {"name": "no brackets", "via": "127.0.0.1", "port": cd.port,
         "authority": "::1:%d" % echo6.port, "status": 400,
         "log": {"close": "bad_request", "server_ip": None}},
        {"name": "unclosed bracket", "via": "127.0.0.1", "port": cd.port,
         "authority": "[::1:%d" % echo6.port, "status": 400,
         "log": {"close": "bad_request", "server_ip": None}},
    ]
    for case in CASES:
        n = case["name"]
        c = h.ProxyClient(case["port"], host=case["via"])
        st, head = c.connect_tunnel(case["authority"])
        is_(st, case["status"], "%s: CONNECT %s -> %d" % (n, case["authority"], case["status"]))
        if st == 200:
            c.send(PAYLOAD)
            is_(c.recv_exact(len(PAYLOAD)), PAYLOAD, "%s: echo through the tunnel" % n)
            c.shut_wr()
            rest, how = c.read_to_eof()
            is_(how, "eof", "%s: EOF passed back" % n)
            want = dict(case["log"], bytes_up=len(PAYLOAD), bytes_down=len(PAYLOAD))
        else:
            rest, how = c.read_to_eof()
            is_(how, "eof", "%s: the proxy closes after the error" % n)
            want = dict(case["log"])
        c.close()
        line = cd.wait_client(c.local_port)
        ok(line is not None, "%s: logged" % n)
        h.check_record(line, dict(want, status=case["status"], method="CONNECT",
                                  authority=case["authority"]), prefix=n + ": ")
    h.all_valid_json(cd.log)
done()
