"""Prometheus metrics of the service, on a registry of its own so tests can build many services
in one process without "duplicated timeseries" errors."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Every metric the core records. Names follow Prometheus conventions (unit suffixes)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.alerts_received = Counter(
            "broadcaster_alerts_received_total",
            "Alerts offered to intake, by source (rest, mqtt), format and outcome "
            "(created, duplicate, rejected).",
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
            "1 while the MQTT client is connected to the broker.",
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
        self.circuit_open = Gauge(
            "broadcaster_circuit_state",
            "Circuit breaker per channel: 0 closed, 1 half-open, 2 open.",
            ["channel"],
            registry=self.registry,
        )
