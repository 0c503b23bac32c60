"""Logs (JSON lines, masking) and the metrics that need no running service (outbox collector,
build info)."""

from __future__ import annotations

import json
import logging
import platform
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import generate_latest
from pydantic import SecretStr

from broadcaster.config import ConfigError, LoggingSettings, load_settings
from broadcaster.logs import MaskingFilter, configure_logging, mask
from broadcaster.metrics import Metrics, OutboxCollector
from broadcaster.ports import OutboxDepth


@pytest.fixture
def root_logging() -> Iterator[None]:
    """configure_logging replaces the root handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    twilio_level = logging.getLogger("twilio").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("twilio").setLevel(twilio_level)


# --- masking ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("sent to +447911234512", "sent to +44791*****12"),
        ("to=%2B447911234512&x=1", "to=%2B44791*****12&x=1"),
        ("+15551234567, +33612345678", "+15551****67, +33612****78"),
        ("mqtt://broadcaster:hunter2@mosquitto:1883", "mqtt://broadcaster:***@mosquitto:1883"),
        ("postgresql://u:p%40ss@db/x", "postgresql://u:***@db/x"),
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
        ("token bc_AbCdEf0123456789xyz used", "token bc_*** used"),
        # Not phone numbers: too short, or part of a longer number.
        ("delivery 1234567890123 of +1234", "delivery 1234567890123 of +1234"),
        ("nothing to hide", "nothing to hide"),
    ],
)
def test_mask(text: str, masked: str) -> None:
    assert mask(text) == masked


def test_masking_filter_covers_message_args_extras_and_tracebacks() -> None:
    record = logging.LogRecord(
        "adapters.sms", logging.WARNING, __file__, 1, "SMS to %s refused", ("+447911234512",), None
    )
    record.recipient = "+447911234512"
    record.detail = {"to": ["+447911234512"], "attempt": 2}
    try:
        raise ValueError("bad number +447911234512")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert MaskingFilter().filter(record)
    assert record.getMessage() == "SMS to +44791*****12 refused"
    assert record.recipient == "+44791*****12"
    assert record.detail == {"to": ["+44791*****12"], "attempt": 2}
    assert record.exc_text is not None
    assert "+44791*****12" in record.exc_text
    assert "+447911234512" not in record.exc_text


# --- JSON lines ---------------------------------------------------------------------------


def test_json_lines_one_object_per_line_with_extras_masked(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(LoggingSettings(format="json"))
    log = logging.getLogger("broadcaster.dispatcher")
    log.info(
        "delivery %s of alert %s on %s: %s",
        7,
        "a1",
        "sms",
        "sent",
        extra={
            "alert_id": "a1",
            "channel": "sms",
            "attempt": 1,
            "outcome": "sent",
            "latency_ms": 12.5,
            "recipient": "+447911234512",
        },
    )
    logging.getLogger("adapters.mqtt").warning(
        "connecting to mqtt://bc:%s@broker with %s", "s3cret", SecretStr("hunter2")
    )
    logging.getLogger("adapters.x").debug("not at INFO")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "INFO"
    assert first["logger"] == "broadcaster.dispatcher"
    assert first["message"] == "delivery 7 of alert a1 on sms: sent"
    assert datetime.fromisoformat(first["time"]).tzinfo is not None
    assert {k: first[k] for k in ("alert_id", "channel", "attempt", "outcome", "latency_ms")} == {
        "alert_id": "a1",
        "channel": "sms",
        "attempt": 1,
        "outcome": "sent",
        "latency_ms": 12.5,
    }
    assert first["recipient"] == "+44791*****12"
    assert second["level"] == "WARNING"
    assert "s3cret" not in second["message"]
    assert "hunter2" not in second["message"]
    assert second["message"] == "connecting to mqtt://bc:***@broker with **********"


def test_text_format_is_masked_too(root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LoggingSettings())
    logging.getLogger("adapters.sms").info("STOP from %s", "+447911234512")
    err = capsys.readouterr().err
    assert "STOP from +44791*****12" in err
    assert "+447911234512" not in err
    assert not err.startswith("{")


def test_exception_in_json_is_masked(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(LoggingSettings(format="json", level="WARNING"))
    try:
        raise RuntimeError("provider refused +447911234512")
    except RuntimeError:
        logging.getLogger("adapters.sms").exception("send failed")
    entry = json.loads(capsys.readouterr().err)
    assert "RuntimeError: provider refused +44791*****12" in entry["exc"]


def test_logging_format_setting() -> None:
    assert load_settings(None, logging={"format": "json"}).logging.format == "json"
    assert load_settings(None).logging.format == "text"
    with pytest.raises(ConfigError) as caught:
        load_settings(None, logging={"format": "yaml"})
    assert caught.value.key == "logging.format"


# --- metrics ------------------------------------------------------------------------------


def test_outbox_collector_reports_depth_and_oldest_age_from_its_snapshot() -> None:
    now = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    collector = OutboxCollector(clock=lambda: now)
    collector.update(
        [
            OutboxDepth("sms", "pending", 40, datetime(2026, 5, 1, 11, 59, 0, tzinfo=UTC)),
            OutboxDepth("sms", "sending", 8, datetime(2026, 5, 1, 11, 58, 0, tzinfo=UTC)),
            OutboxDepth("gone", "pending", 3, datetime(2026, 5, 1, 11, 0, 0, tzinfo=UTC)),
        ],
        channels=["sms", "x"],
    )
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in collector.collect()
        for s in family.samples
    }
    depth = "broadcaster_outbox_deliveries"
    age = "broadcaster_outbox_oldest_pending_age_seconds"
    assert samples[(depth, (("channel", "sms"), ("state", "pending")))] == 40
    assert samples[(depth, (("channel", "sms"), ("state", "sending")))] == 8
    assert samples[(depth, (("channel", "x"), ("state", "pending")))] == 0
    assert samples[(depth, (("channel", "x"), ("state", "sending")))] == 0
    # A channel no longer configured still shows what it left behind.
    assert samples[(depth, (("channel", "gone"), ("state", "pending")))] == 3
    assert samples[(age, (("channel", "sms"),))] == 120.0
    assert samples[(age, (("channel", "x"),))] == 0.0
    assert samples[(age, (("channel", "gone"),))] == 3600.0


def test_outbox_collector_age_grows_between_refreshes() -> None:
    clock = [1000.0]
    collector = OutboxCollector(clock=lambda: clock[0])
    collector.update([OutboxDepth("sms", "pending", 1, datetime.fromtimestamp(990.0, UTC))])
    clock[0] = 1100.0  # no refresh since (the store is stuck): the age keeps growing

    def age() -> float:
        family = next(
            f
            for f in collector.collect()
            if f.name == "broadcaster_outbox_oldest_pending_age_seconds"
        )
        return float(family.samples[0].value)

    assert age() == 110.0


def test_build_info_and_every_family_in_the_exposition() -> None:
    metrics = Metrics()
    text = generate_latest(metrics.registry).decode()
    assert f'broadcaster_build_info{{python="{platform.python_version()}",version="' in text
    for name in (
        "broadcaster_alerts_received_total",
        "broadcaster_deliveries_total",
        "broadcaster_send_duration_seconds",
        "broadcaster_delivery_latency_seconds",
        "broadcaster_alert_first_send_seconds",
        "broadcaster_outbox_deliveries",
        "broadcaster_outbox_oldest_pending_age_seconds",
        "broadcaster_ratelimit_wait_seconds",
        "broadcaster_provider_errors_total",
        "broadcaster_circuit_state",
        "broadcaster_replies_total",
        "broadcaster_triage_duration_seconds",
        "broadcaster_sse_clients",
        "broadcaster_mqtt_connected",
        "broadcaster_build_info",
    ):
        assert f"# TYPE {name} " in text, name


def test_first_send_is_observed_once_per_alert_and_channel() -> None:
    metrics = Metrics()
    metrics.first_sent("sms", "a1", 1.5)
    metrics.first_sent("sms", "a1", 9.0)
    metrics.first_sent("x", "a1", 2.0)
    sms = metrics.registry.get_sample_value(
        "broadcaster_alert_first_send_seconds_count", {"channel": "sms"}
    )
    total = metrics.registry.get_sample_value(
        "broadcaster_alert_first_send_seconds_sum", {"channel": "sms"}
    )
    assert (sms, total) == (1.0, 1.5)
    assert (
        metrics.registry.get_sample_value(
            "broadcaster_alert_first_send_seconds_count", {"channel": "x"}
        )
        == 1.0
    )
