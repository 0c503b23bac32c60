"""The CAP 1.2 XML codec: the one import point for reading and writing CAP.

- `parse_cap(data) -> list[Alert]`: CAP 1.2 or 1.1 bytes (an `<alert>` or an `<alerts>`
  collection) to validated models; anything else raises `CapError` naming the problem.
- `to_cap_xml(alert) -> bytes`: a model to CAP 1.2 XML that validates against the XSD and
  parses back to an equal model.
- `validate_cap_xml(data) -> list[str]`: the CAP 1.2 XSD's error messages ([] when valid).
- `CapError(ValueError)`: `.problem` says what is wrong, `.path` where (e.g.
  `alert/info[0]/area[0]/polygon[1]`).

The implementation lives in `alerts.cap_common`, `alerts.cap_parse` and `alerts.cap_emit`;
import from here.
"""

from __future__ import annotations

from alerts.cap_common import CAP11_NS, CAP12_NS, XMLDSIG_NS, CapError
from alerts.cap_emit import to_cap_xml, validate_cap_xml
from alerts.cap_parse import parse_cap

__all__ = [
    "CAP11_NS",
    "CAP12_NS",
    "XMLDSIG_NS",
    "CapError",
    "parse_cap",
    "to_cap_xml",
    "validate_cap_xml",
]
