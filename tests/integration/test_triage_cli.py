"""`broadcaster triage classify` as a subprocess: JSON lines in, JSON lines out."""

from __future__ import annotations

import json
import subprocess
import sys


def _run(stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adapters.main", "triage", "classify"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_classify_lines_with_ids_errors_and_clusters() -> None:
    """Each line gets its answer in order; bad lines get errors; exit code 0."""
    gunman = "Gunman with a knife in a white van AB12 CDE on Market St, stay indoors"
    lines = [
        json.dumps({"id": "r1", "text": gunman}),
        json.dumps({"text": "RT @bbc: " + gunman}),
        "this is not json",
        json.dumps({"id": 7}),
        json.dumps({"id": "r5", "text": "Thoughts and prayers to everyone, so sad"}),
    ]
    result = _run("\n".join(lines) + "\n\n")
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 5
    first, retweet, bad, no_text, prayer = out
    assert first["id"] == "r1"
    assert set(first["categories"]) == {"suspect", "hazard"}
    assert first["entities"]["plates"] == ["AB12 CDE"]
    assert first["entities"]["weapons"] == ["knife"]
    assert 0.0 <= first["scores"]["suspect"] <= 1.0
    assert first["score"] == max(first["scores"].values())
    assert retweet["id"] is None
    assert retweet["cluster"] == first["cluster"]
    assert retweet["cluster_count"] == 2
    assert bad == {"id": None, "categories": [], "error": "bad_json", "detail": bad["detail"]}
    assert no_text["id"] == 7
    assert (no_text["error"], no_text["categories"]) == ("bad_text", [])
    assert prayer["categories"] == []


def test_needs_no_config() -> None:
    """Empty input is fine and needs no config file or database."""
    result = _run("")
    assert result.returncode == 0
    assert result.stdout == ""
