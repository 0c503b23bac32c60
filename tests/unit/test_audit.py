"""The audit chain: hashes over canonical JSON, and verify_chain finding the first broken row."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from broadcaster.audit import AuditEntry, AuditRecord, canonical, chain_hash, verify_chain

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def chain(count: int) -> list[AuditRecord]:
    rows: list[AuditRecord] = []
    prev: str | None = None
    for n in range(count):
        entry = AuditEntry(T0 + timedelta(seconds=n), "desk", "reply.dismiss", {"reply_id": n})
        digest = chain_hash(prev, entry)
        rows.append(
            AuditRecord(n + 1, entry.at, entry.actor, entry.action, entry.detail, prev, digest)
        )
        prev = digest
    return rows


def test_hash_is_sha256_of_prev_hash_and_canonical_json() -> None:
    """The canonical form is sorted, compact JSON of [at, actor, action, detail] with `at`
    in UTC microseconds; the first row hashes it with "" before it."""
    entry = AuditEntry(T0, "desk", "reply.note", {"b": 1, "a": "é"})
    text = canonical(entry)
    assert text == '["2026-05-01T12:00:00.000000+00:00","desk","reply.note",{"a":"é","b":1}]'
    assert chain_hash(None, entry) == hashlib.sha256(text.encode()).hexdigest()
    assert chain_hash("ab", entry) == hashlib.sha256(("ab" + text).encode()).hexdigest()


def test_intact_chain_verifies() -> None:
    """An untouched chain, and any tail of it given the hash before, verify."""
    rows = chain(5)
    assert verify_chain(rows) is None
    assert verify_chain(rows[2:], prev_hash=rows[1].hash) is None
    assert verify_chain([]) is None


def test_edits_deletions_and_reordering_are_found_at_their_row() -> None:
    """A changed detail, actor or time, a deleted row and swapped rows each break the chain
    at the first row affected."""
    rows = chain(5)
    assert verify_chain([*rows[:2], replace(rows[2], detail={"reply_id": 99}), *rows[3:]]) == 3
    assert verify_chain([replace(rows[0], actor="someone"), *rows[1:]]) == 1
    moved = replace(rows[4], at=rows[4].at + timedelta(microseconds=1))
    assert verify_chain([*rows[:4], moved]) == 5
    assert verify_chain([*rows[:1], *rows[2:]]) == 3
    assert verify_chain([rows[1], rows[0], *rows[2:]]) == 2
