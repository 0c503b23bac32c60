"""`broadcaster demo` as a newcomer runs it: the printed curl line sends an alert that reaches
the public page, X, Facebook and SMS (all simulators) with receipts, and the demo's simulated
residents answer it by SMS and on X."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.support.broker import free_port


def four_free_ports() -> int:
    """A port p with p+1..p+3 free too (the demo's simulators listen there)."""
    for _ in range(50):
        port = free_port()
        if port + 3 < 65536 and all(_free(port + i) for i in range(1, 4)):
            return port
    pytest.skip("no run of four free ports on loopback")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_demo(tmp_path: Path, port: int, out: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "adapters.main", "demo", "--dir", str(tmp_path / "d")]
    with out.open("wb") as sink:
        return subprocess.Popen(
            [*command, "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


async def test_the_demo_sends_an_alert_everywhere(tmp_path: Path) -> None:
    """The demo prints tokens and a curl body; that alert is on `/` and sent on x, facebook
    and sms, with SMS receipts arriving as delivered; SMS and X replies to it then reach
    `/v1/replies`, linked to it."""
    port = four_free_ports()
    out = tmp_path / "demo.out"
    process = start_demo(tmp_path, port, out)
    try:
        deadline = time.monotonic() + 20
        while "listening on" not in out.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, out.read_text()
            await asyncio.sleep(0.1)
        text = out.read_text()
        issuer = re.search(r"issuer token\s+(\S+)", text)
        admin = re.search(r"admin token\s+(\S+)", text)
        body = re.search(r"-d '(\{.*\})'", text)
        assert issuer, text
        assert admin, text
        assert body, text
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{base}/v1/alerts",
                data=body.group(1),
                headers={
                    "Authorization": f"Bearer {issuer.group(1)}",
                    "Content-Type": "application/json",
                },
            ) as response:
                assert response.status == 201, await response.text()
                alert_id = (await response.json())["id"]
            counts: dict[str, dict[str, int]] = {}
            for _ in range(100):
                async with http.get(
                    f"{base}/v1/alerts/{alert_id}",
                    headers={"Authorization": f"Bearer {admin.group(1)}"},
                ) as response:
                    counts = (await response.json())["deliveries"]
                sms = counts.get("sms", {})
                if (
                    counts.get("x") == {"sent": 1}
                    and counts.get("facebook") == {"sent": 1}
                    and sms
                    and set(sms) == {"delivered"}
                ):
                    break
                await asyncio.sleep(0.2)
            assert counts.get("x") == {"sent": 1}, counts
            assert counts.get("facebook") == {"sent": 1}, counts
            assert set(counts["sms"]) == {"delivered"}
            assert counts["sms"]["delivered"] > 10
            async with http.get(
                f"{base}/v1/alerts", headers={"Authorization": f"Bearer {admin.group(1)}"}
            ) as response:
                listed = {a["id"]: a for a in (await response.json())["alerts"]}
            assert listed[alert_id]["deliveries"] == counts  # the list carries them too
            async with http.get(f"{base}/") as response:
                assert "Avoid Market St" in await response.text()
            # The demo's simulated residents answer by SMS and on X; both reach the feed,
            # triaged and linked to the alert.
            replies: list[dict[str, object]] = []
            for _ in range(150):
                async with http.get(
                    f"{base}/v1/replies", headers={"Authorization": f"Bearer {admin.group(1)}"}
                ) as response:
                    replies = (await response.json())["replies"]
                if {"sms", "x"} <= {r["source"] for r in replies if r["alert_id"] == alert_id}:
                    break
                await asyncio.sleep(0.2)
            linked = [r for r in replies if r["alert_id"] == alert_id]
            assert {"sms", "x"} <= {r["source"] for r in linked}, replies
            assert all(isinstance(r["categories"], list) for r in linked)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, out.read_text()[-2000:]
