"""The "Intake" section of bench/RESULTS.md, written by bench/intake.py: its text and table,
from the figures of the REST, live MQTT and MQTT backlog runs (not a benchmark of its own).
"""

from __future__ import annotations

import time
from typing import Any

from bench.results import OK, machine


def rest_row(rest: dict[str, Any], connections: int, generator: str) -> str:
    """The REST row: alerts/s counts the alerts created (2xx) only; failures are reported."""
    per_second = rest["ok"] / rest["seconds"]
    latency = (
        f"p50 {rest['p50_ms']:.1f} ms, p99 {rest['p99_ms']:.1f} ms, max {rest['max_ms']:.0f} ms"
    )
    server = f"the service counted {rest['created']:.0f} created, {rest['rejected']:.0f} rejected"
    if rest["failed"]:
        figure = (
            f"**{rest['failed']:.0f} of {rest['requests']:.0f} requests failed** "
            f"({rest['non_2xx']:.0f} answered non-2xx, {rest['socket_errors']:.0f} socket "
            f"errors{rest['sample']}; {server}): only "
            f"{per_second:.0f} alerts/s created; latency over all answers {latency}"
        )
    else:
        figure = f"{per_second:.0f} alerts/s, {latency}, 0 errors ({rest['created']:.0f} created)"
    met = per_second >= 1000 and rest["p99_ms"] <= 50 and rest["failed"] == 0
    verdict = OK[met] + (" (requests failed)" if rest["failed"] else "")
    return (
        f"| REST intake, {rest['requests']:.0f} alerts over {connections} connections "
        f"({generator}, {rest['seconds']:.1f} s) | {figure} | ≥ 1,000 alerts/s, p99 ≤ 50 ms | "
        f"{verdict} |\n"
    )


def mqtt_figure(run: dict[str, Any], rate: str) -> tuple[str, bool]:
    """An MQTT row's figure, and whether every alert was stored."""
    missing = run["alerts"] - run["stored"]
    if not missing:
        return rate, True
    return (
        f"**{missing:.0f} of {run['alerts']:.0f} alerts not stored** "
        f"({run['rejected']:.0f} rejected by the service); only {rate}",
        False,
    )


def section(
    rest: dict[str, Any],
    mqtt: dict[str, Any],
    backlog: dict[str, Any],
    rss: dict[str, float],
    connections: int,
    generator: str,
) -> str:
    live, live_all = mqtt_figure(
        mqtt,
        f"{mqtt['per_second']:.0f} alerts/s ({mqtt['stored']:.0f} stored in "
        f"{mqtt['seconds']:.2f} s)",
    )
    drained, drained_all = mqtt_figure(backlog, f"{backlog['per_second']:.0f} alerts/s")
    live_ok = mqtt["per_second"] >= 2000 and live_all
    backlog_ok = backlog["per_second"] >= 2000 and drained_all
    return f"""Written by `bench/intake.py` on {time.strftime("%Y-%m-%d %H:%M %Z")}.
Machine: {machine()}.

The service runs in its own process on SQLite (WAL); the load generator
(REST: {generator}; MQTT: a Python aiomqtt publisher) and Mosquitto run on the same machine
and share its cores. The alerts ask for the `web` channel only (no delivery is planned), so
intake alone is measured; alerts/s counts the alerts the service created (REST: answered 2xx).
"Live" MQTT includes the publisher's own CPU; the "backlog" row measures the service alone.

| benchmark | figure | target | |
|---|---|---|---|
{rest_row(rest, connections, generator)}\
| MQTT intake, {mqtt["alerts"]:.0f} alerts at QoS 1 (publish → committed) | {live} | \
≥ 2,000 alerts/s | {OK[live_ok]} |
| MQTT intake, service alone: a backlog of {backlog["alerts"]:.0f} queued alerts drained \
(first → last commit) | {drained} | ≥ 2,000 alerts/s | {OK[backlog_ok]} |
| service peak RSS after the REST run | {rss["rest"]:.0f} MB | | |
| service peak RSS after the MQTT run | {rss["mqtt"]:.0f} MB | | |
"""
