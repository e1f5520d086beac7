#!/usr/bin/env python3
"""74-metrics.t: /metrics in Prometheus' text format agrees with the log.

connectd with metrics_port and a helper that answers every lookup OK.
Traffic of every kind: tunnels by address and by name (hosts_file, so
that the resolver is asked), denied ones (403), bad heads (400), plain
HTTP forwarded (200, 404), connects refused (503), a head cut short, and
connections that send nothing.  Then:

- the text parses with a strict parser written from the format's
  specification (t/lib/metrics_util.py), and the same with
  python3-prometheus-client's parser, which must read the same samples;
  `promtool check metrics` too if Debian's prometheus is installed;
  Content-Type is "text/plain; version=0.0.4; charset=utf-8";
- every counter agrees with the JSON lines of the same run (parsed with
  json): tunnels and requests by status and close reason, bytes each way
  by kind, lines written per output, connections accepted = lines +
  empty ones, connects = lines with a server_ip, name resolutions;
- open tunnels while one is open, and none after;
- the helper's answers, errors, restarts, queue;
- reloads: a good one, a broken one, a good one again;
- build info carries `connectd -V`'s version; the start time is this run's;
- HEAD, other methods (405 with Allow), unknown paths (404), a bad
  request line and an absolute-form target (400), a head too large (431);
  none of them, nor any scrape, writes a log line;
- 20 clients that connect to metrics_port and send nothing hold no
  tunnel up."""
import collections
import os
import re
import socket
import sys
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import http_util as hu
import metrics_util as mu
from tap import ok, is_, like, diag, done

h.need_connectd()
h.watchdog(150)

echo = h.EchoServer()
web = hu.WebOrigin()
refused = h.free_port()
blocked = h.EchoServer()        # reachable, but denied by the rules
NAME = "echo.metrics.test"
hosts = h.tmpfile("hosts", "127.0.0.1 %s\n" % NAME)
helper = h.tmpfile("helper.py", "import sys\n"
                   "for line in sys.stdin:\n"
                   "    sys.stdout.write('OK log=%7B%22pod%22%3A%22t74%22%7D\\n')\n"
                   "    sys.stdout.flush()\n")
PY = sys.executable or "python3"

CONF = ("hosts_file %s\n"
        "external_acl_type meta ttl=60 %%SRC %s %s\n"
        "acl blocked port %d\n"
        "acl test_clients src 127.0.0.0/8\n"
        "http_access deny blocked\n"
        "http_access allow test_clients\n"
        "http_access deny all\n") % (hosts, PY, helper, blocked.port)
BAD_CONF = CONF + "frobnicate_timeout 1 second\n"

t_start = time.time()
cd = h.Connectd(CONF, metrics=True)
M = cd.metrics_port


def scrape():
    try:
        return mu.scrape(M)
    except Exception as e:
        diag("scrape: %r" % (e,))
        return None, "", {}


def raw(data, port=None):
    c = h.ProxyClient(port or cd.port)
    st, reply, how = c.request(data, timeout=10)
    c.close()
    return st


def tunnel_echo(authority, payload):
    c = h.tunnel(cd.port, authority)
    c.send(payload)
    got = c.recv_exact(len(payload))
    c.close()
    return got == payload


with cd:
    # --- a tunnel held open: the gauges see it
    held = h.tunnel(cd.port, echo.authority)
    held.send(b"held")
    is_(held.recv_exact(4), b"held", "a tunnel held open")
    sc, text, headers = scrape()
    ok(sc is not None, "GET /metrics parses strictly")
    if sc:
        is_(sc.value("connectd_tunnels_open"), 1.0, "connectd_tunnels_open is 1 with one tunnel open")
        is_(sc.value("connectd_connections_open", state="relay"), 1.0,
            "connectd_connections_open{state=\"relay\"} is 1")

    # --- traffic of every kind
    good = [tunnel_echo(echo.authority, b"x" * n) for n in (1, 100, 5000)]
    good += [tunnel_echo("%s:%d" % (NAME, echo.port), b"y" * n) for n in (7, 70)]
    ok(all(good), "5 tunnels echo (3 by address, 2 by name)")
    is_([raw(h.make_connect(blocked.authority)) for _ in range(2)], [403, 403],
        "2 CONNECTs denied: 403")
    is_([raw(b"HELLO\r\n\r\n"), raw(b"CONNECT nohost HTTP/1.1\r\n\r\n"),
         raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")], [400, 400, 400],
        "3 bad requests: 400")
    is_([raw(h.make_connect("127.0.0.1:%d" % refused)) for _ in range(2)], [503, 503],
        "2 CONNECTs to a closed port: 503")
    fwd = []
    for path in ("/close/100", "/close/5", "/status/404"):
        fwd.append(raw(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                        % (web.url(path), web.authority)).encode()))
    is_(fwd, [200, 200, 404], "3 plain-HTTP requests forwarded: 200, 200, 404")
    c = h.ProxyClient(cd.port)
    c.send(b"CONNECT 127.0.0.1:1 HT")
    c.shut_wr()
    c.read_to_eof(timeout=10)
    c.close()
    for i in range(3):
        s = socket.create_connection(("127.0.0.1", cd.port))
        s.close()
    held.close()

    # --- the metrics port's own requests, none of them logged
    st, hd, body = mu.get(M, "/metrics", method="HEAD")
    ok(st == 200 and body == b"" and int(hd.get("content-length", "0")) > 0,
       "HEAD /metrics: 200, a Content-Length, no body (%r %r)" % (st, hd.get("content-length")))
    st, hd, body = mu.get(M, "/metrics", method="POST")
    ok(st == 405 and hd.get("allow") == "GET, HEAD", "POST /metrics: 405 with Allow: GET, HEAD (%r %r)"
       % (st, hd.get("allow")))
    is_(mu.get(M, "/nope")[0], 404, "GET /nope: 404")
    is_(mu.get(M, "/metrics?x=1")[0], 200, "GET /metrics?x=1: 200 (the query is ignored)")
    is_(mu.get(M, None, raw=b"garbage\r\n\r\n")[0], 400, "a bad request line: 400")
    is_(mu.get(M, None, raw=b"GET http://127.0.0.1/metrics HTTP/1.1\r\nHost: x\r\n\r\n")[0], 400,
        "an absolute-form target: 400 (this is no proxy port)")
    is_(mu.get(M, None, raw=b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 5000 + b"\r\n\r\n")[0], 431,
        "a head over 4 KB: 431")
    st, hd, body = mu.get(M, "/metrics", raw=b"GET /metrics HTTP/1.0\n\n")
    is_(st, 200, "HTTP/1.0 with bare LFs: 200")
    is_(hd.get("connection"), "close", "... Connection: close")

    # --- 20 silent clients on the metrics port hold nothing up
    idle = [socket.create_connection(("127.0.0.1", M)) for _ in range(20)]
    ok(tunnel_echo(echo.authority, b"while the metrics port is full"),
       "a tunnel works while 20 silent clients sit on the metrics port")
    for s in idle:
        s.close()

    # --- everything is closed: the lines and the counters
    lines = cd.wait_idle()
    n_lines = len(lines)
    ok(n_lines == 5 + 2 + 3 + 2 + 3 + 1 + 1 + 1,
       "%d lines: 7 tunnels, 2 denied, 3 bad, 2 refused, 3 forwarded, 1 cut short" % n_lines)

    def settled():
        s, t, hd = scrape()
        if s is None:
            return None
        written = s.value("connectd_log_lines_written_total", output="stdio:/dev/stdout")
        counted = s.total("connectd_tunnels_total") + s.total("connectd_http_requests_total")
        return (s, t, hd) if written == n_lines and counted == n_lines else None
    got = h.wait_for(settled, timeout=10, interval=0.2)
    ok(got, "the counters settle on the %d lines" % n_lines)
    sc, text, headers = got or scrape()
    if sc is None:
        done()

    # the format
    is_(headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8",
        "Content-Type: text/plain; version=0.0.4; charset=utf-8")
    fams = sc.order
    ok(all(f in sc.helps and f in sc.types for f in fams), "every family has HELP and TYPE")
    ok(all(f.startswith("connectd_") or f.startswith("process_") for f in fams),
       "every family is connectd_* (or the standard process_*)")
    bad_counters = [f for f, t in sc.types.items() if t == "counter" and not f.endswith("_total")]
    ok(not bad_counters, "counters end in _total %r" % bad_counters)
    for f, t in sc.types.items():
        if t == "histogram":
            ok(f.endswith("_seconds"), "histogram %s is in seconds" % f)
    try:
        cl = mu.client_parse(text)
    except Exception as e:
        cl = e
    if cl is None:
        ok(True, "# SKIP python3-prometheus-client is not installed")
    elif isinstance(cl, Exception):
        ok(False, "prometheus_client parses /metrics: %r" % (cl,))
    else:
        is_(cl, sc.samples, "prometheus_client reads the same %d samples" % len(sc.samples))
    pt = mu.promtool_check(text)
    if pt is None:
        ok(True, "# SKIP promtool (Debian's prometheus) is not installed")
    else:
        ok(pt[0] == 0, "promtool check metrics: %s" % pt[1].strip()[:300])

    # by kind, status and close reason, as the lines say
    want = {"connectd_tunnels_total": collections.Counter(),
            "connectd_http_requests_total": collections.Counter()}
    nbytes = collections.Counter()
    for x in lines:
        kind = "tunnel" if x.get("method") == "CONNECT" else "http"
        fam = "connectd_tunnels_total" if kind == "tunnel" else "connectd_http_requests_total"
        want[fam][(str(x.get("status") or 0), x.get("close"))] += 1
        nbytes[(kind, "up")] += x.get("bytes_up") or 0
        nbytes[(kind, "down")] += x.get("bytes_down") or 0
    for fam, counts in want.items():
        have = {(lab["status"], lab["reason"]): v for lab, v in sc.series(fam)}
        is_(have, {k: float(v) for k, v in counts.items()},
            "%s by status and reason agrees with the lines" % fam)
    for (kind, d), n in sorted(nbytes.items()):
        is_(sc.value("connectd_bytes_total", kind=kind, direction=d), float(n),
            "connectd_bytes_total{kind=%s,direction=%s} is the lines' sum (%d)" % (kind, d, n))
    ok(("200", "done") in want["connectd_http_requests_total"] and
       ("403", "denied") in want["connectd_tunnels_total"] and
       ("503", "connect_failed") in want["connectd_tunnels_total"] and
       ("400", "bad_request") in want["connectd_http_requests_total"],
       "the run has forwarded, denied, refused and bad requests")
    is_(sc.value("connectd_connections_empty_total"), 3.0,
        "connectd_connections_empty_total: the 3 connections that sent nothing")
    is_(sc.value("connectd_connections_accepted_total"), float(n_lines + 3),
        "connectd_connections_accepted_total: the lines and the empty connections")
    is_(sc.value("connectd_connect_duration_seconds_count"),
        float(sum(1 for x in lines if x.get("server_ip"))),
        "connect histogram: one per line with a server_ip")
    is_(sc.value("connectd_dns_resolution_duration_seconds_count"), 2.0,
        "DNS histogram: the 2 tunnels by name")
    is_(sc.value("connectd_tunnels_open"), 0.0, "no tunnel open at the end")
    is_(sc.total("connectd_connections_open"), 0.0, "no connection open at the end")
    is_(sc.value("connectd_log_lines_dropped_total", output="stdio:/dev/stdout"), 0.0,
        "no line dropped")
    is_(sc.value("connectd_log_write_errors_total", output="stdio:/dev/stdout"), 0.0,
        "no write error")

    # helpers
    ok((sc.value("connectd_helper_answers_total", helper="meta", result="OK") or 0) >= 1,
       "helper meta answered OK")
    is_(sc.total("connectd_helper_errors_total", helper="meta"), 0.0, "helper meta: no errors")
    is_(sc.value("connectd_helper_restarts_total", helper="meta"), 0.0, "helper meta: no restarts")
    is_(sc.value("connectd_helper_queue_length", helper="meta"), 0.0, "helper meta: queue empty")
    ok((sc.value("connectd_helper_children", helper="meta") or 0) >= 1, "helper meta: a child runs")
    lookups = sc.value("connectd_helper_lookups_total", helper="meta") or 0
    hits = sc.value("connectd_helper_cache_hits_total", helper="meta")
    sent = sc.value("connectd_helper_requests_total", helper="meta") or 0
    # one lookup per line with a whole head, and connectd's own for /readyz;
    # the answers of one client address are cached (ttl=60) or shared
    ok(lookups >= 2 and hits is not None and lookups >= hits + sent and sent >= 1,
       "helper meta: %r lookups, %r from the cache, %r sent" % (lookups, hits, sent))
    is_([x.get("pod") for x in lines if x.get("method") == "CONNECT" and x.get("status") == 200][:1],
        [{"pod": "t74"}], "the lines carry the helper's answer")

    # build info and start time
    rc, out, err = h.run([h.connectd_bin(), "-V"], timeout=10)
    m = re.search(r"connectd (\S+)", out)
    ok(m and sc.value("connectd_build_info", version=m.group(1)) == 1.0,
       "connectd_build_info{version=%r} 1" % (m.group(1) if m else None))
    st = sc.value("process_start_time_seconds") or 0
    ok(t_start - 1 <= st <= time.time(), "process_start_time_seconds is this run's start")
    is_(sc.value("connectd_ready"), 1.0, "connectd_ready 1")

    # reloads
    def reloads():
        s, _, _ = scrape()
        return s and (s.value("connectd_config_reloads_total"),
                      s.value("connectd_config_reload_failures_total"),
                      s.value("connectd_config_last_reload_successful"))
    for conf, want_r, what in ((CONF, (1.0, 0.0, 1.0), "a good reload"),
                               (BAD_CONF, (2.0, 1.0, 0.0), "a broken file"),
                               (CONF, (3.0, 1.0, 1.0), "a good one again")):
        cd.write_conf(conf)
        cd.hup()
        is_(h.wait_for(lambda: reloads() == want_r and reloads(), timeout=10) or reloads(), want_r,
            "%s: reloads, failures, last successful = %r" % (what, want_r))
    ok(tunnel_echo(echo.authority, b"after"), "tunnels work after the reloads")
    ok(mu.get(M, "/healthz")[0] == 200, "the metrics port still answers after the reloads")

    # the scrapes and the metrics port's requests wrote nothing
    final = cd.wait_idle()
    is_(len(final), n_lines + 1, "the only line since is the last tunnel's: no line for the metrics port")
    h.all_valid_json(cd.log)
done()
