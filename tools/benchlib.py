"""benchlib: what tools/mpsc-report, tools/engine-report and tools/bench-report share.

Running flowq_bench with JSON output, grouping its repetitions into cells,
medians and spreads, ratios, and telling how busy the machine was while the
benchmark ran (on the shared 2-vCPU hosts a busy neighbour changes absolute
figures 2-5x; ratios within one run survive it, perf-anchors.md section 0).

Python 3 standard library only. The report scripts import it from their own
directory (tools/).
"""

import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time


def die(prog, msg, code=2):
    """Print "prog: msg" to stderr and exit with @code."""
    print("%s: %s" % (prog, msg), file=sys.stderr)
    sys.exit(code)


def to_ns(value, unit):
    """A Google Benchmark time in @unit ("ns", "us", "ms", "s") in ns."""
    return value * {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}.get(unit, 1.0)


class Cell:
    """All repetitions of one case: its rates and, by name, its counters."""

    def __init__(self):
        self.rates = []  # items/s of every repetition that did not error
        self.stalls = 0
        self.errors = []
        self.cpu_share = []  # benchmark thread CPU time / wall time
        self.counters = {}  # counter name -> values, one per repetition

    @property
    def runs(self):
        return len(self.rates) + len(self.errors)

    def median(self):
        """Median items/s, or None if no repetition produced a figure."""
        return statistics.median(self.rates) if self.rates else None

    def spread(self):
        """(max - min) / median of the repetitions, or None."""
        m = self.median()
        if not m or len(self.rates) < 2:
            return None
        return (max(self.rates) - min(self.rates)) / m

    def usable(self):
        return bool(self.rates)

    def counter(self, name):
        """Median of counter @name over the repetitions, or None."""
        v = self.counters.get(name)
        return statistics.median(v) if v else None

    def add(self, bench, counters=(), need_rate=True):
        """Add one repetition (a JSON benchmark entry); keep @counters.
        Without items_per_second the entry is an error, unless @need_rate
        is false (a case that reports only counters)."""
        if bench.get("error_occurred"):
            self.errors.append(bench.get("error_message", "error"))
            return
        rate = bench.get("items_per_second")
        if rate is None and need_rate:
            self.errors.append("no items_per_second")
            return
        if rate is not None:
            self.rates.append(float(rate))
        if bench.get("real_time"):
            self.cpu_share.append(float(bench.get("cpu_time", 0)) /
                                  float(bench["real_time"]))
        if bench.get("stalled", 0) >= 0.5:
            self.stalls += 1
        for name in counters:
            if name in bench:
                self.counters.setdefault(name, []).append(float(bench[name]))


def ratio(a, b):
    """Median rate of Cell @a over Cell @b, or None if either lacks one."""
    if a is None or b is None or not a.usable() or not b.usable():
        return None
    ma, mb = a.median(), b.median()
    return ma / mb if mb > 0 else (math.inf if ma > 0 else None)


def fmt_ratio(r):
    if r is None:
        return "n/a"
    if math.isinf(r):
        return "inf"
    return ("%.2fx" % r) if r < 100 else ("%.0fx" % r)


def fmt_ns(x):
    """12345.6 -> "12.3us"; None -> "-"."""
    if x is None:
        return "-"
    if x >= 1e6:
        return "%.3gms" % (x / 1e6)
    if x >= 1e3:
        return "%.3gus" % (x / 1e3)
    return "%.3gns" % x


def format_table(cols, rows, markdown=False):
    """Lines of a right-aligned text table: a header, a rule, the rows
    (lists of strings, as many as @cols); @markdown: a Markdown table."""
    if markdown:
        return (["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)] +
                ["| " + " | ".join(r) + " |" for r in rows])
    w = [len(c) for c in cols]
    for r in rows:
        w = [max(a, len(b)) for a, b in zip(w, r)]
    line = "  ".join(c.rjust(x) for c, x in zip(cols, w))
    out = [line, "-" * len(line)]
    for r in rows:
        out.append("  ".join(v.rjust(x) for v, x in zip(r, w)).rstrip())
    return out


def geomean(xs):
    """Geometric mean of the positive finite numbers in @xs, or None."""
    v = [x for x in xs if x is not None and x > 0 and not math.isinf(x)]
    if not v:
        return None
    return math.exp(sum(math.log(x) for x in v) / len(v))


def fmt_si(x, digits=3):
    """12345678 -> "12.3M"; None -> "-"."""
    if x is None:
        return "-"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return "%.*g%s" % (digits, x / div, suffix)
    return "%.*g" % (digits, x)


def list_cases(prog, binary, filt):
    """The case names @binary would run under filter @filt."""
    out = subprocess.run(
        [binary, "--benchmark_list_tests=true", "--benchmark_filter=" + filt],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        die(prog, "%s --benchmark_list_tests failed (exit %d)"
            % (binary, out.returncode), out.returncode or 2)
    return [l for l in out.stdout.splitlines() if l.startswith("BM_")]


def read_cpu_jiffies():
    """(busy, steal, total) jiffies of all CPUs from /proc/stat, or None."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    steal = v[7] if len(v) > 7 else 0
    total = sum(v[:8])
    return total - idle - steal, steal, total


def read_loadavg():
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except (OSError, ValueError):
        return None


def fmt_elapsed(s):
    """Seconds as "42 s" or "3 min 05 s"."""
    s = int(s)
    return "%d s" % s if s < 60 else "%d min %02d s" % (s // 60, s % 60)


def line_transfer_ns(binary):
    """One-way cache-line transfer between two unpinned threads, ns, from a
    short BM_env_line_transfer run of @binary (bench/bench_env.c), or None.

    On the shared 2-vCPU machines the hypervisor's placement of the two
    vCPUs sets this figure, and it flips between runs and inside one (seen:
    53-61 ns and 209-250 ns on the same machine within minutes). Every
    cross-core hand-off in the engine pays it, so a report that does not
    record it cannot tell an engine change from a placement change.
    """
    try:
        out = subprocess.run(
            [binary, "--benchmark_filter=^BM_env_line_transfer(/real_time)?$",
             "--benchmark_min_time=0.05", "--benchmark_format=json"],
            capture_output=True, text=True, timeout=60)
        for b in json.loads(out.stdout).get("benchmarks", []):
            if "one_way_ns" in b:
                return float(b["one_way_ns"])
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    return None


def run_bench(prog, binary, filt, reps, min_time, verbose):
    """Run @binary on @filt, @reps repetitions interleaved at random.
    Progress goes to stderr: a live count of the runs done on a terminal,
    a line every 30 s otherwise.

    Returns (parsed JSON of its --benchmark_out, load info): load has wall_s
    and bench_cpus (CPUs this process used on average) and, when
    /proc/stat is readable, busy_cpus, foreign_cpus (everyone else) and
    steal_pct.
    """
    ncases = len(list_cases(prog, binary, filt))
    if ncases == 0:
        die(prog, "no benchmark matches %s" % filt)
    fd, path = tempfile.mkstemp(prefix=prog + "-", suffix=".json")
    os.close(fd)
    cmd = [binary,
           "--benchmark_filter=" + filt,
           "--benchmark_repetitions=%d" % reps,
           "--benchmark_enable_random_interleaving=true",
           "--benchmark_out=" + path,
           "--benchmark_out_format=json"]
    if min_time is not None:
        cmd.append("--benchmark_min_time=%g" % min_time)
    total = ncases * reps
    print("%s: %d cases x %d repetitions, interleaved at random: %s"
          % (prog, ncases, reps, " ".join(cmd)), file=sys.stderr)
    tty = sys.stderr.isatty()
    done = 0
    tail = []
    hz = os.sysconf("SC_CLK_TCK")
    xfer0 = line_transfer_ns(binary)
    j0, t0 = read_cpu_jiffies(), time.monotonic()
    last_line = t0
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in proc.stdout:
            tail = (tail + [line])[-40:]
            if verbose:
                sys.stderr.write(line)
            elif line.startswith("BM_") and not re.search(
                    r"_(mean|median|stddev|cv)\s", line):
                done += 1
                now = time.monotonic()
                if tty:
                    sys.stderr.write("\r  %d/%d runs, %s" % (
                        done, total, fmt_elapsed(now - t0)))
                    sys.stderr.flush()
                elif now - last_line >= 30 or done == total:
                    # Not a terminal (a log, CI): a line every 30 s.
                    print("%s: %d/%d runs, %s" % (prog, done, total,
                                                 fmt_elapsed(now - t0)),
                          file=sys.stderr, flush=True)
                    last_line = now
        # wait4 rather than wait: the child's own CPU time tells its load
        # apart from everyone else's on the machine.
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        j1, t1 = read_cpu_jiffies(), time.monotonic()
        if tty and not verbose:
            sys.stderr.write("\n")
        if rc != 0:
            sys.stderr.write("".join(tail))
            die(prog, "%s failed (exit %d)" % (binary, rc), rc if rc > 0 else 2)
        load = {"wall_s": t1 - t0,
                "bench_cpus": (ru.ru_utime + ru.ru_stime) / (t1 - t0),
                "transfer_before_ns": xfer0,
                "transfer_after_ns": line_transfer_ns(binary)}
        if j0 and j1 and j1[2] > j0[2]:
            busy = (j1[0] - j0[0]) / hz / (t1 - t0)
            load["busy_cpus"] = busy
            load["foreign_cpus"] = max(0.0, busy - load["bench_cpus"])
            load["steal_pct"] = 100.0 * (j1[1] - j0[1]) / (j1[2] - j0[2])
        try:
            with open(path) as f:
                return json.load(f), load
        except (OSError, ValueError) as e:
            sys.stderr.write("".join(tail))
            die(prog, "cannot read the benchmark's JSON output: %s" % e)
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


def add_common_args(ap, reps, min_time, min_time_help=""):
    """The options every report takes: the binary, --repetitions,
    --min-time, --json, --pin, --verbose."""
    ap.add_argument("binary", metavar="BENCH_BINARY", help="path to flowq_bench")
    ap.add_argument("--repetitions", type=int, default=reps, metavar="N",
                    help="repetitions of every case (default %d); medians are "
                         "reported" % reps)
    ap.add_argument("--min-time", type=float, default=min_time, metavar="S",
                    help="--benchmark_min_time per repetition, seconds (default "
                         "%g%s)" % (min_time, min_time_help))
    ap.add_argument("--json", metavar="OUT",
                    help="write Google Benchmark's JSON plus the summary to OUT")
    ap.add_argument("--pin", action="store_true",
                    help="pin the benchmark's own threads (FLOWQ_BENCH_PIN=1; "
                         "see bench/bench_env.c)")
    ap.add_argument("--verbose", action="store_true",
                    help="pass the benchmark's console output through to stderr")


def check_common_args(prog, args):
    """Validate add_common_args()' options (exit 2 on a bad one); --pin sets
    FLOWQ_BENCH_PIN for the benchmark."""
    if args.repetitions < 1:
        die(prog, "--repetitions must be >= 1")
    if args.min_time is not None and args.min_time <= 0:
        die(prog, "--min-time must be > 0")
    if not (os.path.isfile(args.binary) and os.access(args.binary, os.X_OK)):
        die(prog, "%s: not an executable file" % args.binary)
    if args.pin:
        os.environ["FLOWQ_BENCH_PIN"] = "1"


def write_json(prog, path, data, key, summary):
    """Write Google Benchmark's JSON @data with the report's @summary under
    top-level @key to @path (usable with Google Benchmark's compare.py)."""
    data[key] = summary
    try:
        with open(path, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
    except OSError as e:
        die(prog, "cannot write %s: %s" % (path, e))


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, or the platform's guess."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":")[0].strip() in ("model name", "Model", "cpu model"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def machine_info(ctx):
    """The machine a run came from: CPU model, CPUs (online / the
    benchmark's count), MHz, kernel, and the allocator and Google Benchmark
    build the binary reported."""
    return {
        "cpu_model": cpu_model(),
        "cpus_online": os.cpu_count(),
        "num_cpus": ctx.get("num_cpus"),
        "mhz_per_cpu": ctx.get("mhz_per_cpu"),
        "kernel": "%s %s" % (platform.system(), platform.release()),
        "machine": platform.machine(),
        "allocator": ctx.get("flowq_allocator"),
        "benchmark_build": ctx.get("library_build_type"),
        "date": ctx.get("date"),
    }


def iterations(data):
    """The per-repetition entries of @data (Google Benchmark's own
    aggregates left out: the reports take their own medians)."""
    for b in data.get("benchmarks", []):
        if b.get("run_type") == "iteration":
            yield b


def machine_lines(ctx, load, load_after):
    """Lines on the machine: CPUs, load average, how busy it was."""
    m = machine_info(ctx)
    lines = ["  %s, num_cpus %s, %s MHz, %s; load average before %s, after %s"
             % (m["cpu_model"], ctx.get("num_cpus", "?"), ctx.get("mhz_per_cpu", "?"),
                m["kernel"],
                " ".join("%.2f" % x for x in ctx.get("load_avg", [])) or "?",
                " ".join("%.2f" % x for x in load_after) if load_after else "?")]
    if "foreign_cpus" in load:
        lines.append("  during the run: %.2f CPUs busy on average, %.2f of them "
                     "this benchmark, %.2f other processes; steal %.1f%%; %.0f s"
                     % (load["busy_cpus"], load["bench_cpus"], load["foreign_cpus"],
                        load["steal_pct"], load["wall_s"]))
    xb, xa = load.get("transfer_before_ns"), load.get("transfer_after_ns")
    if xb is not None or xa is not None:
        lines.append("  cache-line transfer between the two threads, one way: %s ns "
                     "before the run, %s ns after (the vCPUs' placement)"
                     % ("?" if xb is None else "%.0f" % xb,
                        "?" if xa is None else "%.0f" % xa))
    return lines


def load_warnings(ctx, load):
    """Why the machine was not quiet during the run (a list, maybe empty)."""
    warn = []
    ncpu = ctx.get("num_cpus") or 0
    la = ctx.get("load_avg") or []
    if "foreign_cpus" not in load and la and ncpu and la[0] >= 0.5 * ncpu:
        # Only without /proc/stat: the load average decays over minutes, so
        # it also counts work that ended before the run started.
        warn.append("load average %.2f before the run" % la[0])
    xb, xa = load.get("transfer_before_ns"), load.get("transfer_after_ns")
    if xb and xa and max(xb, xa) > 1.5 * min(xb, xa):
        warn.append("the cache-line transfer changed from %.0f to %.0f ns during the "
                    "run: the vCPUs moved, and cells measured before and after "
                    "the move are not comparable" % (xb, xa))
    if load.get("foreign_cpus", 0) >= 0.25:
        warn.append("other processes used %.2f CPUs during it" % load["foreign_cpus"])
    return warn
