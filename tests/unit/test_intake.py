"""IntakeService rules: de-duplication, idempotency, references, approval state (no I/O)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from alerts.models import Severity
from broadcaster.errors import IdempotencyConflict, PayloadError
from broadcaster.intake import (
    IntakeService,
    PayloadFormat,
    RandomIds,
    Submission,
    new_id,
    sniff_format,
)
from broadcaster.metrics import Metrics
from broadcaster.ports import AlertState
from tests.support.fake_store import MemoryStore

BODY = json.dumps({"event": "Fire", "headline": "Leave the building", "severity": "Severe"})


def service(two_person: frozenset[Severity] = frozenset()) -> tuple[IntakeService, MemoryStore]:
    store = MemoryStore()
    intake = IntakeService(
        store,
        sender="desk@example.org",
        two_person_severities=two_person,
        metrics=Metrics(),
        now=lambda: datetime(2026, 11, 22, 12, 0, 0, 123, tzinfo=UTC),
    )
    return intake, store


def rest(body: str, key: str | None = None, actor: str = "t1") -> Submission:
    return Submission(
        body=body.encode(),
        format=PayloadFormat.JSON,
        source="rest",
        actor=actor,
        idempotency_key=key,
    )


async def test_rest_without_key_stores_each_post() -> None:
    """Two identical REST posts without an Idempotency-Key are two alerts."""
    intake, store = service()
    await intake.submit(rest(BODY))
    await intake.submit(rest(BODY))
    assert await store.count_alerts() == 2


async def test_idempotency_key_is_scoped_to_the_caller() -> None:
    """The same key from two callers makes two alerts; from one caller, one."""
    intake, _store = service()
    first = (await intake.submit(rest(BODY, "k", actor="a")))[0]
    again = (await intake.submit(rest(BODY, "k", actor="a")))[0]
    other = (await intake.submit(rest(BODY, "k", actor="b")))[0]
    assert again.alert.id == first.alert.id
    assert not again.created
    assert other.created
    with pytest.raises(IdempotencyConflict):
        await intake.submit(rest(BODY.replace("Fire", "Flood"), "k", actor="a"))


async def test_mqtt_redelivery_is_a_duplicate() -> None:
    """The same MQTT JSON payload delivered twice is stored once."""
    intake, store = service()
    message = Submission(body=BODY.encode(), format=PayloadFormat.JSON, source="mqtt")
    results = [await intake.submit(message) for _ in range(2)]
    assert [r[0].created for r in results] == [True, False]
    assert await store.count_alerts() == 1


async def test_update_references_our_alert_id() -> None:
    """An Update naming our alert id carries that alert's CAP reference triple."""
    intake, _ = service()
    original = (await intake.submit(rest(BODY)))[0].alert
    update = json.dumps(
        {
            "event": "Fire",
            "headline": "All clear",
            "severity": "Minor",
            "msg_type": "Update",
            "references": [original.id],
        }
    )
    stored = (await intake.submit(rest(update)))[0].alert
    assert stored.alert.references == (original.alert.reference_key,)
    with pytest.raises(PayloadError, match="no alert with id"):
        await intake.submit(rest(update.replace(original.id, "missing")))


async def test_two_person_severities_wait_for_approval() -> None:
    """Alerts of a two-person severity are stored pending approval; others accepted."""
    intake, _ = service(frozenset({Severity.EXTREME}))
    extreme = (await intake.submit(rest(BODY.replace("Severe", "Extreme"))))[0].alert
    severe = (await intake.submit(rest(BODY)))[0].alert
    assert extreme.state is AlertState.PENDING_APPROVAL
    assert severe.state is AlertState.ACCEPTED


async def test_json_alert_sent_time_has_no_fraction() -> None:
    """Our JSON alerts get sender from config and a whole-second `sent`."""
    intake, _ = service()
    stored = (await intake.submit(rest(BODY)))[0].alert
    assert stored.alert.sender == "desk@example.org"
    assert stored.alert.sent.microsecond == 0


def test_sniff_format() -> None:
    """Payloads starting with '<' (after BOM/whitespace) are CAP; others JSON."""
    assert sniff_format(b"\xef\xbb\xbf  <alert/>") is PayloadFormat.CAP
    assert sniff_format(b'{"a": 1}') is PayloadFormat.JSON


def test_random_ids_have_uuid4_form_and_do_not_repeat() -> None:
    """`new_id` gives 32 hex digits that parse as a version-4 RFC 4122 UUID, all different
    over several refills of its pool."""
    ids = [new_id() for _ in range(3 * RandomIds._BATCH + 7)]
    assert len(set(ids)) == len(ids)
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert parsed.hex == value
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
