"""The web channel of the design carries the signed webhooks: an alert posted over REST
asking for `web` reaches every `[channels.web] webhooks` receiver, through the real service."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.conftest import start_service
from tests.support.recorder import Recorder

SECRET = "web-channel-webhook-secret"


async def test_an_alert_for_the_web_channel_reaches_the_webhook_receivers(
    tmp_path: Path,
) -> None:
    """POST /v1/alerts with channels ["web"]: each receiver gets one signed POST (the
    recorder refuses a bad signature), and the alert's counts show them sent as `webhook`."""
    async with Recorder(secret=SECRET.encode()) as recorder:
        receivers = [{"url": f"{recorder.url}/{name}", "secret": SECRET} for name in "ab"]
        async for app in start_service(
            tmp_path,
            approval={"two_person_severities": []},
            channels={"web": {"webhooks": receivers}},
            delivery={"poll_seconds": 0.05},
        ):
            body = {
                "event": "Gas leak",
                "headline": "Avoid Market St",
                "severity": "Severe",
                "urgency": "Immediate",
                "areas": [{"description": "Market St"}],
                "channels": ["web"],
            }
            async with app.http.post(f"{app.url}/v1/alerts", json=body, headers=app.auth()) as r:
                assert r.status == 201, await r.text()
                alert_id = (await r.json())["id"]
            for _ in range(100):
                if len(recorder.received) == 2:
                    break
                await asyncio.sleep(0.05)
            assert sorted(item.path for item in recorder.received) == ["/a", "/b"]
            assert recorder.counts["bad_signature"] == 0
            assert {json.loads(item.body)["alert_id"] for item in recorder.received} == {alert_id}
            deliveries: dict[str, dict[str, int]] = {}
            for _ in range(100):
                async with app.http.get(f"{app.url}/v1/alerts/{alert_id}", headers=app.auth()) as r:
                    deliveries = (await r.json())["deliveries"]
                if deliveries == {"webhook": {"sent": 2}}:
                    break
                await asyncio.sleep(0.05)
            assert deliveries == {"webhook": {"sent": 2}}
