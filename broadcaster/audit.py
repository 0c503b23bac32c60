"""The audit log core: an append-only record of who did what, chained by hashes.

Contract:
- An `AuditEntry` (at, actor, action, detail) is appended by a store in one transaction
  that reads the last row's hash and writes the new row; writers are serialised (SQLite's
  single writer, a PostgreSQL advisory lock), so the chain never forks.
- `hash = sha256(prev_hash + canonical(entry))`, hex; `prev_hash` is the previous row's hash,
  "" for the first row (stored as NULL). `canonical` is the JSON array
  `[at, actor, action, detail]` with sorted keys, no spaces and UTF-8 kept as is; `at` is
  ISO 8601 in UTC with microseconds (what both stores keep exactly).
- `verify_chain(rows)` walks rows in seq order and returns the seq of the first row whose
  hash does not match its content or whose prev_hash is not the hash before it; None when
  the chain is intact. Editing any field of a row, deleting or reordering rows breaks it at
  that row (a truncated tail is not detectable from the rows alone).
- `detail` must be JSON-able (str keys; str, int, float, bool, None, lists, dicts).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["AuditEntry", "AuditRecord", "canonical", "chain_hash", "utc_iso", "verify_chain"]


def utc_iso(at: datetime) -> str:
    """`at` as the chain spells it: ISO 8601 in UTC with microseconds."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Something someone did: `actor` is a token name (or "system", "cli"), `action` a dotted
    verb such as "reply.acknowledge", `detail` what it was done to and how."""

    at: datetime
    actor: str
    action: str
    detail: Mapping[str, Any] = field(default_factory=dict)

    def detail_json(self) -> str:
        """The detail as stored: canonical JSON."""
        return _dumps(dict(self.detail))


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An audit row as stored. `seq` only grows; `prev_hash` is None for the first row."""

    seq: int
    at: datetime
    actor: str
    action: str
    detail: Mapping[str, Any]
    prev_hash: str | None
    hash: str

    def entry(self) -> AuditEntry:
        return AuditEntry(self.at, self.actor, self.action, self.detail)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical(entry: AuditEntry) -> str:
    """The bytes (as text) the hash covers besides prev_hash."""
    return _dumps([utc_iso(entry.at), entry.actor, entry.action, dict(entry.detail)])


def chain_hash(prev_hash: str | None, entry: AuditEntry) -> str:
    """sha256(prev_hash + canonical(entry)) in hex; no prev_hash counts as ""."""
    data = (prev_hash or "") + canonical(entry)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def verify_chain(rows: Iterable[AuditRecord], *, prev_hash: str | None = None) -> int | None:
    """The seq of the first broken row, or None. `prev_hash` is the hash of the row before
    the first one given (None when they start the log), so a log can be checked in pages."""
    expected_prev = prev_hash
    for row in rows:
        if (row.prev_hash or None) != (expected_prev or None):
            return row.seq
        if chain_hash(row.prev_hash, row.entry()) != row.hash:
            return row.seq
        expected_prev = row.hash
    return None
