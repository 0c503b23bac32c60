"""CAP test material: the files under tests/data/cap/, a small document builder and the
hostile entity documents.

The CAP files under tests/data/cap/ are copies of /work/shared/data/cap/; MANIFEST.json there
names the public repository, commit and licence each file came from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from alerts.cap import CAP12_NS, CapError

DATA = Path(__file__).resolve().parent.parent / "data" / "cap"
MANIFEST: dict[str, dict[str, Any]] = {
    entry["file"]: entry
    for entry in json.loads((DATA / "MANIFEST.json").read_text(encoding="utf-8"))["files"]
}
GOOD_FILES = sorted(
    f"{folder}/{path.name}"
    for folder in ("real", "spec_examples")
    for path in (DATA / folder).glob("*.xml")
)
INVALID_FILES = sorted(f"invalid/{path.name}" for path in (DATA / "invalid").glob("*.xml"))

# The model refuses an info whose expires is not after sent; this real NOAA cancellation sets
# expires == sent ("expires at once"). Kept strict so the test flags when the model rule changes.
# Files the domain model refuses although they are real; empty since the model allows
# expires == sent (the NOAA tsunami cancellation does that).
MODEL_CONFLICTS: dict[str, str] = {}


def _good_params() -> list[Any]:
    marks = {
        name: pytest.mark.xfail(reason=reason, raises=CapError, strict=True)
        for name, reason in MODEL_CONFLICTS.items()
    }
    return [pytest.param(name, marks=marks.get(name, ()), id=name) for name in GOOD_FILES]


def _read(name: str) -> bytes:
    return (DATA / name).read_bytes()


def _doc(
    *,
    ns: str = CAP12_NS,
    msg_type: str = "Alert",
    alert: str = "",
    info: str = "",
    area: str = "",
    certainty: str = "Observed",
) -> bytes:
    """A small CAP document with hooks to add elements at each level."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="{ns}">
  <identifier>T-1</identifier><sender>test@example.org</sender>
  <sent>2024-01-01T00:00:00+00:00</sent><status>Actual</status>
  <msgType>{msg_type}</msgType><scope>Public</scope>{alert}
  <info>
    <category>Met</category><event>Storm</event><urgency>Immediate</urgency>
    <severity>Severe</severity><certainty>{certainty}</certainty>{info}
    <area><areaDesc>Somewhere</areaDesc>{area}</area>
  </info>
</alert>""".encode()


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY lol0 "lol">'
    + b"".join(b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10) for i in range(1, 10))
    + b']><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol9;</identifier>'
    b"</alert>"
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier></alert>'
)
