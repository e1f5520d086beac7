#!/usr/bin/env python3
"""76-empty-connections.t: no line for a connection that sends nothing.

A Kubernetes tcpSocket probe, a load balancer's health check or a port
scan opens a connection and closes it without a byte.  Squid 5.7 logs
one as "error:transaction-end-before-headers" unless access_log has
`acl hasRequest has request`; connectd behaves as Squid with that acl:
no line, but connectd_connections_empty_total counts it.

- no line, counted: connect and close (10 times, as a probe would), connect
  and reset, connect and half-close then wait for the proxy to close (a
  TLS-less probe that sends nothing), and a client silent until
  request_header_timeout (it still gets a 408);
- a line: one byte, a request line without its end, a head cut short
  until request_header_timeout (408, header_timeout), a good tunnel;
- a kept-alive connection closed between two requests: the request's
  line only, and it is not counted as empty;
- a connection refused by client_ip_max_connections before it sent
  anything: logged (close "limit"): the proxy acted;
- an empty connection still open at SIGTERM: no line."""
import os
import socket
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import http_util as hu
import metrics_util as mu
from tap import ok, is_, diag, done

h.need_connectd()
h.watchdog(90)
echo = h.EchoServer()
web = hu.WebOrigin()


def empty_count(port):
    try:
        sc, _, _ = mu.scrape(port)
        return sc
    except Exception as e:
        diag("scrape: %r" % (e,))
        return None


with h.Connectd({"request_header_timeout": "1 second"}, metrics=True) as cd:
    M = cd.metrics_port
    empty_ports = {}        # client port -> what it did
    line_ports = {}

    # --- nothing sent
    for i in range(10):
        s = socket.create_connection(("127.0.0.1", cd.port))
        empty_ports[s.getsockname()[1]] = "connect and close (probe %d)" % (i + 1)
        s.close()
    for i in range(2):
        c = h.ProxyClient(cd.port)
        empty_ports[c.local_port] = "connect and reset"
        c.abort()
    for i in range(2):
        c = h.ProxyClient(cd.port)
        empty_ports[c.local_port] = "half-close, wait for the proxy's close"
        c.shut_wr()
        rest, how = c.read_to_eof(timeout=10)
        ok(how in ("eof", "reset") and rest == b"",
           "half-closed without a byte: the proxy closes, saying nothing (%s)" % how)
        c.close()
    c = h.ProxyClient(cd.port)
    empty_ports[c.local_port] = "silent until request_header_timeout"
    rest, how = c.read_to_eof(timeout=10)
    is_(h.parse_status(rest), 408, "silent until request_header_timeout: 408")
    c.close()

    # --- something sent
    c = h.ProxyClient(cd.port)
    line_ports[c.local_port] = "one byte, then close"
    c.send(b"C")
    c.shut_wr()
    c.read_to_eof(timeout=10)
    c.close()
    c = h.ProxyClient(cd.port)
    line_ports[c.local_port] = "a request line without its end, then close"
    c.send(b"CONNECT %s HTTP/1.1\r\n" % echo.authority.encode())
    c.shut_wr()
    c.read_to_eof(timeout=10)
    c.close()
    c = h.ProxyClient(cd.port)
    line_ports[c.local_port] = "a head cut short until request_header_timeout"
    c.send(b"CONNECT %s HTTP/1.1\r\nHost: x\r\n" % echo.authority.encode())
    rest, how = c.read_to_eof(timeout=10)
    is_(h.parse_status(rest), 408, "a head cut short until request_header_timeout: 408")
    c.close()
    t = h.tunnel(cd.port, echo.authority)
    line_ports[t.local_port] = "a good tunnel"
    t.send(b"hi")
    is_(t.recv_exact(2), b"hi", "a good tunnel echoes")
    t.close()
    # kept alive, closed between two requests: the request's line only
    c = h.ProxyClient(cd.port)
    line_ports[c.local_port] = "a kept-alive request"
    c.send(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (web.url("/bytes/10"), web.authority)).encode())
    head = c.read_until(b"\r\n\r\n")
    is_(h.parse_status(head), 200, "a kept-alive request: 200")
    c.recv_exact(10)
    c.close()

    lines = cd.wait_idle()
    n_empty = len(empty_ports)

    def settled():
        sc = empty_count(M)
        if sc is None:
            return None
        written = sc.value("connectd_log_lines_written_total", output="stdio:/dev/stdout")
        counted = sc.total("connectd_tunnels_total") + sc.total("connectd_http_requests_total")
        if sc.value("connectd_connections_empty_total") == n_empty and written == counted:
            return sc
        return None
    sc = h.wait_for(settled, timeout=10, interval=0.2)
    ok(sc, "connectd_connections_empty_total reaches %d, and every line is written" % n_empty)
    if sc:
        is_(sc.value("connectd_connections_empty_total"), float(n_empty),
            "connectd_connections_empty_total: %d (the kept-alive one is not among them)" % n_empty)
    lines = cd.lines()
    by_port = {}
    for x in lines:
        by_port.setdefault(x.get("client_port"), []).append(x)
    for port, what in sorted(empty_ports.items(), key=lambda kv: kv[1]):
        ok(port not in by_port, "%s: no line" % what)
    for port, what in line_ports.items():
        is_(len(by_port.get(port, [])), 1, "%s: one line" % what)
    is_(len(lines), len(line_ports), "no other line: %d" % len(lines))
    cut = [x for x in lines if x.get("client_port") in line_ports and
           line_ports[x["client_port"]].startswith("a head cut short")]
    ok(cut and cut[0].get("close") == "header_timeout" and cut[0].get("status") == 408,
       "the head cut short: close header_timeout, status 408")
    one = [x for x in lines if line_ports.get(x.get("client_port")) == "one byte, then close"]
    ok(one and one[0].get("close") == "client_eof", "one byte: close client_eof")

    # an empty connection open at SIGTERM
    last = socket.create_connection(("127.0.0.1", cd.port))
    last_port = last.getsockname()[1]
    ok(h.wait_for(lambda: (empty_count(M) or mu.Scrape()).value(
        "connectd_connections_open", state="head") == 1.0),
       "the last empty connection is open (state head)")
    cd.finish()
    last.close()
    ok(not [x for x in cd.lines() if x.get("client_port") == last_port],
       "an empty connection open at SIGTERM: no line")

# refused before the first byte: logged
with h.Connectd({"client_ip_max_connections": "1"}) as cd:
    t = h.tunnel(cd.port, echo.authority)
    c = h.ProxyClient(cd.port)
    rest, how = c.read_to_eof(timeout=10)
    is_(h.parse_status(rest), 503, "over client_ip_max_connections, before a byte: 503")
    line = cd.wait_client(c.local_port)
    ok(line and line.get("close") == "limit", "... and a line, close limit")
    c.close()
    t.close()
done()
