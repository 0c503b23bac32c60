"""MQTT out without a broker: area slugs, the JSON payload, and which topics each alert event
publishes or clears (adapters.mqtt_out.plan_publishes)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from adapters.mqtt_out import (
    Publish,
    RetainedAreas,
    alert_payload,
    area_slug,
    event_kind,
    plan_publishes,
)
from alerts.models import MsgType
from alerts.requests import AlertRequest
from broadcaster.config import load_settings
from broadcaster.errors import ConfigError
from broadcaster.ports import AlertState, StoredAlert

SENT = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
BASE = "https://alerts.example.org"
P = "bc"


def stored(alert_id: str, seq: int, *areas: str, **fields: object) -> StoredAlert:
    base: dict[str, object] = {
        "event": "Gas leak",
        "headline": "Avoid Market St",
        "severity": "Severe",
        "areas": [{"description": a} for a in areas],
    }
    alert = AlertRequest.model_validate({**base, **fields}).to_alert(
        identifier=alert_id, sender="desk@example.org", sent=SENT
    )
    return StoredAlert(
        seq=seq,
        id=alert_id,
        alert=alert,
        channels=("mqtt",),
        source="json",
        state=AlertState.ACCEPTED,
        created_by=None,
        idempotency_key=None,
        body_hash="0" * 64,
        cap_xml=None,
        received_at=SENT,
    )


def correction(alert_id: str, seq: int, msg_type: str, *areas: str) -> StoredAlert:
    ref = "desk@example.org,orig,2026-11-22T11:00:00+00:00"
    return stored(alert_id, seq, *areas, msg_type=msg_type, references=[ref])


def summary(publishes: list[Publish]) -> list[tuple[str, str, bool]]:
    """(topic, alert id or "" for a clear, retained) per publish."""
    return [
        (p.topic, json.loads(p.payload)["id"] if p.payload else "", p.retain) for p in publishes
    ]


@pytest.mark.parametrize(
    ("description", "slug"),
    [
        ("Market St", "market-st"),
        ("Old Town (North)", "old-town-north"),
        ("  Zürich / Île-de-France  ", "zurich-ile-de-france"),
        ("A1--B2", "a1-b2"),
    ],
)
def test_area_slug(description: str, slug: str) -> None:
    """Lower case, runs of non-alphanumerics one "-", accents dropped, no edge dashes."""
    assert area_slug(description) == slug


def test_area_slug_without_letters_is_a_stable_hash() -> None:
    """A description with nothing sluggable gets area-<hash>, the same each time."""
    assert area_slug("東京").startswith("area-")
    assert area_slug("東京") == area_slug("東京") != area_slug("大阪")


def test_event_kinds() -> None:
    """Alert/Update/Cancel are created/updated/cancelled."""
    assert [event_kind(m) for m in (MsgType.ALERT, MsgType.UPDATE, MsgType.CANCEL)] == [
        "created",
        "updated",
        "cancelled",
    ]


def test_payload_fields_and_no_secrets() -> None:
    """The payload has the listed fields, public links, and nothing else."""
    alert = stored("a1", 1, "Market St", urgency="Immediate", expires="2030-01-01T00:00:00Z")
    payload = alert_payload(alert, base_url=BASE + "/", replaces=["a0"])
    assert payload["links"] == {"page": f"{BASE}/alerts/a1", "cap": f"{BASE}/alerts/a1.cap"}
    assert (payload["kind"], payload["status"], payload["severity"], payload["urgency"]) == (
        "created",
        "Actual",
        "Severe",
        "Immediate",
    )
    assert payload["expires"] == "2030-01-01T00:00:00+00:00"
    assert payload["areas"] == ["Market St"]
    assert payload["replaces"] == ["a0"]
    assert set(payload) == {
        "id", "kind", "msg_type", "status", "severity", "urgency", "certainty", "event",
        "headline", "areas", "sent", "expires", "links", "replaces",
    }  # fmt: skip


def test_alert_publishes_the_stream_and_retains_each_area() -> None:
    """An Actual alert: its severity topic (not retained), then each area retained."""
    areas = RetainedAreas()
    plan = plan_publishes(
        stored("a1", 1, "Market St", "Old Town", "market st"),
        (),
        prefix=P,
        base_url=BASE,
        areas=areas,
    )
    assert summary(plan) == [
        (f"{P}/alerts/severe", "a1", False),
        (f"{P}/areas/market-st", "a1", True),
        (f"{P}/areas/old-town", "a1", True),
    ]


def test_exercise_is_never_retained() -> None:
    """Exercises go to the stream only, so a drill never displaces a live alert."""
    plan = plan_publishes(
        stored("e1", 1, "Market St", status="Exercise", severity="Minor"),
        (),
        prefix=P,
        base_url=BASE,
        areas=RetainedAreas(),
    )
    assert summary(plan) == [(f"{P}/alerts/minor", "e1", False)]


def test_update_retains_its_areas_and_clears_dropped_ones() -> None:
    """An Update re-publishes its areas and clears those of the original it dropped."""
    areas = RetainedAreas()
    original = stored("a1", 1, "Market St", "Old Town")
    plan_publishes(original, (), prefix=P, base_url=BASE, areas=areas)
    plan = plan_publishes(
        correction("u1", 2, "Update", "Market St"), [original], prefix=P, base_url=BASE, areas=areas
    )
    assert summary(plan) == [
        (f"{P}/alerts/severe", "u1", False),
        (f"{P}/areas/market-st", "u1", True),
        (f"{P}/areas/old-town", "", True),
    ]
    assert json.loads(plan[0].payload)["replaces"] == ["a1"]


def test_cancel_clears_the_cancelled_alerts_areas_unless_a_newer_alert_holds_them() -> None:
    """A Cancel clears what the cancelled alert holds, but not an area a newer alert took."""
    areas = RetainedAreas()
    first = stored("a1", 1, "Market St", "Old Town")
    plan_publishes(first, (), prefix=P, base_url=BASE, areas=areas)
    plan_publishes(stored("a2", 2, "Old Town"), (), prefix=P, base_url=BASE, areas=areas)
    plan = plan_publishes(
        correction("c1", 3, "Cancel"), [first], prefix=P, base_url=BASE, areas=areas
    )
    assert summary(plan) == [
        (f"{P}/alerts/severe", "c1", False),
        (f"{P}/areas/market-st", "", True),
    ]
    assert areas.owner("market-st") == 3
    assert areas.owner("old-town") == 2


def test_a_late_retry_of_an_older_alert_does_not_overwrite_a_newer_one() -> None:
    """A retry of alert 1 after alert 2 took the area publishes the stream only; a retry of
    the same alert publishes its area again."""
    areas = RetainedAreas()
    older, newer = stored("a1", 1, "Market St"), stored("a2", 2, "Market St")
    plan_publishes(older, (), prefix=P, base_url=BASE, areas=areas)
    plan_publishes(newer, (), prefix=P, base_url=BASE, areas=areas)
    retry_older = plan_publishes(older, (), prefix=P, base_url=BASE, areas=areas)
    retry_newer = plan_publishes(newer, (), prefix=P, base_url=BASE, areas=areas)
    assert summary(retry_older) == [(f"{P}/alerts/severe", "a1", False)]
    assert summary(retry_newer)[1:] == [(f"{P}/areas/market-st", "a2", True)]


def test_alerts_topic_that_would_take_in_our_own_publishes_is_refused() -> None:
    """An intake filter matching <prefix>/alerts/... or /areas/... is a config error while
    publish_alerts is on, and fine when it is off."""
    url = "mqtt://127.0.0.1:1883"
    for topic in ("broadcaster/#", "broadcaster/alerts/#", "+/areas/+", "#"):
        with pytest.raises(ConfigError) as caught:
            load_settings(None, mqtt={"url": url, "alerts_topic": topic})
        assert caught.value.key == "mqtt"
        assert load_settings(
            None, mqtt={"url": url, "alerts_topic": topic, "publish_alerts": False}
        )
    for topic in ("broadcaster/alerts", "broadcaster/alerts/in", "other/#", "broadcaster/+"):
        assert load_settings(None, mqtt={"url": url, "alerts_topic": topic})
