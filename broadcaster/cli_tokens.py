"""The `broadcaster token` commands: create, list and revoke API tokens.

Contract: `token_command(args, settings, wiring)` runs the subcommand `args.token_command`
names ("create", "revoke", anything else lists) against the store `wiring` opens for
`settings`, prints its result on stdout and returns the exit status (1: revoke matched no
live token). Creating and revoking are audited with actor "cli" (by `broadcaster.auth`); a
secret is printed once, on create, and never listed. A non-positive `--valid-for` raises
`ConfigError`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from broadcaster.auth import create_token, revoke_tokens, token_fields
from broadcaster.config import Settings
from broadcaster.errors import ConfigError
from broadcaster.ports import ApiToken, Role

if TYPE_CHECKING:  # cli.py imports this module; `Wiring` is only a type here
    from broadcaster.cli import Wiring


async def _create_token(
    settings: Settings, role: Role, name: str, valid_for: timedelta | None, wiring: Wiring
) -> str:
    store = await wiring.open_store(settings.database.url)
    try:
        secret, _record = await create_token(
            store, role=role, name=name, valid_for=valid_for, actor="cli"
        )
    finally:
        await store.close()
    return secret


def token_command(args: argparse.Namespace, settings: Settings, wiring: Wiring) -> int:
    command = args.token_command
    if command == "create":
        if args.days is not None and args.days <= 0:
            raise ConfigError("--valid-for", "must be a positive number of days")
        days = timedelta(days=args.days) if args.days else None
        secret = wiring.run(_create_token(settings, Role(args.role), args.name, days, wiring))
        print(f"created {args.role} token for {args.name!r}; it is shown only once:")
        print(secret)
        return 0
    if command == "revoke":
        revoked = wiring.run(_revoke_tokens(settings, args.token_id, args.name, wiring))
        if not revoked:
            print("broadcaster: no live token matches (unknown or revoked)", file=sys.stderr)
            return 1
        for token in revoked:
            print(f"revoked {token.role.value} token {token.id} ({token.name!r})")
        seconds = settings.http.auth_cache_seconds
        print(f"running services refuse it within {seconds:g} s (their token cache)")
        return 0
    tokens = wiring.run(_list_tokens(settings, wiring))
    now = datetime.now(UTC)
    print("id\tname\trole\tstate\tcreated_at\texpires_at\trevoked_at")
    for token in tokens:
        fields = token_fields(token)
        print(
            "\t".join(
                [
                    token.id,
                    token.name,
                    token.role.value,
                    _token_state(token, now),
                    fields["created_at"] or "",
                    fields["expires_at"] or "-",
                    fields["revoked_at"] or "-",
                ]
            )
        )
    return 0


def _token_state(token: ApiToken, now: datetime) -> str:
    if token.revoked_at is not None and token.revoked_at <= now:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"


async def _revoke_tokens(
    settings: Settings, token_id: str | None, name: str | None, wiring: Wiring
) -> list[ApiToken]:
    store = await wiring.open_store(settings.database.url)
    try:
        return await revoke_tokens(store, token_id=token_id, name=name, actor="cli")
    finally:
        await store.close()


async def _list_tokens(settings: Settings, wiring: Wiring) -> list[ApiToken]:
    store = await wiring.open_store(settings.database.url)
    try:
        return await store.list_tokens()
    finally:
        await store.close()
