#!/usr/bin/env python3
"""90-tls-peek.t: the hellos of a tunnel, read beside the relay (issue 13,
step 2): the "proto" and "tls" fields, the %ssl:: codes and the metrics.

Real clients through connectd to `openssl s_server` on loopback:
  - openssl s_client with -servername, -alpn h2,http/1.1, -tls1_3 and a
    chosen suite (0x1301), -tls1_2 with a chosen suite (0xc02f), without
    SNI (-noservername: no_sni), with SNI evil.example on a CONNECT to
    localhost (mismatch: logged, still relayed), to 127.0.0.1 (ip_target),
    to a server that answers with a HelloRetryRequest (hrr);
  - curl; Python's ssl (the version and cipher it negotiated are the
    line's);
  - fixed hellos from t/fixtures/ja4/ sent by the test itself, whole and
    a byte at a time, whose JA4, SNI and versions are known
    (vectors.json), to an echo server.
Hostile: a hello cut short then EOF (truncated), one cut short then
silence (timeout, from a short tls_peek_timeout, seen on an interim
record: no timed assertion), lengths that lie, a 17 KiB hello (too_big),
an SSLv2-style hello (tls, tls null), a server that speaks first (ssh
banner; the client silent: proto null; then answering: ssh), HTTP and
noise inside a tunnel, quotes, backslashes, control and non-UTF-8 bytes
in the SNI and ALPN (every line stays valid JSON, in the json format and
in a JSON template).  With tls_peek off, proto and tls are null; a
forwarded plain-HTTP request has none either.  /metrics counts tunnels by
proto, hello and sni_match as the lines do.  Every line fits
conf/bigquery-schema.json and the tls object's shape (harness)."""
import json
import os
import re
import socket
import ssl
import struct
import sys
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, like, diag, done

if not h.have("openssl", "curl"):
    h.tap.skip_all("openssl and curl are needed")
h.need_connectd()
h.watchdog(150)

FIX = os.path.join(h.srcdir(), "fixtures", "ja4")
with open(os.path.join(FIX, "vectors.json")) as f:
    VECTORS = json.load(f)
VNAME = {0x0304: "TLS/1.3", 0x0303: "TLS/1.2", 0x0302: "TLS/1.1", 0x0301: "TLS/1.0", 0x0300: "SSL/3.0"}


def fixture(name):
    with open(os.path.join(FIX, name), "rb") as f:
        return f.read()


# ------------------------------------------------------ hellos built here

def u16(n):
    return struct.pack(">H", n)


def ext(t, body):
    return u16(t) + u16(len(body)) + body


def client_hello(sni=b"localhost", alpn=(b"h2",), versions=(0x0304, 0x0303), pad=0):
    """A ClientHello handshake message (no record layer)."""
    exts = b""
    if sni is not None:
        name = b"\x00" + u16(len(sni)) + sni
        exts += ext(0x0000, u16(len(name)) + name)
    if alpn:
        lst = b"".join(bytes([len(a)]) + a for a in alpn)
        exts += ext(0x0010, u16(len(lst)) + lst)
    if versions:
        exts += ext(0x002b, bytes([2 * len(versions)]) + b"".join(u16(v) for v in versions))
    exts += ext(0x000d, u16(4) + u16(0x0403) + u16(0x0804))
    if pad:
        exts += ext(0x0015, b"\x00" * pad)
    body = (u16(0x0303) + b"\x11" * 32 + b"\x00" + u16(4) + u16(0x1301) + u16(0x1302) +
            b"\x01\x00" + u16(len(exts)) + exts)
    return b"\x01" + struct.pack(">I", len(body))[1:] + body


def records(msg, size=16384):
    """msg in TLS handshake records of at most size bytes."""
    out = b""
    for i in range(0, len(msg), size):
        part = msg[i:i + size]
        out += b"\x16\x03\x01" + u16(len(part)) + part
    return out


# ------------------------------------------------------------- the setup

origin = h.TlsOrigin(names=["localhost"])
# the same certificate, from a server that takes P-256 key shares only
hrr_port = h.free_port()
hrr_srv = h.Proc(["openssl", "s_server", "-www", "-accept", "127.0.0.1:%d" % hrr_port,
                  "-cert", origin.cert, "-key", origin.key, "-groups", "P-256", "-quiet"],
                 stdout=os.path.join(h.tmpdir(), "hrr.out"), stderr=os.path.join(h.tmpdir(), "hrr.err"))
if not h.wait_port(hrr_port, proc=hrr_srv.p):
    diag("openssl s_server -groups P-256 did not start")
echo = h.EchoServer(backlog=64)
ssh = h.Recorder(hello=b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
web = h.HttpOrigin(body=b"plain\n")
D = h.tmpdir()
SQLOG = os.path.join(D, "peek.log")
JTLOG = os.path.join(D, "peek-json.log")
CONF = {
    "logformat": ["peek %proto %ssl::hello %ssl::>sni %ssl::sni_match %ssl::>alpn %ssl::>ja4 "
                  "%ssl::>received_supported_version %ssl::<negotiated_version "
                  "%ssl::>negotiated_cipher %master_xaction",
                  'peekjson {"id":%master_xaction,"sni":"%ssl::>sni","alpn":"%ssl::>alpn",'
                  '"sni2":%ssl::>sni,"proto":%proto}'],
    "access_log": ["stdio:/dev/stdout json", "stdio:%s peek" % SQLOG, "stdio:%s peekjson" % JTLOG],
    "tls_peek_timeout": "1 second",
    "access_log_interval": "1 second",
}


def s_client(port, target, *args):
    """openssl s_client through the proxy; stdin closed at once.  (rc, out)"""
    rc, out, err = h.run(["openssl", "s_client", "-proxy", "127.0.0.1:%d" % port,
                          "-connect", target, "-CAfile", origin.cert] + list(args),
                         input=b"", timeout=30)
    return rc, (out or "") + (err or "")


class Seq:
    """Lines in order: each step's line is the next final one."""

    def __init__(self, cd):
        self.cd = cd
        self.n = 0

    def next(self, what):
        self.n += 1
        ls = self.cd.wait_lines(self.n, pred=lambda x: x.get("record") == "final")
        line = ls[self.n - 1] if len(ls) >= self.n else {}
        ok(line, "%s: a final line" % what)
        return line


def tls_of(line):
    return line.get("tls") if isinstance(line.get("tls"), dict) else {}


def raw_tunnel(cd, authority, data, chunks=None, shut=True, read=True):
    """CONNECT, send data (in chunks if given), half-close; the line's client port."""
    c = h.tunnel(cd.port, authority)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if chunks:
        for i in range(0, len(data), chunks):
            c.send(data[i:i + chunks])
    elif data:
        c.send(data)
    if shut:
        c.shut_wr()
    if read:
        c.read_to_eof(timeout=10)
    c.close()
    return c.local_port


with h.Connectd(CONF, metrics=True) as cd:
    seq = Seq(cd)
    tgt = "localhost:%d" % origin.port

    # ---------------------------------------------------- openssl s_client
    rc, out = s_client(cd.port, tgt, "-servername", "localhost", "-alpn", "h2,http/1.1",
                       "-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256")
    ok(rc == 0 and "TLS_AES_128_GCM_SHA256" in out, "s_client -tls1_3 -alpn through connectd")
    line = seq.next("s_client -tls1_3")
    t = tls_of(line)
    is_(line.get("proto"), "tls", "s_client -tls1_3: proto tls")
    is_((t.get("hello"), t.get("sni"), t.get("sni_match")), ("complete", "localhost", "match"),
        "s_client -tls1_3: hello complete, sni localhost, match")
    is_(t.get("alpn"), ["h2", "http/1.1"], "s_client -tls1_3: alpn [h2, http/1.1]")
    is_(t.get("versions"), ["TLS/1.3"], "s_client -tls1_3: versions offered [TLS/1.3]")
    is_((t.get("version"), t.get("cipher")), ("TLS/1.3", "0x1301"),
        "s_client -tls1_3: negotiated TLS/1.3, 0x1301 (TLS_AES_128_GCM_SHA256) from the ServerHello")
    like(t.get("ja4") or "", r"^t13d\d{4}h2_[0-9a-f]{12}_[0-9a-f]{12}$", "s_client -tls1_3: a JA4 t13d....h2")
    ok(t.get("hello_bytes", 0) > 100 and t.get("ech") is False, "s_client -tls1_3: hello_bytes, ech false")

    rc, out = s_client(cd.port, tgt, "-servername", "localhost", "-tls1_2",
                       "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
    ok(rc == 0 and "ECDHE-RSA-AES128-GCM-SHA256" in out, "s_client -tls1_2 through connectd")
    t = tls_of(seq.next("s_client -tls1_2"))
    is_((t.get("versions"), t.get("version"), t.get("cipher"), t.get("alpn")),
        (["TLS/1.2"], "TLS/1.2", "0xc02f", []),
        "s_client -tls1_2: offered [TLS/1.2] (no supported_versions), TLS/1.2, 0xc02f, no ALPN")
    like(t.get("ja4") or "", r"^t12d", "s_client -tls1_2: JA4 t12d...")

    rc, out = s_client(cd.port, tgt, "-noservername")
    ok(rc == 0, "s_client -noservername through connectd")
    t = tls_of(seq.next("no SNI"))
    is_((t.get("sni"), t.get("sni_match")), (None, "no_sni"), "no SNI: sni null, no_sni")
    like(t.get("ja4") or "", r"^t13i", "no SNI: JA4 t13i...")

    rc, out = s_client(cd.port, tgt, "-servername", "evil.example")
    ok(rc == 0, "CONNECT localhost with SNI evil.example: still relayed (step 2 only logs)")
    line = seq.next("mismatch")
    t = tls_of(line)
    is_((line.get("status"), t.get("sni"), t.get("sni_match")), (200, "evil.example", "mismatch"),
        "CONNECT localhost, SNI evil.example: 200, sni_match mismatch")

    rc, out = s_client(cd.port, tgt, "-servername", "LocalHost.")
    t = tls_of(seq.next("SNI with case and a trailing dot"))
    is_((t.get("sni"), t.get("sni_match")), ("LocalHost.", "match"),
        "SNI LocalHost. against CONNECT localhost: match (case-folded, no trailing dot)")

    # a server that wants another key share: a HelloRetryRequest names the
    # version and the suite the handshake goes on with
    rc, out = s_client(cd.port, "localhost:%d" % hrr_port, "-servername", "localhost",
                       "-groups", "X25519:P-256", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256")
    ok(rc == 0 and "TLS_CHACHA20_POLY1305_SHA256" in out, "s_client to a P-256-only server")
    t = tls_of(seq.next("HelloRetryRequest"))
    is_((t.get("hrr"), t.get("version"), t.get("cipher")), (True, "TLS/1.3", "0x1303"),
        "a HelloRetryRequest: hrr true, TLS/1.3, 0x1303")
    is_(tls_of(line).get("hrr"), False, "... and false where there was none")

    rc, out = s_client(cd.port, "127.0.0.1:%d" % origin.port, "-servername", "localhost")
    ok(rc == 0, "s_client CONNECT 127.0.0.1")
    t = tls_of(seq.next("IP target"))
    is_((t.get("sni"), t.get("sni_match")), ("localhost", "ip_target"), "CONNECT to an IP: ip_target")

    if h.have_ipv6_loopback():
        echo6 = h.EchoServer(host="::1")
        raw_tunnel(cd, "[::1]:%d" % echo6.port, fixture("live-curl-name.bin"))
        t = tls_of(seq.next("IPv6 target"))
        is_((t.get("sni"), t.get("sni_match")), ("x.test", "ip_target"),
            "CONNECT to [::1] with SNI x.test: ip_target")
    else:
        h.tap.skip("no IPv6 loopback: CONNECT [::1] not tried")

    # ----------------------------------------------------------------- curl
    rc, out, err = h.run(["curl", "-sS", "-p", "-x", "http://127.0.0.1:%d" % cd.port,
                          "--cacert", origin.cert, "--noproxy", "", "-m", "20",
                          "https://localhost:%d/" % origin.port], timeout=30,
                         env=dict(os.environ, NO_PROXY="", no_proxy=""))
    ok(rc == 0, "curl through connectd")
    line = seq.next("curl")
    t = tls_of(line)
    is_((line.get("proto"), t.get("hello"), t.get("sni"), t.get("sni_match"), t.get("version")),
        ("tls", "complete", "localhost", "match", "TLS/1.3"), "curl: tls, localhost, match, TLS/1.3")
    ok("http/1.1" in t.get("alpn", []), "curl: offers http/1.1 (%s)" % t.get("alpn"))

    # --------------------------------------------------------- Python's ssl
    ctx = ssl.create_default_context(cafile=origin.cert)
    ctx.set_alpn_protocols(["http/1.1"])
    c = h.tunnel(cd.port, tgt)
    ver = cipher = None
    try:
        s = ctx.wrap_socket(c.sock, server_hostname="localhost")
        ver, cipher = s.version(), s.cipher()[0]
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        while s.recv(65536):
            pass
        s.close()
    except (OSError, ssl.SSLError) as e:
        diag("python ssl: %r" % e)
    c.close()
    t = tls_of(seq.next("python ssl"))
    names = {"TLS_AES_256_GCM_SHA384": "0x1302", "TLS_AES_128_GCM_SHA256": "0x1301",
             "TLS_CHACHA20_POLY1305_SHA256": "0x1303"}
    is_((t.get("sni"), t.get("alpn")), ("localhost", ["http/1.1"]), "python ssl: sni, alpn [http/1.1]")
    is_((t.get("version"), t.get("cipher")),
        ({"TLSv1.3": "TLS/1.3", "TLSv1.2": "TLS/1.2"}.get(ver), names.get(cipher)),
        "python ssl: the version and cipher it negotiated (%s, %s)" % (ver, cipher))

    # ------------------------------------------- fixed hellos, known JA4
    for name, chunks in (("foxio-chrome-grease.bin", None), ("rfc8448-s3-clienthello.bin", 1),
                         ("foxio-nosni-tls12-connect.bin", None), ("synth-chrome152-sigalg-grease.bin", 7),
                         ("rfc8448-s3-fragmented.bin", None)):
        v = VECTORS[name]
        raw_tunnel(cd, echo.authority, fixture(name), chunks=chunks)
        line = seq.next(name)
        t = tls_of(line)
        want_versions = [VNAME.get(x, "0x%04x" % x) for x in v["versions"]]
        is_((t.get("hello"), t.get("ja4"), t.get("sni"), t.get("ech")),
            ("complete", v["ja4"], v["sni"], v["ech"]),
            "%s%s: JA4 %s, its SNI and ECH as vectors.json says" % (
                name, " a byte at a time" if chunks == 1 else "", v["ja4"]))
        if want_versions:
            is_(t.get("versions"), want_versions, "%s: versions offered" % name)
        is_(t.get("sni_match"), "ip_target", "%s: CONNECT to 127.0.0.1: ip_target" % name)
        is_(t.get("version"), None, "%s: an echo server sends no ServerHello: version null" % name)

    # ------------------------------------------------------------ hostile
    rfc = fixture("rfc8448-s3-clienthello.bin")
    raw_tunnel(cd, echo.authority, rfc[:100])
    t = tls_of(seq.next("cut short, EOF"))
    is_(t.get("hello"), "truncated", "a hello cut short, then EOF: truncated")

    for name in ("bad-ext-len-lies.bin", "bad-cipher-len-odd.bin", "bad-record-len-lies.bin",
                 "bad-not-handshake.bin"):
        raw_tunnel(cd, echo.authority, fixture(name))
        line = seq.next(name)
        ok(line.get("proto") == "tls" and tls_of(line).get("hello") in ("malformed", "truncated"),
           "%s: proto tls, hello %s" % (name, tls_of(line).get("hello")))
        ok(tls_of(line).get("ja4") is None and tls_of(line).get("sni_match") is None,
           "%s: ja4 and sni_match null" % name)

    bigmsg = client_hello(pad=17 * 1024)
    big = records(bigmsg)
    raw_tunnel(cd, echo.authority, big)
    line = seq.next("17 KiB hello")
    is_((tls_of(line).get("hello"), tls_of(line).get("hello_bytes"), line.get("bytes_up")),
        ("too_big", len(bigmsg), len(big)),
        "a 17 KiB hello: too_big, hello_bytes its announced size, and every byte went on")

    # a hello in the same write as the CONNECT head goes up first: read too
    c = h.ProxyClient(cd.port)
    st, head = c.connect_tunnel(echo.authority, extra=fixture("rfc8448-s3-clienthello.bin"))
    c.shut_wr()
    back, how = c.read_to_eof(timeout=10)
    c.close()
    t = tls_of(seq.next("pipelined hello"))
    is_((st, len(back), t.get("hello"), t.get("ja4")),
        (200, len(fixture("rfc8448-s3-clienthello.bin")), "complete",
         VECTORS["rfc8448-s3-clienthello.bin"]["ja4"]),
        "a ClientHello sent with the CONNECT head: relayed, and read (its JA4)")

    raw_tunnel(cd, echo.authority, b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10" + b"\x07" * 37)
    line = seq.next("SSLv2-style")
    is_((line.get("proto"), line.get("tls")), ("tls", None), "an SSLv2-style hello: proto tls, tls null")

    raw_tunnel(cd, echo.authority, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    is_(seq.next("HTTP in a tunnel").get("proto"), "http", "HTTP inside a tunnel: proto http")
    raw_tunnel(cd, echo.authority, b"\x00\x01garbage")
    is_(seq.next("noise").get("proto"), "unknown", "noise: proto unknown")

    # the server speaks first: the client says nothing, then it answers
    c = h.tunnel(cd.port, ssh.authority)
    banner = c.read_until(b"\r\n")
    c.shut_wr()
    c.read_to_eof(timeout=10)
    c.close()
    line = seq.next("ssh banner, silent client")
    is_((banner[:4], line.get("proto"), line.get("tls")), (b"SSH-", None, None),
        "an ssh server speaks first, the client says nothing: the banner came, proto null")
    ok(line.get("bytes_down", 0) > 0, "... its bytes were counted")
    raw_tunnel(cd, ssh.authority, b"SSH-2.0-OpenSSH_9.2\r\n")
    is_(seq.next("ssh both ways").get("proto"), "ssh", "an ssh client: proto ssh")

    # a hello cut short, then silence: tls_peek_timeout (1 s) ends its read,
    # seen on an interim record; the tunnel goes on
    c = h.tunnel(cd.port, echo.authority)
    c.send(rfc[:60])
    got = cd.wait_lines(1, timeout=20, pred=lambda x: x.get("client_port") == c.local_port and
                        tls_of(x).get("hello") == "timeout")
    ok(got, "a hello cut short, then silence: an interim record says hello timeout")
    c.send(rfc[60:] + b"more")
    back = c.recv_exact(len(rfc) - 60 + 4 + 60, timeout=10)
    ok(back.endswith(b"more"), "... and the tunnel still relays after the timeout")
    c.shut_wr()
    c.read_to_eof(timeout=10)
    c.close()
    line = seq.next("peek timeout")
    is_(tls_of(line).get("hello"), "timeout", "... its final line says timeout too")

    # a client that sends nothing: no reader, proto null, whatever the wait
    c = h.tunnel(cd.port, echo.authority)
    cd.wait_lines(1, timeout=20, pred=lambda x: x.get("client_port") == c.local_port)
    c.shut_wr()
    c.read_to_eof(timeout=10)
    c.close()
    line = seq.next("silent client")
    is_((line.get("proto"), line.get("tls")), (None, None), "a silent client: proto and tls null")

    # attacker bytes in the SNI and the ALPN
    evil_sni = b'a"b\\c\x01\x1f\xff\xfe.x\x00y'
    evil_alpn = (b'\x00"\\', b"\xc3\x28", b"\n\r\t", b"h2")
    raw_tunnel(cd, echo.authority, records(client_hello(sni=evil_sni, alpn=evil_alpn)))
    line = seq.next("hostile SNI and ALPN")
    t = tls_of(line)
    ok(t.get("hello") == "complete" and isinstance(t.get("sni"), str) and '"' in t["sni"] and
       "\\" in t["sni"] and "\ufffd" in t["sni"], "quote, backslash, control, NUL and bad UTF-8 in the SNI: "
       "a JSON string (%r)" % t.get("sni"))
    is_(len(t.get("alpn", [])), 4, "... the 4 hostile ALPN values are 4 strings (%r)" % t.get("alpn"))
    hostile_id = line.get("id")

    # every line of every log written so far is valid JSON
    lines = h.all_valid_json(cd.log)
    nfinal = len([x for x in lines if x.get("record") == "final"])
    # the other logs have their own writer threads: wait for their lines
    h.JsonLog(JTLOG).wait_lines(nfinal)
    h.wait_for(lambda: len(h.read_text(SQLOG).splitlines()) >= nfinal)
    jt = [json.loads(x) for x in open(JTLOG).read().splitlines() if x.strip()]
    ok(len(jt) == len([x for x in lines if x.get("record") == "final"]),
       "the JSON template has a line per final line, each valid JSON (%d)" % len(jt))
    jh = [x for x in jt if x.get("id") == hostile_id]
    ok(jh and jh[0].get("sni") == t.get("sni") and jh[0].get("sni2") == t.get("sni"),
       "the JSON template carries the hostile SNI as the json format does")

    # the Squid-style template
    sq = {}
    for ln in open(SQLOG).read().splitlines():
        w = ln.split(" ")
        sq[int(w[-1])] = w
    first = [x for x in lines if x.get("record") == "final"][0]
    is_(sq.get(first["id"], [])[:10],
        ["tls", "complete", "localhost", "match", "h2,http/1.1", tls_of(first).get("ja4"),
         "TLS/1.3", "TLS/1.3", "0x1301", str(first["id"])],
        "%proto %ssl::hello %ssl::>sni %ssl::sni_match %ssl::>alpn %ssl::>ja4 "
        "%ssl::>received_supported_version %ssl::<negotiated_version %ssl::>negotiated_cipher")
    ok(all(len(w) == 10 for w in sq.values()), "every Squid-style line has its 10 words "
       "(the hostile SNI escaped: no space, no line break)")
    silent = [x for x in lines if x.get("record") == "final" and x.get("proto") is None][0]
    is_(sq.get(silent["id"], [])[:9], ["-"] * 9, "a line without tls: every %ssl:: code is -")

    # a forwarded plain-HTTP request is not read
    rc, out, err = h.run(["curl", "-sS", "-x", "http://127.0.0.1:%d" % cd.port, "--noproxy", "",
                          "-m", "20", "http://127.0.0.1:%d/x" % web.port], timeout=30,
                         env=dict(os.environ, NO_PROXY="", no_proxy=""))
    line = seq.next("forwarded GET")
    is_((line.get("scheme"), line.get("proto"), line.get("tls")), ("http", None, None),
        "a forwarded plain-HTTP request: proto and tls null")

    # a TLS tunnel idle after its handshake holds no reader; one whose
    # hello is still arriving holds one
    def readers():
        rc, out, err = h.run(["curl", "-sS", "http://127.0.0.1:%d/metrics" % cd.metrics_port], timeout=20)
        mm = re.search(r"^connectd_tls_peek_readers (\d+)$", out or "", re.M)
        return int(mm.group(1)) if mm else None
    c = h.tunnel(cd.port, tgt)
    idle = None
    try:
        s = ssl.create_default_context(cafile=origin.cert).wrap_socket(c.sock, server_hostname="localhost")
        idle = s
    except (OSError, ssl.SSLError) as e:
        diag("python ssl: %r" % e)
    ok(idle is not None and h.wait_for(lambda: readers() == 0),
       "an open TLS tunnel, idle after its handshake: connectd_tls_peek_readers 0")
    c2 = h.tunnel(cd.port, echo.authority)
    c2.send(rfc[:30])
    ok(h.wait_for(lambda: readers() == 1), "a hello still arriving: connectd_tls_peek_readers 1")
    c2.shut_wr()
    c2.read_to_eof(timeout=10)
    c2.close()
    ok(h.wait_for(lambda: readers() == 0), "... and 0 once it ended")
    if idle is not None:
        idle.close()
    c.close()
    seq.next("idle TLS tunnel")
    seq.next("hello cut short, counted")

    # /metrics agrees with the lines
    cd.wait_idle()
    lines = [x for x in cd.lines() if x.get("record") == "final"]
    tun = [x for x in lines if x.get("method") == "CONNECT"]
    rc, out, err = h.run(["curl", "-sS", "http://127.0.0.1:%d/metrics" % cd.metrics_port], timeout=20)
    m = {}
    for ln in out.splitlines():
        mm = re.match(r'^(connectd_tunnels_proto_total|connectd_tls_sni_match_total|'
                      r'connectd_tls_hello_total)\{\w+="(\w+)"\} (\d+)', ln)
        if mm:
            m[(mm.group(1), mm.group(2))] = int(mm.group(3))
    for p in ("tls", "ssh", "http", "unknown", "none"):
        want = sum(1 for x in tun if (x.get("proto") or "none") == p)
        is_(m.get(("connectd_tunnels_proto_total", p)), want,
            "connectd_tunnels_proto_total{proto=%s} is the lines' count (%d)" % (p, want))
    for r in ("match", "mismatch", "no_sni", "ech_outer", "ip_target"):
        want = sum(1 for x in tun if tls_of(x).get("sni_match") == r)
        is_(m.get(("connectd_tls_sni_match_total", r)), want,
            "connectd_tls_sni_match_total{result=%s} is the lines' count (%d)" % (r, want))
    for r in ("complete", "malformed", "truncated", "too_big", "timeout"):
        want = sum(1 for x in tun if tls_of(x).get("hello") == r)
        is_(m.get(("connectd_tls_hello_total", r)), want,
            "connectd_tls_hello_total{result=%s} is the lines' count (%d)" % (r, want))

# ------------------------------------------------------------ tls_peek off
with h.Connectd({"tls_peek": "off"}) as cd:
    rc, out = s_client(cd.port, "localhost:%d" % origin.port, "-servername", "localhost")
    ok(rc == 0, "tls_peek off: s_client through connectd")
    raw_tunnel(cd, echo.authority, fixture("foxio-chrome-grease.bin"))
    ls = cd.wait_lines(2)
    is_([(x.get("proto"), x.get("tls")) for x in ls], [(None, None), (None, None)],
        "tls_peek off: proto and tls null")
    h.all_valid_json(cd.log)
done()
