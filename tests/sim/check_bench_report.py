#!/usr/bin/env python3
"""check_bench_report: tools/bench-report's case filters against the cases
flowq_bench registers (tests/sim/CMakeLists.txt runs it; no benchmark runs).

    check_bench_report.py BENCH_REPORT FLOWQ_BENCH

Checks, for every suite: the default, --full and --quick filters each
select cases; default and --quick are inside --full; the default keeps
every family a table shows and, for every flowq cell it selects, that
cell's peer (a table never loses the other half of a ratio); the default
leaves out the 10^6-member policy and heap cases and the engine's Zipf
cells at F = 50 000, and --full has them. Exit 0, or 1 with the failures.
"""

import re
import subprocess
import sys

from toolmod import load_tool


def main():
    br, binary = sys.argv[1], sys.argv[2]
    mod = load_tool(br, "bench_report")
    names = subprocess.run([binary, "--benchmark_list_tests"], check=True,
                           capture_output=True, text=True).stdout.split()
    bad = []

    def select(regex):
        r = re.compile(regex)
        return {n for n in names if r.search(n)}

    for s in mod["SUITES"]:
        full, dflt, quick = select(s.full), select(s.default), select(s.quick)
        for what, sel in (("default", dflt), ("full", full), ("quick", quick)):
            if not sel:
                bad.append("%s: the %s filter selects nothing" % (s.name, what))
        if not dflt <= full:
            bad.append("%s: default cases outside --full: %s" %
                       (s.name, sorted(dflt - full)[:3]))
        if not quick <= full:
            bad.append("%s: --quick cases outside --full: %s" %
                       (s.name, sorted(quick - full)[:3]))
        parsed = {}
        for n in dflt:
            p = mod["parse_name"](n)
            if p:
                parsed.setdefault(p[0], set()).add(p[1])
        for v in s.variants:
            for fam in (v.flowq, v.peer):
                if fam not in parsed:
                    bad.append("%s: the default runs no BM_%s" % (s.name, fam))
            for key in parsed.get(v.flowq, ()):
                if v.only(key) and v.peer_key(key) not in parsed.get(v.peer, ()):
                    bad.append("%s: BM_%s %s without its peer cell" %
                               (s.name, v.flowq, key))
    every = {n for s in mod["SUITES"] for n in select(s.default)}
    full = {n for s in mod["SUITES"] for n in select(s.full)}
    left = [r"^BM_policy_.*/flows:1000000$", r"^BM_heap_.*/n:1000000$",
            r"^BM_(engine_(e2e|rr_e2e|edf_e2e)|gie_style_e2e)/.*/flows:50000/dist:1/"]
    for regex in left:
        r = re.compile(regex)
        if any(r.search(n) for n in every):
            bad.append("the default runs %s" % regex)
        if not any(r.search(n) for n in full):
            bad.append("--full does not run %s" % regex)
    for line in bad:
        print("check_bench_report: " + line)
    print("check_bench_report: %d cases; default %d, full %d; %s" % (
        len(names), len(every), len(full), "FAILED" if bad else "ok"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
