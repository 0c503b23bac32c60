"""The real `broadcaster` process: token creation from the CLI, and kill -9 after a 201."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.support.broker import free_port, wait_for_port

CLI = [sys.executable, "-m", "adapters.main"]


def write_config(tmp_path: Path, port: int) -> Path:
    config = tmp_path / "broadcaster.toml"
    config.write_text(
        f'[http]\nport = {port}\n[database]\nurl = "sqlite:///{tmp_path}/b.db"\n'
        "[approval]\ntwo_person_severities = []\n"
    )
    return config


def start(config: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [*CLI, "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, timeout=20)
    return process


def request(
    url: str, token: str, body: dict[str, object] | None = None
) -> tuple[int, dict[str, object]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(  # noqa: S310 - loopback URL
        url,
        data=data,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310
        return response.status, json.loads(response.read())


def test_token_create_prints_token_last(tmp_path: Path) -> None:
    """`token create` prints a working token as its last line; a bad role exits 2."""
    config = write_config(tmp_path, free_port())
    out = subprocess.run(
        [*CLI, "token", "create", "--role", "issuer", "--name", "desk", "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1].startswith("bc_")
    bad = subprocess.run(
        [*CLI, "token", "create", "--role", "king", "--name", "x", "--config", str(config)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    """`serve` with a bad config exits 2 and names the offending key."""
    config = tmp_path / "bad.toml"
    config.write_text('[http]\nport = "eighty"\n')
    out = subprocess.run(
        [*CLI, "serve", "--config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2
    assert "http.port" in out.stderr


def test_kill_9_after_201_keeps_the_alert(tmp_path: Path) -> None:
    """An alert answered 201 is still there after `serve` is killed with SIGKILL."""
    port = free_port()
    config = write_config(tmp_path, port)
    token = (
        subprocess.run(
            [
                *CLI,
                "token",
                "create",
                "--role",
                "issuer",
                "--name",
                "desk",
                "--config",
                str(config),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    process = start(config, port)
    try:
        status, created = request(
            f"http://127.0.0.1:{port}/v1/alerts",
            token,
            {"event": "Gas leak", "headline": "Avoid Market St", "severity": "Severe"},
        )
        assert status == 201
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        process = start(config, port)
        status, fetched = request(f"http://127.0.0.1:{port}/v1/alerts/{created['id']}", token)
        assert status == 200
        assert fetched["alert"] == created["alert"]
    finally:
        process.terminate()
        process.wait(timeout=10)
