"""Logging set-up: plain text by default, one JSON object per line with
`[logging] format = "json"` (or the older `json_lines = true`).

Fields passed through `extra=` (alert_id, channel, attempt, outcome, latency_ms) are kept as
JSON fields so log pipelines can index them without parsing messages.

Every line goes through `MaskingFilter` first, whatever logger wrote it: phone numbers in
E.164 (`+447911123412` -> `+44791*****12`, also URL-encoded as `%2B...`), passwords in URLs
(`mqtt://user:***@host`), bearer tokens and our API tokens (`bc_***`) are masked in the
message, in `extra` fields and in tracebacks. `SecretStr` values print as `**********` anyway.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

from broadcaster.config import LoggingSettings

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

# E.164: "+" (or "%2B") and 8 to 15 digits, not part of a longer run of digits.
_PHONE = re.compile(r"(?<![\d+%])(\+|%2[Bb])(\d{5})(\d{1,8})(\d{2})(?![\d])")
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@", re.IGNORECASE)
_BEARER = re.compile(r"(?P<head>\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_API_TOKEN = re.compile(r"\bbc_[A-Za-z0-9_-]{8,}")


def mask(text: str) -> str:
    """`text` with phone numbers, URL passwords and tokens masked."""
    if "+" in text or "%2" in text:
        text = _PHONE.sub(lambda m: f"{m[1]}{m[2]}{'*' * len(m[3])}{m[4]}", text)
    if "://" in text:
        text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    if "earer" in text:
        text = _BEARER.sub(r"\g<head>***", text)
    if "bc_" in text:
        text = _API_TOKEN.sub("bc_***", text)
    return text


def _masked(value: object) -> object:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


class MaskingFilter(logging.Filter):
    """Masks personal data and secrets in a record before any handler formats it: the
    message (arguments merged in), every `extra` field, and the traceback text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD:
                setattr(record, key, _masked(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_text:
            entry["exc"] = record.exc_text
        elif record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(settings: LoggingSettings) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(MaskingFilter())
    if settings.format == "json" or settings.json_lines:
        handler.setFormatter(JsonLinesFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    # The twilio client logs every request at INFO, phone numbers and message bodies
    # included: never wanted in our logs.
    logging.getLogger("twilio").setLevel(max(logging.WARNING, root.level))
