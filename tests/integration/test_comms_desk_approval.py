"""Comms-desk safeguards over real HTTP: the two-person rule (approve, reject, expiry) and
whether an alert is live, through the real engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

from broadcaster.auth import create_token
from broadcaster.ports import Role
from tests.integration.engine import until
from tests.support.comms_desk import audit_actions, call, desk, issue, page_status
from tests.support.recording_channel import RecordingChannel

# --- the two-person rule ------------------------------------------------------------------


async def test_an_extreme_alert_without_approval_sends_nothing(tmp_path: Path) -> None:
    """An Extreme alert is held pending_approval: nothing planned, sent or public."""
    channel = RecordingChannel()
    async with desk(tmp_path, {"recording": channel}) as app:
        view = await issue(app, severity="Extreme")
        assert view["state"] == "pending_approval"
        await asyncio.sleep(0.5)
        assert channel.sends == []
        status, fetched = await call(app, "GET", f"/v1/alerts/{view['id']}", Role.ISSUER)
        assert (status, fetched["deliveries"]) == (200, {})
        assert await page_status(app, view["id"]) == 404


async def test_self_approval_is_refused_and_another_approver_sends_it(tmp_path: Path) -> None:
    """The issuer cannot approve their own alert (403 self_approval), an issuer role cannot
    approve at all; an approver's approval plans, sends, publishes and is audited."""
    channel = RecordingChannel()
    async with desk(tmp_path, {"recording": channel}) as app:
        # An admin may issue and approve, but not both for one alert.
        view = await issue(app, Role.ADMIN, severity="Extreme")
        path = f"/v1/alerts/{view['id']}/approve"
        status, error = await call(app, "POST", path, Role.ADMIN, {"reason": "mine"})
        assert (status, error["error"]) == (403, "self_approval")
        status, error = await call(app, "POST", path, Role.ISSUER, {"reason": "looks fine"})
        assert (status, error["error"]) == (403, "forbidden")
        status, error = await call(app, "POST", path, Role.APPROVER, {})
        assert (status, error["error"]) == (422, "reason_required")
        assert channel.sends == []
        status, approved = await call(app, "POST", path, Role.APPROVER, {"reason": "verified"})
        assert status == 200, approved
        assert approved["state"] == "accepted"
        assert approved["decision"]["by"] == "test-approver"
        assert approved["decision"]["reason"] == "verified"
        await until(lambda: len(channel.sends) == 1, 5, "the approved alert's send")
        assert channel.sends[0].alert_id == view["id"]
        assert await page_status(app, view["id"]) == 200
        status, error = await call(app, "POST", path, Role.APPROVER, {"reason": "again"})
        assert (status, error["error"]) == (409, "not_pending")
        [row] = await audit_actions(app, "alert.approve")
        assert (row["actor"], row["alert_id"], row["reason"]) == (
            "test-approver",
            view["id"],
            "verified",
        )


async def test_a_second_token_of_the_issuers_name_cannot_approve(tmp_path: Path) -> None:
    """The two-person rule is about people: an approver token bearing the issuer's token name
    (case and spacing aside) is refused 403 self_approval; another name approves."""
    async with desk(tmp_path, {"recording": RecordingChannel()}) as app:
        view = await issue(app, severity="Extreme")  # issued by the token "test-issuer"
        same_person, _ = await create_token(
            app.service.store, role=Role.APPROVER, name="  Test-Issuer "
        )
        # Full-width letters (NFKC) are the same name too.
        look_alike, _ = await create_token(
            app.service.store, role=Role.APPROVER, name="\uff54est-issuer"
        )
        url = f"{app.url}/v1/alerts/{view['id']}/approve"
        for secret in (same_person, look_alike):
            headers = {"Authorization": f"Bearer {secret}"}
            async with app.http.post(url, json={"reason": "mine"}, headers=headers) as response:
                answer = (response.status, (await response.json())["error"])
                assert answer == (403, "self_approval")
        status, approved = await call(
            app, "POST", f"/v1/alerts/{view['id']}/approve", Role.APPROVER, {"reason": "ok"}
        )
        assert (status, approved["state"]) == (200, "accepted")


async def test_action_bodies_bare_wrong_type_or_broken_get_clear_4xx(tmp_path: Path) -> None:
    """approve / reject / cancel: a bare POST (no body, no type) is read as `{}`, so the
    answer names what is missing (422 reason_required); a body not JSON-typed is 415, broken
    JSON (a lone surrogate, deep nesting) 400, a JSON array 422. Nothing changes state."""
    async with desk(tmp_path, {"recording": RecordingChannel()}) as app:
        view = await issue(app, severity="Extreme")
        for action in ("approve", "reject", "cancel"):
            url = f"{app.url}/v1/alerts/{view['id']}/{action}"
            role = Role.ISSUER if action == "cancel" else Role.APPROVER
            cases: list[tuple[bytes, dict[str, str], int, str]] = [
                (b"", {}, 422, "reason_required"),
                (b"reason=ok", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
                (b'{"reason": ', {"Content-Type": "application/json"}, 400, "malformed_json"),
                (b"[]", {"Content-Type": "application/json"}, 422, "invalid_request"),
                # Not Unicode text: once failed the audit hash, and with it the write batch.
                (
                    b'{"reason": "\\ud800"}',
                    {"Content-Type": "application/json"},
                    400,
                    "malformed_json",
                ),
                (b"[" * 100_000, {"Content-Type": "application/json"}, 400, "malformed_json"),
            ]
            for body, headers, status, code in cases:
                async with app.http.post(
                    url, data=body, headers={**app.auth(role), **headers}
                ) as response:
                    answer = await response.json()
                    assert (response.status, answer["error"]) == (status, code), (
                        action,
                        body,
                        answer,
                    )
        status, fetched = await call(app, "GET", f"/v1/alerts/{view['id']}", Role.ISSUER)
        assert fetched["state"] == "pending_approval"


async def test_a_rejected_alert_is_never_sent_nor_public(tmp_path: Path) -> None:
    """Rejecting needs a reason, moves the alert to rejected, is audited; it cannot be
    approved afterwards and never reaches a channel or the public."""
    channel = RecordingChannel()
    async with desk(tmp_path, {"recording": channel}) as app:
        view = await issue(app, severity="Extreme")
        path = f"/v1/alerts/{view['id']}/reject"
        status, rejected = await call(app, "POST", path, Role.APPROVER, {"reason": "wrong area"})
        assert status == 200, rejected
        assert rejected["state"] == "rejected"
        assert rejected["decision"]["reason"] == "wrong area"
        approve = f"/v1/alerts/{view['id']}/approve"
        status, error = await call(app, "POST", approve, Role.APPROVER, {"reason": "ok"})
        assert (status, error["error"]) == (409, "not_pending")
        await asyncio.sleep(0.3)
        assert channel.sends == []
        assert await page_status(app, view["id"]) == 404
        async with app.http.get(f"{app.url}/feed.atom") as response:
            assert view["id"] not in await response.text()
        [row] = await audit_actions(app, "alert.reject")
        assert (row["actor"], row["reason"]) == ("test-approver", "wrong area")
        status, error = await call(
            app, "POST", "/v1/alerts/nope/approve", Role.APPROVER, {"reason": "x"}
        )
        assert (status, error["error"]) == (404, "not_found")


async def test_an_unapproved_alert_expires_and_is_audited(tmp_path: Path) -> None:
    """The background expiry moves an alert nobody approved in time to expired_unapproved,
    by "system", audited; it is never sent."""
    channel = RecordingChannel()
    approval = {"pending_expiry_minutes": 0.005, "expiry_check_seconds": 0.05}
    async with desk(tmp_path, {"recording": channel}, approval=approval) as app:
        view = await issue(app, severity="Extreme")

        async def state() -> str:
            stored = await app.service.store.get_alert(view["id"])
            assert stored is not None
            return stored.state.value

        for _ in range(100):
            if await state() == "expired_unapproved":
                break
            await asyncio.sleep(0.05)
        _status, fetched = await call(app, "GET", f"/v1/alerts/{view['id']}", Role.ISSUER)
        assert fetched["state"] == "expired_unapproved"
        assert fetched["decision"]["by"] == "system"
        assert fetched["decision"]["reason"] == "not approved in time"
        [row] = await audit_actions(app, "alert.expire_unapproved")
        assert row["alert_id"] == view["id"]
        assert channel.sends == []


async def test_two_person_scopes_hold_alerts_but_never_a_cancel(tmp_path: Path) -> None:
    """With two_person_scopes = ["Public"] a Minor public alert is held too; its one-step
    correction (a Cancel) is never held."""
    channel = RecordingChannel()
    approval = {"two_person_severities": [], "two_person_scopes": ["Public"]}
    async with desk(tmp_path, {"recording": channel}, approval=approval) as app:
        view = await issue(app, severity="Minor")
        assert view["state"] == "pending_approval"
        path = f"/v1/alerts/{view['id']}/approve"
        status, _ = await call(app, "POST", path, Role.APPROVER, {"reason": "fine"})
        assert status == 200
        await until(lambda: len(channel.sends) == 1, 5, "the alert's send")
        status, cancel = await call(
            app, "POST", f"/v1/alerts/{view['id']}/cancel", Role.ISSUER, {"reason": "error"}
        )
        assert status == 201, cancel
        assert (cancel["state"], cancel["msg_type"]) == ("accepted", "Cancel")
        await until(lambda: len(channel.sends) == 2, 5, "the correction's send")


# --- test versus live ---------------------------------------------------------------------


async def test_the_alert_view_says_whether_it_is_live(tmp_path: Path) -> None:
    """`live` is true for Actual alerts only; an Exercise plans nothing on a channel that
    has no exercise audience."""
    channel = RecordingChannel()
    async with desk(tmp_path, {"recording": channel}) as app:
        drill = await issue(app, status="Exercise")
        real = await issue(app)
        assert (drill["status"], drill["live"]) == ("Exercise", False)
        assert (real["status"], real["live"]) == ("Actual", True)
        await until(lambda: len(channel.sends) == 1, 5, "the live alert's send")
        await asyncio.sleep(0.2)
        assert [s.alert_id for s in channel.sends] == [real["id"]]
