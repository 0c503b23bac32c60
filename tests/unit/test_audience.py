"""The SMS audience: subscribers inside the alert's areas, by group, minus opt-outs."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from alerts.models import Alert
from alerts.requests import AlertRequest
from broadcaster.audience import SubscriberDirectory, build_audience
from broadcaster.ports import Subscriber

SENT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def alert_over_manchester(**fields: object) -> Alert:
    body: dict[str, object] = {
        "event": "Gas leak",
        "headline": "Avoid Market St",
        "severity": "Severe",
        "areas": [
            {"description": "centre", "circle": {"lat": 53.48, "lon": -2.24, "radius_km": 2}}
        ],
    }
    body.update(fields)
    return AlertRequest.model_validate(body).to_alert(
        identifier="a1", sender="desk@example.org", sent=SENT
    )


PEOPLE = [
    Subscriber("+447911000001", 53.481, -2.241, language="en-GB", groups=("residents",)),
    Subscriber("+447911000002", 53.479, -2.239, language="cy", groups=("businesses",)),
    Subscriber("+447911000003", 53.60, -2.50),  # far away
    Subscriber("+447911000004", None, None, area_code="M1"),  # no position
    Subscriber("+447911000005", 53.48, -2.24, opted_out_at=SENT),
]


def test_recipients_are_those_inside_and_not_opted_out() -> None:
    """Inside the circle and subscribed: chosen once each, in subscriber order."""
    directory = SubscriberDirectory(PEOPLE)
    assert directory.recipients(alert_over_manchester()) == ["+447911000001", "+447911000002"]
    assert len(directory) == 4


def test_groups_filter_and_opt_out_applies_at_once() -> None:
    """Groups narrow the audience; an opt-out removes a number without a rebuild."""
    directory = SubscriberDirectory(PEOPLE)
    alert = alert_over_manchester()
    assert directory.recipients(alert, groups=["businesses"]) == ["+447911000002"]
    directory.opt_out("+447911000001")
    assert directory.recipients(alert) == ["+447911000002"]
    directory.opt_in("+447911000001")
    assert directory.recipients(alert) == ["+447911000001", "+447911000002"]


def test_language_and_an_alert_without_areas() -> None:
    """Each subscriber's language is known; an alert without areas texts nobody."""
    directory = SubscriberDirectory(PEOPLE)
    assert directory.language_of("+447911000002") == "cy"
    assert directory.language_of("+440000") is None
    assert directory.recipients(alert_over_manchester(areas=[])) == []


def test_an_alert_for_a_group_reaches_only_that_group() -> None:
    """An alert's own `groups` (CAP parameters) narrow the audience like the caller's groups."""
    directory = SubscriberDirectory(PEOPLE)
    alert = alert_over_manchester(groups=["businesses"])
    assert alert.groups == frozenset({"businesses"})
    assert directory.recipients(alert) == ["+447911000002"]


def test_a_flagged_number_is_out_at_once_and_opt_in_does_not_bring_it_back() -> None:
    """flag() removes a number without a rebuild; opting in again does not undo a flag."""
    directory = SubscriberDirectory(PEOPLE)
    alert = alert_over_manchester()
    directory.flag("+447911000002")
    assert directory.recipients(alert) == ["+447911000001"]
    assert len(directory) == 3
    directory.opt_out("+447911000002")  # both at once count once
    assert len(directory) == 3
    directory.opt_in("+447911000002")
    assert directory.recipients(alert) == ["+447911000001"]


def test_flagged_subscribers_are_not_loaded_and_a_rebuild_clears_flags_in_memory() -> None:
    """A record flagged in the store is left out, like an opted-out one; a rebuild from
    records without the flag (the admin fixed them) brings the number back."""
    flagged = Subscriber(
        "+447911000006", 53.48, -2.24, flagged="21614 not a mobile number", flagged_at=SENT
    )
    directory = SubscriberDirectory([*PEOPLE, flagged])
    assert directory.recipients(alert_over_manchester()) == ["+447911000001", "+447911000002"]
    assert directory.language_of(flagged.phone) is None
    directory.flag("+447911000001")
    directory.replace([*PEOPLE, Subscriber("+447911000006", 53.48, -2.24)])
    assert directory.recipients(alert_over_manchester()) == [
        "+447911000001",
        "+447911000002",
        "+447911000006",
    ]


def test_an_index_in_pieces_selects_as_one_index_does() -> None:
    """Pieces of 7 and one piece of everything choose the same positions for a circle, a
    polygon and a geocode, ascending and each once, across piece boundaries."""
    rng = random.Random(11)
    people = [
        Subscriber(
            f"+4479110{n:05d}",
            53.40 + rng.random() * 0.15,
            -2.40 + rng.random() * 0.30,
            area_code=f"M{n % 5}",
        )
        for n in range(500)
    ]
    ring = [[53.40, -2.40], [53.55, -2.40], [53.55, -2.31], [53.40, -2.31], [53.40, -2.40]]
    areas = [
        {"description": "centre", "circle": {"lat": 53.48, "lon": -2.24, "radius_km": 3}},
        {"description": "west", "polygon": ring},
        {"description": "M3", "geocodes": {"postcode_district": "M3"}},
    ]
    alert = alert_over_manchester(areas=areas)
    wanted = [area for info in alert.infos for area in info.areas]
    whole = build_audience(people, piece=len(people)).select(wanted)
    pieces = build_audience(people, piece=7)
    assert len(pieces.pieces) == 72
    assert pieces.select(wanted) == whole
    assert whole == sorted(set(whole))
    assert 0 < len(whole) < len(people)
