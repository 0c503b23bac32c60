"""Logging set-up: plain text by default, one JSON object per line with `[logging] json_lines`.

Fields passed through `extra=` (alert_id, channel, attempt, outcome, latency_ms) are kept as
JSON fields so log pipelines can index them without parsing messages.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from broadcaster.config import LoggingSettings

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(settings: LoggingSettings) -> None:
    handler = logging.StreamHandler()
    if settings.json_lines:
        handler.setFormatter(JsonLinesFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    # The twilio client logs every request at INFO, phone numbers and message bodies
    # included: never wanted in our logs.
    logging.getLogger("twilio").setLevel(max(logging.WARNING, root.level))
