#!/usr/bin/env python3
"""91-tls-acl.t: access rules on the ClientHello (issue 13, step 3):
ssl::server_name, ssl::server_name_regex, tls_sni_match, the hold and
tls_hello_required.

Expectations:
- A rule with a hello acl that could change the answer holds the
  client's bytes until its hello is read: allowed by ssl::server_name
  (openssl s_client to a TLS origin: the handshake completes), denied by
  it (the origin, which records what it got, gets zero bytes; the line
  says close denied and the rule), allowed by a regex with -i; a hello
  pipelined after the CONNECT head is held the same way; curl.
- A CONNECT to localhost with SNI good.test is allowed without a
  tls_sni_match mismatch rule, denied with one.
- Not TLS: with tls_hello_required off (the default) the rules are
  evaluated with no hello (ssl::server_name is then the CONNECT host, as
  Squid's name before any SNI); with it on, denied before a byte goes.
- A hello cut short then silence: tls_peek_timeout (short here) ends
  the hold; decided as a missing hello.  No timed assertion.
- A client that resets during the hold: close client_reset, nothing
  sent, and connectd goes on.
- A server that speaks first while the hold is on: its banner reaches
  the client before the client sends anything.
- Rules without hello acls, or with an allow above them that decides
  first: no hold (a partial hello reaches the origin at once).
- connectd -t refuses bad lines with FILE:LINE, and a hello acl with
  tls_peek off."""
import os
import re
import socket
import struct
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, like, diag, done

if not h.have("openssl", "curl"):
    h.tap.skip_all("openssl and curl are needed")
h.need_connectd()
h.watchdog(150)
CD = h.connectd_bin()


from tls_util import u16, ext, hello, through  # noqa: E402


origin = h.TlsOrigin(names=["localhost"])


def s_client(port, target, *args):
    rc, out, err = h.run(["openssl", "s_client", "-proxy", "127.0.0.1:%d" % port,
                          "-connect", target, "-CAfile", origin.cert] + list(args),
                         input=b"", timeout=30)
    return rc, (out or "") + (err or "")


def conf(rules, extra=""):
    return ("acl test_clients src 127.0.0.0/8\n"
            "acl good ssl::server_name .good.test localhost\n"
            "acl rx ssl::server_name_regex -i ^rx[0-9]+\\.test$\n"
            "acl fronted tls_sni_match mismatch\n"
            "tls_peek_timeout 1 second\n" + extra + rules)


RULES = ("http_access allow test_clients good\n"
         "http_access allow test_clients rx\n"
         "http_access deny all\n")

rec = h.Recorder()
REC_LOCAL = "localhost:%d" % rec.port
REC_IP = "127.0.0.1:%d" % rec.port

with h.Connectd(conf(RULES)) as cd:
    rc, out = s_client(cd.port, "localhost:%d" % origin.port, "-servername", "localhost")
    ok(rc == 0 and "Verify return code: 0" in out, "s_client SNI localhost: allowed by ssl::server_name, "
       "the handshake completes through the hold")
    line = cd.wait_lines(1)[-1] if cd.wait_lines(1) else {}
    is_((line.get("status"), line.get("rule"), (line.get("tls") or {}).get("sni")),
        (200, None, "localhost"), "... its line: 200, no rule, sni localhost")

    hv = hello(b"evil.test")
    line, got = through(cd, rec, REC_IP, hv, "evil")
    is_((line.get("close"), line.get("rule")), ("denied", "http_access deny all"),
        "SNI evil.test: close denied, the rule")
    is_(got, b"", "... the origin got zero bytes")
    is_((line.get("tls") or {}).get("sni"), "evil.test", "... the line has the SNI")

    hv = hello(b"www.GOOD.test.")
    line, got = through(cd, rec, REC_IP, hv, "good")
    is_((line.get("close"), line.get("rule")), ("client_eof", None),
        "SNI www.GOOD.test.: allowed by .good.test (case, trailing dot)")
    is_(got, hv, "... the origin got the held hello, unchanged")

    hv = hello(b"RX42.test")
    line, got = through(cd, rec, REC_IP, hv, "rx")
    ok(line.get("close") != "denied", "SNI RX42.test: allowed by the -i regex")
    is_(got, hv, "... the origin got the hello")

    hv = hello(b"good.test")
    line, got = through(cd, rec, REC_LOCAL, hv, "front")
    is_(((line.get("tls") or {}).get("sni_match"), line.get("close")), ("mismatch", "client_eof"),
        "CONNECT localhost, SNI good.test: mismatch, allowed without a tls_sni_match rule")
    is_(got, hv, "... the origin got the hello")

    line, got = through(cd, rec, REC_LOCAL, b"GET / HTTP/1.0\r\n\r\n", "plain")
    is_((line.get("proto"), line.get("close")), ("http", "client_eof"),
        "not TLS, tls_hello_required off: CONNECT localhost matches ssl::server_name localhost")
    is_(got, b"GET / HTTP/1.0\r\n\r\n", "... the origin got the bytes")
    line, got = through(cd, rec, REC_IP, b"GET / HTTP/1.0\r\n\r\n", "plain ip")
    is_((line.get("close"), line.get("rule")), ("denied", "http_access deny all"),
        "not TLS to 127.0.0.1: no name matches, denied by the next rule")
    is_(got, b"", "... the origin got zero bytes")

    # a hello cut short, then silence: tls_peek_timeout ends the hold
    hv = hello(b"evil.test")
    line, got = through(cd, rec, REC_LOCAL, hv[:20], "slow", shut=False)
    is_((line.get("tls") or {}).get("hello"), "timeout", "a slow hello: its line says hello timeout")
    is_(got, hv[:20], "... decided as no hello (CONNECT localhost matches): the held bytes went")

    # a hello pipelined after the CONNECT head, in the same write
    for sni, want in ((b"evil.test", b""), (b"a.good.test", None)):
        n = len(rec.conns)
        hv = hello(sni)
        c = h.ProxyClient(cd.port)
        st, head = c.connect_tunnel(REC_IP, extra=hv)
        c.shut_wr()
        c.read_to_eof(timeout=10)
        port = c.local_port
        c.close()
        line = cd.wait_client(port) or {}
        r = rec.wait_done(n + 1)
        is_((st, r and r.get("got")), (200, hv if want is None else want),
            "a hello pipelined after the head, SNI %s: the origin got %s" %
            (sni.decode(), "it" if want is None else "zero bytes"))

    # curl, allowed by ssl::server_name
    rc, out, err = h.run(["curl", "-sS", "-p", "-x", "http://127.0.0.1:%d" % cd.port,
                          "--cacert", origin.cert, "--noproxy", "", "-m", "20",
                          "https://localhost:%d/" % origin.port], timeout=30,
                         env=dict(os.environ, NO_PROXY="", no_proxy=""))
    ok(rc == 0, "curl SNI localhost through the hold: allowed, the request completes")

    # a client that resets during the hold: closed as a reset, nothing sent
    n = len(rec.conns)
    c = h.tunnel(cd.port, REC_LOCAL)
    c.send(hello(b"evil.test")[:20])
    port = c.local_port
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.sock.close()
    line = cd.wait_client(port) or {}
    is_(line.get("close"), "client_reset", "a client reset during the hold: close client_reset")
    r = rec.wait_done(n + 1)
    is_(r and r.get("got"), b"", "... the origin got zero bytes")
    line, got = through(cd, rec, REC_LOCAL, hello(b"localhost"), "after reset")
    ok(line.get("close") != "denied" and got == hello(b"localhost"), "... and the next tunnel works")

# the server speaks first while the hold is on
banner = h.Recorder(hello=b"220 smtp.test ESMTP\r\n")
with h.Connectd(conf(RULES)) as cd:
    c = h.tunnel(cd.port, "127.0.0.1:%d" % banner.port)
    try:
        got = c.read_until(b"\r\n", timeout=10)
    except (EOFError, OSError) as e:
        got = repr(e).encode()
    is_(got, b"220 smtp.test ESMTP\r\n", "a server that speaks first: its banner arrives during the hold")
    hv = hello(b"a.good.test")
    c.send(hv)
    c.shut_wr()
    c.read_to_eof(timeout=10)
    c.close()
    r = banner.wait_done(1)
    is_(r and r.get("got"), hv, "... then the client's hello is allowed and goes")

# with the mismatch rule: denied
with h.Connectd(conf("http_access deny fronted\n" + RULES)) as cd:
    hv = hello(b"good.test")
    line, got = through(cd, rec, REC_LOCAL, hv, "front deny")
    is_((line.get("close"), line.get("rule")), ("denied", "http_access deny fronted"),
        "CONNECT localhost, SNI good.test, with http_access deny fronted: denied")
    is_(got, b"", "... the origin got zero bytes")
    line, got = through(cd, rec, REC_LOCAL, hello(b"localhost"), "match")
    ok(line.get("close") != "denied", "... SNI localhost on CONNECT localhost: allowed")

# tls_hello_required on
with h.Connectd(conf(RULES, "tls_hello_required on\n")) as cd:
    line, got = through(cd, rec, REC_LOCAL, b"GET / HTTP/1.0\r\n\r\n", "required")
    is_((line.get("close"), line.get("rule")), ("denied", "tls_hello_required on"),
        "not TLS, tls_hello_required on: denied, rule tls_hello_required on")
    is_(got, b"", "... the origin got zero bytes")
    line, got = through(cd, rec, REC_LOCAL, hello(b"evil.test")[:20], "required slow", shut=False)
    is_((line.get("close"), line.get("rule")), ("denied", "tls_hello_required on"),
        "a slow hello, tls_hello_required on: denied")
    is_(got, b"", "... the origin got zero bytes")
    hv = hello(b"localhost")
    line, got = through(cd, rec, REC_LOCAL, hv, "required ok")
    is_(got, hv, "... a complete hello with a good SNI goes")


def no_hold(cd, what):
    """A partial hello reaches the origin before the client sends more."""
    n = len(rec.conns)
    c = h.tunnel(cd.port, REC_IP)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    hv = hello(b"evil.test")
    c.send(hv[:20])
    r = rec.wait_conn(n + 1)
    ok(r is not None and h.wait_for(lambda: r.get("got") == hv[:20]),
       "%s: a partial hello reaches the origin at once (no hold)" % what)
    c.close()
    rec.wait_done(n + 1)


with h.Connectd(None) as cd:
    no_hold(cd, "the test policy, no hello acl")
with h.Connectd(conf("http_access allow test_clients\n" + RULES)) as cd:
    no_hold(cd, "an allow above the hello rules decides first")

# --- a name host, with a dst acl above the hello acl: the addresses the
# rules had at the CONNECT are still there when they are asked again with
# the hello (they were freed at connect(): the tunnel was refused as
# "undecided after the hello")
hosts = h.tmpfile("hosts91", "127.0.0.1 named.test\n")
with h.Connectd(conf("http_access deny to_linklocal\n" + RULES,
                     "hosts_file %s\ndns_nameservers 127.0.0.1\n" % hosts)) as cd:
    line, got = through(cd, rec, "named.test:%d" % rec.port, hello(b"localhost"))
    is_((line.get("close"), line.get("rule"), line.get("server_ip")), ("client_eof", None, "127.0.0.1"),
        "a CONNECT to a name, a dst acl before ssl::server_name: allowed after the hello")
    line, got = through(cd, rec, "named.test:%d" % rec.port, hello(b"bad.test"))
    is_((line.get("close"), line.get("rule")), ("denied", "http_access deny all"),
        "... and a bad SNI is denied by the rule that says so, not as undecided")

# --- config errors
BAD = [
    ("acl x tls_sni_match bogus", r"not an sni_match"),
    ("acl x ssl::server_name_regex (unclosed", r"regular expression"),
    ("acl x tls_sni_match -i mismatch", r"not supported"),
    ("acl x ssl::server_name", r"has no values"),
    ("acl x ssl::server_name .", r"not a domain name"),
    ("tls_hello_required maybe", r"on|off|flag"),
]
for i, (line, msg) in enumerate(BAD):
    path = h.tmpfile("bad%02d.conf" % i, "# bad\nhttp_port 127.0.0.1:3128\n\n" + line + "\n")
    rc, out, err = h.run([CD, "-t", "-f", path], timeout=10)
    ok(rc not in (0, None) and re.search(r"%s:4\b" % re.escape(path), err)
       and re.search(msg, err), "-t refuses %r with FILE:4 and %r" % (line, msg))
    if rc == 0 or not re.search(msg, err or ""):
        diag(err)
path = h.tmpfile("nopeek.conf", "http_port 127.0.0.1:3128\ntls_peek off\nacl s ssl::server_name x.test\n")
rc, out, err = h.run([CD, "-t", "-f", path], timeout=10)
ok(rc not in (0, None) and "needs tls_peek on" in err and "%s:3:" % path in err,
   "-t refuses a hello acl with tls_peek off, at the acl's FILE:3")
if "%s:3:" % path not in (err or ""):
    diag(err)
good = h.tmpfile("good.conf", "http_port 127.0.0.1:3128\n" + conf("http_access deny fronted\n" + RULES,
                                                                   "tls_hello_required on\n"))
rc, out, err = h.run([CD, "-t", "-v", "-f", good], timeout=10)
is_(rc, 0, "-t -v accepts the hello acls")
ok("acl fronted tls_sni_match mismatch" in out and "tls_hello_required on" in out and
   "ssl::server_name_regex" in out, "-t -v prints them back")
done()
