#!/usr/bin/env python3
"""Summarises `perf script -F comm,tid,ip,sym --no-inline` output (from `perf record --call-graph
dwarf`) of one forwarder run: where the CPU time goes.

  perf script -i CASE.perf.data -F comm,tid,ip,sym --no-inline | perf_top.py [--top N]

Prints three lists, each as a share of all samples:
  self       the function the sample was in (leaf);
  leaf <- caller   the leaf and the nearest siem_forwarder function above it (who pays for a
             memmove or a from_utf8);
  inclusive  siem_forwarder and dependency functions anywhere on the stack.
"""
import argparse
import collections
import re
import sys

CRATES = ("siem_forwarder", "miniz_oxide", "flate2", "rustls", "ring", "lz4_flex", "hyper", "reqwest", "tokio_rustls")


def short(symbol):
    return re.sub(r"<.*?>", "", symbol)[:110]


def stacks(lines):
    current = []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if current:
                yield current
            current = []
        elif line[:1] in ("\t", " "):
            parts = line.strip().split(None, 1)
            current.append(parts[1] if len(parts) > 1 else "?")
        else:
            current = []
    if current:
        yield current


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    leaf, pair, inclusive = collections.Counter(), collections.Counter(), collections.Counter()
    total = 0
    for stack in stacks(sys.stdin):
        total += 1
        leaf[short(stack[0])] += 1
        caller = next((short(f) for f in stack[1:] if "siem_forwarder" in f), "-")
        pair[(short(stack[0]), caller)] += 1
        seen = set()
        for frame in stack:
            if any(crate in frame for crate in CRATES):
                name = short(frame)
                if name not in seen:
                    seen.add(name)
                    inclusive[name] += 1
    if not total:
        print("no samples")
        return 1
    print("samples: %d" % total)
    print("-- self")
    for name, count in leaf.most_common(args.top):
        print("%6.1f%%  %s" % (100.0 * count / total, name))
    print("-- leaf <- nearest siem_forwarder caller")
    for (name, caller), count in pair.most_common(args.top):
        print("%6.1f%%  %s  <-  %s" % (100.0 * count / total, name, caller))
    print("-- inclusive")
    for name, count in inclusive.most_common(args.top + 10):
        print("%6.1f%%  %s" % (100.0 * count / total, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
