"""deploy/ monitoring: Prometheus config and rules pass promtool, and every metric the rules
and the Grafana dashboard query is one the running service exports (with the labels they use)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.server import running_service
from broadcaster.config import load_settings
from tests.support.deploy import DEPLOY
from tests.support.recording_channel import RecordingChannel

RULES = DEPLOY / "alert_rules.yml"
PROMETHEUS = DEPLOY / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "broadcaster.json"

# Metrics Prometheus makes itself, which the rules may use.
PROMETHEUS_OWN = {"up"}
# Labels Prometheus adds to every series it scrapes, and histogram buckets' `le`.
TARGET_LABELS = {"job", "instance"}
_SUFFIXES = ("_bucket", "_sum", "_count")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    return found


def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config() -> None:
    result = subprocess.run(
        [promtool(), "check", "config", str(PROMETHEUS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- metric names in PromQL ----------------------------------------------------------------


def rule_expressions() -> list[tuple[str, str]]:
    """(alert name, expr) of every rule, read without a YAML library: each `expr:` is a
    one-liner or a `|` block indented below it."""
    lines = RULES.read_text().splitlines()
    found: list[tuple[str, str]] = []
    name = "?"
    for index, line in enumerate(lines):
        if match := re.match(r"\s*- alert:\s*(\S+)", line):
            name = match[1]
        match = re.match(r"(\s*)expr:\s*(.*)$", line)
        if not match:
            continue
        if match[2].strip() not in ("|", ">", "|-", ">-"):
            found.append((name, match[2].strip()))
            continue
        indent = len(match[1])
        block = []
        for following in lines[index + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            block.append(following.strip())
        found.append((name, " ".join(block)))
    return found


def dashboard_expressions() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []

    def walk(node: Any, title: str) -> None:
        if isinstance(node, dict):
            title = node.get("title", title)
            if isinstance(node.get("expr"), str):
                found.append((title, node["expr"]))
            for value in node.values():
                walk(value, title)
        elif isinstance(node, list):
            for value in node:
                walk(value, title)

    walk(json.loads(DASHBOARD.read_text()), "?")
    return found


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """Each metric selector in `expr`: its name and the label names it matches on."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values can look like anything
    found = []
    for match in re.finditer(r"(?<![\w:])([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?", expr):
        name, matchers = match[1], match[2] or ""
        if not (name.startswith("broadcaster_") or name in PROMETHEUS_OWN):
            continue
        labels = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
        found.append((name, labels))
    return found


def grouping_labels(expr: str) -> set[str]:
    """Labels named in by (...), without (...), on (...), ignoring (...)."""
    labels: set[str] = set()
    for match in re.finditer(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        labels.update(part.strip() for part in match[1].split(",") if part.strip())
    return labels


@pytest.fixture
async def exported(tmp_path: Path) -> dict[str, set[str]]:
    """Metric name -> label names, from a live /metrics after a send and a permanent failure.
    Names are the exposition's (counters with _total); histograms by their base name."""
    channel = RecordingChannel(recipients=lambda alert: ["ok", "bad"])
    channel.permanent_recipients = frozenset({"bad"})
    settings = load_settings(
        None,
        database={"url": f"sqlite:///{tmp_path / 'deploy.db'}"},
        http={"port": 0},
        approval={"two_person_severities": []},
        delivery={"poll_seconds": 0.05, "shutdown_grace_seconds": 1.0},
    )
    async with (
        running_service(settings, extra_channels={"recording": channel}) as (service, url),
        aiohttp.ClientSession() as http,
    ):
        from broadcaster.auth import create_token
        from broadcaster.ports import Role

        token, _ = await create_token(service.store, role=Role.ISSUER, name="deploy")
        body = {
            "event": "Gas leak",
            "headline": "Avoid Market St",
            "severity": "Severe",
            "urgency": "Immediate",
            "certainty": "Observed",
            "areas": [{"description": "Market St"}],
            "channels": ["recording"],
        }
        async with http.post(
            f"{url}/v1/alerts", json=body, headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            assert resp.status == 201
        for _ in range(200):
            if channel.attempts >= 2:
                break
            await asyncio.sleep(0.02)
        async with http.get(f"{url}/metrics") as resp:
            text = await resp.text()
        names: dict[str, set[str]] = {}
        for family in text_string_to_metric_families(text):
            labels = {k for s in family.samples for k in s.labels} - {"le"}
            base = family.name
            exposition = f"{base}_total" if family.type == "counter" else base
            names.setdefault(exposition, set()).update(labels)
        # Labelled families with no series yet carry no labels in the text: take them from
        # the registry's own declarations (public `describe` gives none for those).
        for metric in vars(service.metrics).values():
            declared = getattr(metric, "_labelnames", None)
            name = getattr(metric, "_name", None)
            if declared is None or name is None:
                continue
            kind = getattr(metric, "_type", "")
            exposition = f"{name}_total" if kind == "counter" else name
            names.setdefault(exposition, set()).update(declared)
        return names


def known(name: str, exported: dict[str, set[str]]) -> str | None:
    """The exported family `name` refers to (histogram suffixes stripped), or None."""
    if name in exported:
        return name
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in exported:
            return name.removesuffix(suffix)
    return None


@pytest.mark.parametrize(
    "source", ["rules", "dashboard"], ids=["alert_rules.yml", "grafana dashboard"]
)
def test_every_queried_metric_is_exported(source: str, exported: dict[str, set[str]]) -> None:
    expressions = rule_expressions() if source == "rules" else dashboard_expressions()
    assert expressions, f"no expressions found in the {source}"
    problems = []
    for where, expr in expressions:
        used = selectors(expr)
        if not used:
            problems.append(f"{where}: no metric in {expr!r}")
        available: set[str] = set(TARGET_LABELS) | {"le"}
        for name, labels in used:
            if name in PROMETHEUS_OWN:
                available |= labels
                continue
            family = known(name, exported)
            if family is None:
                problems.append(f"{where}: {name} is not exported")
                continue
            available |= exported[family]
            unknown = labels - exported[family] - TARGET_LABELS - {"le"}
            if unknown:
                problems.append(f"{where}: {name} has no label(s) {sorted(unknown)}")
        missing = grouping_labels(expr) - available
        if missing:
            problems.append(f"{where}: grouping by unknown label(s) {sorted(missing)}")
    assert not problems, "\n".join(problems)


def test_dashboard_shows_what_operators_need() -> None:
    text = DASHBOARD.read_text()
    for metric in (
        "broadcaster_alerts_received_total",
        "broadcaster_deliveries_total",
        "broadcaster_send_duration_seconds_bucket",
        "broadcaster_outbox_deliveries",
        "broadcaster_outbox_oldest_pending_age_seconds",
        "broadcaster_ratelimit_wait_seconds_bucket",
        "broadcaster_circuit_state",
        "broadcaster_replies_total",
        "broadcaster_sse_clients",
    ):
        assert metric in text, metric
    dashboard = json.loads(text)
    assert dashboard["uid"] == "broadcaster"
    sources = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    provisioned = (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    assert sources == {"prometheus"}
    assert "uid: prometheus" in provisioned


def test_rules_cover_the_failure_modes() -> None:
    alerts = {name for name, _ in rule_expressions()}
    assert {
        "BroadcasterChannelFailing",
        "BroadcasterOutboxStalled",
        "BroadcasterCircuitOpen",
        "BroadcasterMqttDisconnected",
        "BroadcasterIntakeErrors",
    } <= alerts
