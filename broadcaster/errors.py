"""The exception tree of broadcaster. Callers decide what to do from the class alone.

    BroadcastError
    ├── ConfigError              bad configuration; start-up stops, naming the key
    ├── IntakeError              an alert or reply that cannot be accepted (maps to a 4xx)
    │   ├── PayloadError         wrong types, failed CAP rules, bad XML (422)
│   │   └── MalformedPayload unparseable JSON (400)
    │   ├── PayloadTooLarge      body over the configured cap (413)
    │   └── IdempotencyConflict  an Idempotency-Key reused with a different body (409)
    ├── AuthError                missing, unknown, expired token (401) or wrong role (403)
    │   └── AuthThrottled        too many failed attempts from one client (429)
    ├── StoreError               the database refused or is unreachable
    └── DeliveryError            a send that did not go out
        ├── TransientDeliveryError(retry_after)   retry later (timeouts, 5xx, 429)
        └── PermanentDeliveryError                never retry (bad number, opted out)
"""

from __future__ import annotations


class BroadcastError(Exception):
    """Base of every error broadcaster raises on purpose."""


class ConfigError(BroadcastError):
    """The configuration is invalid; the message names the offending key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config key {key}: {problem}")
        self.key = key
        self.problem = problem


class IntakeError(BroadcastError):
    """Input that cannot be accepted. `code` is the machine-readable error code."""

    status = 400
    code = "bad_request"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class PayloadError(IntakeError):
    """The payload is malformed or breaks a CAP/domain rule."""

    status = 422
    code = "invalid_alert"


class MalformedPayload(PayloadError):
    """The body is not parseable at all (broken JSON)."""

    status = 400
    code = "malformed_json"


class UnsupportedMediaType(IntakeError):
    """A body in a media type the route does not take."""

    status = 415
    code = "unsupported_media_type"


class PayloadTooLarge(IntakeError):
    """The body is larger than the configured limit."""

    status = 413
    code = "payload_too_large"


class UnstorableText(IntakeError):
    """Text holding a character the database cannot store (PostgreSQL text and jsonb refuse
    U+0000). Bad input, never a store outage: it is not a StoreError, so nothing retries it
    and HTTP answers 422."""

    status = 422
    code = "unstorable_text"


class IdempotencyConflict(IntakeError):
    """The same Idempotency-Key was used before for a different body."""

    status = 409
    code = "idempotency_conflict"


class AuthError(BroadcastError):
    """Authentication (401) or authorisation (403) failed."""

    def __init__(self, detail: str, *, status: int = 401) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.code = "unauthorized" if status == 401 else "forbidden"


class AuthThrottled(AuthError):
    """Too many failed authentications from one client: refused (429) for `retry_after` s."""

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail, status=429)
        self.code = "rate_limited"
        self.retry_after = retry_after


class StoreError(BroadcastError):
    """The store failed; the operation did not take effect."""


class DeliveryError(BroadcastError):
    """A delivery attempt failed."""


class TransientDeliveryError(DeliveryError):
    """Retry later; `retry_after` (seconds) is the provider's hint when it gave one."""

    def __init__(self, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Never retry this delivery; `code` is the provider's error code when known."""

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
