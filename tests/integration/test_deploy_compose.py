"""docker-compose.yml and the container: the compose file validates and mounts what exists,
the image is slim and non-root, and the container's config loads with secrets from the
environment."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from adapters.http.access import forwarded_client
from broadcaster.config import load_settings
from tests.support.deploy import DEPLOY, ROOT

COMPOSE = ROOT / "docker-compose.yml"


# --- compose, image, container config ------------------------------------------------------

COMPOSE_ENV = {
    "POSTGRES_PASSWORD": "pg-secret",
    "MQTT_BROADCASTER_PASSWORD": "mqtt-secret",
    "BROADCASTER_SESSION_SECRET": "session-secret",
    "GRAFANA_ADMIN_PASSWORD": "grafana-secret",
}


def test_docker_compose_config_validates() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker not installed")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"docker compose not available: {probe.stderr.strip() or probe.stdout}")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, **COMPOSE_ENV},
    )
    assert result.returncode == 0, result.stderr
    # Without the secrets, compose refuses to start (no default passwords).
    bare = {k: v for k, v in os.environ.items() if k not in COMPOSE_ENV}
    refused = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=bare,
    )
    assert refused.returncode != 0


def test_compose_file_mounts_what_exists() -> None:
    """Without docker: the services are there and every file bind-mounted exists."""
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load(COMPOSE.read_text())
    # The gateway deploy/broadcaster.toml trusts is the one compose fixes.
    [network] = compose["networks"]["default"]["ipam"]["config"]
    trusted = load_settings(DEPLOY / "broadcaster.toml").http.trusted_proxies
    assert [str(n) for n in trusted] == [network["gateway"] + "/32"]
    services = compose["services"]
    assert {"broadcaster", "mosquitto", "postgres", "prometheus", "grafana"} <= set(services)
    assert services["broadcaster"]["build"]["dockerfile"] == "deploy/Dockerfile"
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
    text = COMPOSE.read_text()
    for secret in ("POSTGRES_PASSWORD", "MQTT_BROADCASTER_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        assert f"${{{secret}:?" in text, f"{secret} must be required, with no default"


def test_dockerfile_is_slim_non_root_and_checks_health() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert re.search(r"^USER broadcaster$", text, re.MULTILINE)
    assert "HEALTHCHECK" in text
    assert "/healthz" in text
    assert (
        'ENTRYPOINT ["broadcaster", "serve", "--config", "/etc/broadcaster/broadcaster.toml"]'
        in text
    )


def test_container_config_loads_with_secrets_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BROADCASTER_DATABASE__URL", "postgresql://broadcaster:pw@postgres/bc")
    monkeypatch.setenv("BROADCASTER_MQTT__URL", "mqtt://broadcaster:pw@mosquitto:1883")
    monkeypatch.setenv("BROADCASTER_HTTP__SESSION_SECRET", "s" * 40)
    settings = load_settings(DEPLOY / "broadcaster.toml")
    assert settings.database.url.startswith("postgresql://")
    assert settings.mqtt.url == "mqtt://broadcaster:pw@mosquitto:1883"
    assert settings.http.host == "0.0.0.0"
    assert settings.logging.format == "json"
    # The host's proxy reaches the container from the compose network's gateway: trusted,
    # and only it: another address on a private range cannot name its own bucket.
    trusted = settings.http.trusted_proxies
    assert forwarded_client("172.31.250.1", ["6.6.6.6, 203.0.113.5"], trusted) == "203.0.113.5"
    assert forwarded_client("172.31.250.7", ["6.6.6.6"], trusted) == "172.31.250.7"
    assert forwarded_client("192.168.1.10", ["6.6.6.6"], trusted) == "192.168.1.10"
    text = (DEPLOY / "broadcaster.toml").read_text()
    assert "password" not in re.sub(r"#.*", "", text).lower()
