"""tls_util.py: for the hello tests (t/91, t/94): a ClientHello built byte
by byte, in one record, with an SNI or none; a tunnel that sends bytes to
a harness Recorder and returns its line and what the origin got."""
import socket
import struct

import harness as h


def u16(n):
    return struct.pack(">H", n)


def ext(t, body):
    """One extension: type, length, body."""
    return u16(t) + u16(len(body)) + body


def hello(sni=b"localhost"):
    """A TLS 1.3 ClientHello in one record: SNI (none if sni is None),
    supported_versions 1.3 and 1.2, two signature algorithms, two suites."""
    exts = b""
    if sni is not None:
        name = b"\x00" + u16(len(sni)) + sni
        exts += ext(0x0000, u16(len(name)) + name)
    exts += ext(0x002b, b"\x04" + u16(0x0304) + u16(0x0303))
    exts += ext(0x000d, u16(4) + u16(0x0403) + u16(0x0804))
    body = (u16(0x0303) + b"\x11" * 32 + b"\x00" + u16(4) + u16(0x1301) + u16(0x1302) +
            b"\x01\x00" + u16(len(exts)) + exts)
    msg = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return b"\x16\x03\x01" + u16(len(msg)) + msg


def through(cd, rec, authority, data, what="", shut=True, wait=True):
    """A tunnel to the Recorder rec: send data, half-close, read to EOF.
    Returns (line, what the origin got or None if it had no connection)."""
    n = len(rec.conns)
    c = h.tunnel(cd.port, authority)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if data:
        c.send(data)
    if shut:
        c.shut_wr()
    c.read_to_eof(timeout=10)
    port = c.local_port
    c.close()
    line = cd.wait_client(port) or {}
    r = rec.wait_done(n + 1) if wait else None
    return line, (r.get("got") if r else None)
