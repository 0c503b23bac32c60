"""A small valid alert template for the template-library tests, and the GSM-7 pattern it
uses."""

from __future__ import annotations

from typing import Any

from alerts.template_library import Template

GSM_TEXT = "^[A-Za-z0-9 ,.'-]+$"


def make(**overrides: Any) -> Template:
    """A small valid alert template, with `overrides` replacing its fields."""
    data: dict[str, Any] = {
        "name": "spill",
        "description": "A chemical spill.",
        "correction": "spill_all_clear",
        "event": "Chemical spill",
        "category": ["CBRNE"],
        "severity": "Severe",
        "urgency": "Immediate",
        "certainty": "Observed",
        "response_type": ["Avoid"],
        "placeholders": {
            "location": {
                "description": "Where",
                "example": "Dock Road",
                "max_length": 30,
                "pattern": GSM_TEXT,
            }
        },
        "text": {
            "en-GB": {"headline": "Spill near {location}", "instruction": "Keep away."},
            "cy": {"headline": "Gollyngiad ger {location}", "instruction": "Cadwch draw."},
        },
    }
    data.update(overrides)
    return Template.model_validate(data)
