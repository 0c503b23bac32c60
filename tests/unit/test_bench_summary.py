"""bench/run_all.py's Summary: read back from bench/RESULTS.md's section tables."""

from __future__ import annotations

from bench.results import RESULTS, format_section
from bench.run_all import HEADING, figures, machines, summary


def test_current_results_give_the_known_targets() -> None:
    """The committed RESULTS.md: every section's targets are found, with their status."""
    found = figures(RESULTS.read_text())
    by_name = {(f.section, f.benchmark): f for f in found}
    assert {f.section for f in found} >= {"Intake", "Fan-out", "Channels", "Web"}
    rest = by_name[("Web", "`GET /`, 20 alerts (19501 bytes), 10 s")]
    assert rest.target == "≥ 2,000 requests/s"
    assert rest.met is True
    ratio = by_name[("Fan-out", "engine / bare")]
    assert ratio.target == "≥ 80%"
    assert ratio.met in (True, False)
    # A table with several figure columns (p50, p90, max) before its target.
    correction = [f for f in found if f.section == "Correction"]
    assert correction
    assert all(f.figure.startswith("p50 ") and f.target for f in correction)
    # Rows without a target (peak RSS, explanatory ratios) are left out.
    assert all(f.target for f in found)
    assert ("Channels", "engine / bare twilio (explanatory)") not in by_name
    assert len(machines(RESULTS.read_text())) >= 1


def test_summary_table_and_its_own_section_ignored() -> None:
    text = (
        "# Benchmark results\n\n"
        + format_section(
            HEADING,
            "| section | benchmark | figure | target | |\n|---|---|---|---|---|\n"
            "| X | old | 1 | 2 | met |",
        )
        + "\n"
        + format_section(
            "Demo (bench/demo.py)",
            "Machine: 2 cores (nproc), CPU, Python 3.11.7, Linux 6.1.\n\n"
            "| benchmark | figure | target | |\n|---|---|---|---|\n"
            "| speed | 5 ops/s | ≥ 10 ops/s | NOT met |\n"
            "| memory | 10 MB | | |\n"
            "| a \\| b | 3 | 3 | met |\n",
        )
    )
    assert [(f.benchmark, f.met) for f in figures(text)] == [("speed", False), ("a \\| b", True)]
    body = summary(text)
    assert "Machine: 2 cores (nproc), CPU, Python 3.11.7, Linux 6.1." in body
    assert "2 figures with a target: 1 met, 1 NOT met." in body
    assert "| Demo | speed | 5 ops/s | ≥ 10 ops/s | NOT met |" in body
    assert "old" not in body
