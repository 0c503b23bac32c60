"""Run every benchmark in bench/ one after another (each writes its own `## ...` section of
bench/RESULTS.md), then write the `## Summary` section at the top: every figure that has a
target, with the target and whether it was met, read back from the sections' tables.

    python bench/run_all.py                 # all of them (about 20 minutes), then the summary
    python bench/run_all.py --only intake   # some of them, then the summary
    python bench/run_all.py --summary-only  # the summary from the sections already there

The scripts stay runnable on their own; a script that fails is reported and the others still
run (the exit code is then 1).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository

from bench.results import (
    OK,
    REFERENCE_ENV,
    RESULTS,
    ROOT,
    _split,
    machine,
    measure_reference_loop_ms,
    write_section,
)

HEADING = "Summary"
# In the order they run; a script that is not in bench/ is skipped.
SCRIPTS = ("intake", "fanout", "channels", "web", "triage", "correction", "scale", "reload")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
# What `machine()` writes: "<n> cores (nproc), <CPU>, Python <version>, <system> <release>"
# (then "; reference loop <n> ms", which varies from run to run and is not the machine's name).
_MACHINE = re.compile(
    r"^(?:Machine: )?(\d+ cores \(nproc\), .*?, Python \S+, \S+ [^\s;]+?)[.;]?(?:\s|$)",
    re.MULTILINE,
)
_STATUSES = {value: met for met, value in OK.items()}


@dataclass(frozen=True, slots=True)
class Figure:
    """One table row with a target: its section, what was measured, the figure, the target
    and whether it was met (None when the row does not say)."""

    section: str
    benchmark: str
    figure: str
    target: str
    met: bool | None


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in _CELL_SPLIT.split(line.strip().strip("|"))]


def _tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table in `text`: its rows (header first, the --- row dropped)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.lstrip().startswith("|"):
            cells = _cells(line)
            if not all(re.fullmatch(r":?-+:?", cell) for cell in cells if cell):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def figures(text: str) -> list[Figure]:
    """Every row of every table of every section (but the Summary) whose `target` column is
    not empty. The status is the column after the target's (`met` / `NOT met`); the figure is
    the columns between the first and the target's (named by their headers when several)."""
    _, sections = _split(text)
    found: list[Figure] = []
    for heading, body in sections:
        if heading == HEADING:
            continue
        name = heading.split(" (", 1)[0]
        for header, *rows in _tables(body):
            lowered = [cell.lower() for cell in header]
            if "target" not in lowered:
                continue
            at = lowered.index("target")
            for row in rows:
                row = row + [""] * (len(header) - len(row))
                if not row[at]:
                    continue
                values = row[1:at]
                if len(values) == 1:
                    figure = values[0]
                else:
                    figure = ", ".join(
                        f"{h} {v}" for h, v in zip(header[1:at], values, strict=True)
                    )
                status = row[at + 1] if at + 1 < len(row) else ""
                found.append(Figure(name, row[0], figure, row[at], _STATUSES.get(status)))
    return found


def machines(text: str) -> list[str]:
    """The distinct machine lines the sections were written on, in order."""
    seen: list[str] = []
    for match in _MACHINE.finditer(text):
        if match.group(1) not in seen:
            seen.append(match.group(1))
    return seen


def summary(text: str, machine_line: str | None = None) -> str:
    """The Summary section's body for the RESULTS.md text `text`."""
    rows = figures(text)
    met = sum(1 for f in rows if f.met)
    missed = sum(1 for f in rows if f.met is False)
    if machine_line is None:
        seen = machines(text)
        machine_line = seen[0] if len(seen) == 1 else machine()
    lines = [
        f"Written by `bench/run_all.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        ", from the tables of the sections below (each with its own date and details).",
        f"Machine: {machine_line}.",
        "",
        f"{len(rows)} figures with a target: {met} met, {missed} NOT met"
        + (f", {len(rows) - met - missed} not judged." if len(rows) > met + missed else "."),
        "",
        "| section | benchmark | figure | target | |",
        "|---|---|---|---|---|",
    ]
    for f in rows:
        status = "" if f.met is None else OK[f.met]
        lines.append(f"| {f.section} | {f.benchmark} | {f.figure} | {f.target} | {status} |")
    return "\n".join(lines)


def run(names: list[str]) -> list[str]:
    """Run the scripts `names`, one after another; the names of those that failed."""
    failed: list[str] = []
    for name in names:
        script = ROOT / "bench" / f"{name}.py"
        if not script.exists():
            print(f"bench/{name}.py: not there, skipped", flush=True)
            continue
        print(f"=== bench/{name}.py", flush=True)
        started = time.monotonic()
        # Timed now, with nothing else running: the script's own timing would come after its
        # benchmark, while the processes it started may still be winding down.
        environment = {**os.environ, REFERENCE_ENV: f"{measure_reference_loop_ms():.0f}"}
        code = subprocess.run(
            [sys.executable, str(script)], cwd=ROOT, check=False, env=environment
        ).returncode
        print(f"=== bench/{name}.py: exit {code} in {time.monotonic() - started:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--summary-only", action="store_true", help="only write the summary from RESULTS.md"
    )
    parser.add_argument("--only", nargs="+", choices=SCRIPTS, help="run only these scripts")
    args = parser.parse_args()
    failed = [] if args.summary_only else run(list(args.only or SCRIPTS))
    ran_here = None if args.summary_only else machine()
    print(write_section(HEADING, summary(RESULTS.read_text(), ran_here)))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
