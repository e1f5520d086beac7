"""tap.py: a minimal TAP producer for the t/*.t scenarios (run by automake's TAP driver)."""
import json
import sys

_count = 0
_failed = 0


def plan(n):
    print("1..%d" % n, flush=True)


def ok(cond, name=""):
    global _count, _failed
    _count += 1
    if not cond:
        _failed += 1
    print("%sok %d - %s" % ("" if cond else "not ", _count, name), flush=True)
    return bool(cond)


def skip(reason, count=1):
    """Count tests as skipped ("ok N # skip reason")."""
    global _count
    for _ in range(count):
        _count += 1
        print("ok %d # skip %s" % (_count, reason), flush=True)


def sanitized(binary):
    """True if binary was built with AddressSanitizer (its memory figures mean little)."""
    try:
        with open(binary, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def diag(msg):
    for line in str(msg).splitlines() or [""]:
        print("# " + line, flush=True)


def is_(got, want, name=""):
    res = ok(got == want, name)
    if not res:
        diag("     got: %r" % (got,))
        diag("expected: %r" % (want,))
    return res


def like(got, pattern, name=""):
    import re
    res = ok(got is not None and re.search(pattern, got) is not None, name)
    if not res:
        diag("     got: %r" % (got,))
        diag("expected to match: %r" % (pattern,))
    return res


def json_lines(text):
    """Parse every non-empty line as JSON; a bad line fails the test."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError as e:
            ok(False, "log line is valid JSON: %r (%s)" % (line[:200], e))
    return out


def skip_all(reason):
    """Skip the whole file; once test points have run, skip the rest
    (a plan of 0 after them is an error to the TAP driver)."""
    if _count:
        skip(reason)
        done()
    print("1..0 # SKIP %s" % reason, flush=True)
    sys.exit(0)


def done():
    """Print the plan at the end (done_testing) and exit with the failure count."""
    print("1..%d" % _count, flush=True)
    sys.exit(min(_failed, 254))
