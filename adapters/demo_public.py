"""The demo's public: simulated residents who answer each alert, so that `broadcaster demo`
shows the listening half (replies triaged for responders) as well as the broadcasting half.

Contract:
- `DemoPublic.run()` looks every `period` seconds at what the simulators received since its
  last look, until cancelled. It only ever talks to the simulators and to our own inbound
  SMS webhook: never a real provider, never a real phone.
- SMS: for each alert text sent for the first time (an SMS delivery, which asks for status
  callbacks, unlike a responder's answer; one text per language), up to
  `sms_repliers` of its recipients answer from their own numbers to the number that texted
  them, through `TwilioSimulator.send_inbound` (signed as Twilio signs, to `hook_url`). When
  the text offers responses ("Reply 1 SAFE, 2 NEED HELP") the first replier answers with an
  option's key, so the alert's poll tally moves too.
- X: each post of ours that opens a thread gets `x_repliers` mentions replying to it, which
  the mentions poller then reads (X conversation → our post → the alert).
- Each answer comes 1-6 s after the look that found its alert, drawn from a fixed bank of
  posts (hazard reports, suspect sightings and the usual noise of thanks, prayers and
  questions) by a seeded generator: the same alerts get the same answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import Coroutine
from typing import Any

import aiohttp

from adapters.simulators.twilio import TwilioSimulator
from adapters.simulators.x import XSimulator

log = logging.getLogger(__name__)

# What people send back after an alert in Manchester city centre: some of it is for the
# HAZARD or SUSPECT feed, most of it is not, as in real reply streams.
ANSWERS = (
    "Strong smell of gas by the Arndale entrance on Market St, people coughing",
    "Smoke pouring out of the first floor of 12 Oldham St, still people inside",
    "Road flooded outside Piccadilly station, a car is stuck in the water",
    "Man in a black hoodie and grey joggers running towards Deansgate, white male 30s",
    "Silver Ford Focus reg MA61 XYZ speeding off down Portland St, 2 men inside",
    "Heard two loud bangs near Shudehill interchange 5 minutes ago",
    "Thank you for letting us know",
    "Thoughts with everyone affected, stay safe Manchester",
    "Is the tram still running to Bury?",
    "Are the shops on King St open today?",
    "Praying for all the families",
    "My daughter works on Market St, is she safe??",
)
X_USERS = ("mcr_resident", "northern_quarter_nic", "deansgate_dan", "salford_sue")
_RESPONSE_KEY = re.compile(r"\bReply (\w+) ")


class DemoPublic:
    """Plays the public for the demo; see the module docstring."""

    def __init__(
        self,
        *,
        hook_url: str,
        twilio: TwilioSimulator | None,
        x: XSimulator | None,
        period: float = 1.0,
        sms_repliers: int = 3,
        x_repliers: int = 3,
        seed: int = 2011,
    ) -> None:
        self._hook_url = hook_url
        self._twilio = twilio
        self._x = x
        self._period = period
        self._sms_repliers = sms_repliers
        self._x_repliers = x_repliers
        self._random = random.Random(seed)  # noqa: S311 - demo data, not secrets
        self._messages_seen = 0
        self._posts_seen = 0
        self._texts_answered: set[str] = set()
        self._answers: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._period)
                self.look()
        finally:
            for task in self._answers:
                task.cancel()
            await asyncio.gather(*self._answers, return_exceptions=True)

    def look(self) -> None:
        """Schedule the answers to whatever the simulators received since the last look."""
        if self._twilio is not None:
            new = self._twilio.messages[self._messages_seen :]
            self._messages_seen += len(new)
            by_text: dict[str, list[tuple[str, str]]] = {}
            for message in new:
                # Alert deliveries ask for status callbacks; a responder's answer to a
                # reply does not (nor do a split message's later parts): no one answers those.
                if not message["status_callback"] or not message["from"]:
                    continue
                if message["body"] not in self._texts_answered:
                    by_text.setdefault(message["body"], []).append((message["to"], message["from"]))
            for text, pairs in by_text.items():
                self._texts_answered.add(text)
                self._answer_sms(text, pairs)
        if self._x is not None:
            posts = self._x.posts[self._posts_seen :]
            self._posts_seen += len(posts)
            for post in posts:
                if post["in_reply_to"] is None:  # a thread's first post: an alert
                    self._answer_post(str(post["id"]))

    def _answer_sms(self, text: str, pairs: list[tuple[str, str]]) -> None:
        chosen = self._random.sample(pairs, min(self._sms_repliers, len(pairs)))
        bodies = self._random.sample(ANSWERS, len(chosen))
        option = _RESPONSE_KEY.search(text)
        if option is not None and bodies:
            bodies[0] = option.group(1)
        for (subscriber, our_number), body in zip(chosen, bodies, strict=True):
            self._later(self._send_sms(subscriber, our_number, body))

    async def _send_sms(self, subscriber: str, our_number: str, body: str) -> None:
        assert self._twilio is not None
        status, _ = await self._twilio.send_inbound(self._hook_url, subscriber, body, to=our_number)
        if status != 200:
            log.warning("demo public: our SMS webhook answered %s", status)

    def _answer_post(self, post_id: str) -> None:
        assert self._x is not None
        handle = self._x.user["username"]
        users = self._random.sample(X_USERS, min(self._x_repliers, len(X_USERS)))
        for user, text in zip(users, self._random.sample(ANSWERS, len(users)), strict=True):
            self._later(self._mention(f"@{handle} {text}", user, post_id))

    async def _mention(self, text: str, user: str, post_id: str) -> None:
        assert self._x is not None
        self._x.add_mention(text, username=user, in_reply_to=post_id)

    def _later(self, answer: Coroutine[Any, Any, None]) -> None:
        """Run `answer` after a human delay, keeping a reference to its task."""
        delay = self._random.uniform(1.0, 6.0)
        task = asyncio.create_task(self._after(delay, answer))
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

    @staticmethod
    async def _after(delay: float, answer: Coroutine[Any, Any, None]) -> None:
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            answer.close()  # never started: no "never awaited" warning
            raise
        # The service may be stopping: a lost demo answer is not worth a traceback.
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            await answer
