"""The CAP codec (alerts.cap) against hostile input: entity bombs, garbage, non-CAP bytes."""

from __future__ import annotations

import contextlib
import random
import time

import pytest

from alerts.cap import CapError, parse_cap, validate_cap_xml
from tests.support.cap import BILLION_LAUGHS, EXTERNAL_ENTITY, GOOD_FILES, INVALID_FILES, _read

# --- hostile input ---------------------------------------------------------------------------


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion", "external"])
def test_entity_attacks_refused_quickly(data: bytes) -> None:
    """Entity-expansion bombs and external entities are refused as DTDs, without expansion."""
    started = time.perf_counter()
    with pytest.raises(CapError, match="DTD/entity declarations are refused"):
        parse_cap(data)
    assert validate_cap_xml(data) != []
    assert time.perf_counter() - started < 1.0


def test_ten_megabytes_of_garbage_refused_quickly() -> None:
    """10 MB of random bytes, bare or after a start tag, fail fast with CapError."""
    garbage = random.Random(10).randbytes(10_000_000)
    for data in (garbage, b"<alert>" + garbage):
        started = time.perf_counter()
        with pytest.raises(CapError, match="not well-formed XML"):
            parse_cap(data)
        assert time.perf_counter() - started < 2.0


def test_random_and_mutated_bytes_raise_only_cap_error() -> None:
    """Random bytes and corrupted real files either parse or raise CapError, nothing else."""
    rng = random.Random(1234)
    sources = [_read(name) for name in (*GOOD_FILES, *INVALID_FILES)]
    for _ in range(600):
        data = bytearray(rng.choice(sources))
        if rng.random() < 0.2:
            data = bytearray(rng.randbytes(rng.randrange(200)))
        elif rng.random() < 0.5:
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            cut = rng.randrange(len(data))
            del data[cut : cut + rng.randrange(1, 40)]
        with contextlib.suppress(CapError):  # any other exception fails the test
            parse_cap(bytes(data))


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (b"", "not well-formed XML"),
        (b"not xml at all", "not well-formed XML"),
        ('<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">é</alert>'.encode("latin-1"),
         "not well-formed XML"),
        (b'<?xml version="1.0" encoding="no-such-codec"?><alert/>', "unknown encoding"),
        (b"<alert><identifier>x</identifier></alert>", "unsupported namespace ''"),
        (b'<alert xmlns="http://www.incident.com/cap/1.0"/>', "unsupported namespace"),
        (b'<feed xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>', "unsupported root element"),
        (b'<alerts xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>', "holds no <alert>"),
    ],
    ids=["empty", "text", "latin1-undeclared", "unknown-encoding", "no-namespace", "cap10",
         "other-root", "empty-collection"],
)  # fmt: skip
def test_non_cap_input_refused(data: bytes, phrase: str) -> None:
    """Bytes that are not a CAP 1.1/1.2 document raise CapError naming why."""
    with pytest.raises(CapError, match=phrase):
        parse_cap(data)
