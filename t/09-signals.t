#!/usr/bin/env python3
"""09-signals.t: reload, log reopen, shutdown and the command line.

- SIGHUP with a changed file (a new logformat and a second access_log)
  keeps an established tunnel working, and new tunnels use the new file.
- SIGHUP with a broken file is refused with FILE:LINE on stderr; the old
  configuration keeps working.
- SIGUSR1 reopens a file log after it was renamed (logrotate); no line is
  lost.
- SIGTERM with open tunnels logs each with close "shutdown", closes the
  clients, and exits 0.
- `connectd -t -f FILE` checks a file (0 when good, non-zero with FILE:LINE
  when bad); `connectd -V` prints the version."""
import os
import re
import signal
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import ok, is_, like, diag, done

h.need_connectd()
h.watchdog(90)
D = h.tmpdir()
SHORT = os.path.join(D, "short.log")
CONF1 = ("http_port 127.0.0.1:{port}\n"
         "# first configuration: json to stdout\n"
         "access_log stdio:/dev/stdout\n")
CONF2 = CONF1 + ("logformat short %rm %ru %>Hs\n"
                 "access_log stdio:" + SHORT + " short\n")
BAD_LINE = "frobnicate_timeout 3 seconds"
CONF3 = CONF2 + "read_timeout 1 minute\n" + BAD_LINE + "\n"     # line 7 is bad
BAD_LINENO = CONF3.count("\n")
CHECK_BAD = "http_port 127.0.0.1:1\nconnect_timeout 3 parsecs\n"  # line 2 is bad

echo = h.EchoServer()


def echo_tunnel(port):
    c = h.tunnel(port, echo.authority)
    c.send(b"ping")
    got = c.recv_exact(4)
    c.close()
    return got == b"ping", c.local_port


with h.Connectd(CONF1) as cd:
    # --- SIGHUP with a new logformat
    t1 = h.tunnel(cd.port, echo.authority)
    t1.send(b"one")
    is_(t1.recv_exact(3), b"one", "tunnel 1 works before the reload")
    cd.write_conf(CONF2)
    cd.hup()
    short = h.JsonLog(SHORT)
    made = []

    def new_tunnel_in_short():
        made.append(echo_tunnel(cd.port))
        return short.wait_raw(1, timeout=0.3) or None
    h.wait_for(new_tunnel_in_short, timeout=10, interval=0.1)
    raws = short.raw_lines()
    ok(raws, "after SIGHUP, new tunnels are logged with the new logformat")
    like(raws[0] if raws else "", r"^CONNECT %s 200$" % re.escape(echo.authority),
         "the new format's line: %rm %ru %>Hs")
    ok(all(m[0] for m in made), "tunnels opened around the reload work")
    t1.send(b"two")
    is_(t1.recv_exact(3), b"two", "tunnel 1 still works after the reload")
    t1.close()
    line = cd.wait_client(t1.local_port)
    h.check_record(line, {"status": 200, "bytes_up": 6, "bytes_down": 6},
                   prefix="tunnel 1 across the reload: ")

    # --- SIGHUP with a broken file
    cd.write_conf(CONF3)
    cd.hup()
    m = cd.wait_stderr(r"%s:%d\b" % (re.escape(cd.conf_path), BAD_LINENO))
    ok(m, "a broken file on SIGHUP is refused with FILE:LINE on stderr (%s:%d)" % (cd.conf_path, BAD_LINENO))
    if not m:
        diag("stderr: " + cd.stderr()[-1000:])
    like(cd.stderr(), re.escape("frobnicate_timeout"), "the message quotes the bad directive")
    ok(cd.proc.poll() is None, "connectd keeps running")
    n_short = len(short.raw_lines())
    good, port = echo_tunnel(cd.port)
    ok(good, "a new tunnel works after the refused reload")
    ok(short.wait_raw(n_short + 1, timeout=5)[n_short:],
       "... and is logged by the old (second) configuration")

    # --- SIGUSR1 reopens a renamed log
    os.rename(SHORT, SHORT + ".1")
    rotated = h.JsonLog(SHORT + ".1")
    before = len(rotated.raw_lines())
    cd.usr1()
    made = []

    def reopened():
        made.append(echo_tunnel(cd.port))
        h.wait_for(lambda: len(rotated.raw_lines()) + len(short.raw_lines()) >= before + len(made), 2)
        return short.raw_lines()
    h.wait_for(reopened, timeout=10, interval=0.1)
    ok(os.path.exists(SHORT) and short.raw_lines(), "after SIGUSR1 the log file is reopened under its name")
    is_(len(rotated.raw_lines()) - before + len(short.raw_lines()), len(made),
        "every tunnel around the reopen is logged once (%d)" % len(made))

    # --- SIGTERM with open tunnels
    open_tunnels = []
    for i in range(2):
        c = h.tunnel(cd.port, echo.authority)
        c.send(b"x")
        c.recv_exact(1)
        open_tunnels.append(c)
    cd.term()
    rc = cd.wait_exit(timeout=15)
    is_(rc, 0, "SIGTERM with open tunnels: exit 0")
    for c in open_tunnels:
        rest, how = c.read_to_eof(timeout=5)
        ok(how in ("eof", "reset"), "client of an open tunnel sees the close (%s)" % how)
        line = cd.wait_client(c.local_port, timeout=2)
        h.check_record(line, {"close": "shutdown", "status": 200, "bytes_up": 1, "bytes_down": 1},
                       prefix="open tunnel at SIGTERM: ")
    h.all_valid_json(cd.log)

# --- SIGINT is SIGTERM
with h.Connectd(CONF1, name="sigint") as cd:
    c = h.tunnel(cd.port, echo.authority)
    c.send(b"i")
    c.recv_exact(1)
    cd.proc.signal(signal.SIGINT)
    is_(cd.wait_exit(timeout=15), 0, "SIGINT with an open tunnel: exit 0")
    line = cd.wait_client(c.local_port, timeout=2)
    h.check_record(line, {"close": "shutdown"}, prefix="open tunnel at SIGINT: ")
    c.close()

# --- the command line
good = h.tmpfile("good.conf", CONF2.replace("{port}", str(h.free_port())))
bad = h.tmpfile("bad.conf", CHECK_BAD)
rc, out, err = h.run([h.connectd_bin(), "-t", "-f", good], timeout=10)
is_(rc, 0, "connectd -t -f good.conf exits 0")
if rc:
    diag(err)
rc, out, err = h.run([h.connectd_bin(), "-t", "-f", bad], timeout=10)
ok(rc not in (0, None), "connectd -t -f bad.conf exits non-zero (%r)" % rc)
like(err, r"%s:2\b" % re.escape(bad), "... with FILE:LINE on stderr")
rc, out, err = h.run([h.connectd_bin(), "-t", "-f", os.path.join(D, "missing.conf")], timeout=10)
ok(rc not in (0, None), "connectd -t -f missing.conf exits non-zero (%r)" % rc)
rc, out, err = h.run([h.connectd_bin(), "-V"], timeout=10)
is_(rc, 0, "connectd -V exits 0")
like(out + err, r"\bconnectd\b.*\b\d+\.\d+\.\d+\b", "connectd -V prints its name and version")
done()
