"""deploy/mosquitto: the password file and the ACL keep signage to the published topics."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest

from tests.support.broker import free_port, wait_for_port
from tests.support.deploy import DEPLOY

# --- Mosquitto: password file, ACL -------------------------------------------------------


@contextlib.contextmanager
def deployed_mosquitto(tmp_path: Path) -> Iterator[int]:
    """deploy/mosquitto/mosquitto.conf with the deploy ACL, on a free loopback port."""
    mosquitto, passwd = shutil.which("mosquitto"), shutil.which("mosquitto_passwd")
    if mosquitto is None or passwd is None:
        pytest.skip("mosquitto / mosquitto_passwd not installed")
    port = free_port()
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    conf = conf.replace("listener 1883", f"listener {port} 127.0.0.1")
    conf = conf.replace("/mosquitto/data/passwd", str(tmp_path / "passwd"))
    conf = conf.replace("/mosquitto/config/acl", str(DEPLOY / "mosquitto" / "acl"))
    conf = conf.replace("persistence true", "persistence false")
    conf = conf.replace("log_dest stdout", f"log_dest file {tmp_path / 'mosquitto.log'}")
    conf += f"\nuser {getpass.getuser()}\n"
    (tmp_path / "mosquitto.conf").write_text(conf)
    (tmp_path / "passwd").touch(mode=0o600)
    for user in ("broadcaster", "desk", "signage"):
        subprocess.run(
            [passwd, "-b", str(tmp_path / "passwd"), user, f"{user}-pw"],
            check=True,
            capture_output=True,
        )
    process = subprocess.Popen(
        [mosquitto, "-c", str(tmp_path / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.asynccontextmanager
async def client(port: int, user: str) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(
        "127.0.0.1", port, username=user, password=f"{user}-pw", identifier=f"t-{user}"
    ) as connected:
        yield connected


async def received(subscriber: aiomqtt.Client, seconds: float) -> list[str]:
    topics: list[str] = []

    async def collect() -> None:
        async for message in subscriber.messages:
            topics.append(str(message.topic))

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(collect(), seconds)
    return topics


async def test_mosquitto_acl_keeps_signage_to_published_alerts(tmp_path: Path) -> None:
    with deployed_mosquitto(tmp_path) as port:
        async with (
            client(port, "broadcaster") as service,
            client(port, "signage") as signage,
            client(port, "desk") as desk,
        ):
            await signage.subscribe("broadcaster/#", qos=1)
            await service.subscribe("broadcaster/intake/#", qos=1)
            # The desk hands an alert in; only the service sees it.
            await desk.publish("broadcaster/intake/alerts", b"raw", qos=1)
            # The service publishes; signage sees alerts and areas, not replies or errors.
            for topic in (
                "broadcaster/alerts/severe",
                "broadcaster/areas/market-st",
                "broadcaster/replies/hazard",
                "broadcaster/errors",
            ):
                await service.publish(topic, b"x", qos=1)
            # Signage may not publish: dropped by the broker.
            await signage.publish("broadcaster/intake/alerts", b"forged", qos=1)
            await signage.publish("broadcaster/alerts/extreme", b"forged", qos=1)
            seen_by_signage = await received(signage, 1.0)
            seen_by_service = await received(service, 0.2)
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(
                "127.0.0.1", port, username="signage", password="wrong", identifier="t-bad"
            ):
                pass
    assert sorted(seen_by_signage) == ["broadcaster/alerts/severe", "broadcaster/areas/market-st"]
    assert seen_by_service == ["broadcaster/intake/alerts"]
