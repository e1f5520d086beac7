#!/usr/bin/env python3
"""03-bytes.t: exact byte counts through a tunnel.

A raw client sends a known payload up, the origin reads exactly that much
and answers with a known payload down; both ends check every byte (sha256)
and the log line must count payload only, headers excluded."""
import hashlib
import os
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, diag, done

MiB = 1024 * 1024
SCENARIOS = [
    # name, bytes up, bytes down (origin reads `up` bytes, then sends `down`)
    {"name": "1 MiB up, 3 MiB down", "up": 1 * MiB, "down": 3 * MiB},
    {"name": "1 byte each way", "up": 1, "down": 1},
    {"name": "nothing up, 64 KiB + 1 down", "up": 0, "down": 65537},
    {"name": "200 KiB + 3 up, nothing down", "up": 200 * 1024 + 3, "down": 0},
]
PROXY = {"read_timeout": "30 seconds"}
EXPECT_LOG = {"method": "CONNECT", "status": 200}

h.need_connectd()
h.watchdog(90)

with h.Connectd(PROXY) as cd:
    for sc in SCENARIOS:
        name, up, down = sc["name"], sc["up"], sc["down"]
        origin = h.SinkSource(down=down, up=up)
        c = h.tunnel(cd.port, origin.authority)
        payload = h.pattern(up, seed=name.encode())
        if up:
            c.send(payload)
        got = c.recv_exact(down, timeout=30) if down else b""
        rest, how = c.read_to_eof(timeout=10)
        c.close()
        rec = origin.wait_done(timeout=30)
        is_(rec and rec["got_len"], up, "%s: origin got %d bytes" % (name, up))
        is_(rec and rec["got_sha"], hashlib.sha256(payload).hexdigest(),
            "%s: origin got the exact bytes" % name)
        is_(len(got), down, "%s: client got %d bytes" % (name, down))
        ok(got == h.pattern(down), "%s: client got the exact bytes" % name)
        is_(rest, b"", "%s: nothing after the payload" % name)
        is_(how, "eof", "%s: the proxy passes the origin's EOF on" % name)
        line = cd.wait_client(c.local_port)
        ok(line is not None, "%s: a log line for client port %d" % (name, c.local_port))
        h.check_record(line, dict(EXPECT_LOG, bytes_up=up, bytes_down=down,
                                  authority=origin.authority),
                       prefix=name + ": ")
        ok(line and line.get("close") in ("client_eof", "server_eof"),
           "%s: close is client_eof or server_eof (%r)" % (name, line and line.get("close")))
        origin.close()
    h.all_valid_json(cd.log)
    is_(len(cd.lines()), len(SCENARIOS), "one log line per tunnel")
done()
