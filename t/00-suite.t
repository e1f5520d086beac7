#!/usr/bin/env python3
"""00-suite.t: the suite is complete.

make check runs the files listed in t/local.mk (T_SCENARIOS, passed in as
T_LISTED).  A t/*.t missing from that list would silently never run, and
a listed file that does not exist would be an error: both fail here.
The few too slow for every make check are listed apart, each run by a
target of its own (T_IMAGE: make check-image, passed in as
T_OWN_TARGET): they count as listed, and must not be in both lists."""
import os
import sys
sys.path.insert(0, os.path.join(os.environ.get("T_SRCDIR", os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness as h
from tap import is_, done, skip_all

listed = os.environ.get("T_LISTED")
if listed is None:
    skip_all("T_LISTED is not set (run through make check)")
listed = [os.path.basename(t) for t in listed.split()]
apart = [os.path.basename(t) for t in os.environ.get("T_OWN_TARGET", "").split()]
present = sorted(f for f in os.listdir(h.srcdir()) if f.endswith(".t"))
is_(sorted(set(present) - set(listed) - set(apart)), [], "every t/*.t is listed in t/local.mk")
is_(sorted(set(listed + apart) - set(present)), [], "every test listed in t/local.mk exists")
is_(listed, sorted(listed), "t/local.mk lists them in order, once each")
is_(sorted(set(listed) & set(apart)), [],
    "none of those with a target of their own (%s) is in make check's list" % " ".join(apart))
done()
