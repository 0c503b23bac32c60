"""Configuration: a TOML file (`--config`) with every key overridable by the environment as
`BROADCASTER_<SECTION>__<KEY>` (nested sections too: `BROADCASTER_CHANNELS__SMS__AUTH_TOKEN`).

Contract: `load_settings(path)` returns a validated, frozen `Settings` or raises `ConfigError`
naming the first offending key (`http.port`, `channels.sms.rate_per_second`, ...). Unknown keys
are errors, because a misspelt key silently ignored is a channel silently misconfigured.
Secrets are `SecretStr`: they print as `**********` in reprs and logs.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from alerts.models import Scope, Severity
from broadcaster.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    # The URL the public reaches us at; used in links and to check Twilio signatures.
    public_url: str | None = None
    max_body_bytes: Annotated[int, Field(ge=1024, le=50_000_000)] = 1_000_000
    # A comment line on idle SSE streams, so proxies keep them open and departed clients
    # are noticed (their write fails) within this many seconds.
    sse_keepalive_seconds: Annotated[float, Field(gt=0, le=300)] = 15.0
    # Web tips (POST /v1/replies) per client IP: a sustained rate per minute and a burst.
    tips_per_minute: Annotated[float, Field(gt=0, le=10_000)] = 5.0
    tips_burst: Annotated[int, Field(ge=1, le=10_000)] = 10
    # Signs responders' dashboard sessions and stream tickets. Unset: a random secret per
    # process (a restart logs responders out; set it when several processes share a name).
    session_secret: SecretStr | None = None
    # Failed authentications (a bad, expired or revoked token) per client IP per minute;
    # past it, further attempts from that IP get 429 with Retry-After.
    auth_failures_per_minute: Annotated[int, Field(ge=1, le=100_000)] = 10
    # How long a token lookup is cached: a token revoked elsewhere (the CLI) stops working
    # within this many seconds.
    auth_cache_seconds: Annotated[float, Field(ge=0, le=300)] = 5.0
    # Origins (scheme://host[:port]) whose pages may read the public feeds and the public
    # stream cross-origin (GET only). Empty: no Access-Control-Allow-Origin on any response.
    cors_origins: tuple[str, ...] = ()
    # Addresses of our own reverse proxies (networks, e.g. "10.0.0.0/8"). A request from one
    # of them is attributed to the address its X-Forwarded-For names (see
    # adapters/http/access.py); from anyone else that header is ignored. Empty: the peer.
    trusted_proxies: tuple[IPvAnyNetwork, ...] = ()

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            scheme, sep, rest = origin.partition("://")
            if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
                raise ValueError(f"{origin!r} is not an origin like https://example.org")
        return value

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class DatabaseSettings(_Section):
    url: str = "sqlite:///broadcaster.db"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:///, postgresql:// or postgres://")
        return value


class MqttSettings(_Section):
    url: str | None = None  # mqtt://user:pass@host:port ; no url means MQTT is off
    alerts_topic: str = "broadcaster/alerts"
    replies_topic: str = "broadcaster/replies"
    publish_prefix: str = "broadcaster"
    client_id: str = "broadcaster"
    # Several processes subscribe as one shared group so each message is handled once.
    shared_group: str | None = None
    max_in_flight: Annotated[int, Field(ge=1, le=10_000)] = 200
    # The "mqtt" delivery channel (adapters.mqtt_out): every alert is published under
    # publish_prefix on its own connection. Only meaningful when url is set.
    publish_alerts: bool = True
    # Triaged replies go to <publish_prefix>/replies/<category>; the sender (a phone number,
    # a handle) only when this is true: signage and other systems read these topics.
    replies_include_sender: bool = False
    # Exercise, Test and System alerts are published only when this is true (a drill must
    # never reach sirens and signs that listen for live alerts).
    exercises: bool = False

    @field_validator("url")
    @classmethod
    def _mqtt_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("mqtt://", "mqtts://")):
            raise ValueError("must start with mqtt:// or mqtts://")
        return value

    @field_validator("publish_prefix")
    @classmethod
    def _plain_prefix(cls, value: str) -> str:
        # We publish to it: wildcards are not allowed in a topic name, and an empty level
        # or a trailing "/" would give topics subscribers do not expect.
        if not value or "+" in value or "#" in value or value.endswith("/"):
            raise ValueError("must be a topic name without wildcards or a trailing /")
        return value

    @model_validator(mode="after")
    def _no_feedback_loop(self) -> MqttSettings:
        # Alerts we publish must never come back to us as alerts to take in.
        if self.url and self.publish_alerts:
            for level in ("alerts", "areas"):
                if _topic_matches(self.alerts_topic, f"{self.publish_prefix}/{level}/x"):
                    raise ValueError(
                        f"alerts_topic {self.alerts_topic!r} would take in the alerts published "
                        f"under {self.publish_prefix}/{level}/ (set publish_alerts = false or "
                        "change one of them)"
                    )
        # Replies we publish must never come back as new replies (an endless loop).
        if self.url and _topic_matches(self.replies_topic, f"{self.publish_prefix}/replies/x"):
            raise ValueError(
                f"replies_topic {self.replies_topic!r} would take in the replies published "
                f"under {self.publish_prefix}/replies/ (change it or publish_prefix)"
            )
        return self


def _topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic matching: "+" is one level, a trailing "#" the rest."""
    levels = topic.split("/")
    for index, part in enumerate(topic_filter.split("/")):
        if part == "#":
            return True
        if index >= len(levels) or (part != "+" and part != levels[index]):
            return False
    return len(topic_filter.split("/")) == len(levels)


class SmsSettings(_Section):
    account_sid: str | None = None
    auth_token: SecretStr | None = None
    from_numbers: list[str] = Field(default_factory=list)
    messaging_service_sid: str | None = None
    api_base: str = "https://api.twilio.com"
    rate_per_second: Annotated[float, Field(gt=0, le=1000)] = 1.0
    # Send this fraction below rate_per_second: the provider counts segments when requests
    # arrive, and 5 % leaves ~45 ms per second for network and event-loop jitter.
    rate_margin: Annotated[float, Field(ge=0, le=0.5)] = 0.05
    max_segments: Annotated[int, Field(ge=1, le=10)] = 3
    # A message longer than max_segments is cut with "... <link>", or split into numbered
    # messages of at most max_segments each, sent in order.
    long_messages: Literal["truncate", "split"] = "truncate"
    # Exercise, Test and System alerts go only to subscribers in this group (inside the
    # alert's areas); unset, to nobody by SMS.
    exercise_group: str | None = None
    # Inbound messages (POST /hooks/twilio/sms) per sending number: a sustained rate per
    # minute and a burst. Past them a message gets an empty TwiML answer and is dropped
    # unstored; opt-out keywords (STOP ...) are never limited.
    inbound_per_minute: Annotated[float, Field(gt=0, le=10_000)] = 6.0
    inbound_burst: Annotated[int, Field(ge=1, le=10_000)] = 10
    # How often each process checks for subscriber writes it did not make (the CLI's
    # import, another process) and reloads its audience index.
    subscribers_poll_seconds: Annotated[float, Field(ge=0.05, le=3600)] = 5.0


class XSettings(_Section):
    bearer_token: SecretStr | None = None
    consumer_key: str | None = None
    consumer_secret: SecretStr | None = None
    access_token: str | None = None
    access_token_secret: SecretStr | None = None
    api_base: str = "https://api.x.com"
    user_id: str | None = None
    poll_seconds: Annotated[float, Field(gt=0)] = 60.0
    # The account's post quota per window (X's user limit on POST /2/tweets); the
    # provider's x-rate-limit-* headers correct it as posts go out.
    post_window_limit: Annotated[int, Field(ge=1)] = 100
    post_window_seconds: Annotated[float, Field(gt=0)] = 900.0
    # A long alert becomes a numbered thread, or one post with its headline and a link.
    long_alerts: Literal["thread", "link"] = "thread"
    # Exercise, Test and System alerts are posted only when this is true (an account
    # kept for drills); the public account never carries them.
    exercises: bool = False


class WebhookReceiver(_Section):
    url: str
    secret: SecretStr
    # This receiver also gets Exercise, Test and System alerts (a training system).
    exercises: bool = False


class WebSettings(_Section):
    webhooks: list[WebhookReceiver] = Field(default_factory=list)
    # Webhook sends per second over all receivers; None: only concurrency bounds them.
    webhook_rate_per_second: Annotated[float | None, Field(gt=0)] = None


class FacebookSettings(_Section):
    """A Facebook Page: on when both page_id and page_token are set."""

    page_id: str | None = None
    page_token: SecretStr | None = None
    api_base: str = "https://graph.facebook.com"
    api_version: str = "v21.0"
    # Posts per second. Alerts are few, and Facebook blocks Pages that post in bursts
    # (error 368) long before the Page's call quota runs out: one post every 5 s at most.
    rate_per_second: Annotated[float, Field(gt=0, le=10)] = 0.2
    # Exercise, Test and System alerts are posted only when this is true (a drill Page).
    exercises: bool = False

    @field_validator("page_id")
    @classmethod
    def _numeric_page_id(cls, value: str | None) -> str | None:
        if value is not None and not (value.isascii() and value.isdigit()):
            raise ValueError("must be the Page's numeric id")
        return value

    @field_validator("api_base")
    @classmethod
    def _http_base(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// or http://")
        return value.rstrip("/")

    @field_validator("api_version")
    @classmethod
    def _graph_version(cls, value: str) -> str:
        major, dot, minor = value.removeprefix("v").partition(".")
        if not (value.startswith("v") and dot and major.isdigit() and minor.isdigit()):
            raise ValueError('must look like "v21.0"')
        return value

    @model_validator(mode="after")
    def _both_or_neither(self) -> FacebookSettings:
        if (self.page_id is None) != (self.page_token is None):
            raise ValueError("page_id and page_token must be set together")
        return self


class ChannelsSettings(_Section):
    sms: SmsSettings = SmsSettings()
    x: XSettings = XSettings()
    web: WebSettings = WebSettings()
    facebook: FacebookSettings = FacebookSettings()


class ApprovalSettings(_Section):
    """The two-person rule: which alerts wait for a second person's approval, and how long."""

    two_person_severities: list[Severity] = Field(default_factory=lambda: [Severity.EXTREME])
    # Scopes held as well, whatever the severity (e.g. ["Public"]: everything public).
    two_person_scopes: list[Scope] = Field(default_factory=list)
    # An alert nobody approved by then is moved to expired_unapproved (never sent).
    pending_expiry_minutes: Annotated[float, Field(gt=0, le=7 * 24 * 60)] = 60.0
    # How often the expiry looks for such alerts.
    expiry_check_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0


class AlertsSettings(_Section):
    # CAP `sender` of alerts issued through our JSON API (CAP alerts keep their own).
    sender: str = "broadcaster@localhost"


class DeliverySettings(_Section):
    """The delivery engine: retries, leases, concurrency, circuit breaker, shutdown."""

    max_attempts: Annotated[int, Field(ge=1, le=100)] = 8
    max_age_seconds: Annotated[float, Field(gt=0)] = 3600.0
    backoff_base_seconds: Annotated[float, Field(gt=0)] = 1.0
    backoff_cap_seconds: Annotated[float, Field(gt=0)] = 300.0
    # A claim is a lease: a process that dies holding deliveries loses them after this.
    lease_seconds: Annotated[float, Field(ge=5)] = 60.0
    # Several processes on PostgreSQL: one sends on a channel at a time (its rate budget);
    # when it dies another takes the channel over within about this.
    channel_lease_seconds: Annotated[float, Field(ge=1, le=300)] = 5.0
    send_timeout_seconds: Annotated[float, Field(gt=0)] = 15.0
    # Sends in flight per channel, unless the channel sets its own.
    concurrency: Annotated[int, Field(ge=1, le=1000)] = 32
    # How often an idle channel looks for due work (retries, other processes' alerts).
    poll_seconds: Annotated[float, Field(gt=0, le=60)] = 0.25
    breaker_failures: Annotated[int, Field(ge=1)] = 10
    breaker_cooldown_seconds: Annotated[float, Field(gt=0)] = 30.0
    # On SIGTERM, how long in-flight sends may take to finish before they are cut off.
    shutdown_grace_seconds: Annotated[float, Field(ge=0)] = 10.0


class RepliesSettings(_Section):
    """Replies from the public are personal data: kept this long, then purged."""

    retention_days: Annotated[float, Field(gt=0, le=36_500)] = 30.0
    purge_interval_seconds: Annotated[float, Field(gt=0)] = 3600.0


class LoggingSettings(_Section):
    level: str = "INFO"
    # "json": one JSON object per line (time, level, logger, message, extra fields).
    format: Literal["text", "json"] = "text"
    json_lines: bool = False  # the older spelling of format = "json"


class Settings(BaseSettings):
    """The whole configuration. Build it with `load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="BROADCASTER_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    http: HttpSettings = HttpSettings()
    database: DatabaseSettings = DatabaseSettings()
    mqtt: MqttSettings = MqttSettings()
    channels: ChannelsSettings = ChannelsSettings()
    approval: ApprovalSettings = ApprovalSettings()
    alerts: AlertsSettings = AlertsSettings()
    delivery: DeliverySettings = DeliverySettings()
    replies: RepliesSettings = RepliesSettings()
    logging: LoggingSettings = LoggingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file; the file path arrives through init kwargs.
        return (env_settings, init_settings)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the TOML file (if any), apply env overrides, validate. Raises ConfigError."""
    file_values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as handle:
                file_values = tomllib.load(handle)
        except FileNotFoundError as exc:
            raise ConfigError("--config", f"file not found: {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from exc
    merged = _deep_merge(file_values, overrides)
    try:
        return Settings(**merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(root)"
        raise ConfigError(key, first["msg"]) from None


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


__all__ = ["ConfigError", "Settings", "load_settings"]
