#!/usr/bin/env python3
"""check_coverage: tools/coverage's report on a program whose coverage is known
(tests/sim/CMakeLists.txt runs it; about a second).

    check_coverage.py COVERAGE_TOOL CC

Builds a small C program with CC --coverage into two objects that share a
header (so one file is counted from two objects), runs it once, and checks
tools/coverage --report-only on it: the executable lines, lines run, branches
taken and functions of each file; that a header line run by only one of its
two objects counts as run; the --uncovered listing names exactly the lines
that did not run; the --json figures equal the table's; and that a build
tree with no counts is an error. Exit 0, or 1 with the failures; 77 (CTest
skip) when CC is not gcc.
"""

import json
import os
import subprocess
import sys
import tempfile

HEADER = """\
static inline int
twice(int x)
{
	if (x > 100)
		return -1; /* only a.c passes more than 100 */
	return 2 * x;
}
"""

A_C = """\
#include "shared.h"
int b_side(int x);

static int
unused(void)
{
	return 7; /* never called */
}

int
main(int argc, char **argv)
{
	(void)argv;
	int r = twice(argc + 200) + b_side(argc);
	if (argc > 5)
		r += unused(); /* not run: one argument */
	return r == 1 ? 0 : 1;
}
"""

B_C = """\
#include "shared.h"

int
b_side(int x)
{
	return twice(x); /* x = 1: twice's first return not run here */
}
"""


def main():
    tool, cc = sys.argv[1], sys.argv[2]
    ver = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    if "Free Software Foundation" not in ver and "gcc" not in ver.lower():
        print("check_coverage: %s is not gcc; skipped" % cc)
        return 77
    bad = []

    def check(cond, what):
        if not cond:
            bad.append(what)

    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        build = os.path.join(tmp, "build")
        empty = os.path.join(tmp, "empty")
        for d in (src, build, empty):
            os.mkdir(d)
        for name, text in (("shared.h", HEADER), ("a.c", A_C), ("b.c", B_C)):
            with open(os.path.join(src, name), "w") as f:
                f.write(text)
        objs = []
        for name in ("a", "b"):
            obj = os.path.join(build, name + ".o")
            subprocess.run([cc, "--coverage", "-O0", "-c", os.path.join(src, name + ".c"),
                            "-o", obj], check=True, cwd=build)
            objs.append(obj)
        exe = os.path.join(build, "prog")
        subprocess.run([cc, "--coverage", "-o", exe] + objs, check=True, cwd=build)
        rc = subprocess.run([exe], cwd=build).returncode
        check(rc == 0, "the test program itself failed (exit %d)" % rc)

        jpath = os.path.join(tmp, "cov.json")
        r = subprocess.run([tool, "--report-only", "--build-dir", build, "--source-root", tmp,
                            "--prefix", "src", "--uncovered", r"\.(c|h)$", "--json", jpath],
                           capture_output=True, text=True)
        check(r.returncode == 0, "tools/coverage exit %d: %s" % (r.returncode, r.stderr))
        out = r.stdout
        with open(jpath) as f:
            j = json.load(f)
        files = j.get("files", {})
        check(sorted(files) == ["src/a.c", "src/b.c", "src/shared.h"],
              "files reported: %s" % sorted(files))

        h = files.get("src/shared.h", {})
        # twice(): 4 executable lines (header, if, two returns); every one
        # ran in some object (a.c took the > 100 return, b.c the other).
        check(h.get("lines_run") == h.get("lines") and h.get("lines", 0) >= 3,
              "shared.h: a line run by either object counts as run: %s" % h)
        check(h.get("branches") == 2 and h.get("branches_taken") == 2,
              "shared.h: both outcomes of x > 100 taken across objects: %s" % h)

        a = files.get("src/a.c", {})
        check(a.get("functions") == 2 and a.get("functions_run") == 1,
              "a.c: main run, unused not: %s" % a)
        check(a.get("lines", 0) - a.get("lines_run", 0) == 3,
              "a.c: three lines not run (unused's header and return, r += unused()): %s" % a)
        check(a.get("branches") == 2 and a.get("branches_taken") == 1,
              "a.c: argc > 5 taken one way: %s" % a)

        b = files.get("src/b.c", {})
        check(b.get("lines") == b.get("lines_run") and b.get("functions_run") == 1,
              "b.c: all run: %s" % b)

        tot = j.get("total", {})
        check(tot.get("lines") == sum(f["lines"] for f in files.values()),
              "total lines are the files' sum: %s" % tot)
        check("total" in out and "src/a.c" in out, "the table names the files and the total")

        listed = [ln for ln in out.splitlines() if ln.startswith("    ") and "|" in ln]
        texts = [ln.split("|", 1)[1].strip() for ln in listed]
        check(any("return 7;" in t for t in texts), "--uncovered lists unused()'s return")
        check(any("r += unused();" in t for t in texts), "--uncovered lists the untaken branch")
        check(not any("return 2 * x;" in t or "return -1;" in t for t in texts),
              "--uncovered lists no header line (each ran in one object): %s" % texts)
        check("src/b.c: " not in out, "b.c has nothing to list")
        check("src/a.c: 3 lines not run" in out, "a.c's listing counts its three lines")

        r = subprocess.run([tool, "--report-only", "--build-dir", empty, "--source-root", tmp,
                            "--prefix", "src"], capture_output=True, text=True)
        check(r.returncode != 0 and "no .gcda" in r.stderr,
              "a tree without counts is an error: exit %d, %r" % (r.returncode, r.stderr))

    for b in bad:
        print("check_coverage: FAIL: " + b)
    if not bad:
        print("check_coverage: ok")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
