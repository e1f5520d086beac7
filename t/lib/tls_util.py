"""tls_util.py: TLS records built byte by byte for the hello tests (t/91,
t/94): a ClientHello in one record, with an SNI or none."""
import struct


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
