#!/usr/bin/env python3
"""63-forward-apt.t: apt-get through connectd, against a Debian repository on loopback.

apt is the plain-HTTP client a proxy meets most on Debian machines: it
keeps its connection alive, pipelines requests, probes files that do not
exist (InRelease when the repository is not signed), and asks with
If-Modified-Since on the second update.  Here it talks to connectd with
Acquire::http::Proxy, and connectd forwards to a repository this test
builds: a .deb made with dpkg-deb, Packages from dpkg-scanpackages, a
Release file written here, served by http_util.FileOrigin (HTTP/1.1,
keep-alive on errors too, as a mirror does).  apt runs on a private
configuration (APT_CONFIG: no /etc/apt/apt.conf.d, its own sources.list
with [trusted=yes], state, cache and an empty dpkg status), so the
system's apt is untouched and nothing leaves the machine.

Expectations:
- apt-get update succeeds and lists the package; a second update gets
  304s for what did not change ("Hit:"), and succeeds;
- apt-get download fetches the .deb, which the mirror redirects (302,
  as a mirror network does) to another path on the same server: apt
  follows it through connectd, and the file's sha256 is the one built;
- apt-get download of a package whose .deb is missing from the pool
  fails with apt's 404 message, and connectd logs the 404;
- every line is valid JSON; each is a GET (scheme http) with status ==
  http_status, and the (method, path, status) lines are exactly the
  requests the repository answered, in the same multiset; url has no
  query and is the repository's URL of the path; user_agent starts
  with "Debian APT"; request_in_connection > 1 on some line (apt keeps
  its connection); the .deb's line counts its bytes in bytes_down, the
  302's line is a 302.
"""
import collections
import email.utils
import gzip
import hashlib
import os
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import http_util as hu
from tap import ok, is_, like, diag, done, skip_all

h.need_connectd()
for prog in ("apt-get", "dpkg-deb", "dpkg-scanpackages"):
    if not h.have(prog):
        skip_all("%s is not installed (packages apt, dpkg-dev)" % prog)
h.watchdog(100)
D = h.tmpdir()
PKG = "connectd-t-hello"
GONE = "connectd-t-gone"
PAYLOAD = h.pattern(300 * 1024, seed=b"apt-payload")
rc, ARCH, _ = h.run(["dpkg", "--print-architecture"], timeout=10)
ARCH = ARCH.strip() or "amd64"


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def build_deb(name, out):
    """A .deb with one incompressible file; returns its bytes."""
    root = os.path.join(D, "build-" + name)
    os.makedirs(os.path.join(root, "DEBIAN"))
    os.makedirs(os.path.join(root, "usr", "share", name))
    with open(os.path.join(root, "DEBIAN", "control"), "w") as f:
        f.write("Package: %s\nVersion: 1.0-1\nArchitecture: all\n"
                "Maintainer: connectd tests <t@connectd.test>\nSection: misc\n"
                "Priority: optional\nDescription: connectd test package\n"
                " made by t/63-forward-apt.t\n" % name)
    with open(os.path.join(root, "usr", "share", name, "payload.bin"), "wb") as f:
        f.write(PAYLOAD)
    rc, o, e = h.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, out],
                     timeout=60)
    if rc != 0:
        raise RuntimeError("dpkg-deb --build: %s" % e)
    with open(out, "rb") as f:
        return f.read()


def build_repo(top):
    """A Debian repository under top: dists/stable/main/binary-ARCH/Packages
    (and .gz), dists/stable/Release, pool/main/c/...; returns the .deb."""
    pool = os.path.join("pool", "main", "c")
    os.makedirs(os.path.join(top, pool))
    deb = build_deb(PKG, os.path.join(top, pool, "%s_1.0-1_all.deb" % PKG))
    gone = os.path.join(top, pool, "%s_1.0-1_all.deb" % GONE)
    build_deb(GONE, gone)
    rc, packages, err = h.run(["dpkg-scanpackages", "--multiversion", "pool", "/dev/null"],
                              timeout=60, cwd=top)
    if rc != 0 or "Package: %s\n" % PKG not in packages:
        raise RuntimeError("dpkg-scanpackages: %s" % err)
    os.unlink(gone)         # listed, but not in the pool: a 404
    moved = os.path.join(os.path.dirname(top), "moved")
    os.makedirs(moved)
    os.rename(os.path.join(top, pool, "%s_1.0-1_all.deb" % PKG),
              os.path.join(moved, "%s_1.0-1_all.deb" % PKG))
    rel = "main/binary-%s/Packages" % ARCH
    d = os.path.join(top, "dists", "stable")
    os.makedirs(os.path.join(d, os.path.dirname(rel)))
    files = {rel: packages.encode(), rel + ".gz": gzip.compress(packages.encode(), mtime=0)}
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    release = ["Origin: connectd-t", "Label: connectd-t", "Suite: stable",
               "Codename: stable", "Date: %s" % email.utils.formatdate(usegmt=True),
               "Architectures: %s all" % ARCH, "Components: main",
               "Description: t/63-forward-apt.t", "SHA256:"]
    release += [" %s %d %s" % (sha256(data), len(data), name)
                for name, data in sorted(files.items())]
    with open(os.path.join(d, "Release"), "w") as f:
        f.write("\n".join(release) + "\n")
    return deb


repo = os.path.join(D, "www")
deb = build_repo(os.path.join(repo, "debian"))
diag("the .deb: %d bytes, sha256 %s" % (len(deb), sha256(deb)))

DEB_PATH = "/debian/pool/main/c/%s_1.0-1_all.deb" % PKG
MOVED_PATH = "/moved/%s_1.0-1_all.deb" % PKG
web = hu.FileOrigin(repo, special={
    DEB_PATH: lambda hd: (302, [("Location", web.url(MOVED_PATH))], b"")})
answered = web.answered         # (method, path, status), as the mirror answered
BASE = web.url("/debian")

# apt's private world
A = os.path.join(D, "apt")
for sub in ("etc/apt.conf.d", "etc/preferences.d", "etc/trusted.gpg.d", "state/lists/partial",
            "cache/archives/partial", "dl"):
    os.makedirs(os.path.join(A, sub))
open(os.path.join(A, "status"), "w").close()
with open(os.path.join(A, "etc", "sources.list"), "w") as f:
    f.write("deb [trusted=yes] %s stable main\n" % BASE)
APT_CONFIG = h.tmpfile("apt.conf", "\n".join([
    'Dir::Etc::Parts "%s/etc/apt.conf.d";' % A,
    'Dir::Etc::Main "/dev/null";',
    'Dir::Etc::SourceList "%s/etc/sources.list";' % A,
    'Dir::Etc::SourceParts "/dev/null";',
    'Dir::Etc::Preferences "/dev/null";',
    'Dir::Etc::PreferencesParts "%s/etc/preferences.d";' % A,
    'Dir::Etc::Trusted "/dev/null";',
    'Dir::Etc::TrustedParts "%s/etc/trusted.gpg.d";' % A,
    'Dir::State "%s/state";' % A,
    'Dir::State::status "%s/status";' % A,
    'Dir::Cache "%s/cache";' % A,
    'Dir::Log "%s";' % A,
    'Debug::NoLocking "1";',
    'APT::Sandbox::User "root";',
    'Acquire::Languages "none";',
    'Acquire::Retries "0";',
    'Acquire::http::Timeout "%d";' % int(20 * h.SLOW),
    ""]))


def apt(cd, *args):
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(APT_CONFIG=APT_CONFIG, LC_ALL="C", DEBIAN_FRONTEND="noninteractive")
    argv = ["apt-get", "-o", "Acquire::http::Proxy=http://127.0.0.1:%d/" % cd.port,
            "-o", "Dir::Etc::SourceList=%s/etc/sources.list" % A,
            "-o", "Dir::Etc::SourceParts=/dev/null", "-o", "Dir::State=%s/state" % A,
            "-o", "Dir::Cache=%s/cache" % A, "-o", "Debug::NoLocking=1",
            "-o", "APT::Sandbox::User=root"] + list(args)
    rc, out, err = h.run(argv, timeout=60, env=env, cwd=os.path.join(A, "dl"))
    if rc != 0:
        diag("apt-get %s: rc %r\n%s%s" % (" ".join(args), rc, out[-1500:], err[-1500:]))
    return rc, out, err


with h.Connectd({}) as cd:
    # --- update, twice
    rc, out, err = apt(cd, "update")
    is_(rc, 0, "apt-get update through connectd succeeds")
    ok("Err:" not in out and "W:" not in err and "E:" not in err,
       "... with no error or warning from apt")
    like(out, r"Get:\d+ %s stable/main %s Packages" % (BASE, ARCH),
         "... and it got the Packages index")
    n1 = len(cd.wait_idle())
    rc, out, err = h.run(["apt-cache", "policy", PKG],
                         env=dict(os.environ, APT_CONFIG=APT_CONFIG, LC_ALL="C"), timeout=30)
    like(out, r"Candidate: 1\.0-1", "apt-cache knows %s 1.0-1 from the repository" % PKG)

    rc, out, err = apt(cd, "update")
    is_(rc, 0, "a second apt-get update succeeds")
    like(out, r"Hit:\d+ %s stable" % BASE, "... with a Hit: (If-Modified-Since, 304)")
    n2 = len(cd.wait_idle())

    # --- download
    rc, out, err = apt(cd, "download", PKG)
    is_(rc, 0, "apt-get download %s through connectd" % PKG)
    got = os.path.join(A, "dl", "%s_1.0-1_all.deb" % PKG)
    data = open(got, "rb").read() if os.path.exists(got) else b""
    is_(sha256(data), sha256(deb), "the downloaded .deb has the sha256 built")
    rc, out, err = h.run(["dpkg-deb", "--fsys-tarfile", got], timeout=30)
    ok(rc == 0, "... and dpkg-deb reads it")

    # --- a 404
    rc, out, err = apt(cd, "download", GONE)
    ok(rc not in (0, None), "apt-get download of a .deb missing from the pool fails")
    like(out + err, r"Failed to fetch \S+%s_\S+\s+404\b" % GONE, "... with the mirror's 404")
    lines = cd.wait_idle()
    valid = h.all_valid_json(cd.log)

is_(len(valid), len(answered), "one log line for each request the mirror answered (%d)"
    % len(answered))
prefix = "http://%s" % web.authority
logged = collections.Counter(
    (x.get("method"), str(x.get("url"))[len(prefix):] if str(x.get("url")).startswith(prefix)
     else x.get("url"), x.get("status")) for x in valid)
is_(sorted(logged.items()), sorted(collections.Counter(answered).items()),
    "the logged (method, path, status) are what the mirror answered")
for a in sorted(set(answered)):
    diag("  mirror: %s %s %d" % a)
ok(all(x.get("method") == "GET" and x.get("scheme") == "http" for x in valid),
   "every line is a GET, scheme http")
ok(all(x.get("status") == x.get("http_status") for x in valid),
   "status == http_status on every line")
ok(all("?" not in str(x.get("url")) for x in valid), "no url has a query")
ok(all(x.get("host") == "127.0.0.1" and x.get("port") == web.port and
       x.get("authority") == web.authority for x in valid),
   "host, port and authority are the mirror's")
uas = sorted(set(str(x.get("user_agent")) for x in valid))
ok(uas and all(u.startswith("Debian APT") for u in uas),
   "user_agent starts with Debian APT (%s)" % ", ".join(uas))
ric = [x.get("request_in_connection", 0) for x in valid]
ok(max(ric or [0]) > 1, "apt kept its connection: request_in_connection up to %d"
   % max(ric or [0]))

statuses = collections.Counter(x.get("status") for x in valid[:n1])
ok(statuses[200] >= 2, "first update: 200s for Release and the Packages index (%r)"
   % dict(statuses))
ok(statuses[404] >= 1, "first update: the 404 of InRelease (not signed) is logged as 404")
ok(any(x.get("status") == 304 and x.get("url", "").endswith("/Release")
       for x in valid[n1:n2]),
   "second update: Release 304 Not Modified, logged as 304")
redirs = [x for x in valid if x.get("url") == web.url(DEB_PATH)]
ok(len(redirs) == 1 and redirs[0].get("status") == 302,
   "the .deb's pool URL: one line, 302 (%r)" % [x.get("status") for x in redirs])
debs = [x for x in valid if x.get("url") == web.url(MOVED_PATH)]
ok(len(debs) == 1 and debs[0].get("status") == 200 and
   debs[0].get("bytes_down", 0) > len(deb),
   "where it moved: one line, 200, bytes_down (%r) covers its %d bytes"
   % ([x.get("bytes_down") for x in debs], len(deb)))
ok(redirs and debs and redirs[0].get("client_port") == debs[0].get("client_port"),
   "apt followed the redirect on the same connection to connectd")
gone = [x for x in valid if str(x.get("url")).endswith("/%s_1.0-1_all.deb" % GONE)]
ok(gone and all(x.get("status") == 404 and x.get("http_status") == 404 for x in gone),
   "the missing .deb: logged 404")
closes = sorted(set(str(x.get("close")) for x in valid))
diag("close values: %s" % ", ".join(closes))
done()
