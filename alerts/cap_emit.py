"""Write `Alert`s as CAP 1.2 XML and check XML against the CAP 1.2 XSD (import from `alerts.cap`).

Contract:
- `to_cap_xml(alert)` returns UTF-8 bytes with an XML declaration and CAP 1.2 as the default
  namespace, elements in the XSD's order, times as `YYYY-MM-DDThh:mm:ss±hh:mm`, and numbers in
  the shortest decimal form that reads back as the same float, so `parse_cap(to_cap_xml(a))`
  equals `[a]` for every alert `parse_cap` returns. The output validates against the XSD as long
  as the fields the model leaves free hold values of the XSD's types (`language` an xs:language
  such as "en-US", `web`/`uri` an xs:anyURI). A text that XML cannot carry (control characters)
  or a non-finite number raises `CapError` naming the element.
- `validate_cap_xml(data)` returns the XSD's error messages, empty when `data` is valid CAP 1.2.
  It refuses DTDs like the parser does and never fetches anything; the schema is read once from
  the package (`alerts/schema/CAP-v1.2.xsd`) on first use.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any, cast

from lxml import etree
from pydantic import BaseModel

from alerts.cap_common import CAP12_NS, ELEMENTS, CapError
from alerts.models import Alert, Circle, Polygon, format_cap_time

# lxml's schema keeps its error log on the schema object, so validations must not interleave.
_schema_lock = threading.Lock()


def to_cap_xml(alert: Alert) -> bytes:
    """Serialise `alert` as a CAP 1.2 document; see the module contract."""
    # lxml spells the default namespace with a None key, which lxml-stubs do not admit.
    root = etree.Element(f"{{{CAP12_NS}}}alert", nsmap=cast("dict[str, str]", {None: CAP12_NS}))
    _write(root, alert, "alert")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _write(parent: etree._Element, model: BaseModel, path: str) -> None:
    for field, element in ELEMENTS[type(model)]:
        value = getattr(model, field)
        if field == "references":  # one element holding a space-separated list
            value = " ".join(value) or None
        repeated = isinstance(value, tuple)
        for index, item in enumerate(value if repeated else (value,)):
            if item is None:
                continue
            where = f"{path}/{element}[{index}]" if repeated else f"{path}/{element}"
            child = etree.SubElement(parent, f"{{{CAP12_NS}}}{element}")
            if type(item) in ELEMENTS:
                _write(child, item, where)
                continue
            try:
                child.text = _text(item, where)
            except ValueError as exc:  # lxml refuses NUL and other control characters
                raise CapError(f"cannot be written as XML: {exc}", where) from None


def _text(value: Any, path: str) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return format_cap_time(value)
    if isinstance(value, Polygon):
        return " ".join(f"{_number(p.lat, path)},{_number(p.lon, path)}" for p in value.points)
    if isinstance(value, Circle):
        centre = f"{_number(value.lat, path)},{_number(value.lon, path)}"
        return f"{centre} {_number(value.radius_km, path)}"
    if isinstance(value, float):
        return _number(value, path)
    return str(value)


def _number(value: float, path: str) -> str:
    """The shortest decimal reading back as `value`, with no exponent (xs:decimal has none)."""
    if not math.isfinite(value):
        raise CapError(f"{value!r} is not a finite number", path)
    return format(Decimal(repr(value)), "f")


def validate_cap_xml(data: bytes) -> list[str]:
    """XSD errors of `data` against CAP 1.2 as 'line N: message' strings; [] when valid."""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
        huge_tree=False,
    )  # fmt: skip
    try:
        doc = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        return [f"not well-formed XML: {exc}"]
    if doc.getroottree().docinfo.internalDTD is not None:  # any DOCTYPE, with or without subset
        return ["DTD/entity declarations are refused (XXE protection)"]
    with _schema_lock:
        schema = _schema()
        if schema.validate(doc):
            return []
        errors = cast("Iterable[Any]", schema.error_log)  # lxml-stubs leave _ErrorLog empty
        return [f"line {error.line}: {error.message}" for error in errors]


@functools.cache
def _schema() -> etree.XMLSchema:
    try:
        source = resources.files("alerts").joinpath("schema", "CAP-v1.2.xsd").read_bytes()
    except NotADirectoryError:
        # An editable install made before alerts/ had __init__.py maps it as a namespace package,
        # which Python 3.11's importlib.resources cannot read; the XSD still sits beside us.
        source = (Path(__file__).parent / "schema" / "CAP-v1.2.xsd").read_bytes()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.fromstring(source, parser))
