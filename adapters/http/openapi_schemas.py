"""The OpenAPI document's reusable parts: `components.schemas`, and the small builders every
path description is made of (error responses, JSON and HTML responses, JSON request bodies,
path parameters).

Contract:
- `component_schemas()` is the `components.schemas` map: `AlertRequest` and its `$defs` taken
  from the pydantic model itself (so the document cannot drift from what intake accepts), then
  `Error` and `AlertView`. It is computed once; callers must not mutate it.
- The builders return new outer dicts on every call, shaped as OpenAPI 3.1 expects; they
  embed the schemas they are given, and one shared `Error` `$ref`, without copying (the
  document is serialised, never mutated).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from alerts.requests import AlertRequest

ERROR_REF = {"$ref": "#/components/schemas/Error"}
FORM_TYPE = "application/x-www-form-urlencoded"


def error_responses(*statuses: int) -> dict[str, Any]:
    """A JSON `Error` response for each status, keyed by the status as a string."""
    return {
        str(s): {"description": "error", "content": {"application/json": {"schema": ERROR_REF}}}
        for s in statuses
    }


def response_json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A response object whose body is JSON of `schema`."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def response_html(description: str) -> dict[str, Any]:
    """A response object whose body is an HTML page."""
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def request_json(properties: dict[str, Any]) -> dict[str, Any]:
    """A request body object: a JSON object with these (optional) properties."""
    schema = {"type": "object", "properties": properties}
    return {"content": {"application/json": {"schema": schema}}}


def path_param(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A required path parameter, a string unless `schema` says otherwise."""
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


@cache
def component_schemas() -> dict[str, Any]:
    schema = AlertRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {
        "AlertRequest": schema,
        **defs,
        "Error": {
            "type": "object",
            "required": ["error", "detail"],
            "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
        },
        "AlertView": {
            "type": "object",
            "required": ["id", "state", "alert", "links"],
            "properties": {
                "id": {"type": "string"},
                "state": {"type": "string"},
                "source": {"type": "string"},
                "received_at": {"type": "string"},
                "channels": {"type": "array", "items": {"type": "string"}},
                "status": {"type": "string"},
                "msg_type": {"type": "string"},
                "severity": {"type": "string"},
                "urgency": {"type": "string"},
                "expires": {"type": ["string", "null"]},
                "headline": {"type": ["string", "null"]},
                # As posted (alerts.requests.request_form); the CAP form is `alert`.
                "event": {"type": ["string", "null"]},
                "description": {"type": ["string", "null"]},
                "instruction": {"type": ["string", "null"]},
                "certainty": {"type": ["string", "null"]},
                "category": {"type": "array", "items": {"type": "string"}},
                "language": {"type": ["string", "null"]},
                "areas": {"type": "array", "items": {"type": "object"}},
                "translations": {"type": "array", "items": {"type": "object"}},
                "alert": {"type": "object"},
                "links": {"type": "object"},
                "deliveries": {
                    "description": "channel -> state -> count of this alert's deliveries",
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": {"type": "integer"},
                    },
                },
            },
        },
    }
