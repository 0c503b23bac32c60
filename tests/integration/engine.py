"""Shared set-up for delivery-engine tests: the real core (intake, planner, outbox on SQLite,
dispatcher) wired to recording channels, without HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from adapters.store import open_store
from broadcaster.config import load_settings
from broadcaster.intake import PayloadFormat, Submission
from broadcaster.ports import DeliveryState, StoredAlert
from broadcaster.service import Service
from tests.support.recording_channel import RecordingChannel


def alert_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event": "Gas leak",
        "headline": "Avoid Market St",
        "severity": "Severe",
        "urgency": "Immediate",
        "certainty": "Observed",
    }
    body.update(fields)
    return body


@contextlib.asynccontextmanager
async def engine(
    tmp_path: Path, *channels: RecordingChannel, **delivery: Any
) -> AsyncIterator[Service]:
    """The core on a fresh SQLite file; the dispatcher is not started (tests start it)."""
    delivery.setdefault("poll_seconds", 0.05)
    delivery.setdefault("shutdown_grace_seconds", 2.0)
    settings = load_settings(
        None,
        database={"url": f"sqlite:///{tmp_path / 'engine.db'}"},
        approval={"two_person_severities": []},
        delivery=delivery,
    )
    store = await open_store(settings.database.url)
    service = Service.build(settings, store, channels={c.name: c for c in channels})
    try:
        yield service
    finally:
        await service.stop()


async def submit(service: Service, **fields: Any) -> StoredAlert:
    """Submit one JSON alert as an issuer would; returns it once committed."""
    body = json.dumps(alert_body(**fields)).encode()
    results = await service.intake.submit(
        Submission(body=body, format=PayloadFormat.JSON, source="rest", actor="tester")
    )
    return results[0].alert


async def until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(0.02)


async def counts(service: Service, alert_id: str, channel: str) -> dict[str, int]:
    return (await service.store.delivery_counts(alert_id)).get(channel, {})


def sent_count(state_counts: dict[str, int]) -> int:
    return state_counts.get(DeliveryState.SENT.value, 0)


async def until_outbox_empty(service: Service, seconds: float = 30) -> None:
    """Wait until nothing is pending or sending (retries scheduled later count as pending)."""
    deadline = time.monotonic() + seconds
    while await service.store.count_open_deliveries() > 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"outbox not empty after {seconds} s")
        await asyncio.sleep(0.05)
