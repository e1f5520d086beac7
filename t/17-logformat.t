#!/usr/bin/env python3
"""17-logformat.t: Squid's logformat codes, side by side with Squid 5.7.

One template with every code the issue names (and the ' " # modifiers)
logs the same traffic through Squid and through connectd:
- a 1-byte echo tunnel: every code must give what Squid gives, except the
  client's own port (%>p, checked against the client) and the times
  (checked for Squid's shapes: %ts epoch seconds, %tu milliseconds, %tl
  dd/Mon/yyyy:hh:mm:ss +zzzz, %tr integer ms);
- a refused CONNECT: status, request and byte codes equal; the rest is
  recorded with diag.
A second access_log with the json format gets the same tunnels: each
access_log line is its own file and format."""
import os
import re
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, like, diag, done

CODES = ["%ts", "%tu", "%tl", "%tr", "%>a", "%>p", "%<a", "%<p", "%ru", "%rm", "%>st", "%<st",
         "%>Hs", "%Ss", "%ea", "%'ea", "%\"ea", "%#ea", "%'ru", "%\"ru", "%#ru"]
TEMPLATE = "|".join(CODES)
SHAPES = {"%ts": r"^\d{10}$", "%tu": r"^\d{1,3}$",
          "%tl": r"^\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}$", "%tr": r"^\d+$"}
EQUAL_ON_ERROR = ["%>a", "%ru", "%rm", "%>st", "%>Hs", "%Ss"]

h.need_connectd()
if not h.Squid.available():
    h.tap.skip_all("squid (Debian package) is not installed")
h.watchdog(90)

echo = h.EchoServer()
closed = h.free_port()


def traffic(port):
    """A 1-byte echo tunnel and a refused CONNECT: the two client ports."""
    c = h.tunnel(port, echo.authority)
    c.send(b"x")
    c.recv_exact(1)
    c.close()
    r = h.ProxyClient(port)
    st, reply, how = r.request(h.make_connect("127.0.0.1:%d" % closed), timeout=10)
    r.close()
    return c.local_port, r.local_port, st


def fields(line):
    return dict(zip(CODES, line.split("|")))


sq = h.Squid("logformat all %s\naccess_log stdio:{dir}/all.log all\n" % TEMPLATE)
sq_ports = traffic(sq.port)
sq_lines = h.JsonLog(os.path.join(sq.dir, "all.log")).wait_raw(2, timeout=10)
sq.stop()

JSON_LOG = os.path.join(h.tmpdir(), "json.log")
with h.Connectd("logformat all %s\naccess_log stdio:/dev/stdout all\naccess_log stdio:%s json\n"
                % (TEMPLATE, JSON_LOG)) as cd:
    cd_ports = traffic(cd.port)
    cd_lines = cd.log.wait_raw(2, timeout=10)
    jlog = h.JsonLog(JSON_LOG)
    jl = jlog.wait_lines(2, timeout=10)
    is_(sorted(x.get("client_port") for x in jl), sorted(cd_ports[:2]),
        "the second access_log (json) has the same two tunnels")
    h.all_valid_json(jlog)

is_(len(sq_lines), 2, "squid logged 2 lines")
is_(len(cd_lines), 2, "connectd logged 2 lines")
is_(cd_ports[2], sq_ports[2], "the refused CONNECT gets squid's status (%r)" % sq_ports[2])
for ln in sq_lines + cd_lines:
    diag(ln)


def by_port(lines, port):
    for ln in lines:
        f = fields(ln)
        if f.get("%>p") == str(port):
            return f
    return {}


sq_t, cd_t = by_port(sq_lines, sq_ports[0]), by_port(cd_lines, cd_ports[0])
sq_e, cd_e = by_port(sq_lines, sq_ports[1]), by_port(cd_lines, cd_ports[1])
ok(cd_t, "connectd's tunnel line has the client's port in %>p")
ok(cd_e, "connectd's refused line has the client's port in %>p")
for code in CODES:
    if code == "%>p":
        continue
    if code in SHAPES:
        like(cd_t.get(code), SHAPES[code], "tunnel: %s has squid's shape (%r)" % (code, cd_t.get(code)))
        like(sq_t.get(code), SHAPES[code], "tunnel: squid's %s has the shape (%r)" % (code, sq_t.get(code)))
    else:
        is_(cd_t.get(code), sq_t.get(code), "tunnel: %s as squid (%r)" % (code, sq_t.get(code)))
for code in CODES:
    if code in EQUAL_ON_ERROR:
        is_(cd_e.get(code), sq_e.get(code), "refused: %s as squid (%r)" % (code, sq_e.get(code)))
    elif code not in SHAPES and code != "%>p" and cd_e.get(code) != sq_e.get(code):
        diag("refused: %s differs: squid %r, connectd %r" % (code, sq_e.get(code), cd_e.get(code)))
done()
