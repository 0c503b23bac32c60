"""Prometheus metrics of the service, on a registry of its own so tests can build many services
in one process without "duplicated timeseries" errors."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from broadcaster.ports import OutboxDepth

# The outbox states the depth gauge always reports (0 when empty), per known channel.
OPEN_STATES = ("pending", "sending")


class Metrics:
    """Every metric the core records. Names follow Prometheus conventions (unit suffixes)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.alerts_received = Counter(
            "broadcaster_alerts_received_total",
            "Alerts offered to intake, by source (rest, mqtt), format and outcome "
            "(created, duplicate, rejected, error: the store failed).",
            ["source", "format", "outcome"],
            registry=self.registry,
        )
        self.intake_seconds = Histogram(
            "broadcaster_intake_duration_seconds",
            "Time from receiving an alert to its durable commit.",
            ["source"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.mqtt_connected = Gauge(
            "broadcaster_mqtt_connected",
            "1 while the MQTT client is connected to the broker, by client: intake (alerts "
            "and replies in), publisher (the mqtt channel), replies (the responder feed); "
            "the publishers connect at their first message.",
            ["client"],
            registry=self.registry,
        )
        self.mqtt_reconnects = Counter(
            "broadcaster_mqtt_reconnects_total",
            "MQTT connection attempts after a loss.",
            registry=self.registry,
        )
        self.deliveries = Counter(
            "broadcaster_deliveries_total",
            "Delivery attempts by channel and outcome (sent, retry, failed, cancelled, expired).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.send_seconds = Histogram(
            "broadcaster_send_duration_seconds",
            "Time from handing a message to the provider to its answer.",
            ["channel"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
        )
        self.delivery_latency_seconds = Histogram(
            "broadcaster_delivery_latency_seconds",
            "Time from a delivery being claimed from the outbox to the provider's answer "
            "(rate-limit and circuit waits included), by channel.",
            ["channel"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0),
        )
        self.first_send_seconds = Histogram(
            "broadcaster_alert_first_send_seconds",
            "Time from an alert being received to its first delivery sent on a channel "
            "(one observation per alert and channel, in this process).",
            ["channel"],
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0),
        )
        # (channel, alert id) whose first send was observed; bounded, oldest forgotten first.
        self._first_sends: dict[tuple[str, str], None] = {}
        self.ratelimit_wait_seconds = Histogram(
            "broadcaster_ratelimit_wait_seconds",
            "Time a send waited for its channel's rate limits.",
            ["channel"],
            registry=self.registry,
            buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 900.0),
        )
        self.provider_errors = Counter(
            "broadcaster_provider_errors_total",
            "Failed send attempts by channel, kind (transient, permanent) and provider code.",
            ["channel", "kind", "code"],
            registry=self.registry,
        )
        self.sse_clients = Gauge(
            "broadcaster_sse_clients",
            "Open public event streams (GET /v1/stream).",
            registry=self.registry,
        )
        self.replies = Counter(
            "broadcaster_replies_total",
            "Replies from the public stored, by source (x, sms, web, mqtt) and triage category "
            '(one count per category; "none" when triage found none).',
            ["source", "category"],
            registry=self.registry,
        )
        self.triage_seconds = Histogram(
            "broadcaster_triage_duration_seconds",
            "Time to classify one reply.",
            registry=self.registry,
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0),
        )
        self.correction_first_send = Histogram(
            "broadcaster_correction_first_send_seconds",
            "Time from a Cancel being received (e.g. POST /v1/alerts/{id}/cancel) to the first "
            "delivery of it being sent, on any channel.",
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0),
        )
        # Cancels whose first send was observed (bounded: only the first send counts).
        self._corrections_seen: dict[str, None] = {}
        self.circuit_open = Gauge(
            "broadcaster_circuit_state",
            "Circuit breaker per channel: 0 closed, 1 half-open, 2 open.",
            ["channel"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "broadcaster_auth_failures_total",
            "Refused authentications by reason: missing, malformed, unknown, expired, revoked "
            "(401), throttled (429: too many failures from the client's address).",
            ["reason"],
            registry=self.registry,
        )
        self.build_info = Gauge(
            "broadcaster_build_info",
            "Always 1; the labels say which version runs on which Python.",
            ["version", "python"],
            registry=self.registry,
        )
        self.build_info.labels(_version(), platform.python_version()).set(1)
        self.outbox = OutboxCollector()
        self.registry.register(self.outbox)

    def first_sent(self, channel: str, alert_id: str, seconds: float) -> None:
        """A delivery of `alert_id` was sent on `channel`, `seconds` after the alert was
        received: observed for the first such send of each alert and channel only."""
        key = (channel, alert_id)
        if key in self._first_sends:
            return
        if len(self._first_sends) >= 10_000:
            self._first_sends.pop(next(iter(self._first_sends)))
        self._first_sends[key] = None
        self.first_send_seconds.labels(channel).observe(max(0.0, seconds))

    def correction_sent(self, alert_id: str, seconds: float) -> None:
        """A delivery of the Cancel `alert_id` was sent, `seconds` after the Cancel was
        received: observed for its first send in this process only."""
        if alert_id in self._corrections_seen:
            return
        if len(self._corrections_seen) >= 10_000:
            self._corrections_seen.pop(next(iter(self._corrections_seen)))
        self._corrections_seen[alert_id] = None
        self.correction_first_send.observe(max(0.0, seconds))


def _version() -> str:
    try:
        return metadata.version("broadcaster")
    except metadata.PackageNotFoundError:
        return "unknown"


class OutboxCollector(Collector):
    """The outbox's depth by channel and state, and the age of its oldest open delivery per
    channel, from a snapshot a background task refreshes (`update`): a scrape never queries
    the store. The age is computed at scrape time from the snapshot's oldest creation time,
    so it keeps growing, as it should, when the refresh itself is stuck."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._rows: list[OutboxDepth] = []
        self._channels: tuple[str, ...] = ()
        self.refreshed_at: float | None = None

    def update(self, rows: Sequence[OutboxDepth], channels: Iterable[str] = ()) -> None:
        """Replace the snapshot. `channels` (the configured ones) are reported as 0 when
        they have nothing open, so their series never vanish."""
        self._rows = list(rows)
        self._channels = tuple(channels)
        self.refreshed_at = self._clock()

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "broadcaster_outbox_deliveries",
            "Deliveries in the outbox by channel and state (pending, sending), as of the last "
            "refresh (every few seconds).",
            labels=["channel", "state"],
        )
        age = GaugeMetricFamily(
            "broadcaster_outbox_oldest_pending_age_seconds",
            "Age of the oldest delivery not yet sent (pending or sending) per channel; 0 when "
            "there is none.",
            labels=["channel"],
        )
        counts = {(c, state): 0 for c in self._channels for state in OPEN_STATES}
        oldest: dict[str, datetime | None] = dict.fromkeys(self._channels)
        for row in self._rows:
            counts[(row.channel, row.state)] = counts.get((row.channel, row.state), 0) + row.count
            first = oldest.get(row.channel)
            if row.oldest is not None and (first is None or row.oldest < first):
                first = row.oldest
            oldest[row.channel] = first
        for (channel, state), count in sorted(counts.items()):
            depth.add_metric([channel, state], count)
        now = self._clock()
        for channel, created in sorted(oldest.items()):
            age.add_metric([channel], max(0.0, now - created.timestamp()) if created else 0.0)
        yield depth
        yield age
