"""The `broadcaster` command line.

The CLI lives in the core but never imports an adapter: the composition root
(`adapters/main.py`) hands it a `Wiring` with the two things that need the edges — opening a
store from a URL, and serving. Every command prints errors as one line on stderr and exits 2
for bad usage or configuration, 1 for a runtime failure.

This module parses and dispatches every command and holds the short ones (serve, drain,
subscribers import, replies purge, audit verify/export, triage); the `token` commands are in
`broadcaster/cli_tokens.py`, `demo` in `broadcaster/cli_demo.py` and `backup` in
`broadcaster/cli_backup.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broadcaster.audit import Verification, audit_pages, export_line, verify_log
from broadcaster.audit import record as audit_record
from broadcaster.cli_backup import (
    Backup,
    add_backup_parser,
    check_backup,
    describe,
    run_backup,
)
from broadcaster.cli_demo import demo_settings, serve_demo
from broadcaster.cli_tokens import token_command
from broadcaster.config import Settings, load_settings
from broadcaster.errors import BroadcastError, ConfigError
from broadcaster.logs import configure_logging
from broadcaster.ports import Role, Store
from broadcaster.retention import purge_once
from broadcaster.subscribers import ParsedSubscribers, parse_subscribers_csv


@dataclass(frozen=True)
class Wiring:
    """What the CLI needs from the edges."""

    open_store: Callable[[str], Awaitable[Store]]
    serve: Callable[[Settings], Coroutine[Any, Any, None]]
    # Sends the outbox until nothing is pending, returns how many were open at the start.
    drain: Callable[[Settings], Coroutine[Any, Any, int]]
    # Serves with the demo's simulators and seeded subscribers.
    demo: Callable[[Settings], Coroutine[Any, Any, None]]
    # Runs a coroutine to completion on a fresh event loop (asyncio.run, or uvloop's).
    run: Callable[[Coroutine[Any, Any, Any]], Any] = asyncio.run
    # Copies the database to a new file (None: this build cannot).
    backup: Backup | None = None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="broadcaster", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service")
    serve.add_argument("--config", required=True, help="TOML configuration file")

    demo = commands.add_parser("demo", help="run the service locally with demo settings")
    demo.add_argument("--dir", default="demo-data", help="folder for the demo's files")
    demo.add_argument("--port", type=int, default=8080)

    drain = commands.add_parser(
        "drain", help="send every pending delivery on the configured channels, then exit"
    )
    drain.add_argument("--config", required=True, help="TOML configuration file")

    subscribers = commands.add_parser("subscribers", help="manage SMS subscribers")
    subscriber_commands = subscribers.add_subparsers(dest="subscribers_command", required=True)
    load = subscriber_commands.add_parser(
        "import", help="add or update subscribers from CSV; bad rows are listed by line"
    )
    load.add_argument("csv", help="CSV with a header: phone,lat,lon,area_code,language,groups")
    load.add_argument("--config", required=True)
    load.add_argument("--region", help="country for numbers without +code, e.g. GB or US")

    replies = commands.add_parser("replies", help="manage replies from the public")
    reply_commands = replies.add_subparsers(dest="replies_command", required=True)
    purge = reply_commands.add_parser(
        "purge", help="delete replies older than [replies] retention_days now (audited)"
    )
    purge.add_argument("--config", required=True)

    token = commands.add_parser("token", help="manage API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create", help="create a token; prints it last")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--name", required=True)
    create.add_argument("--config", required=True)
    create.add_argument(
        "--valid-for",
        "--days",
        dest="days",
        type=float,
        default=None,
        metavar="DAYS",
        help="expire after this many days (default: never)",
    )
    revoke = token_commands.add_parser(
        "revoke", help="revoke a token by id, or every live token of a name (audited)"
    )
    revoke.add_argument("--config", required=True)
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", dest="token_id")
    which.add_argument("--name")
    listing = token_commands.add_parser(
        "list", help="list tokens: id, name, role, created, expires, revoked (never secrets)"
    )
    listing.add_argument("--config", required=True)

    audit = commands.add_parser("audit", help="check and export the audit log")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify", help="check the hash chain over every row; exit 0 only when intact"
    )
    verify.add_argument("--config", required=True)
    export = audit_commands.add_parser(
        "export", help="print the log as JSON lines, one per row, with prev_hash and hash"
    )
    export.add_argument("--config", required=True)
    export.add_argument("--since", help="only rows at or after this ISO 8601 time")

    add_backup_parser(commands)

    triage = commands.add_parser("triage", help="triage public replies (no config needed)")
    triage_commands = triage.add_subparsers(dest="triage_command", required=True)
    triage_commands.add_parser(
        "classify", help='JSON lines {"id","text"} on stdin → categories, scores, entities'
    )
    return parser


def main(argv: Sequence[str] | None, wiring: Wiring) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            settings = load_settings(args.config)
            configure_logging(settings.logging)
            wiring.run(wiring.serve(settings))
        elif args.command == "demo":
            settings = demo_settings(Path(args.dir), args.port)
            configure_logging(settings.logging)
            wiring.run(serve_demo(settings, Path(args.dir), wiring))
        elif args.command == "drain":
            settings = load_settings(args.config)
            configure_logging(settings.logging)
            opened = wiring.run(wiring.drain(settings))
            print(f"drained: {opened} deliveries were open; none is left pending or sending")
        elif args.command == "subscribers":
            settings = load_settings(args.config)
            parsed = _read_subscribers(Path(args.csv), args.region)
            created, updated = wiring.run(
                _store_subscribers(settings, parsed, wiring, Path(args.csv).name)
            )
            print(
                f"imported {len(parsed.subscribers)} subscribers ({created} new, {updated} updated)"
            )
            for error in parsed.errors:
                print(f"refused {error}", file=sys.stderr)
            if parsed.errors:
                print(
                    f"{len(parsed.errors)} row(s) refused; fix them, import again", file=sys.stderr
                )
                return 1
        elif args.command == "triage":
            from broadcaster.triage import classify_lines  # loads the model only when asked

            for out in classify_lines(sys.stdin):
                print(out, flush=False)
            sys.stdout.flush()
        elif args.command == "replies":
            settings = load_settings(args.config)
            count, cutoff = wiring.run(_purge_replies(settings, wiring))
            print(f"purged {count} replies received before {cutoff.isoformat()}")
        elif args.command == "token":
            settings = load_settings(args.config)
            return token_command(args, settings, wiring)
        elif args.command == "audit":
            settings = load_settings(args.config)
            return _audit_command(args, settings, wiring)
        elif args.command == "backup":
            settings = load_settings(args.config)
            if wiring.backup is None:
                raise ConfigError("backup", "this build cannot copy its database")
            dest = Path(args.dest)
            check_backup(settings, dest)  # before any store is opened (or migrated)
            # Stopped by a service manager (SIGTERM) as by Ctrl-C: the copy is dropped, not
            # left half-made beside DEST. Only the main thread may set a handler.
            main_thread = threading.current_thread() is threading.main_thread()
            previous = (
                signal.signal(signal.SIGTERM, signal.default_int_handler) if main_thread else None
            )
            try:
                report = wiring.run(run_backup(settings, dest, wiring.backup, wiring.open_store))
            finally:
                if main_thread:
                    signal.signal(signal.SIGTERM, previous)
            print(describe(report))
    except ConfigError as exc:
        print(f"broadcaster: {exc}", file=sys.stderr)
        return 2
    except BroadcastError as exc:
        print(f"broadcaster: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _read_subscribers(path: Path, region: str | None) -> ParsedSubscribers:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("CSV", f"cannot read {path}: {exc}") from exc
    return parse_subscribers_csv(text, default_region=region)


async def _store_subscribers(
    settings: Settings, parsed: ParsedSubscribers, wiring: Wiring, source: str = "CSV"
) -> tuple[int, int]:
    """Import the valid rows (the refused ones are listed by the caller); audited as
    `subscribers.import` with the counts (never the numbers)."""
    store = await wiring.open_store(settings.database.url)
    try:
        created, updated = await store.upsert_subscribers(parsed.subscribers, datetime.now(UTC))
        await audit_record(
            store,
            "cli",
            "subscribers.import",
            file=source,
            rows=len(parsed.subscribers) + len(parsed.errors),
            created=created,
            updated=updated,
            refused=len(parsed.errors),
        )
        return created, updated
    finally:
        await store.close()


async def _purge_replies(settings: Settings, wiring: Wiring) -> tuple[int, datetime]:
    store = await wiring.open_store(settings.database.url)
    try:
        return await purge_once(store, settings.replies.retention_days, actor="cli")
    finally:
        await store.close()


def _audit_command(args: argparse.Namespace, settings: Settings, wiring: Wiring) -> int:
    if args.audit_command == "verify":
        result: Verification = wiring.run(_verify_audit(settings, wiring))
        if result.ok:
            print(f"ok: {result.rows} rows")
            return 0
        print(
            f"broken at seq {result.broken_seq} (after {result.rows} intact rows): {result.problem}"
        )
        return 1
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError("--since", "must be an ISO 8601 time") from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
    wiring.run(_export_audit(settings, wiring, since))
    return 0


async def _verify_audit(settings: Settings, wiring: Wiring) -> Verification:
    store = await wiring.open_store(settings.database.url)
    try:
        return await verify_log(store)
    finally:
        await store.close()


async def _export_audit(settings: Settings, wiring: Wiring, since: datetime | None) -> None:
    store = await wiring.open_store(settings.database.url)
    try:
        async for rows in audit_pages(store):
            lines = [export_line(r) for r in rows if since is None or r.at >= since]
            if lines:
                sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
    finally:
        await store.close()
