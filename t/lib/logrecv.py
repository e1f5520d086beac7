"""logrecv.py: receivers for connectd's network access logs (t/70..73).

LineReceiver is a TCP server such as Fluent Bit's in_tcp: it reads
newline-delimited lines from every connection and keeps them; what is left
without a newline when a connection ends is kept apart as a fragment.  It
can stop and start again on the same port, gracefully (it half-closes and
reads until connectd's EOF, as a receiver that restarts cleanly does) or
abruptly (an RST, as a killed one), and it can accept without ever reading
(a stalled receiver).  DgramReceiver keeps every datagram of a UDP or
unix datagram socket.  sink_stats() reads an output's counters from the
line connectd prints on SIGUSR1.
"""
import json
import os
import re
import select
import socket
import threading
import time

import harness as h


class LineReceiver:
    def __init__(self, host="127.0.0.1", port=0, read=True, rcvbuf=None):
        self.host = host
        self.port = port
        self.read = read
        self.rcvbuf = rcvbuf
        self.lock = threading.Lock()
        self.lines = []          # complete lines (bytes, without the newline)
        self.fragments = []      # bytes left without a newline at a close
        self.accepted = 0
        self.conns = []
        self.lsock = None
        self.running = False
        self.go_read = threading.Event()
        if read:
            self.go_read.set()
        self.start()
        h.at_cleanup(self.close)

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        s.bind((self.host, self.port))
        s.listen(16)
        self.port = s.getsockname()[1]
        self.lsock = s
        self.running = True
        self.athread = threading.Thread(target=self._accept, args=(s,), daemon=True)
        self.athread.start()

    def _accept(self, ls):
        while self.running:
            try:
                r, _, _ = select.select([ls], [], [], 0.1)
                if not r:
                    continue
                c, _ = ls.accept()
            except (OSError, ValueError):
                return
            rec = {"sock": c, "buf": bytearray(), "done": threading.Event(),
                   "closing": False}
            with self.lock:
                self.accepted += 1
                self.conns.append(rec)
            threading.Thread(target=self._reader, args=(rec,), daemon=True).start()

    def _reader(self, rec):
        c = rec["sock"]
        try:
            while True:
                if not self.go_read.is_set():
                    if rec["closing"]:
                        break
                    self.go_read.wait(0.1)
                    continue
                r, _, _ = select.select([c], [], [], 0.1)
                if rec.get("abort"):
                    break
                if not r:
                    continue
                d = c.recv(65536)
                if not d:
                    break
                rec["buf"] += d
                *whole, rest = bytes(rec["buf"]).split(b"\n")
                rec["buf"] = bytearray(rest)
                with self.lock:
                    self.lines.extend(whole)
        except OSError:
            pass
        finally:
            with self.lock:
                if rec["buf"]:
                    self.fragments.append(bytes(rec["buf"]))
            rec["done"].set()

    def stop(self, graceful=True, timeout=10):
        """Stop listening and end every connection: gracefully, a
        half-close and reading until connectd closes too; else an RST."""
        self.running = False
        # the accept thread lets go of the listener first: a socket closed
        # while select() holds it lives on, and would take a connection
        # into its backlog, acknowledge lines and then reset them
        self.athread.join(5)
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            conns = [r for r in self.conns if not r["done"].is_set()]
        for rec in conns:
            c = rec["sock"]
            try:
                if graceful:
                    rec["closing"] = True
                    c.shutdown(socket.SHUT_WR)
                else:
                    rec["abort"] = True
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    rec["done"].wait(timeout)
                    c.close()
            except OSError:
                pass
        for rec in conns:
            rec["done"].wait(timeout * h.SLOW)
            try:
                rec["sock"].close()
            except OSError:
                pass

    def restart(self):
        self.start()

    def close(self):
        self.running = False
        self.go_read.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for rec in conns:
            rec["abort"] = True
            try:
                rec["sock"].close()
            except OSError:
                pass

    def parsed(self):
        """(records, bad lines)"""
        with self.lock:
            lines = list(self.lines)
        recs, bad = [], []
        for ln in lines:
            try:
                recs.append(json.loads(ln))
            except ValueError:
                bad.append(ln)
        return recs, bad

    def count(self):
        with self.lock:
            return len(self.lines)


class DgramReceiver:
    """Every datagram of a UDP socket (host:port) or a unix one (path)."""

    def __init__(self, path=None, host="127.0.0.1", rcvbuf=4 << 20):
        if path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            if os.path.exists(path):
                os.unlink(path)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.bind(path)
            os.chmod(path, 0o666)
            self.path = path
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.bind((host, 0))
            self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.grams = []
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        h.at_cleanup(self.close)

    def _run(self):
        while self.running:
            try:
                r, _, _ = select.select([self.sock], [], [], 0.1)
                if not r:
                    continue
                d = self.sock.recv(1 << 17)
            except (OSError, ValueError):
                return
            with self.lock:
                self.grams.append(d)

    def datagrams(self):
        with self.lock:
            return list(self.grams)

    def wait(self, n, timeout=h.DEFAULT_WAIT):
        h.wait_for(lambda: len(self.datagrams()) >= n, timeout)
        return self.datagrams()

    def close(self):
        # the thread lets go first: a socket closed while select() holds it
        # lives on, and would take datagrams meant for a successor
        self.running = False
        if self.thread is not threading.current_thread():
            self.thread.join(5)
        try:
            self.sock.close()
        except OSError:
            pass


STATS = (r"access log %s: (\d+) lines written, (\d+) dropped, (\d+) write errors, "
         r"(\d+) queued \((\d+) bytes\), (\d+) truncated, (\d+) reconnects, "
         r"(\d+) connection failures, (connected|not connected)")
KEYS = ("written", "dropped", "errors", "queued", "queued_bytes", "truncated",
        "reconnects", "failures")


def sink_stats(cd, name, timeout=h.DEFAULT_WAIT):
    """SIGUSR1, then the counters connectd prints for the output called
    name (a dict), or None."""
    pat = STATS % re.escape(name)
    before = len(re.findall(pat, cd.stderr()))
    cd.usr1()
    if not h.wait_for(lambda: len(re.findall(pat, cd.stderr())) > before, timeout):
        return None
    m = list(re.finditer(pat, cd.stderr()))[-1]
    d = dict(zip(KEYS, (int(x) for x in m.groups()[:8])))
    d["connected"] = m.group(9) == "connected"
    return d


def settled_stats(cd, name, timeout=h.DEFAULT_WAIT):
    """sink_stats() once nothing is queued or in flight."""
    last = [None]

    def get():
        last[0] = sink_stats(cd, name)
        return last[0] if last[0] and last[0]["queued"] == 0 else None
    return h.wait_for(get, timeout, interval=0.2) or last[0]
