#!/usr/bin/env python3
"""48-concurrency.t: 9,000 tunnels open at once, near the 20,000 fd limit
per process (connectd holds two fds per tunnel).

The clients come from 127.0.0.2-127.0.0.9 so ephemeral ports do not run
out; the origin is a one-process epoll echo server.

Expectations:
- all 9,000 CONNECTs get 200 and echo a byte while all are open;
- connectd holds at least 18,000 fds at that moment;
- after they all close, the log has 9,000 lines with status 200, and
  connectd exits 0.
Skipped if the hard RLIMIT_NOFILE is below 20,000."""
import os
import resource
import selectors
import sys
import time
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import policy_util as pu
from tap import ok, is_, like, diag, done, skip_all

N = int(os.environ.get("T_CONCURRENCY", "9000"))
h.need_connectd()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if hard != resource.RLIM_INFINITY and hard < 2 * N + 1000:
    skip_all("hard RLIMIT_NOFILE %d is below %d" % (hard, 2 * N + 1000))
h.watchdog(120)
pu.raise_nofile(N + 1000)

eproc, eport = pu.epoll_echo()
auth = ("127.0.0.1:%d" % eport).encode()
req = b"CONNECT " + auth + b" HTTP/1.1\r\nHost: " + auth + b"\r\n\r\n"
SOURCES = ["127.0.0.%d" % i for i in range(2, 10)]

with h.Connectd("request_header_timeout 1 minute\n" + pu.LOOPBACK_ALLOW) as cd:
    sel = selectors.DefaultSelector()
    socks = []
    state = {}          # sock -> [phase, buffer]
    t0 = time.monotonic()
    deadline = t0 + 60 * h.SLOW
    opened = 0
    good = 0
    echoed = 0
    failed = 0
    # phases: 0 connecting, 1 waiting for 200, 2 waiting for echo, 3 done
    while (good + failed < N or echoed + failed < N) and time.monotonic() < deadline:
        # keep at most 1000 handshakes in flight
        while opened < N and opened - (good + failed) < 1000:
            s = pu.nonblocking_client(cd.port, SOURCES[opened % len(SOURCES)])
            socks.append(s)
            state[s] = [0, b""]
            sel.register(s, selectors.EVENT_WRITE)
            opened += 1
        for key, ev in sel.select(timeout=0.5):
            s = key.fileobj
            st = state[s]
            try:
                if st[0] == 0:
                    s.send(req)
                    st[0] = 1
                    sel.modify(s, selectors.EVENT_READ)
                elif st[0] == 1:
                    d = s.recv(4096)
                    if not d:
                        raise OSError("eof")
                    st[1] += d
                    if b"\r\n\r\n" in st[1]:
                        if not st[1].startswith(b"HTTP/1.1 200"):
                            raise OSError("status %r" % st[1][:40])
                        good += 1
                        st[0] = 2
                        s.send(b"x")
                elif st[0] == 2:
                    d = s.recv(16)
                    if d != b"x":
                        raise OSError("echo %r" % d)
                    echoed += 1
                    st[0] = 3
                    sel.unregister(s)
            except OSError as e:
                failed += 1
                if failed <= 5:
                    diag("tunnel failed: %s" % e)
                st[0] = 3
                sel.unregister(s)
    elapsed = time.monotonic() - t0
    is_(good, N, "%d CONNECTs got 200 (%.1f s)" % (N, elapsed))
    is_(echoed, N, "%d tunnels echoed a byte while all are open" % N)
    nfd = pu.fds(cd.proc.pid)
    ok(nfd >= 2 * N, "connectd holds %d fds (>= %d)" % (nfd, 2 * N))
    for s in socks:
        s.close()
    sel.close()
    lines = cd.wait_lines(N, timeout=30)
    is_(len(lines), N, "every tunnel is logged when it closes")
    is_(sum(1 for x in lines if x.get("status") == 200), N, "... all with status 200")
    ok(all(x.get("bytes_up") == 1 and x.get("bytes_down") == 1 for x in lines),
       "... each with 1 byte each way")
eproc.stop()

done()
