"""Comms-desk alerts from templates over real HTTP: filled, planned and sent, or refused
naming what is wrong, through the real engine."""

from __future__ import annotations

from pathlib import Path

from broadcaster.ports import Role
from tests.integration.engine import until
from tests.support.comms_desk import MARKET, call, desk
from tests.support.recording_channel import RecordingChannel

# --- templates ----------------------------------------------------------------------------


async def test_an_alert_from_a_template_goes_the_normal_way(tmp_path: Path) -> None:
    """from-template fills the template, records its name, is idempotent on the key, is
    planned and sent; an Extreme template is held for approval like any Extreme alert."""
    channel = RecordingChannel()
    async with desk(tmp_path, {"recording": channel}) as app:
        body = {"values": {"location": "Market Street"}, "areas": [MARKET]}
        path = "/v1/alerts/from-template/gas_leak"
        status, view = await call(app, "POST", path, Role.ISSUER, body, **{"Idempotency-Key": "k1"})
        assert status == 201, view
        assert view["template"] == "gas_leak"
        assert view["headline"] == "Gas leak near Market Street: keep away"
        assert view["alert"]["infos"][0]["language"] == "en-GB"
        assert [i["language"] for i in view["alert"]["infos"]] == ["en-GB", "cy", "es"]
        status, again = await call(
            app, "POST", path, Role.ISSUER, body, **{"Idempotency-Key": "k1"}
        )
        assert (status, again["id"]) == (200, view["id"])
        await until(lambda: len(channel.sends) == 1, 5, "the alert's send")
        armed = {
            "values": {"location": "Market Street"},
            "areas": [MARKET],
            "languages": ["en-GB"],
        }
        status, held = await call(
            app, "POST", "/v1/alerts/from-template/armed_incident", Role.ISSUER, armed
        )
        assert status == 201, held
        assert (held["severity"], held["state"]) == ("Extreme", "pending_approval")


async def test_from_template_errors_name_what_is_wrong(tmp_path: Path) -> None:
    """Unknown template 404; missing or invalid values 422 naming the fields; unknown body
    fields 422; no issuer role 403; GET /v1/templates lists placeholders and corrections."""
    async with desk(tmp_path, {"recording": RecordingChannel()}) as app:
        status, error = await call(
            app, "POST", "/v1/alerts/from-template/nope", Role.ISSUER, {"values": {}}
        )
        assert (status, error["error"]) == (404, "unknown_template")
        path = "/v1/alerts/from-template/gas_leak"
        status, error = await call(app, "POST", path, Role.ISSUER, {"values": {}})
        assert (status, error["error"]) == (422, "invalid_template_values")
        assert "location" in error["detail"]
        bad = {"values": {"location": "Market St\n<script>", "colour": "red"}}
        status, error = await call(app, "POST", path, Role.ISSUER, bad)
        assert status == 422
        assert "colour" in error["detail"]
        assert "location" in error["detail"]
        status, error = await call(app, "POST", path, Role.ISSUER, {"value": {}})
        assert status == 422
        assert "value" in error["detail"]
        status, _ = await call(app, "POST", path, Role.RESPONDER, {"values": {}})
        assert status == 403
        status, listing = await call(app, "GET", "/v1/templates", Role.APPROVER)
        assert status == 200
        templates = {t["name"]: t for t in listing["templates"]}
        assert templates["gas_leak"]["correction"] == "gas_leak_all_clear"
        assert "location" in templates["gas_leak"]["placeholders"]
        assert templates["false_alarm"]["kind"] == "correction"
        status, _ = await call(app, "GET", "/v1/templates", Role.RESPONDER)
        assert status == 403
