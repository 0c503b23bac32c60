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
  that row (a truncated tail is not detectable from the rows alone). `verify_log(store)`
  does this over a whole store in pages and says what differs (`row_problem`);
  `export_line(row)` is a row as one JSON line (for `broadcaster audit export`).
- `detail` must be JSON-able (str keys; str, int, float, bool, None, lists, dicts).
- `record(store, actor, action, **detail)` appends on its own: `actor` is a token (recorded
  as its name, with `token_id` added to the detail) or a fixed name ("system", "cli",
  "mqtt"); `at` is now. An action that must commit with a store write (an alert's creation,
  an approval, a reply's state, a purge, a token revocation) builds its `AuditEntry` the
  same way and hands it to that store method, which appends it in the same transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = [
    "AuditEntry",
    "AuditLog",
    "AuditReader",
    "AuditRecord",
    "Principal",
    "canonical",
    "chain_hash",
    "record",
    "utc_iso",
    "verify_chain",
    "verify_log",
]


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


def row_problem(row: AuditRecord, expected_prev: str | None) -> str | None:
    """What is wrong with `row` given the hash of the row before it (None: nothing)."""
    if (row.prev_hash or None) != (expected_prev or None):
        return (
            f"prev_hash is {row.prev_hash or 'empty'} but the row before has hash "
            f"{expected_prev or 'none (first row)'} (a row before it was deleted, inserted "
            "or edited)"
        )
    computed = chain_hash(row.prev_hash, row.entry())
    if computed != row.hash:
        return (
            f"stored hash {row.hash} does not match its content (computed {computed}): "
            "at, actor, action or detail was changed"
        )
    return None


def verify_chain(rows: Iterable[AuditRecord], *, prev_hash: str | None = None) -> int | None:
    """The seq of the first broken row, or None. `prev_hash` is the hash of the row before
    the first one given (None when they start the log), so a log can be checked in pages."""
    expected_prev = prev_hash
    for row in rows:
        if row_problem(row, expected_prev) is not None:
            return row.seq
        expected_prev = row.hash
    return None


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of `verify_log`: rows checked, and the first broken row if any."""

    rows: int
    broken_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


async def audit_pages(
    store: AuditReader, *, after_seq: int = 0, page_size: int = 1000
) -> AsyncIterator[list[AuditRecord]]:
    """Every audit row after `after_seq`, in seq order, a page at a time."""
    while True:
        rows = await store.audit_rows(after_seq, page_size)
        if not rows:
            return
        yield rows
        after_seq = rows[-1].seq


async def verify_log(store: AuditReader, *, page_size: int = 1000) -> Verification:
    """Check the whole chain, reading it in pages (memory stays flat on any size)."""
    count = 0
    expected_prev: str | None = None
    async for rows in audit_pages(store, page_size=page_size):
        for row in rows:
            problem = row_problem(row, expected_prev)
            if problem is not None:
                return Verification(count, row.seq, problem)
            count += 1
            expected_prev = row.hash
    return Verification(count)


def export_view(row: AuditRecord) -> dict[str, Any]:
    """A row as exported: every field the hash covers, with `prev_hash` and `hash`, so an
    export can be verified on its own (`at` exactly as hashed)."""
    return {
        "seq": row.seq,
        "at": utc_iso(row.at),
        "actor": row.actor,
        "action": row.action,
        "detail": dict(row.detail),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def export_line(row: AuditRecord) -> str:
    """One row as a JSON line for records management (`export_view`, canonical JSON)."""
    return _dumps(export_view(row))


class Principal(Protocol):
    """Who acted, when it was a token (an `ApiToken`): its name and id."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...


class AuditLog(Protocol):
    """What `record` needs of a store."""

    async def append_audit(self, entry: AuditEntry) -> AuditRecord: ...


class AuditReader(Protocol):
    """What verification and export need of a store."""

    async def audit_rows(self, after_seq: int, limit: int) -> list[AuditRecord]: ...


def actor_detail(actor: Principal | str) -> tuple[str, dict[str, Any]]:
    """(the actor as the log names it, detail fields that identify it)."""
    if isinstance(actor, str):
        return actor, {}
    return actor.name, {"token_id": actor.id}


async def record(
    store: AuditLog,
    actor: Principal | str,
    action: str,
    /,
    **detail: Any,
) -> AuditRecord:
    """Append `action` by `actor` now: a token is named with its id in `token_id`;
    a string ("system", "cli") is the actor as is. `detail` must be JSON-able."""
    name, identity = actor_detail(actor)
    entry = AuditEntry(
        at=datetime.now(UTC), actor=name, action=action, detail={**detail, **identity}
    )
    return await store.append_audit(entry)
