"""Configuration loading: TOML, environment overrides, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcaster.config import load_settings
from broadcaster.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    """With no file the defaults are SQLite, port 8080, MQTT off, two-person for Extreme."""
    settings = load_settings(None)
    assert settings.database.url == "sqlite:///broadcaster.db"
    assert settings.http.port == 8080
    assert settings.mqtt.url is None
    assert [s.value for s in settings.approval.two_person_severities] == ["Extreme"]


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """BROADCASTER_<SECTION>__<KEY> beats the file, also for nested channel sections."""
    path = write(
        tmp_path, '[http]\nport = 9000\nhost = "0.0.0.0"\n[channels.sms]\nrate_per_second = 2\n'
    )
    monkeypatch.setenv("BROADCASTER_HTTP__PORT", "9100")
    monkeypatch.setenv("BROADCASTER_CHANNELS__SMS__RATE_PER_SECOND", "5")
    settings = load_settings(path)
    assert (settings.http.host, settings.http.port) == ("0.0.0.0", 9100)
    assert settings.channels.sms.rate_per_second == 5.0


def test_secrets_never_print(tmp_path: Path) -> None:
    """Secret values are SecretStr: absent from repr and str."""
    path = write(
        tmp_path,
        '[channels.sms]\nauth_token = "hunter2"\n[channels.x]\nconsumer_secret = "s3cr3t"\n',
    )
    settings = load_settings(path)
    text = repr(settings) + str(settings)
    assert "hunter2" not in text
    assert "s3cr3t" not in text
    assert settings.channels.sms.auth_token is not None
    assert settings.channels.sms.auth_token.get_secret_value() == "hunter2"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[http]\nport = "eighty"\n', "http.port"),
        ("[http]\nport = 70000\n", "http.port"),
        ("[http]\nprot = 1\n", "http.prot"),
        ('[database]\nurl = "mysql://x"\n', "database.url"),
        ('[mqtt]\nurl = "http://broker"\n', "mqtt.url"),
        ("[channels.sms]\nrate_per_second = -1\n", "channels.sms.rate_per_second"),
        ('[approval]\ntwo_person_severities = ["Huge"]\n', "approval.two_person_severities.0"),
        ("[http\n", "--config"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    """A bad value, unknown key or broken TOML raises ConfigError naming the key."""
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    assert info.value.key == key
    assert key in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A config path that does not exist is a ConfigError, not a traceback."""
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml")
