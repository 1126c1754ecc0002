#!/usr/bin/env python3
"""check_ab_report: tools/ab-report's pairing rule on made-up rounds, and one
short real run of it (tests/sim/CMakeLists.txt runs it; a few seconds).

    check_ab_report.py AB_REPORT FLOWQ_BENCH

Checks: the placement classes' bounds; that a round counts only when every
binary's probe fell in one class (mixed, unsteady and unknown rounds never
count); the medians, paired ratios, ranges and "faster" counts of the
summary; then a real run of two rounds comparing flowq_bench with itself on
two heap cases (exit 0, every run logged in the JSON with its probe, a ratio
per counted case) and its argument errors (exit 2). Exit 0, or 1 with the
failures.
"""

import json
import os
import subprocess
import sys
import tempfile

from toolmod import load_tool


def main():
    abr, binary = sys.argv[1], sys.argv[2]
    m = load_tool(abr, "ab_report")
    bad = []

    def check(cond, what):
        if not cond:
            bad.append(what)

    placement, summarize = m["placement"], m["summarize"]
    check(placement(None) is None, "no probe figure is unsteady")
    check(placement(40.0) == "fast", "40 ns is fast")
    check(placement(119.9) == "fast" and placement(120.0) == "slow",
          "the fast/slow bound is 120 ns")
    check(placement(799.0) == "slow" and placement(800.0) is None,
          "800 ns and above never count")

    # Three binaries, five rounds: two slow, one fast, one mixed, one
    # unsteady. Case "x" is missing from binary 2 in the fast round.
    rounds = [
        [("slow", {"x": 100.0, "y": 10.0}), ("slow", {"x": 90.0, "y": 12.0}),
         ("slow", {"x": 110.0, "y": 10.0})],
        [("slow", {"x": 200.0, "y": 20.0}), ("slow", {"x": 160.0, "y": 20.0}),
         ("slow", {"x": 180.0, "y": 30.0})],
        [("fast", {"x": 50.0, "y": 5.0}), ("fast", {"x": 40.0, "y": 5.0}),
         ("fast", {"y": 4.0})],
        [("fast", {"x": 1.0, "y": 1.0}), ("slow", {"x": 1.0, "y": 1.0}),
         ("slow", {"x": 1.0, "y": 1.0})],
        [(None, {"x": 1.0, "y": 1.0}), (None, {"x": 1.0, "y": 1.0}),
         (None, {"x": 1.0, "y": 1.0})],
    ]
    s = {(e["placement"], e["case"]): e for e in summarize(rounds, 3)}
    check(set(s) == {("slow", "x"), ("slow", "y"), ("fast", "y")},
          "counted cells: %s" % sorted(s))
    x = s.get(("slow", "x"))
    if x:
        check(x["rounds"] == 2, "slow x: 2 rounds")
        check(x["median_ns"] == [150.0, 125.0, 145.0], "slow x medians %s"
              % x["median_ns"])
        v1, v2 = x["vs_baseline"]
        check(abs(v1["median"] - 0.85) < 1e-9 and abs(v1["min"] - 0.8) < 1e-9
              and abs(v1["max"] - 0.9) < 1e-9 and v1["faster"] == 2,
              "slow x, binary 1: %s" % v1)
        check(abs(v2["min"] - 0.9) < 1e-9 and abs(v2["max"] - 1.1) < 1e-9
              and v2["faster"] == 1, "slow x, binary 2: %s" % v2)
    sy = s.get(("slow", "y"))
    if sy:
        check(sy["vs_baseline"][0]["faster"] == 0,
              "slow y, binary 1: ratios 1.2 and 1.0 are not faster: %s" % sy)
    y = s.get(("fast", "y"))
    if y:
        check(y["rounds"] == 1 and y["vs_baseline"][1]["faster"] == 1,
              "fast y: one round, binary 2 faster: %s" % y)

    # A real run: the binary against itself, two cheap single-thread cases.
    filt = "^BM_heap_(flowq_4ary|binary)/n:4$"
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "ab.json")
        r = subprocess.run([sys.executable, abr, "--rounds", "2", "--min-time",
                            "0.01", "--filter", filt, "--json", out, binary,
                            binary], capture_output=True, text=True, timeout=300)
        check(r.returncode == 0, "real run exit %d: %s" % (r.returncode,
                                                           r.stderr[-500:]))
        check("binaries: B0 = " in r.stdout, "real run prints the binaries")
        try:
            with open(out) as f:
                j = json.load(f)
            check(len(j["runs"]) == 4, "4 runs logged, got %d" % len(j["runs"]))
            for run in j["runs"]:
                check(set(run["ns_per_item"]) == {"BM_heap_flowq_4ary/n:4",
                                                  "BM_heap_binary/n:4"},
                      "each run has both cases: %s" % sorted(run["ns_per_item"]))
                check(all(v > 0 for v in run["ns_per_item"].values()),
                      "positive figures")
                check("transfer_ns" in run and "placement" in run,
                      "each run records its probe")
            for e in j["summary"]:
                check(len(e["vs_baseline"]) == 1 and e["vs_baseline"][0]["min"] > 0,
                      "one ratio per counted case: %s" % e)
        except (OSError, ValueError, KeyError) as e:
            bad.append("real run JSON: %s" % e)

        for argv, what in ((["--rounds", "0", binary, binary], "--rounds 0"),
                           ([binary], "one binary"),
                           ([os.path.join(d, "nope"), binary], "missing binary"),
                           (["--filter", "^no_such_case$", binary, binary],
                            "a filter matching nothing")):
            r = subprocess.run([sys.executable, abr] + argv, capture_output=True,
                               text=True, timeout=60)
            check(r.returncode == 2 and "ab-report:" in r.stderr,
                  "%s: exit %d, %r" % (what, r.returncode, r.stderr[-200:]))

    for b in bad:
        print("check_ab_report: " + b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
