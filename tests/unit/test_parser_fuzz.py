"""Property tests (hypothesis) on the parsers that face the public and attackers: the CAP
parser and the JSON intake. Whatever the input, the only exceptions are the documented
validation errors (CapError, PayloadError and its subclasses, pydantic's ValidationError),
which the HTTP edge maps to 4xx; hostile shapes are refused quickly and in bounded memory.

Complements tests/unit/test_cap_hostile_input.py (entity bombs, XXE and 10 MB of garbage
refused quickly, seeded random mutation): here hypothesis generates and shrinks, and memory is
measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from alerts.cap import CapError, parse_cap
from alerts.requests import AlertRequest
from broadcaster.errors import IntakeError, PayloadError
from tests.support.cap import BILLION_LAUGHS, EXTERNAL_ENTITY
from tests.unit.test_intake import rest, service

DATA = Path(__file__).parent.parent / "data" / "cap"
SOURCES = [
    p.read_bytes() for folder in ("real", "spec_examples") for p in (DATA / folder).glob("*.xml")
]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# CPU seconds of this process, not wall time: a loaded CI machine stretches wall time
# (seen: 1.35 s with two other jobs on 2 cores) but not the work the parser does.
MAX_SECONDS = 1.0
MAX_PYTHON_BYTES = 50 * 1024 * 1024
MAX_RSS_GROWTH_KB = 200 * 1024


def _parse(data: bytes) -> None:
    with contextlib.suppress(CapError):  # documented: the HTTP edge answers 422 invalid_cap
        parse_cap(data)


# --- the CAP parser --------------------------------------------------------------------------


@FAST
@given(st.binary(max_size=4096))
def test_cap_arbitrary_bytes_raise_only_cap_error(data: bytes) -> None:
    _parse(data)


@st.composite
def mutated_cap(draw: st.DrawFn) -> bytes:
    """A real CAP document with byte flips, cuts, splices of another document and inserted
    markup (entities, CDATA, deep nesting, huge numbers)."""
    data = bytearray(draw(st.sampled_from(SOURCES)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "cut", "insert", "splice"]))
        if kind == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "insert":
            snippet = draw(
                st.sampled_from(
                    [
                        b"&amp;",
                        b"&#0;",
                        b"&#x110000;",
                        b"&undefined;",
                        b"<![CDATA[x]]>",
                        b"<!-- c -->",
                        b"<?pi x?>",
                        b"<info>",
                        b"</alert>",
                        b"<x:y xmlns:x='urn:x'/>",
                        b"9" * 400,
                        b"<a>" * 300,
                        b"\xff\xfe",
                        b"\x00",
                    ]
                )
                | st.binary(max_size=32)
            )
            data[at:at] = snippet
        else:
            other = draw(st.sampled_from(SOURCES))
            start = draw(st.integers(0, len(other)))
            data[at:at] = other[start : start + draw(st.integers(1, 200))]
    return bytes(data)


@FAST
@given(mutated_cap())
def test_cap_mutated_documents_raise_only_cap_error(data: bytes) -> None:
    _parse(data)


# --- the JSON intake -------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=15), children, max_size=6)
    ),
    max_leaves=30,
)
FIELDS = ["event", "headline", "severity", "urgency", "areas", "expires", "status",
          "channels", "references", "msg_type", "language", "description", "instruction",
          "translations", "groups", "responses", "certainty", "scope"]  # fmt: skip
ALERTISH = st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=8).map(
    lambda extra: {"event": "Fire", "headline": "Leave", "severity": "Severe", **extra}
)


@FAST
@given(JSON_VALUES | ALERTISH)
def test_alert_request_raises_only_validation_error(value: Any) -> None:
    with contextlib.suppress(ValidationError):  # mapped to 422 by intake
        AlertRequest.model_validate_json(json.dumps(value))


@FAST
@given(JSON_VALUES | ALERTISH | st.binary(max_size=300))
def test_intake_raises_only_payload_errors(value: Any) -> None:
    intake, _ = service()
    body = value if isinstance(value, bytes) else json.dumps(value).encode()
    with contextlib.suppress(PayloadError):  # 400 malformed / 422 invalid
        asyncio.run(intake.submit(replace(rest(""), body=body)))


# --- hostile shapes: refused quickly, in bounded memory ----------------------------------------


def _bounded(action: Callable[[], None]) -> None:
    """`action` refuses its input in under MAX_SECONDS of CPU time, with a Python heap peak under
    MAX_PYTHON_BYTES (tracemalloc) and no large growth of the process's peak RSS (which
    also covers libxml2's C allocations, invisible to tracemalloc).

    Timed on a run of its own: tracemalloc triples the cost of every allocation, which is
    the harness's cost, not the parser's, and on a slow VM pushed a 0.2 s parse past 1 s."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.process_time()
    action()
    elapsed = time.process_time() - started
    tracemalloc.start()
    try:
        action()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert elapsed < MAX_SECONDS, f"took {elapsed:.2f} s of CPU"
    assert peak < MAX_PYTHON_BYTES, f"Python heap peak {peak / 1e6:.1f} MB"
    assert rss_growth < MAX_RSS_GROWTH_KB, f"peak RSS grew {rss_growth / 1024:.0f} MB"


def _refused_cap(data: bytes) -> Callable[[], None]:
    def action() -> None:
        with pytest.raises(CapError):
            parse_cap(data)

    return action


@pytest.mark.parametrize(
    "data",
    [
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x">%p;]><a/>',
        b"<alert>" + b"A" * 10_000_000,
        b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">' + b"<a>" * 100_000,
    ],
    ids=["billion-laughs", "xxe", "parameter-entity", "10MB", "deep-xml"],
)
def test_hostile_xml_refused_quickly_in_bounded_memory(data: bytes) -> None:
    _bounded(_refused_cap(data))


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"a":' * 100_000,
        b'{"event": "' + b"x" * 10_000_000 + b'"}',
        b"[" + b"1," * 3_000_000 + b"1]",
    ],
    ids=["deep-array", "deep-object", "10MB-string", "3M-elements"],
)
def test_hostile_json_refused_quickly_in_bounded_memory(body: bytes) -> None:
    def action() -> None:
        with pytest.raises(ValidationError):
            AlertRequest.model_validate_json(body)

    _bounded(action)


async def test_deep_json_through_intake_is_a_payload_error() -> None:
    intake, _ = service()
    started = time.process_time()
    with pytest.raises(IntakeError) as caught:
        await intake.submit(replace(rest(""), body=b"[" * 100_000))
    assert isinstance(caught.value, PayloadError)
    assert time.process_time() - started < MAX_SECONDS
