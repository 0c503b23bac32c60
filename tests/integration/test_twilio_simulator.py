"""The Twilio simulator, driven by the real twilio client over loopback; SMS segments and
twilio's signature test vectors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from multidict import MultiDict
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from adapters.simulators.twilio import TwilioSimulator, segments

# A copy of shared/data/twilio (see tests/data/twilio/README.md), so any checkout can run it.
TEST_DATA = Path(__file__).resolve().parents[1] / "data"
SID = "AC" + "ab" * 16
TOKEN = "test-auth-token"
FROM = "+15005550006"

# twilio's AsyncTwilioHttpClient (9.13) still builds aiohttp.BasicAuth and passes it as
# `auth=`, both of which aiohttp 3.14 deprecates; the suite turns warnings into errors, so
# these two are let through in this module (nothing here but twilio's client uses `auth=`).
TO = "+15551234567"


# --- Twilio ------------------------------------------------------------------------------


class CallbackReceiver:
    """The service's side of status callbacks: records each POST with its signature."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[str, dict[str, str], str]] = asyncio.Queue()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        params = {key: str(value) for key, value in form.items()}
        signature = request.headers.get("X-Twilio-Signature", "")
        await self.received.put((str(request.url), params, signature))
        return web.Response(status=204)

    async def __aenter__(self) -> CallbackReceiver:
        app = web.Application()
        app.router.add_post("/hooks/twilio/status", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = int(self._runner.addresses[0][1])
        self.url = f"http://127.0.0.1:{port}/hooks/twilio/status"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def next(self) -> tuple[str, dict[str, str], str]:
        return await asyncio.wait_for(self.received.get(), timeout=2)


def point_at(client: Client, base_url: str) -> Client:
    """Route the real client's Api domain (api.twilio.com) to the simulator."""
    client.api.base_url = base_url
    # TWILIO_EDGE / TWILIO_REGION in the environment would rewrite the host to
    # api.<edge>.<region>.twilio.com; the simulator must not depend on them being unset.
    client.edge = client.region = None
    return client


@pytest.fixture
async def twilio_sim() -> AsyncIterator[TwilioSimulator]:
    async with TwilioSimulator(
        account_sid=SID,
        auth_token=TOKEN,
        mps=2,
        opted_out={"+15550000001"},
        not_mobile={"+15550000002"},
        undeliverable={"+15550000003"},
    ) as sim:
        yield sim


@pytest.fixture
async def twilio_client(twilio_sim: TwilioSimulator) -> AsyncIterator[Client]:
    async with AsyncTwilioHttpClient() as http:
        yield point_at(Client(SID, TOKEN, http_client=http), twilio_sim.url)


async def test_twilio_create_returns_message_resource(
    twilio_sim: TwilioSimulator, twilio_client: Client
) -> None:
    """The real twilio client sends through the simulator and parses a queued message."""
    message = await twilio_client.messages.create_async(to=TO, from_=FROM, body="Evacuate now")
    assert message.sid.startswith("SM")
    assert len(message.sid) == 34
    assert (message.status, message.to, message.from_) == ("queued", TO, FROM)
    assert message.num_segments == "1"
    assert message.date_created is not None
    assert [m["sid"] for m in twilio_sim.messages] == [message.sid]
    assert twilio_sim.messages[0]["body"] == "Evacuate now"


async def test_twilio_wrong_credentials_is_20003() -> None:
    """A wrong auth token is refused with 401 and Twilio's error code 20003."""
    async with (
        TwilioSimulator(account_sid=SID, auth_token=TOKEN) as sim,
        AsyncTwilioHttpClient() as http,
    ):
        client = point_at(Client(SID, "wrong-token", http_client=http), sim.url)
        with pytest.raises(TwilioRestException) as caught:
            await client.messages.create_async(to=TO, from_=FROM, body="x")
    assert (caught.value.status, caught.value.code) == (401, 20003)
    assert sim.counts["unauthorized"] == 1
    assert sim.messages == []


@pytest.mark.parametrize(
    ("to", "body", "code"),
    [
        ("+15550000001", "hello", 21610),
        ("+15550000002", "hello", 21614),
        ("555-1234", "hello", 21211),
        (TO, "", 21602),
    ],
)
async def test_twilio_validation_errors(
    twilio_sim: TwilioSimulator, twilio_client: Client, to: str, body: str, code: int
) -> None:
    """Opted-out, landline, non-E.164 and empty-body sends raise TwilioRestException(code)."""
    with pytest.raises(TwilioRestException) as caught:
        await twilio_client.messages.create_async(to=to, from_=FROM, body=body)
    assert (caught.value.status, caught.value.code) == (400, code)
    assert twilio_sim.messages == []


async def test_twilio_mps_per_sender_is_429(
    twilio_sim: TwilioSimulator, twilio_client: Client
) -> None:
    """Past `mps` segments in a second from one sender, 20429; another sender is unaffected."""
    for _ in range(2):
        await twilio_client.messages.create_async(to=TO, from_=FROM, body="one segment")
    with pytest.raises(TwilioRestException) as caught:
        await twilio_client.messages.create_async(to=TO, from_=FROM, body="one segment")
    assert (caught.value.status, caught.value.code) == (429, 20429)
    await twilio_client.messages.create_async(to=TO, from_="+15005550007", body="other")
    assert len(twilio_sim.messages) == 3
    assert twilio_sim.counts["rate_limited"] == 1


async def test_twilio_messaging_service_without_from(
    twilio_sim: TwilioSimulator, twilio_client: Client
) -> None:
    """Through a messaging service with no From the message is 'accepted', limited per service."""
    service = "MG" + "cd" * 16
    message = await twilio_client.messages.create_async(
        to=TO, messaging_service_sid=service, body="é" * 140
    )
    assert (message.status, message.from_, message.messaging_service_sid) == (
        "accepted",
        None,
        service,
    )
    assert message.num_segments == "1"
    with pytest.raises(TwilioRestException) as caught:  # 1 + 2 segments > mps=2
        await twilio_client.messages.create_async(
            to=TO, messaging_service_sid=service, body="ę" * 71
        )
    assert caught.value.code == 20429


async def test_twilio_fail_ratio_is_seeded() -> None:
    """fail_ratio answers 500s, and the same seed makes the same decisions."""

    async def outcomes() -> list[int]:
        async with (
            TwilioSimulator(account_sid=SID, auth_token=TOKEN, fail_ratio=0.5) as sim,
            AsyncTwilioHttpClient() as http,
        ):
            client = point_at(Client(SID, TOKEN, http_client=http), sim.url)
            statuses = []
            for _ in range(12):
                try:
                    await client.messages.create_async(to=TO, from_=FROM, body="x")
                    statuses.append(201)
                except TwilioRestException as error:
                    statuses.append(error.status)
            assert len(sim.messages) == statuses.count(201)
            return statuses

    first = await outcomes()
    assert set(first) == {201, 500}
    assert await outcomes() == first


async def test_twilio_status_callbacks_are_signed(
    twilio_sim: TwilioSimulator, twilio_client: Client
) -> None:
    """Callbacks arrive sent then delivered, validate with RequestValidator, fail if tampered."""
    validator = RequestValidator(TOKEN)
    async with CallbackReceiver() as receiver:
        message = await twilio_client.messages.create_async(
            to=TO, from_=FROM, body="Shelter in place", status_callback=receiver.url
        )
        seen = []
        for expected in ("sent", "delivered"):
            url, params, signature = await receiver.next()
            assert url == receiver.url
            assert params["MessageSid"] == message.sid
            assert params["MessageStatus"] == expected
            assert (params["AccountSid"], params["From"], params["To"]) == (SID, FROM, TO)
            assert validator.validate(url, params, signature)
            assert not validator.validate(url, {**params, "MessageStatus": "failed"}, signature)
            seen.append(params["MessageStatus"])
    fetched = await twilio_client.messages(message.sid).fetch_async()
    assert (fetched.sid, fetched.status) == (message.sid, "delivered")
    assert [c.status for c in twilio_sim.callbacks] == [204, 204]


async def test_twilio_undeliverable_callback_has_error_code(
    twilio_sim: TwilioSimulator, twilio_client: Client
) -> None:
    """A number in `undeliverable` ends 'undelivered' with ErrorCode 30003."""
    async with CallbackReceiver() as receiver:
        await twilio_client.messages.create_async(
            to="+15550000003", from_=FROM, body="x", status_callback=receiver.url
        )
        statuses = [(await receiver.next())[1] for _ in range(2)]
    assert [p["MessageStatus"] for p in statuses] == ["sent", "undelivered"]
    assert statuses[1]["ErrorCode"] == "30003"


def test_segments_gsm7_and_ucs2() -> None:
    """GSM-7 splits at 160/153 (extension chars count twice), UCS-2 at 70/67."""
    assert segments("a" * 160) == 1
    assert segments("a" * 161) == 2
    assert segments("a" * 306) == 2
    assert segments("a" * 307) == 3
    assert segments("{" * 80) == 1
    assert segments("{" * 81) == 2
    assert segments("é" * 160) == 1  # é is in the GSM-7 basic table
    assert segments("ę" * 70) == 1
    assert segments("ę" * 71) == 2
    assert segments("👍" * 35) == 1  # two UTF-16 units each
    assert segments("👍" * 36) == 2


def _vectors() -> list[dict[str, Any]]:
    data = json.loads((TEST_DATA / "twilio" / "request_validator_test_vectors.json").read_text())
    return [*data["vectors"], *data["derived_hmac_sha256_vectors_COMPUTED_HERE_not_upstream"]]


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: str(v.get("name", "sha256"))[:40])
def test_request_validator_vectors(vector: dict[str, Any]) -> None:
    """Every shared X-Twilio-Signature vector verifies with twilio's RequestValidator."""
    validator = RequestValidator(vector["auth_token"])
    signature = vector["expected_signature"]
    if "body" in vector:
        assert validator.validate(vector["url"], vector["body"], signature)
        return
    if "params_multi" in vector:
        params: Any = MultiDict(vector["params_multi"])
    else:
        params = vector["params"]
    if "signed_url" not in vector:  # the HMAC-SHA256 vector
        got = validator.compute_signature(vector["url"], params, algorithm="HMAC_SHA256")
        assert got == signature
        assert validator.validate(vector["url"], params, signature, algorithm="HMAC_SHA256")
        return
    assert validator.compute_signature(vector["signed_url"], params) == signature
    assert validator.validate(vector["url"], params, signature)
