"""Metrics, health and logs of a running service: `/metrics` after something was sent (and
`promtool check metrics` on it), `/healthz`, `/readyz` (database, migrations, broker,
circuits), the per-attempt log line, and the store queries behind the outbox gauges."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import broadcaster.service as service_module
from adapters.server import running_service
from adapters.store.schema import LATEST_VERSION
from broadcaster.auth import create_token
from broadcaster.config import load_settings
from broadcaster.ports import DeliveryState, PlannedDelivery, Role, Store
from tests.conftest import RunningService
from tests.support.broker import free_port
from tests.support.outbox import T0, make_new
from tests.support.recording_channel import RecordingChannel

ALERT: dict[str, Any] = {
    "event": "Gas leak",
    "headline": "Avoid Market St: gas leak",
    "severity": "Severe",
    "urgency": "Immediate",
    "certainty": "Observed",
    "category": ["Safety"],
    "areas": [{"description": "Market St"}],
    "channels": ["recording"],
}

# Every family the service must export (issue 8, item 1), by its exposition name.
EXPORTED = (
    "broadcaster_alerts_received_total",
    "broadcaster_deliveries_total",
    "broadcaster_send_duration_seconds",
    "broadcaster_delivery_latency_seconds",
    "broadcaster_alert_first_send_seconds",
    "broadcaster_outbox_deliveries",
    "broadcaster_outbox_oldest_pending_age_seconds",
    "broadcaster_ratelimit_wait_seconds",
    "broadcaster_provider_errors_total",
    "broadcaster_circuit_state",
    "broadcaster_replies_total",
    "broadcaster_triage_duration_seconds",
    "broadcaster_sse_clients",
    "broadcaster_mqtt_connected",
    "broadcaster_build_info",
)


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path, channel: RecordingChannel, **overrides: Any
) -> AsyncIterator[RunningService]:
    overrides.setdefault("database", {"url": f"sqlite:///{tmp_path / 'obs.db'}"})
    overrides.setdefault("http", {"port": 0})
    overrides.setdefault("approval", {"two_person_severities": []})
    overrides.setdefault("delivery", {"poll_seconds": 0.05, "shutdown_grace_seconds": 1.0})
    settings = load_settings(None, **overrides)
    async with (
        running_service(settings, extra_channels={channel.name: channel}) as (service, url),
        aiohttp.ClientSession() as http,
    ):
        running = RunningService(service, url, http)
        running.tokens[Role.ISSUER], _ = await create_token(
            service.store, role=Role.ISSUER, name="obs-issuer"
        )
        yield running


async def issue(app: RunningService) -> str:
    async with app.http.post(f"{app.url}/v1/alerts", json=ALERT, headers=app.auth()) as resp:
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["id"])


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def get(app: RunningService, path: str) -> tuple[int, Any]:
    async with app.http.get(app.url + path) as resp:
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.text()


async def test_metrics_after_a_send_pass_promtool(tmp_path: Path) -> None:
    channel = RecordingChannel()
    async with serving(tmp_path, channel) as app:
        alert_id = await issue(app)
        await until(lambda: len(channel.sends) == 1)
        registry = app.service.metrics.registry
        await until(
            lambda: (
                registry.get_sample_value(
                    "broadcaster_alert_first_send_seconds_count", {"channel": "recording"}
                )
                == 1.0
            )
        )
        status, text = await get(app, "/metrics")
    assert status == 200
    assert channel.sends[0].alert_id == alert_id
    for name in EXPORTED:
        assert f"# TYPE {name} " in text, name
    for sample in (
        'broadcaster_alerts_received_total{format="json",outcome="created",source="rest"} 1.0',
        'broadcaster_deliveries_total{channel="recording",outcome="sent"} 1.0',
        'broadcaster_send_duration_seconds_count{channel="recording"} 1.0',
        'broadcaster_delivery_latency_seconds_count{channel="recording"} 1.0',
        'broadcaster_alert_first_send_seconds_count{channel="recording"} 1.0',
        'broadcaster_circuit_state{channel="recording"} 0.0',
        'broadcaster_outbox_deliveries{channel="recording",state="pending"}',
        'broadcaster_outbox_oldest_pending_age_seconds{channel="recording"}',
    ):
        assert sample in text, sample
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus): exposition not linted")
    checked = await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_outbox_gauges_follow_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery that keeps failing stays pending: the depth gauge counts it and the oldest
    age grows, refreshed by the background task, not by the scrape."""
    monkeypatch.setattr(service_module, "OUTBOX_GAUGE_SECONDS", 0.05)
    channel = RecordingChannel(fail_ratio=1.0)
    delivery = {
        "poll_seconds": 0.05,
        "backoff_base_seconds": 30.0,
        "shutdown_grace_seconds": 1.0,
    }
    async with serving(tmp_path, channel, delivery=delivery) as app:
        await issue(app)
        await until(lambda: channel.attempts >= 1)
        registry = app.service.metrics.registry

        def pending() -> float | None:
            return registry.get_sample_value(
                "broadcaster_outbox_deliveries", {"channel": "recording", "state": "pending"}
            )

        await until(lambda: pending() == 1.0)
        await asyncio.sleep(0.2)
        age = registry.get_sample_value(
            "broadcaster_outbox_oldest_pending_age_seconds", {"channel": "recording"}
        )
        assert age is not None
        assert age >= 0.2
        assert (
            registry.get_sample_value(
                "broadcaster_provider_errors_total",
                {"channel": "recording", "kind": "transient", "code": "transient"},
            )
            == 1.0
        )


async def test_one_log_line_per_delivery_attempt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="broadcaster.dispatcher")
    channel = RecordingChannel(permanent_recipients=frozenset({"r0"}))
    async with serving(tmp_path, channel) as app:
        alert_id = await issue(app)
        await until(lambda: any(getattr(r, "alert_id", None) == alert_id for r in caplog.records))
    lines = [r for r in caplog.records if getattr(r, "alert_id", None) == alert_id]
    assert len(lines) == 1
    line = lines[0]
    assert line.levelno == logging.INFO
    assert (line.channel, line.attempt, line.outcome) == ("recording", 1, "failed")  # type: ignore[attr-defined]
    assert isinstance(line.latency_ms, float)  # type: ignore[attr-defined]
    assert line.latency_ms >= 0  # type: ignore[attr-defined]
    assert "r0" not in line.getMessage()  # never the recipient


async def test_healthz_and_readyz(tmp_path: Path) -> None:
    channel = RecordingChannel()
    async with serving(tmp_path, channel) as app:
        status, body = await get(app, "/healthz")
        assert status == 200
        assert body["status"] == "ok"

        status, body = await get(app, "/readyz")
        assert status == 200, body
        assert body["ready"] is True
        assert body["degraded"] is False
        assert body["checks"]["database"]["ok"] is True
        assert body["checks"]["migrations"] == {
            "ok": True,
            "detail": f"schema version {LATEST_VERSION}",
        }
        assert body["channels"] == {"recording": {"circuit": "closed"}}

        # An open circuit is reported and marks the service degraded; it stays ready.
        breaker = app.service.dispatcher.breakers["recording"]
        for _ in range(breaker.failure_threshold):
            breaker.record_failure()
        status, body = await get(app, "/readyz")
        assert status == 200
        assert body["degraded"] is True
        assert body["channels"]["recording"]["circuit"] == "open"

        # Code newer than the database (migrations not run): not ready.
        app.service.require_schema(LATEST_VERSION + 1)
        status, body = await get(app, "/readyz")
        assert status == 503
        assert body["ready"] is False
        assert body["checks"]["migrations"]["ok"] is False
        assert f"needs {LATEST_VERSION + 1}" in body["checks"]["migrations"]["detail"]
        assert body["checks"]["database"]["ok"] is True

        # /healthz does not care: the process is alive.
        status, _ = await get(app, "/healthz")
        assert status == 200


async def test_readyz_is_503_while_the_configured_broker_is_unreachable(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    mqtt = {"url": f"mqtt://127.0.0.1:{port}", "client_id": f"obs-{port}"}
    async with serving(tmp_path, RecordingChannel(), mqtt=mqtt) as app:
        status, body = await get(app, "/readyz")
        assert status == 503
        assert body["checks"]["mqtt"]["ok"] is False
        assert body["checks"]["database"]["ok"] is True
        registry = app.service.metrics.registry
        assert registry.get_sample_value("broadcaster_mqtt_connected", {"client": "intake"}) == 0


async def test_readyz_reports_the_broker_once_connected(tmp_path: Path, broker: Any) -> None:
    mqtt = {"url": broker.url, "client_id": "obs-ready", "publish_prefix": "obs"}
    async with serving(tmp_path, RecordingChannel(), mqtt=mqtt) as app:
        registry = app.service.metrics.registry
        await until(
            lambda: (
                registry.get_sample_value("broadcaster_mqtt_connected", {"client": "intake"}) == 1.0
            ),
            within=30.0,
        )
        status, body = await get(app, "/readyz")
        assert status == 200, body
        assert body["checks"]["mqtt"]["ok"] is True


# --- the store queries behind the gauges and readiness (every backend) -------------------


async def test_store_outbox_depth_and_schema_version(store: Store) -> None:
    assert await store.schema_version() == LATEST_VERSION
    assert await store.outbox_depth() == []
    deliveries = (
        *(PlannedDelivery("sms", f"+1555000000{i}") for i in range(3)),
        PlannedDelivery("x", "public"),
    )
    await store.insert_alert(make_new(deliveries=deliveries))
    claimed = await store.claim_deliveries(
        "sms", limit=1, now=T0 + timedelta(seconds=1), lease_until=T0 + timedelta(minutes=1)
    )
    assert len(claimed) == 1
    rows = {(r.channel, r.state): r for r in await store.outbox_depth()}
    assert {key: r.count for key, r in rows.items()} == {
        ("sms", DeliveryState.PENDING.value): 2,
        ("sms", DeliveryState.SENDING.value): 1,
        ("x", DeliveryState.PENDING.value): 1,
    }
    for row in rows.values():
        assert row.oldest == T0
