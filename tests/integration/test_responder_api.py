"""The responder API on a real socket: the replies feed with its filters and roles, actions
with their audit rows, answers to the sender through the Twilio and X simulators, and the
clusters of near-duplicate reports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from adapters.server import load_clusterer
from adapters.simulators.twilio import TwilioSimulator
from adapters.simulators.x import XSimulator
from broadcaster.audit import AuditRecord, verify_chain
from broadcaster.ports import ReplySource, Role
from tests.conftest import RunningService
from tests.integration.test_x_mentions import x_settings
from tests.support.broker import free_port
from tests.support.public_web import post_alert
from tests.support.replies import all_replies, eventually, sms_channel, start_listening

PHONE = "+447911000001"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[RunningService]:
    async for running in start_listening(
        tmp_path, http={"port": 0, "tips_per_minute": 600, "tips_burst": 100}
    ):
        yield running


async def tip(app: RunningService, text: str, **fields: Any) -> int:
    async with app.http.post(f"{app.url}/v1/replies", json={"text": text, **fields}) as response:
        assert response.status == 202
        reply_id: int = (await response.json())["id"]
        return reply_id


async def get(app: RunningService, path: str, role: Role | None = Role.RESPONDER) -> Any:
    headers = app.auth(role) if role else {}
    async with app.http.get(f"{app.url}{path}", headers=headers) as response:
        return response.status, await response.json()


async def post(
    app: RunningService, path: str, body: Any = None, role: Role = Role.RESPONDER
) -> tuple[int, Any]:
    async with app.http.post(f"{app.url}{path}", json=body, headers=app.auth(role)) as response:
        return response.status, await response.json()


async def test_list_is_for_responders_newest_first_and_filtered(app: RunningService) -> None:
    """No token is 401; issuer and approver tokens are 403; a responder (or admin) gets the
    replies newest first with sender, triage and state, filtered by category, state and
    since, and paged with `next`."""
    smoke = await tip(app, "Smoke pouring from the roof of the mill", contact=PHONE)
    knife = await tip(app, "Man with a knife by the bus station", lat=53.48, lon=-2.24)
    quiet = await tip(app, "Thank you for the update")

    assert (await get(app, "/v1/replies", None))[0] == 401
    assert (await get(app, "/v1/replies", Role.ISSUER))[0] == 403
    assert (await get(app, "/v1/replies", Role.APPROVER))[0] == 403
    assert (await get(app, "/v1/replies", Role.ADMIN))[0] == 200
    status, body = await get(app, "/v1/replies")
    assert status == 200
    assert [r["id"] for r in body["replies"]] == [quiet, knife, smoke]
    first = body["replies"][2]
    assert first["sender"] == PHONE
    assert first["source"] == "web"
    assert first["categories"] == ["hazard"]
    assert first["state"] == "new"
    assert first["state_by"] is None
    assert first["cluster_count"] == 1
    assert body["replies"][1]["location"] == {"lat": 53.48, "lon": -2.24}

    _, hazards = await get(app, "/v1/replies?category=hazard")
    assert [r["id"] for r in hazards["replies"]] == [smoke]
    assert (await post(app, f"/v1/replies/{knife}/acknowledge"))[0] == 200
    _, handled = await get(app, "/v1/replies?state=acknowledged")
    assert [r["id"] for r in handled["replies"]] == [knife]
    _, future = await get(app, "/v1/replies?since=2999-01-01T00:00:00Z")
    assert future["replies"] == []
    _, page = await get(app, "/v1/replies?limit=2")
    assert [r["id"] for r in page["replies"]] == [quiet, knife]
    _, rest = await get(app, page["next"])
    assert [r["id"] for r in rest["replies"]] == [smoke]
    _, newer = await get(app, f"/v1/replies?after={smoke}")
    assert [r["id"] for r in newer["replies"]] == [quiet, knife]
    assert (await get(app, "/v1/replies?state=lost"))[0] == 400
    assert (await get(app, "/v1/replies?since=yesterday"))[0] == 400


async def test_since_takes_an_unencoded_plus_and_a_naive_time_as_utc(app: RunningService) -> None:
    """`since` with its "+" not URL-encoded (it arrives as a space) and one with no offset
    (UTC) filter like their exact forms, instead of a 400."""
    await tip(app, "Smoke on Deansgate")
    for since in ("2999-01-01T00:00:00+00:00", "2999-01-01T00:00:00", "2999-01-01"):
        status, body = await get(app, f"/v1/replies?since={since}")
        assert (status, body["replies"]) == (200, []), since
    for since in ("2000-01-01T00:00:00+01:00", "2000-01-01 10:00"):
        status, body = await get(app, f"/v1/replies?since={since}")
        assert (status, len(body["replies"])) == (200, 1), since


@pytest.mark.parametrize("since", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00%2B14:00"])
async def test_since_with_no_utc_equivalent_is_400(app: RunningService, since: str) -> None:
    """A `since` that overflows once converted to UTC is 400 bad_query, not a 500."""
    status, body = await get(app, f"/v1/replies?since={since}")
    assert (status, body["error"]) == (400, "bad_query")


async def test_actions_set_state_and_are_audited(app: RunningService) -> None:
    """acknowledge / escalate / dismiss set state, who (the token's name) and when; each is
    one audit row with the note, and the chain verifies; unknown replies are 404 and other
    roles 403."""
    reply_id = await tip(app, "Gas smell on Deansgate")
    status, body = await post(app, f"/v1/replies/{reply_id}/acknowledge", {"note": "on it"})
    assert status == 200
    assert body["state"] == "acknowledged"
    assert body["state_by"] == "test-responder"
    assert body["state_at"] is not None
    status, body = await post(app, f"/v1/replies/{reply_id}/escalate", role=Role.ADMIN)
    assert (status, body["state"], body["state_by"]) == (200, "escalated", "test-admin")
    assert (await post(app, f"/v1/replies/{reply_id}/dismiss", role=Role.ISSUER))[0] == 403
    assert (await post(app, "/v1/replies/999999/dismiss"))[0] == 404
    assert (await post(app, f"/v1/replies/{reply_id}/dismiss", {"note": 5}))[0] == 422

    stored = await app.service.store.get_reply(reply_id)
    assert stored is not None
    assert (stored.state.value, stored.state_by) == ("escalated", "test-admin")
    rows = await app.service.store.audit_rows(0, 100)
    assert [(r.actor, r.action, r.detail) for r in reply_rows(rows)] == [
        (
            "test-responder",
            "reply.acknowledge",
            {"reply_id": reply_id, "from": "new", "to": "acknowledged", "note": "on it"},
        ),
        (
            "test-admin",
            "reply.escalate",
            {"reply_id": reply_id, "from": "acknowledged", "to": "escalated"},
        ),
    ]
    assert verify_chain(rows) is None


async def test_web_and_mqtt_replies_have_no_return_channel(app: RunningService) -> None:
    """Answering a web tip is 409 no_return_channel, even with a contact; an empty answer
    is 422; nothing is audited."""
    reply_id = await tip(app, "Flooded underpass", contact="me@example.org")
    status, body = await post(app, f"/v1/replies/{reply_id}/respond", {"text": "Thanks"})
    assert (status, body["error"]) == (409, "no_return_channel")
    assert (await post(app, f"/v1/replies/{reply_id}/respond", {"text": " "}))[0] == 422
    assert reply_rows(await app.service.store.audit_rows(0, 100)) == []


async def test_answer_to_an_sms_reply_goes_to_the_sender(tmp_path: Path) -> None:
    """An answer to an SMS reply reaches the Twilio simulator as a message to the sender
    from our number; it is audited without the number; a Twilio failure is a 502."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    async with TwilioSimulator() as twilio:
        async for app in start_listening(
            tmp_path,
            http={"port": port, "public_url": public},
            channels={"sms": sms_channel(twilio)},
        ):
            status, _ = await twilio.send_inbound(
                f"{public}/hooks/twilio/sms", PHONE, "Smoke from the school roof"
            )
            assert status == 200
            [stored] = await all_replies(app)
            path = f"/v1/replies/{stored.id}/respond"
            status, body = await post(app, path, {"text": "Crews are on the way."})
            assert status == 201, body
            sent = twilio.messages[-1]
            assert (sent["to"], sent["from"], sent["body"]) == (
                PHONE,
                "+15005550001",
                "Crews are on the way.",
            )
            assert body == {"id": stored.id, "source": "sms", "provider_ref": sent["sid"]}
            [row] = reply_rows(await app.service.store.audit_rows(0, 100))
            assert (row.actor, row.action) == ("test-responder", "reply.respond")
            assert row.detail["text"] == "Crews are on the way."
            assert PHONE not in str(row.detail)

            twilio.fail_next(1, 500)
            status, body = await post(app, path, {"text": "Second answer"})
            assert (status, body["error"]) == (502, "provider_unavailable")
            assert len(reply_rows(await app.service.store.audit_rows(0, 100))) == 1


def reply_rows(rows: list[AuditRecord]) -> list[AuditRecord]:
    """The audit rows of replies (token creation and use are audited too)."""
    return [r for r in rows if r.action.startswith("reply.")]


async def _stored(app: RunningService, count: int) -> bool:
    return len(await all_replies(app)) >= count


async def test_answer_to_a_mention_is_a_reply_on_x(tmp_path: Path) -> None:
    """An answer to an X mention is posted by the X simulator as a reply to that mention,
    starting with the author's handle."""
    async with XSimulator() as x:
        async for app in start_listening(tmp_path, channels={"x": x_settings(x)}):
            mention = x.add_mention("@EmergencyDev fire behind the market", username="resident")
            await eventually(partial(_stored, app, 1), what="the mention stored")
            [stored] = await all_replies(app)
            assert stored.source is ReplySource.X
            status, body = await post(
                app, f"/v1/replies/{stored.id}/respond", {"text": "Thank you, crews are there."}
            )
            assert status == 201, body
            post_sent = x.posts[-1]
            assert post_sent["in_reply_to"] == mention
            assert post_sent["text"] == "@resident Thank you, crews are there."
            assert body["provider_ref"] == post_sent["id"]
            status, body = await post(app, f"/v1/replies/{stored.id}/respond", {"text": "x" * 300})
            assert (status, body["error"]) == (422, "invalid_answer")


async def test_near_duplicates_share_a_cluster_and_count(app: RunningService) -> None:
    """Copies of one report share the first report's cluster; each shows the count;
    `?cluster=` lists one cluster, and a cluster that is no number is a 400."""
    if load_clusterer() is None:
        pytest.skip("broadcaster.triage.Clusterer is not importable")
    text = "Gunman seen running down Wellington Road towards the station, police on scene"
    first = await tip(app, text)
    second = await tip(app, "RT @someone: " + text)
    other = await tip(app, "Flood water rising fast on the A58 near Bolton, two cars stuck")
    _, body = await get(app, "/v1/replies")
    by_id = {r["id"]: r for r in body["replies"]}
    assert by_id[first]["cluster_id"] == by_id[second]["cluster_id"] == first
    assert by_id[first]["cluster_count"] == by_id[second]["cluster_count"] == 2
    assert (by_id[other]["cluster_id"], by_id[other]["cluster_count"]) == (None, 1)
    _, body = await get(app, f"/v1/replies?cluster={first}")
    assert [r["id"] for r in body["replies"]] == [second, first]
    for bad in ("x", "-1", "²", "1" * 19):
        status, body = await get(app, f"/v1/replies?cluster={bad}")
        assert (status, body["error"]) == (400, "bad_query"), bad


async def test_replies_to_one_alert(app: RunningService) -> None:
    """`?alert=` lists the replies linked to that alert (with the other filters, and on the
    `next` page); anything not made like an alert id (NUL, newline, quote, too long ...) is a
    400."""
    alert = await post_alert(app, "Gas leak on Market St")
    answer = await tip(app, "Strong smell of gas by the bank", alert_id=alert["id"])
    await tip(app, "Smoke over the A6")  # answers no alert
    _, body = await get(app, f"/v1/replies?alert={alert['id']}")
    assert [r["id"] for r in body["replies"]] == [answer]
    assert body["replies"][0]["alert_id"] == alert["id"]
    _, body = await get(app, f"/v1/replies?alert={alert['id']}&category=suspect")
    assert body["replies"] == []
    _, body = await get(app, f"/v1/replies?alert={alert['id']}&category=hazard")
    assert [r["id"] for r in body["replies"]] == [answer]  # not the smoke, a hazard too
    second = await tip(app, "Gas again by the bank", alert_id=alert["id"])
    _, body = await get(app, f"/v1/replies?alert={alert['id']}&alert=other&limit=1")
    assert [r["id"] for r in body["replies"]] == [second]
    _, body = await get(app, body["next"])
    assert [r["id"] for r in body["replies"]] == [answer]
    for bad in ("a b", "a,b", "<x>", "x" * 65, "\x00", "a\n", 'a"b', "\u00e9"):
        status, body = await get(app, "/v1/replies?" + urlencode({"alert": bad}))
        assert (status, body["error"]) == (400, "bad_query"), bad
