"""Helpers for the listening tests: a keyword stand-in for triage, the service started with
it, and waiting for replies to be stored."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.simulators.twilio import TwilioSimulator
from broadcaster.ports import StoredReply
from tests.conftest import RunningService, start_service

SUSPECT_WORDS = ("knife", "gun", "suspect", "balaclava", "running")
HAZARD_WORDS = ("fire", "smoke", "flood", "gas", "collapse")


@dataclass(frozen=True)
class KeywordTriage:
    categories: frozenset[str]
    score: float
    entities: dict[str, list[str]] = field(default_factory=dict)


def keyword_triage(text: str) -> KeywordTriage:
    """A stand-in classifier: "suspect" / "hazard" by keyword, the words as entities."""
    lowered = text.lower()
    found = {w for w in (*SUSPECT_WORDS, *HAZARD_WORDS) if w in lowered}
    categories = set()
    if found & set(SUSPECT_WORDS):
        categories.add("suspect")
    if found & set(HAZARD_WORDS):
        categories.add("hazard")
    return KeywordTriage(
        frozenset(categories), 0.9 if categories else 0.0, {"words": sorted(found)}
    )


async def start_listening(tmp_path: Path, **overrides: Any) -> AsyncIterator[RunningService]:
    """The whole service (as tests.conftest.start_service) with the keyword triage."""
    overrides.setdefault("approval", {"two_person_severities": []})
    services = start_service(tmp_path, wiring={"triage": keyword_triage}, **overrides)
    # aclosing: a test that fails stops the service now, not when the generator is collected.
    async with contextlib.aclosing(services):
        async for running in services:
            yield running


def sms_channel(twilio: TwilioSimulator, **extra: Any) -> dict[str, Any]:
    """`[channels.sms]` settings that send through `twilio` from +15005550001."""
    return {
        "account_sid": twilio.account_sid,
        "auth_token": twilio.auth_token,
        "from_numbers": ["+15005550001"],
        "api_base": twilio.url,
        **extra,
    }


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 10.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met after {within} s")
        await asyncio.sleep(0.05)


async def all_replies(app: RunningService) -> list[StoredReply]:
    return await app.service.store.list_replies(limit=100_000)
