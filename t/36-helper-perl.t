#!/usr/bin/env python3
"""36-helper-perl.t: a small Perl helper in the style of the one we replace.

The helper (Squid-compatible, no concurrency, one request at a time) maps
two addresses to pod JSON from a table and answers ERR for anything
else; it appends every request line to a file.  connectd uses it for
logging and, through `acl perl_ok external perl allowed`, for the access
decision (the helper answers OK to `IP allowed` only for known pods).
Expectations:
  - requests are exactly "IP -" for logging and "IP allowed" for the acl
    (Squid 5.7's %DATA rule);
  - 127.0.1.1 / 127.0.1.2: the tunnel works (the acl waited for the
    helper's OK) and the line's pod is the table's JSON, byte for byte
    after Squid unquoting (a value with a quote and a backslash);
  - 127.0.1.3 (unknown): ERR -> 403, the line has "pod": null and
    pod_error "err" (the helper answered, and does not know the client:
    every null pod with a helper running says why, connectd.conf(5)).
"""
import os
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
import helper_util as hu
from tap import ok, is_, diag, done, skip_all

h.need_connectd()
if not hu.perl_ok():
    skip_all("perl not installed")
h.watchdog(60)
echo = h.EchoServer(backlog=32)
reqlog = h.tmpfile("requests.log")

PERL = r'''#!/usr/bin/perl
# podmeta-helper.pl: client IP -> pod JSON, as an external_acl_type helper
use strict;
use warnings;
$| = 1;
my $log = shift @ARGV;
my %pods = (
    '127.0.1.1' => '{"namespace":"ci","pod":"runner-1","note":"say \"hi\" \\\\ bye"}',
    '127.0.1.2' => '{"namespace":"ci","pod":"runner-2"}',
);
while (my $line = <STDIN>) {
    chomp $line;
    open(my $fh, '>>', $log) or die "cannot open $log: $!";
    print $fh "$line\n";
    close($fh);
    my ($ip, @data) = split / /, $line;
    $ip =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/eg;
    my $json = $pods{$ip};
    if (!defined $json) {
        print "ERR message=unknown\n";
        next;
    }
    if (@data && $data[0] ne '-' && $data[0] ne 'allowed') {
        print "ERR\n";
        next;
    }
    (my $q = $json) =~ s/(["\\])/\\$1/g;
    print "OK log=\"$q\"\n";
}
'''
prog = hu.script("podmeta-helper.pl", PERL)
conf = ("external_acl_type perl ttl=60 %%SRC %s %s\n"
        "acl perl_ok external perl allowed\n"
        "http_access allow perl_ok\n"
        "http_access deny all\n" % (prog, reqlog))
with h.Connectd(conf) as cd:
    res = {}
    for i in (1, 2, 3):
        c = hu.Client(cd.port, echo.authority, src=hu.pod_ip(i))
        res[i] = (c.status, c.echo(b"q") if c.status == 200 else None)
        c.close()
    is_(res[1], (200, b"q"), "127.0.1.1: allowed by the helper, tunnel works")
    is_(res[2], (200, b"q"), "127.0.1.2: allowed by the helper, tunnel works")
    is_(res[3][0], 403, "127.0.1.3: the helper says ERR, denied")
    lines = cd.wait_lines(3)
    got = {x["client_ip"]: x for x in lines}
    is_(got.get("127.0.1.1", {}).get("pod"),
        {"namespace": "ci", "pod": "runner-1", "note": 'say "hi" \\ bye'},
        "127.0.1.1: the pod JSON, quotes and backslash intact")
    is_(got.get("127.0.1.2", {}).get("pod"), {"namespace": "ci", "pod": "runner-2"},
        "127.0.1.2: the pod JSON")
    x3 = got.get("127.0.1.3", {})
    is_((x3.get("pod"), x3.get("pod_error"), x3.get("status")), (None, "err", 403),
        "127.0.1.3: pod null, pod_error err (an ERR answer), 403")
    with open(reqlog) as f:
        reqs = sorted(set(f.read().splitlines()))
    is_(reqs, sorted(["127.0.1.%d %s" % (i, d) for i in (1, 2, 3) for d in ("-", "allowed")]),
        "request lines: 'IP -' for the log, 'IP allowed' for the acl")
    h.all_valid_json(cd.log)
    hu.diag_stderr(sys.modules["tap"], cd)
done()
