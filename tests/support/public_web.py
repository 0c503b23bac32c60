"""Helpers for the public web tests: post alerts as the desk does, wait until the public
picture has them, and read Server-Sent Events off a real socket."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests.conftest import RunningService


def alert_json(headline: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event": "Gas leak",
        "headline": headline,
        "description": "A gas main has ruptured.",
        "instruction": "Keep away from Market St.",
        "severity": "Severe",
        "urgency": "Immediate",
        "certainty": "Observed",
        "areas": [
            {"description": "Market St", "circle": {"lat": 51.5, "lon": -0.12, "radius_km": 0.5}}
        ],
        "channels": ["web"],
    }
    body.update(fields)
    return body


async def post_alert(app: RunningService, headline: str, **fields: Any) -> dict[str, Any]:
    """POST one JSON alert as an issuer; returns the API's view of it."""
    async with app.http.post(
        f"{app.url}/v1/alerts", json=alert_json(headline, **fields), headers=app.auth()
    ) as response:
        body: dict[str, Any] = await response.json()
        assert response.status == 201, body
        return body


async def until_published(app: RunningService, alert_id: str, seconds: float = 5.0) -> None:
    """Wait until the publication has handed out `alert_id`'s event (pages then show it)."""
    deadline = time.monotonic() + seconds
    while not any(p.alert.id == alert_id for p in app.service.publication.recent(1000)):
        if time.monotonic() > deadline:
            raise AssertionError(f"alert {alert_id} not published after {seconds} s")
        await asyncio.sleep(0.02)


@dataclass(frozen=True)
class Sse:
    """One SSE block: an event (id, event, data) or a comment."""

    id: str | None = None
    event: str | None = None
    data: str | None = None
    comment: str | None = None

    def json(self) -> dict[str, Any]:
        assert self.data is not None
        value: dict[str, Any] = json.loads(self.data)
        return value


class SseReader:
    """Parses the blocks of an open `text/event-stream` response, comments included."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, seconds: float = 5.0) -> Sse:
        """The next block (event or comment) within `seconds`."""
        fields: dict[str, str] = {}
        comment: str | None = None
        async with asyncio.timeout(seconds):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    raise EOFError("stream ended")
                line = raw.decode().rstrip("\n")
                if line == "":
                    if fields or comment is not None:
                        return Sse(comment=comment, **fields)
                    continue
                if line.startswith(":"):
                    comment = line[1:].strip()
                    continue
                name, _, value = line.partition(":")
                if name == "retry":
                    continue
                fields[name] = value.removeprefix(" ")

    async def next_event(self, seconds: float = 5.0) -> Sse:
        """The next event, skipping keep-alive comments."""
        deadline = time.monotonic() + seconds
        while True:
            block = await self.next(max(0.01, deadline - time.monotonic()))
            if block.comment is None:
                return block
