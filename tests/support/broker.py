"""A real MQTT broker for tests and benchmarks, on a free loopback port.

Mosquitto when it is on PATH (persistence on, so a restart keeps queued QoS 1 messages for
persistent sessions, as a production broker is configured); otherwise the pure-Python amqtt
broker in a subprocess.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {data}/
autosave_interval 1
max_queued_messages 200000
max_inflight_messages 1000
log_dest file {data}/mosquitto.log
# Run as whoever started the test: as root, mosquitto would otherwise switch to the
# `mosquitto` user, which cannot write persistence into the test's folder.
user {user}
"""

AMQTT_SCRIPT = """\
import asyncio, sys
from amqtt.broker import Broker
config = {{"listeners": {{"default": {{"type": "tcp", "bind": "127.0.0.1:{port}"}}}},
          "auth": {{"allow-anonymous": True}}, "topic-check": {{"enabled": False}}}}
async def main():
    broker = Broker(config)
    await broker.start()
    await asyncio.Event().wait()
asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class Broker:
    """A broker process that can be stopped and started again on the same port and data."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.kind = "mosquitto" if shutil.which("mosquitto") else "amqtt"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.kind == "mosquitto":
            conf = self.data_dir / "mosquitto.conf"
            conf.write_text(
                MOSQUITTO_CONF.format(port=self.port, data=self.data_dir, user=getpass.getuser())
            )
            command = ["mosquitto", "-c", str(conf)]
        else:
            command = [sys.executable, "-c", AMQTT_SCRIPT.format(port=self.port)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()  # mosquitto saves its persistence file on SIGTERM
            self._process.wait(timeout=10)
            self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()
