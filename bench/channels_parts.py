"""What the child processes of bench/channels.py run: a simulator (`--simulator twilio|x`,
its URL printed first and its figures last) and the runs (`--run engine|aiohttp|twilio|geo|x`),
each of which prints its figures as JSON; and the alerts, subscribers and settings they use.

Not a benchmark of its own: bench/channels.py starts these, one process each.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import itertools
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import numpy as np
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from adapters.channels import open_channels
from adapters.server import tune_collector
from adapters.simulators.twilio import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    TwilioSimulator,
)
from adapters.simulators.x import XSimulator
from adapters.sms import SmsChannel
from adapters.store import open_store
from alerts.requests import AlertRequest
from alerts.sms import render_sms
from bench.results import cpu_seconds, peak_rss_mb, thread_cpu_seconds
from broadcaster.audience import SubscriberDirectory
from broadcaster.config import SmsSettings, load_settings
from broadcaster.intake import PayloadFormat, Submission
from broadcaster.ports import Subscriber
from broadcaster.ratelimit import ChannelLimiter
from broadcaster.service import Service

SEED = 20101014  # the GMP day, 14 October 2010
CENTRE = (53.48, -2.24)
AREA = {"description": "Manchester", "circle": {"lat": 53.48, "lon": -2.24, "radius_km": 25}}
SMS_ALERT = {
    "event": "Gas leak",
    "headline": "Avoid Market St: gas leak",
    "instruction": "Keep away from Market St until further notice.",
    "severity": "Severe",
    "urgency": "Immediate",
    "certainty": "Observed",
    "areas": [AREA],
}
CALLS = ("concern for welfare", "collision", "suspicious person", "noise", "theft", "alarm")
CREDENTIALS = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
PLACES = ("Salford", "Wigan", "Bolton", "Oldham", "Stockport", "Rochdale", "Bury", "Trafford")


def senders(count: int) -> list[str]:
    return [f"+1500555{i:04d}" for i in range(count)]


def phones(count: int) -> list[str]:
    return [f"+4479{i:08d}" for i in range(count)]


def make_alert(body: dict[str, Any], identifier: str = "bench") -> Any:
    sent = datetime.now(UTC).replace(microsecond=0)
    return AlertRequest.model_validate(body).to_alert(
        identifier=identifier, sender="bench@localhost", sent=sent
    )


def bench_settings(folder: str, **sections: Any) -> Any:
    database = {"url": f"sqlite:///{folder}/channels.db"}
    return load_settings(
        None, database=database, approval={"two_person_severities": []}, **sections
    )


def submission(body: dict[str, Any]) -> Submission:
    return Submission(json.dumps(body).encode(), PayloadFormat.JSON, source="bench", actor="bench")


class GcClock:
    """Wall time this process spends in the garbage collector while the block runs."""

    def __enter__(self) -> GcClock:
        self.seconds, self._start = 0.0, 0.0
        gc.callbacks.append(self._on)
        return self

    def _on(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on)


async def timed(count: int, work: Awaitable[Any]) -> dict[str, Any]:
    """Wall and CPU time of `work` (the event loop's own thread apart), per message."""
    pid = os.getpid()
    with GcClock() as collector:
        threads, cpu, started = thread_cpu_seconds(), cpu_seconds(), time.perf_counter()
        await work
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    loop = thread_cpu_seconds().get(pid, 0.0) - threads.get(pid, 0.0)
    per = 1e6 / count
    return dict(
        seconds=seconds,
        per_second=count / seconds,
        cpu_seconds=cpu,
        us=cpu * per,
        loop_us=loop * per,
        gc_us=collector.seconds * per,
    )


# --- simulators and runs, each in a process of its own -----------------------------------


async def serve_simulator(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run until stdin closes: the URL is the first line out, the figures the last."""
    sim: Any = (
        TwilioSimulator(mps=None)
        if kind == "twilio"
        else XSimulator(post_limit=args.x_limit, window_seconds=args.x_window)
    )
    async with sim:
        print(json.dumps({"url": sim.url}), flush=True)
        await asyncio.to_thread(sys.stdin.read)
    if kind == "twilio":
        bodies = sorted({m["body"] for m in sim.messages})
        return {"counts": sim.counts, "bodies": bodies, "to": len({m["to"] for m in sim.messages})}
    at, limit = [p["at"] for p in sim.posts], args.x_limit
    # With no 429, every L-th post opens one of the simulator's fixed windows.
    starts = at[::limit]
    bursts = [at[min(i + limit, len(at)) - 1] - at[i] for i in range(0, len(at), limit)]
    return dict(
        counts=sim.counts,
        texts=len({p["text"] for p in sim.posts}),
        bursts=bursts,
        periods=[b - a for a, b in itertools.pairwise(starts)],
        makespan=at[-1] - at[0] if at else 0.0,
    )


# --- 1. SMS fan-out ----------------------------------------------------------------------


async def sms_engine(args: argparse.Namespace) -> dict[str, Any]:
    n = args.subscribers
    people = [
        Subscriber(phone, CENTRE[0] + (i % 101 - 50) * 1e-3, CENTRE[1] + (i % 97 - 48) * 1e-3)
        for i, phone in enumerate(phones(n))
    ]
    settings = SmsSettings(
        account_sid=DEFAULT_ACCOUNT_SID,
        auth_token=DEFAULT_AUTH_TOKEN,  # type: ignore[arg-type]
        from_numbers=senders(args.senders),
        api_base=args.sim_url,
        rate_per_second=1000,  # the most SmsSettings allows, per number
    )
    directory = SubscriberDirectory(people)
    channel = SmsChannel(settings, directory, public_url=None, concurrency=args.concurrency)
    del people
    with tempfile.TemporaryDirectory() as folder:
        config = bench_settings(folder, delivery={"concurrency": args.concurrency})
        store = await open_store(config.database.url)
        service = Service.build(config, store, channels={"sms": channel})
        try:
            started = time.perf_counter()
            [result] = await service.intake.submit(submission(SMS_ALERT))
            plan_seconds, peak_before = time.perf_counter() - started, peak_rss_mb()
            tune_collector()  # as `broadcaster serve` does once it has started
            figures = await timed(n, service.dispatcher.drain())
            counts = (await store.delivery_counts(result.alert.id)).get("sms", {})
        finally:
            await service.stop()
    # Two per-message costs of the channel, measured alone: its cost() (segments counted per
    # recipient) and the limiter's acquire over the senders (a clock that never makes it wait).
    recipients = phones(min(n, 20_000))
    started = time.process_time()
    for phone in recipients:
        channel.cost(result.alert, phone)
    cost_us = (time.process_time() - started) / len(recipients) * 1e6
    clock = itertools.count(0.0, 0.002).__next__
    limiter = ChannelLimiter(channel.limits, clock=lambda: float(clock()))
    started = time.process_time()
    for _ in recipients:
        await limiter.acquire(1)
    limiter_us = (time.process_time() - started) / len(recipients) * 1e6
    return figures | dict(
        plan_seconds=plan_seconds,
        ok=counts.get("sent", 0),
        cost_us=cost_us,
        limiter_us=limiter_us,
        peak_rss_before_drain_mb=peak_before,
        peak_rss_mb=peak_rss_mb(),
    )


async def sms_bare(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """`concurrency` workers: aiohttp POSTs of the same forms, or the twilio client alone."""
    tune_collector()  # the same collector settings as the engine run
    numbers, statuses = senders(args.senders), Counter[int]()
    text = render_sms(make_alert(SMS_ALERT), language="en-GB", max_segments=3, link=None)[0]
    http = AsyncTwilioHttpClient(timeout=15.0)
    client = Client(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, http_client=http)
    client.api.base_url = args.sim_url
    url = f"{args.sim_url}/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json"
    credentials = base64.b64encode(f"{DEFAULT_ACCOUNT_SID}:{DEFAULT_AUTH_TOKEN}".encode())
    headers = client.get_headers("POST", {"Authorization": f"Basic {credentials.decode()}"})
    timeout, work = aiohttp.ClientTimeout(total=15.0), iter(enumerate(phones(args.subscribers)))

    async def post(session: aiohttp.ClientSession, form: dict[str, str]) -> None:
        async with session.post(url, data=form, headers=headers, timeout=timeout) as answer:
            body = await answer.read()
            statuses[answer.status] += 1
            json.loads(body)["sid"]  # what the engine keeps as provider_ref

    async def create(form: dict[str, str]) -> None:
        try:
            await client.messages.create_async(to=form["To"], from_=form["From"], body=text)
            statuses[201] += 1
        except TwilioRestException as exc:
            statuses[exc.status] += 1

    async def worker(session: aiohttp.ClientSession) -> None:
        for i, to in work:
            form = {"To": to, "From": numbers[i % len(numbers)], "Body": text}
            await (post(session, form) if kind == "aiohttp" else create(form))

    async with aiohttp.ClientSession() as session:  # the defaults the twilio client uses
        workers = asyncio.gather(*(worker(session) for _ in range(args.concurrency)))
        figures = await timed(args.subscribers, workers)
    await http.close()
    return figures | {"ok": statuses.get(201, 0), "peak_rss_mb": peak_rss_mb()}


# --- 2. geo-selection and 3. GMP replay --------------------------------------------------


def geo(args: argparse.Namespace) -> dict[str, Any]:
    n, rng = args.geo_subscribers, np.random.default_rng(SEED)
    lats = rng.uniform(53.30, 53.70, n).tolist()  # a 45 x 56 km box around Manchester
    lons = rng.uniform(-2.75, -1.90, n).tolist()
    started = time.perf_counter()
    people = [
        Subscriber(phone, lat, lon, area_code=f"M{i % 60 + 1}")
        for i, (phone, lat, lon) in enumerate(zip(phones(n), lats, lons, strict=True))
    ]
    make_seconds = time.perf_counter() - started
    started = time.perf_counter()
    directory = SubscriberDirectory(people)
    build_seconds = time.perf_counter() - started

    def circle(lat: float, lon: float, km: float) -> dict[str, Any]:
        return {"description": f"{km} km", "circle": {"lat": lat, "lon": lon, "radius_km": km}}

    def box(south: float, west: float, north: float, east: float, east_north: float) -> Any:
        ring = [[south, west], [south, east], [north, east_north], [north, west]]
        return {"description": "polygon", "polygon": [*ring, ring[0]]}

    queries = {  # the west polygon: beyond the box's west edge to -2.50 (south) / -2.48
        "polygon over ~30 %": [box(53.29, -2.76, 53.71, -2.50, -2.48)],
        "5 km circle": [circle(*CENTRE, 5)],
        "several areas (3 circles, a polygon, a geocode)": [
            circle(53.58, -2.43, 3),
            circle(53.41, -2.15, 2),
            circle(*CENTRE, 5),
            box(53.52, -2.12, 53.56, -2.06, -2.06),
            {"description": "M7", "geocodes": {"postcode_district": "M7"}},
        ],
    }
    selections = {}
    for label, areas in queries.items():
        alert, times = make_alert(SMS_ALERT | {"areas": areas}, f"geo-{len(selections)}"), []
        for _ in range(3):
            started = time.perf_counter()
            chosen = directory.recipients(alert)
            times.append(time.perf_counter() - started)
        selections[label] = {"seconds": max(times), "best": min(times), "count": len(chosen)}
    return dict(
        make_seconds=make_seconds,
        build_seconds=build_seconds,
        selections=selections,
        peak_rss_mb=peak_rss_mb(),
    )


def gmp_call(n: int) -> dict[str, Any]:
    headline = f"Call {n}: {CALLS[n % len(CALLS)]}, {PLACES[n * 7 % len(PLACES)]}"
    return {"event": "Police call", "severity": "Minor", "headline": headline}


async def x_replay(args: argparse.Namespace) -> dict[str, Any]:
    x = {key: "bench" for key in CREDENTIALS} | {"api_base": args.sim_url}
    x |= {"post_window_limit": args.x_limit, "post_window_seconds": args.x_window}
    with tempfile.TemporaryDirectory() as folder:
        config = bench_settings(folder, channels={"x": x})
        store = await open_store(config.database.url)
        async with open_channels(config, store) as channels:
            service = Service.build(config, store, channels=channels)
            try:
                started = time.perf_counter()
                for first in range(1, args.posts + 1, 100):  # queued 100 at once (group commit)
                    calls = range(first, min(first + 100, args.posts + 1))
                    submits = (service.intake.submit(submission(gmp_call(n))) for n in calls)
                    await asyncio.gather(*submits)
                queue_seconds = time.perf_counter() - started
                await service.dispatcher.drain()
                left = await store.count_open_deliveries()
            finally:
                await service.stop()
    return {"queue_seconds": queue_seconds, "open_left": left}
