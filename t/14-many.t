#!/usr/bin/env python3
"""14-many.t: many tunnels at once on the one loop.

200 clients open tunnels concurrently (all established before any sends),
each echoes its own 4 KiB and closes.  Every tunnel must work, get its own
log line with exact byte counts, and every id must be unique."""
import concurrent.futures
import os
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, diag, done

N = 200
SIZE = 4096

h.need_connectd()
h.watchdog(90)
echo = h.EchoServer(backlog=512)

with h.Connectd({}) as cd:
    clients = []
    errors = []
    for i in range(N):
        try:
            clients.append(h.tunnel(cd.port, echo.authority))
        except Exception as e:
            errors.append(repr(e))
    is_(len(clients), N, "%d tunnels open at once" % N)
    for e in errors[:3]:
        diag(e)

    def one(i_c):
        i, c = i_c
        p = h.pattern(SIZE, seed=b"%d" % i)
        c.send(p)
        got = c.recv_exact(SIZE, timeout=20)
        c.shut_wr()
        rest, how = c.read_to_eof(timeout=20)
        c.close()
        return got == p and how == "eof"
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        res = list(pool.map(one, enumerate(clients)))
    is_(sum(res), len(clients), "every tunnel echoed its own bytes and closed cleanly")
    lines = cd.wait_lines(len(clients), timeout=20)
    is_(len(lines), len(clients), "one log line per tunnel")
    ports = set(c.local_port for c in clients)
    ok(set(x.get("client_port") for x in lines) == ports, "the lines are these clients'")
    ok(all(x.get("bytes_up") == SIZE and x.get("bytes_down") == SIZE for x in lines),
       "every line counts %d bytes each way" % SIZE)
    ids = [x.get("id") for x in lines]
    is_(len(set(ids)), len(ids), "every id is unique")
    h.all_valid_json(cd.log)
done()
