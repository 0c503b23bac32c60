"""API fuzzing: schemathesis reads the live `/openapi.json` of a running service and sends
every operation generated requests (valid by the schema, and deliberately invalid), with an
admin token, an issuer token, a token we never issued and none. Checks: no 5xx ever
(`not_a_server_error`), and a body matching the schema wherever the schema declares that
status (`response_schema_conformance`).

Bounded so CI stays fast (a few examples per operation and caller, no shrinking database);
the event streams are left out (they never end, so a generated request would hang).
Regression tests for the 5xx the fuzzer found are at the end.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from broadcaster.ports import Role
from tests.conftest import RunningService, start_service
from tests.integration.conftest import POSTGRES_DSN_ENV

STREAMS = {"/v1/stream", "/v1/replies/stream"}
EXAMPLES = {"admin": 6, "issuer": 3, "invalid": 2, "none": 2}
ALERT = {
    "event": "Gas leak",
    "headline": "Avoid Market St",
    "severity": "Severe",
    "urgency": "Immediate",
    "channels": [],
    "areas": [{"description": "centre", "circle": {"lat": 53.48, "lon": -2.24, "radius_km": 5}}],
}


class LiveService:
    """The service on its own event loop in a thread, so synchronous clients can call it; on
    SQLite, or on a fresh PostgreSQL schema (`dsn`): PostgreSQL refuses what SQLite takes
    (a NUL in text was a 503 there; tests/integration/test_unstorable_text.py)."""

    def __init__(self, tmp_path: Path, dsn: str | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._dsn = dsn
        self._schema = f"fuzz_{secrets.token_hex(6)}"
        database = {"url": f"sqlite:///{tmp_path / 'broadcaster.db'}"}
        if dsn is not None:
            self._run(self._admin(f"CREATE SCHEMA {self._schema}"))
            database = {"url": f"{dsn}?search_path={self._schema}"}
        self._gen: AsyncIterator[RunningService] = start_service(
            tmp_path,
            database=database,
            http={"port": 0, "auth_failures_per_minute": 100_000, "tips_burst": 10_000},
            approval={"two_person_severities": ["Extreme"]},
        )
        self.app = self._run(self._gen.__anext__())

    async def _admin(self, sql: str) -> None:
        assert self._dsn is not None
        connection = await asyncpg.connect(self._dsn)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=60)

    def close(self) -> None:
        self._run(self._gen.aclose())
        if self._dsn is not None:
            self._run(self._admin(f"DROP SCHEMA IF EXISTS {self._schema} CASCADE"))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveService]:
    dsn = None
    if request.param == "postgres":
        dsn = os.environ.get(POSTGRES_DSN_ENV)
        if not dsn:
            pytest.skip(f"{POSTGRES_DSN_ENV} not set: PostgreSQL store tests need a database")
    service = LiveService(tmp_path_factory.mktemp("fuzz"), dsn)
    try:
        app = service.app
        # Something to find: a sent alert, one waiting for approval, a tip, a subscriber.
        issuer = {"Authorization": f"Bearer {app.tokens[Role.ISSUER]}"}
        admin = {"Authorization": f"Bearer {app.tokens[Role.ADMIN]}"}
        for body in (ALERT, {**ALERT, "severity": "Extreme"}):
            response = requests.post(f"{app.url}/v1/alerts", json=body, headers=issuer, timeout=10)
            assert response.ok, response.text
        assert requests.post(f"{app.url}/v1/replies", json={"text": "smoke"}, timeout=10).ok
        subscriber = {"phone": "+447911123456", "lat": 53.48, "lon": -2.24}
        response = requests.post(
            f"{app.url}/v1/subscribers", json=subscriber, headers=admin, timeout=10
        )
        assert response.ok, response.text
        yield service
    finally:
        service.close()


def _callers(app: RunningService) -> dict[str, dict[str, str]]:
    return {
        "admin": {"Authorization": f"Bearer {app.tokens[Role.ADMIN]}"},
        "issuer": {"Authorization": f"Bearer {app.tokens[Role.ISSUER]}"},
        "invalid": {"Authorization": "Bearer bc_" + "x" * 43},
        "none": {},
    }


def _fuzzer(
    strategy: Any,
    examples: int,
    url: str,
    session: requests.Session,
    headers: dict[str, str],
) -> Callable[[], None]:
    """A bounded hypothesis run of one operation for one caller."""

    @given(case=strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call(base_url=url, session=session, headers=headers, timeout=10)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    return fuzz  # type: ignore[no-any-return]


def test_no_route_answers_5xx_or_breaks_its_schema(live: LiveService) -> None:
    app = live.app
    schema = schemathesis.openapi.from_url(f"{app.url}/openapi.json")
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) >= 30
    failures: list[str] = []
    started = time.monotonic()
    with requests.Session() as session:
        for operation in operations:
            if operation.path in STREAMS:
                continue
            for caller, headers in _callers(app).items():
                # Invalid requests only where there is something to get wrong.
                raw = operation.definition.raw
                modes = (
                    list(GenerationMode)
                    if raw.get("parameters") or raw.get("requestBody")
                    else [GenerationMode.POSITIVE]
                )
                for mode in modes:
                    fuzz = _fuzzer(
                        operation.as_strategy(generation_mode=mode),
                        EXAMPLES[caller],
                        app.url,
                        session,
                        headers,
                    )
                    try:
                        fuzz()
                    except Unsatisfiable:
                        continue  # nothing invalid to generate here (e.g. a free-form path)
                    except Exception as exc:  # noqa: BLE001 - every failure is reported
                        failures.append(f"{operation.label} as {caller} ({mode.value}): {exc}")
    elapsed = time.monotonic() - started
    assert failures == [], "\n\n".join(failures)
    assert elapsed < 60, f"the fuzzing took {elapsed:.1f} s"


# Regressions: each 5xx the fuzzer (or reading the code it pointed at) found.


async def test_subscribers_page_after_past_64_bits_is_400(app: RunningService) -> None:
    """Found by the fuzzer: `GET /v1/subscribers?after=276344867432028962816000` reached
    SQLite with an integer past 64 bits (OverflowError, a 500)."""
    for after in ("276344867432028962816000", "-1"):
        async with app.http.get(
            f"{app.url}/v1/subscribers?after={after}", headers=app.auth(Role.ADMIN)
        ) as response:
            assert response.status == 400, after
            assert (await response.json())["error"] == "bad_query"


async def test_desk_notice_with_a_non_ascii_digit_is_ignored(app: RunningService) -> None:
    """`/responders?notice=acknowledged&reply=²`: "²".isdigit() is true but int("²") fails
    (a 500 for a logged-in responder); now the notice is simply not shown. A malformed
    filter is reported on the page."""
    import re

    import aiohttp

    # A cookie jar of its own: the default one refuses cookies from an IP address.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(f"{app.url}/responders") as response:
            page = await response.text()
        match = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert match is not None
        form = {"csrf_token": match.group(1), "token": app.tokens[Role.RESPONDER]}
        async with http.post(
            f"{app.url}/responders/login", data=form, allow_redirects=False
        ) as response:
            assert response.status == 303
        for reply in ("²", "1" * 5000, "12"):
            async with http.get(
                f"{app.url}/responders", params={"notice": "acknowledged", "reply": reply}
            ) as response:
                assert response.status == 200, reply
                shown = "Reply 12 acknowledged." in await response.text()
                assert shown is (reply == "12")
        # A filter that is not understood is said to be so, not silently dropped.
        for query in ({"state": "bogus"}, {"cluster": "²"}, {"since": "yesterday"}):
            async with http.get(f"{app.url}/responders", params=query) as response:
                assert response.status == 200, query
                assert "That filter was not understood" in await response.text(), query
        async with http.get(f"{app.url}/responders", params={"state": "new"}) as response:
            assert "not understood" not in await response.text()
