"""CAP vocabulary shared by the parser and the emitter (import the public names from `alerts.cap`).

Holds the namespaces, the model-field -> CAP-element table and `CapError`, so that
`alerts.cap_parse` and `alerts.cap_emit` depend on this module rather than on each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from pydantic import BaseModel

from alerts.models import Alert, Area, Info, Resource, ValuePair

CAP12_NS: Final = "urn:oasis:names:tc:emergency:cap:1.2"
CAP11_NS: Final = "urn:oasis:names:tc:emergency:cap:1.1"
XMLDSIG_NS: Final = "http://www.w3.org/2000/09/xmldsig#"

# Model field -> CAP element, in the XSD's sequence order. The emitter writes elements in this
# order and error messages name elements through it, so it is the one place the names live.
ELEMENTS: Final[Mapping[type[BaseModel], tuple[tuple[str, str], ...]]] = {
    Alert: (
        ("identifier", "identifier"), ("sender", "sender"), ("sent", "sent"),
        ("status", "status"), ("msg_type", "msgType"), ("source", "source"),
        ("scope", "scope"), ("restriction", "restriction"), ("addresses", "addresses"),
        ("codes", "code"), ("note", "note"), ("references", "references"),
        ("incidents", "incidents"), ("infos", "info"),
    ),
    Info: (
        ("language", "language"), ("categories", "category"), ("event", "event"),
        ("response_types", "responseType"), ("urgency", "urgency"), ("severity", "severity"),
        ("certainty", "certainty"), ("audience", "audience"), ("event_codes", "eventCode"),
        ("effective", "effective"), ("onset", "onset"), ("expires", "expires"),
        ("sender_name", "senderName"), ("headline", "headline"),
        ("description", "description"), ("instruction", "instruction"), ("web", "web"),
        ("contact", "contact"), ("parameters", "parameter"), ("resources", "resource"),
        ("areas", "area"),
    ),
    Resource: (
        ("description", "resourceDesc"), ("mime_type", "mimeType"), ("size", "size"),
        ("uri", "uri"), ("deref_uri", "derefUri"), ("digest", "digest"),
    ),
    Area: (
        ("description", "areaDesc"), ("polygons", "polygon"), ("circles", "circle"),
        ("geocodes", "geocode"), ("altitude", "altitude"), ("ceiling", "ceiling"),
    ),
    ValuePair: (("value_name", "valueName"), ("value", "value")),
}  # fmt: skip


class CapError(ValueError):
    """A CAP document that cannot be accepted. The message names the problem.

    `path` locates it in CAP element terms (e.g. `alert/info[0]/area[0]/polygon[1]`, indexes
    counting from 0 among same-named siblings), or is None for whole-document problems (not XML,
    DTD present, wrong root or namespace). `problem` is the message without the path.
    """

    def __init__(self, problem: str, path: str | None = None) -> None:
        super().__init__(f"CAP {path}: {problem}" if path else f"CAP: {problem}")
        self.problem = problem
        self.path = path

    def __reduce__(self) -> tuple[type[CapError], tuple[str, str | None]]:
        return type(self), (self.problem, self.path)
