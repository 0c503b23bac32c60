"""What the benchmarks in bench/ share: bench/RESULTS.md and its sections, the machine line,
the figures of a process read from the kernel (CPU time, RSS), percentiles and wrk's output.

Each script writes one `## ...` section of RESULTS.md with `write_section` and leaves the
title and the other sections as they are; sections are kept in the order of `ORDER`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import platform
import re
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
TITLE = "# Benchmark results"
# The sections' headings, in the order RESULTS.md keeps them (others go after, as written).
ORDER = (
    "Summary",  # bench/run_all.py: every figure with a target, at the top
    "Intake (bench/intake.py)",
    "Fan-out (bench/fanout.py)",
    "Channels (bench/channels.py)",
    "Web (bench/web.py)",
)
OK = {True: "met", False: "NOT met"}


# --- RESULTS.md ---------------------------------------------------------------------------


def format_section(heading: str, body: str) -> str:
    """The section as written: its `## heading` line, a blank line, the body."""
    return f"## {heading.removeprefix('## ')}\n\n{body.strip(chr(10))}\n"


def _split(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The text before the first `## ` line, and each section as (heading, whole text)."""
    preamble: list[str] = []
    sections: list[tuple[str, list[str]]] = []
    fenced = False
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        if line.startswith("## ") and not fenced:
            sections.append((line[3:].rstrip("\r\n"), [line]))
        elif sections:
            sections[-1][1].append(line)
        else:
            preamble.append(line)
    return "".join(preamble), [(heading, "".join(lines)) for heading, lines in sections]


def write_section(heading: str, body: str, path: Path = RESULTS) -> str:
    """Replace the section whose line is exactly `## heading` (up to the next `## ` line) with
    `body`, or add it; the title and the other sections stay as they are. Sections are put in
    the order of ORDER (unknown headings last, in their order). Returns the section's text."""
    heading = heading.removeprefix("## ")
    text = format_section(heading, body)
    current = path.read_text() if path.exists() else f"{TITLE}\n"
    preamble, sections = _split(current)
    if any(name == heading for name, _ in sections):
        sections = [(name, text if name == heading else old) for name, old in sections]
    else:
        sections.append((heading, text))

    def rank(item: tuple[str, str]) -> int:
        return ORDER.index(item[0]) if item[0] in ORDER else len(ORDER)

    sections.sort(key=rank)  # stable: unknown headings keep their order
    parts = [preamble.rstrip("\n") + "\n"] if preamble.strip() else [f"{TITLE}\n"]
    parts += [old.rstrip("\n") + "\n" for _, old in sections]
    path.write_text("\n".join(parts))
    return text


# --- the machine and its processes -------------------------------------------------------


def machine() -> str:
    """Cores, CPU model, Python and kernel: the line each section starts with."""
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{len(os.sched_getaffinity(0))} cores (nproc), {cpu}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}; "
        f"reference loop {reference_loop_ms():.0f} ms"
    )


# Set by run_all.py to the reference loop it timed just before starting the script.
REFERENCE_ENV = "BENCH_REFERENCE_LOOP_MS"


@functools.cache
def reference_loop_ms() -> float:
    """How fast this VM runs Python, in ms (lower is faster), so that sections written on
    different VMs (the same cores and CPU name can differ twofold) can be compared: the
    figure run_all.py timed before starting this script, or else timed now."""
    given = os.environ.get(REFERENCE_ENV)
    return float(given) if given else measure_reference_loop_ms()


def measure_reference_loop_ms() -> float:
    """Best of 5 timings of a fixed pure-Python loop (`sum(i * i for i in range(10**6))`)."""
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        sum(i * i for i in range(10**6))
        timings.append(time.perf_counter() - started)
    return min(timings) * 1000


def _status_mb(pid: int | str, field: str) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"{field}:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else float("nan")


def rss_mb(pid: int | None = None) -> float:
    """Resident set size now (VmRSS), of this process or of `pid`, in MB."""
    return _status_mb("self" if pid is None else pid, "VmRSS")


def peak_rss_mb(pid: int | None = None) -> float:
    """Peak resident set size in MB: this process's ru_maxrss, or `pid`'s VmHWM."""
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return _status_mb(pid, "VmHWM")


def _stat_cpu_seconds(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + sys) so far, of this process or of `pid`."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    return _stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def thread_cpu_seconds() -> dict[int, float]:
    """CPU time (user + sys) of each of this process's threads, by thread id."""
    out: dict[int, float] = {}
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):
            out[int(tid)] = _stat_cpu_seconds(Path(f"/proc/self/task/{tid}/stat"))
    return out


# --- figures -----------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (`share` in 0..1) of `values`; nan if there are none."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)] if ordered else float("nan")


def wrk_figures(out: str) -> dict[str, float]:
    """What wrk printed (with --latency): requests, seconds, latencies in ms and failures.
    `failed` counts non-2xx/3xx answers and socket errors; `ok` is the rest."""

    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}  # wrk's, in ms

    def ms(pattern: str) -> float:  # wrk prints a duration as e.g. 812.00us, 38.06ms or 1.20s
        match = re.search(pattern + r"([0-9.]+)(us|ms|s|m|h)\b", out)
        return float(match.group(1)) * unit[match.group(2)] if match else float("nan")

    total = re.search(r"(\d+) requests in ([0-9.]+)(us|ms|s|m|h)\b", out)
    requests = int(total.group(1)) if total else 0
    seconds = float(total.group(2)) * unit[total.group(3)] / 1e3 if total else float("nan")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    failed_answers = int(non_2xx.group(1)) if non_2xx else 0
    socket_errors = sum(int(n) for n in sockets.groups()) if sockets else 0
    failed = failed_answers + socket_errors
    return {
        "requests": requests,
        "seconds": seconds,
        "p50_ms": ms(r"50%\s+"),
        "p99_ms": ms(r"99%\s+"),
        "max_ms": ms(r"Latency\s+\S+\s+\S+\s+"),
        "non_2xx": failed_answers,
        "socket_errors": socket_errors,
        "failed": failed,
        "ok": max(requests - failed, 0),
    }
