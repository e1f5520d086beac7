#!/usr/bin/env python3
"""07-bad-input.t: malformed and hostile requests, each next to its
expected status and close reason, while a good client keeps working.

Every case is sent on its own connection; its log line is found by the
client's port.  Each line must be valid JSON (strict UTF-8) whatever the
input.  A long tunnel opened before the cases must still echo after them,
and a background client keeps opening good tunnels throughout.

Statuses: malformed 400 (an origin-form request is not a proxy request),
a request forwarded to a server that does not speak HTTP 502, an https://
URL 501, head over 16 KiB 431, unknown
version 505, header timeout 408 (or a bare close), unresolvable 503
dns_failed, refused 503 connect_failed.  A client that never sends a
byte gets its 408 too, but no line (t/76 counts it instead).  DNS cases run only inside a
private mount namespace whose resolv.conf points at 127.0.0.1 (nothing
listens there), so no query leaves the machine."""
import concurrent.futures
import os
import sys
import threading
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, diag, done

HAVE_NS = h.private_files({"/etc/resolv.conf": h.LOOPBACK_RESOLV}, optional=True)

PROXY = {"request_header_timeout": "1 second", "read_timeout": "1 minute"}
NO_LINE = "no line"     # the connection sent nothing: it is not logged
CLIENT_HELLO = bytes.fromhex(
    "16030100c4010000c00303") + bytes(32) + bytes.fromhex(
    "000020c02bc02fc02cc030cca9cca8c013c014009c009d002f0035c012000a01000077"
    "0000001400120000000f7777772e6578616d706c652e636f6d") + bytes(60)
LONG_HOST = b"a" * 63 + b"." + b"b" * 63 + b"." + b"c" * 63 + b"." + b"d" * 56 + b".invalid"  # 255+8
HOST_255 = b"a" * 63 + b"." + b"b" * 63 + b"." + b"c" * 63 + b"." + b"d" * 55 + b".inv"     # 251
HOST_256 = b"x" * 256

# ECHO / REFUSED are replaced by 127.0.0.1:port of an echo server and of a
# closed port.  status None: the proxy closes without a reply.
BAD = 400
CASES = [
    # --- the happy paths, for contrast
    ("good CONNECT HTTP/1.1", b"CONNECT ECHO HTTP/1.1\r\nHost: ECHO\r\n\r\n", 200, None),
    ("good CONNECT HTTP/1.0, no headers", b"CONNECT ECHO HTTP/1.0\r\n\r\n", 200, None),
    ("bare LF line ends (RFC 9112 2.2)", b"CONNECT ECHO HTTP/1.1\nHost: ECHO\n\n", 200, None),
    ("leading empty line is skipped", b"\r\nCONNECT ECHO HTTP/1.1\r\n\r\n", 200, None),
    ("user agent with quotes and backslashes",
     b'CONNECT ECHO HTTP/1.1\r\nUser-Agent: a "quoted" \\back\\slash\r\n\r\n', 200, None),
    ("user agent with invalid UTF-8 (obs-text)",
     b"CONNECT ECHO HTTP/1.1\r\nUser-Agent: caf\xe9 \xff\xfe\r\n\r\n", 200, None),
    ("pipelined request after CONNECT is payload",
     b"CONNECT ECHO HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 200, None),
    # --- garbage
    ("garbage words", b"hello world\r\n\r\n", BAD, "bad_request"),
    ("control bytes", bytes(range(1, 32)) + b"\r\n\r\n", BAD, "bad_request"),
    ("high bytes", b"\xff\xfe\xfd\xfc\r\n\r\n", BAD, "bad_request"),
    ("TLS ClientHello sent to the proxy", CLIENT_HELLO, BAD, "bad_request"),
    ("CR without LF", b"CONNECT ECHO HTTP/1.1\rHost: x\r\r\n", BAD, "bad_request"),
    ("no CRLF, then EOF", b"CONNECT ECHO HTTP/1.1", None, ("client_eof", "bad_request")),
    # --- request line
    ("HTTP/0.9 style, no version", b"CONNECT ECHO\r\n\r\n", BAD, "bad_request"),
    ("HTTP/2.0", b"CONNECT ECHO HTTP/2.0\r\n\r\n", 505, "bad_request"),
    ("HTTP/1.2", b"CONNECT ECHO HTTP/1.2\r\n\r\n", 505, "bad_request"),
    ("lower-case version", b"CONNECT ECHO http/1.1\r\n\r\n", BAD, "bad_request"),
    ("junk protocol", b"CONNECT ECHO FOO/1.1\r\n\r\n", BAD, "bad_request"),
    ("two spaces", b"CONNECT  ECHO HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("tab separator", b"CONNECT\tECHO HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("trailing junk after version", b"CONNECT ECHO HTTP/1.1 x\r\n\r\n", BAD, "bad_request"),
    ("NUL in method", b"CONN\x00ECT ECHO HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    # --- methods
    ("GET absolute-form to a server that echoes, not HTTP",
     b"GET http://ECHO/ HTTP/1.1\r\nHost: ECHO\r\n\r\n", 502, "server_eof"),
    ("GET https:// (needs CONNECT)", b"GET https://ECHO/ HTTP/1.1\r\nHost: ECHO\r\n\r\n", 501,
     "bad_request"),
    ("POST origin-form (not a proxy request)",
     b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", BAD, "bad_request"),
    ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", BAD, "bad_request"),
    ("lower-case connect (methods are case-sensitive)", b"connect ECHO HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    # --- authority
    ("absolute-form URI", b"CONNECT http://ECHO/ HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("origin-form", b"CONNECT / HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("port 0", b"CONNECT 127.0.0.1:0 HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("port 65536", b"CONNECT 127.0.0.1:65536 HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("port -1", b"CONNECT 127.0.0.1:-1 HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("port abc", b"CONNECT 127.0.0.1:abc HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("empty port", b"CONNECT 127.0.0.1: HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("no port", b"CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("huge port", b"CONNECT 127.0.0.1:18446744073709551697 HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("port +443", b"CONNECT 127.0.0.1:+443 HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("empty host", b"CONNECT :443 HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("two colons", b"CONNECT 127.0.0.1:443:1 HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("userinfo", b"CONNECT user:pw@ECHO HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("NUL in host", b"CONNECT 127.0.0.1\x00x:443 HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("quotes in host", b'CONNECT a"b\\"c:443 HTTP/1.1\r\n\r\n', BAD, "bad_request"),
    ("control bytes in host", b"CONNECT a\x01b\x1b[2Jc\x7f:443 HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("invalid UTF-8 in host", b"CONNECT caf\xe9\xff\xfe.invalid:443 HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("256-byte host", b"CONNECT " + HOST_256 + b":443 HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("IPv6 without brackets", b"CONNECT ::1:443 HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("IPv6 unclosed bracket", b"CONNECT [::1:443 HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    ("IPv6 brackets around a name", b"CONNECT [example.invalid]:443 HTTP/1.1\r\n\r\n", BAD, "bad_request"),
    # --- header block
    ("header without colon", b"CONNECT ECHO HTTP/1.1\r\nNoColonHere\r\n\r\n", BAD, "bad_request"),
    ("space before colon", b"CONNECT ECHO HTTP/1.1\r\nHost : x\r\n\r\n", BAD, "bad_request"),
    ("obs-fold", b"CONNECT ECHO HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n", BAD, "bad_request"),
    ("NUL in a header value", b"CONNECT ECHO HTTP/1.1\r\nUser-Agent: a\x00b\r\n\r\n", BAD, "bad_request"),
    ("control byte in a header value", b"CONNECT ECHO HTTP/1.1\r\nUser-Agent: a\x1bb\r\n\r\n", BAD, "bad_request"),
    ("head over 16 KiB", b"CONNECT ECHO HTTP/1.1\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n", 431, "bad_request"),
    ("head over 16 KiB, never ending", b"CONNECT ECHO HTTP/1.1\r\n" + b"X-Big: aaaaaaaaaa\r\n" * 2000, 431, "bad_request"),
    ("10,000 headers", b"CONNECT ECHO HTTP/1.1\r\n" + b"a:b\r\n" * 10000 + b"\r\n", 431, "bad_request"),
    # --- timeouts
    ("header timeout: partial head", b"CONNECT ECHO HTTP/1.1\r\nHost: x\r\n", (408, None), "header_timeout"),
    ("header timeout: silent client", b"", (408, None), NO_LINE),
    # --- upstream failures
    ("connection refused", b"CONNECT REFUSED HTTP/1.1\r\n\r\n", 503, "connect_failed"),
]
DNS_CASES = [
    ("unresolvable name", b"CONNECT nosuch.connectd.invalid:443 HTTP/1.1\r\n\r\n", 503, "dns_failed"),
    ("255-byte unresolvable name", b"CONNECT " + HOST_255 + b":443 HTTP/1.1\r\n\r\n", 503, "dns_failed"),
]

h.need_connectd()
h.watchdog(150)
if HAVE_NS:
    CASES += DNS_CASES
else:
    diag("no private mount namespace: the DNS cases are not run (they would query a real resolver)")

echo = h.EchoServer()
refused = h.free_port()
ECHO = ("127.0.0.1:%d" % echo.port).encode()
REFUSED = ("127.0.0.1:%d" % refused).encode()


def fill(b):
    return b.replace(b"ECHO", ECHO).replace(b"REFUSED", REFUSED)


def run_case(port, case):
    name, data, want_status, want_close = case
    data = fill(data)
    c = h.ProxyClient(port)
    res = {"port": c.local_port}
    try:
        if name == "no CRLF, then EOF":
            c.send(data)
            c.shut_wr()
            reply, how = c.read_to_eof(timeout=10)
            res.update(status=h.parse_status(reply), reply=reply, how=how)
        elif want_status == 200:
            c.send(data)
            head = c.read_until(b"\r\n\r\n", timeout=10)
            res.update(status=h.parse_status(head), reply=head)
            if name.startswith("pipelined"):
                tail = data.split(b"\r\n\r\n", 1)[1]
                res["echo"] = c.recv_exact(len(tail), timeout=10)
                res["tail"] = tail
            c.send(b"!")
            res["bang"] = c.recv_exact(1, timeout=10)
            c.shut_wr()
            rest, how = c.read_to_eof(timeout=10)
            res["how"] = how
        else:
            st, reply, how = c.request(data, timeout=10)
            res.update(status=st, reply=reply, how=how)
    except Exception as e:
        res.update(status="exception", error=repr(e))
    finally:
        c.close()
    return res


with h.Connectd(PROXY) as cd:
    # a long tunnel, opened before everything and checked after
    longc = h.tunnel(cd.port, ECHO.decode())
    longc.send(b"before")
    is_(longc.recv_exact(6), b"before", "long tunnel echoes before the bad input")

    # a background good client, opening tunnels all through
    stop = threading.Event()
    bg = {"ok": 0, "fail": []}

    def background():
        while not stop.is_set():
            try:
                c = h.tunnel(cd.port, ECHO.decode())
                c.send(b"g")
                if c.recv_exact(1, timeout=10) == b"g":
                    bg["ok"] += 1
                else:
                    bg["fail"].append("no echo")
                c.close()
            except Exception as e:
                bg["fail"].append(repr(e))
            stop.wait(0.05)
    bgt = threading.Thread(target=background, daemon=True)
    bgt.start()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda cs: run_case(cd.port, cs), CASES))

    stop.set()
    bgt.join(15)
    ok(not bg["fail"] and bg["ok"] > 0,
       "a concurrent good client kept working: %d tunnels, failures %r" % (bg["ok"], bg["fail"][:3]))

    longc.send(b"after")
    is_(longc.recv_exact(5), b"after", "long tunnel still echoes after the bad input")
    c = h.tunnel(cd.port, ECHO.decode())
    c.send(b"z")
    is_(c.recv_exact(1), b"z", "a new good tunnel works after the bad input")
    c.close()

    ok(cd.proc.poll() is None, "connectd is still running")
    silent = []
    for (name, data, want_status, want_close), res in zip(CASES, results):
        st = res["status"]
        if isinstance(want_status, tuple):
            ok(st in want_status, "%s: status %r in %r" % (name, st, want_status))
        else:
            is_(st, want_status, "%s: status %r" % (name, want_status))
        if "error" in res:
            diag("%s: %s" % (name, res["error"]))
        if want_status == 200:
            if "tail" in res:
                is_(res.get("echo"), res["tail"], "%s: the pipelined bytes reached the origin" % name)
            is_(res.get("bang"), b"!", "%s: the tunnel echoes" % name)
        elif want_status is not None and st not in (None, "exception"):
            ok(b"Connection: close" in res["reply"] or b"connection: close" in res["reply"].lower(),
               "%s: the error reply says Connection: close" % name)
        ok(res.get("how") in ("eof", "reset"), "%s: the proxy closed the connection (%s)" % (name, res.get("how")))
        if want_close == NO_LINE:
            silent.append((name, res["port"]))
            continue
        line = cd.wait_client(res["port"], timeout=5)
        ok(line is not None, "%s: a JSON log line for client port %d" % (name, res["port"]))
        if line is None:
            continue
        if want_close is not None:
            wc = want_close if isinstance(want_close, tuple) else (want_close,)
            ok(line.get("close") in wc, "%s: close %r in %r" % (name, line.get("close"), wc))
        if isinstance(st, int):
            is_(line.get("status"), st, "%s: the log's status is the one sent" % name)
        if want_status == 200:
            tail = len(res.get("tail", b"")) + 1
            is_((line.get("bytes_up"), line.get("bytes_down")), (tail, tail),
                "%s: bytes_up/bytes_down count only tunnel payload" % name)
            if name.startswith("user agent"):
                ua = data.split(b"User-Agent: ")[1].split(b"\r\n")[0]
                if name.endswith("backslashes"):
                    is_(line.get("user_agent"), ua.decode(), "%s: user_agent logged exactly" % name)
                else:   # invalid UTF-8 cannot be JSON as is: any non-empty rendering
                    ok(isinstance(line.get("user_agent"), str) and line["user_agent"],
                       "%s: user_agent logged (%r)" % (name, line.get("user_agent")))
        elif line.get("scheme") == "http":
            # a forwarded request counts whole messages: its head, our reply
            is_((line.get("bytes_up"), line.get("bytes_down")),
                (len(fill(CASES[[c[0] for c in CASES].index(name)][1])),
                 len(res.get("reply", b""))),
                "%s: bytes_up and bytes_down are the request and the reply" % name)
        else:
            is_((line.get("bytes_up"), line.get("bytes_down")), (0, 0),
                "%s: no payload bytes counted" % name)
    # authority "as sent": the hostile ones survive as JSON strings
    for name in ("quotes in host", "control bytes in host"):
        i = [c[0] for c in CASES].index(name)
        line = cd.wait_client(results[i]["port"], timeout=1)
        sent = fill(CASES[i][1]).split(b" ")[1].decode("latin-1")
        is_(line and line.get("authority"), sent, "%s: authority logged exactly as sent" % name)
    longc.close()
    # every connection is closed and the log has stopped growing
    lines = cd.wait_idle()
    for name, port in silent:
        ok(not [x for x in lines if x.get("client_port") == port],
           "%s: no log line for a connection that sent nothing" % name)
    h.all_valid_json(cd.log)
done()
