"""What the HTML surfaces (public pages, responders' dashboard) share: their jinja2 templates
and how a time reads on a page.

Contract:
- `html_templates(*names)` loads `templates/<name>.html` into a new environment per call,
  configured the same for every page: autoescaped (a sender's text can never become markup),
  `StrictUndefined` (a missing variable is an error, not an empty string), loaded once and
  never reloaded, with block tags trimmed.
- `when(t)` gives a time as the page shows it: `iso` (UTC, whole seconds, `Z`) for
  `<time datetime>` and `text` in words ("Mon 3 Feb 2025, 14:05 UTC"); None stays None; a
  time with no UTC equivalent is shown as written.
- Pages are sent as `HTML_TYPE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).parent / "templates"
HTML_TYPE = "text/html; charset=utf-8"


def html_templates(*names: str) -> dict[str, jinja2.Template]:
    """The named templates (without `.html`), keyed by name."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    return {name: env.get_template(f"{name}.html") for name in names}


@dataclass(frozen=True, slots=True)
class When:
    """A time as the page shows it: ISO 8601 in UTC for `<time datetime>`, and words."""

    iso: str
    text: str


def when(value: datetime | None) -> When | None:
    if value is None:
        return None
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # no UTC equivalent (year 1 or 9999): refused at intake since
        # 2026-12-03, but an alert stored before that still gets its page, as written.
        return When(iso=value.isoformat(), text=value.isoformat())
    return When(
        iso=utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        text=f"{utc:%a} {utc.day} {utc:%b %Y}, {utc:%H:%M} UTC",
    )
