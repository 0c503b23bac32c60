"""The OpenAPI paths of the bearer-token JSON API and the webhooks that feed it: alerts and
their deliveries, SMS subscribers, the audit log, Twilio's status and inbound-SMS hooks, and
replies (list, tip, act, answer, stream).

Contract: `api_paths(view, auth)` returns these path items, in the order the document lists
them; `view` is the schema of an alert as the API returns it, `auth` the security requirement
of a bearer-token route. `build_openapi` in `openapi.py` merges them into the document.
"""

from __future__ import annotations

from typing import Any

from adapters.http.openapi_schemas import (
    error_responses,
    path_param,
    request_json,
    response_json,
)
from adapters.http.views import ALERT_ID

# A cluster id is a reply id: at most 18 digits (responders.MAX_CLUSTER).
CLUSTER_SCHEMA = {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}
ALERT_ID_SCHEMA = {"type": "string", "pattern": f"^{ALERT_ID}$"}


def api_paths(view: dict[str, Any], auth: list[dict[str, list[str]]]) -> dict[str, Any]:
    return {
        "/v1/alerts": {
            "post": {
                "summary": "Submit an alert (our JSON, or CAP 1.2 XML)",
                "security": auth,
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/AlertRequest"}
                        },
                        "application/cap+xml": {"schema": {"type": "string"}},
                    },
                },
                "responses": {
                    "201": response_json(view, "stored (committed) and accepted"),
                    "200": response_json(view, "a repeat: the alert stored the first time"),
                    **error_responses(400, 401, 403, 409, 413, 415, 422, 503),
                },
            },
            "get": {
                "summary": "List alerts, newest first",
                "security": auth,
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                    },
                    {
                        "name": "before",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1},
                    },
                ],
                "responses": {
                    "200": response_json(
                        {
                            "type": "object",
                            "properties": {
                                "alerts": {"type": "array", "items": view},
                                "next": {"type": "string"},
                            },
                        },
                        "a page of alerts",
                    ),
                    **error_responses(400, 401, 403),
                },
            },
        },
        "/v1/alerts/{id}": {
            "get": {
                "summary": "One alert",
                "security": auth,
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": response_json(
                        view,
                        "the alert; `deliveries` counts its deliveries per channel and state",
                    ),
                    **error_responses(401, 403, 404),
                },
            }
        },
        "/v1/alerts/{id}/deliveries": {
            "get": {
                "summary": "One alert's deliveries (channel, recipient, state, attempts)",
                "security": auth,
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                    {
                        "name": "after",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0},
                    },
                ],
                "responses": {
                    "200": response_json(
                        {"type": "object"}, "deliveries by id, with a `next` link"
                    ),
                    **error_responses(400, 401, 403, 404),
                },
            }
        },
        "/v1/subscribers": {
            "post": {
                "summary": "Create or update an SMS subscriber (admin)",
                "security": auth,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "responses": {
                    "200": response_json({"type": "object"}, "updated"),
                    "201": response_json({"type": "object"}, "created"),
                    **error_responses(400, 401, 403, 422),
                },
            },
            "get": {
                "summary": "SMS subscribers by id (admin)",
                "security": auth,
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                    {
                        "name": "after",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 2**62},
                    },
                ],
                "responses": {
                    "200": response_json({"type": "object"}, "subscribers with a `next` link"),
                    **error_responses(400, 401, 403),
                },
            },
        },
        "/v1/subscribers/{phone}": {
            "get": {
                "summary": "One subscriber by E.164 number (admin)",
                "security": auth,
                "parameters": [
                    {
                        "name": "phone",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": response_json({"type": "object"}, "the subscriber"),
                    **error_responses(401, 403, 404),
                },
            },
            "delete": {
                "summary": "Delete a subscriber (admin)",
                "security": auth,
                "parameters": [
                    {
                        "name": "phone",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {"204": {"description": "deleted"}, **error_responses(401, 403, 404)},
            },
        },
        "/v1/audit": {
            "get": {
                "summary": "The hash-chained audit log (admin): a JSON page, or JSON lines",
                "description": "Every row has seq, at, actor, action, detail, prev_hash and "
                "hash. `format=jsonl` streams every row after `after` as "
                "application/x-ndjson. A bearer token failing authentication too often "
                "from one address is answered 429 with Retry-After (any route).",
                "security": auth,
                "parameters": [
                    {"name": "after", "in": "query", "schema": {"type": "integer"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                    {
                        "name": "format",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["json", "jsonl"]},
                    },
                ],
                "responses": {
                    "200": response_json(
                        {"type": "object"}, "rows in seq order, with a `next` link"
                    ),
                    **error_responses(400, 401, 403, 429),
                },
            }
        },
        "/hooks/twilio/status": {
            "post": {
                "summary": "Twilio delivery receipt (signed with X-Twilio-Signature)",
                "requestBody": {
                    "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}
                },
                "responses": {
                    "200": response_json({"type": "object"}, "whether a delivery changed"),
                    **error_responses(403, 404),
                },
            }
        },
        "/hooks/twilio/sms": {
            "post": {
                "summary": "Inbound SMS (signed): STOP/START/HELP/JOIN <area>, else a reply",
                "requestBody": {
                    "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}
                },
                "responses": {
                    "200": {
                        "description": "TwiML: a confirmation, or an empty <Response/>",
                        "content": {"text/xml": {"schema": {"type": "string"}}},
                    },
                    **error_responses(400, 403, 404),
                },
            }
        },
        "/v1/replies": {
            "get": {
                "summary": "Replies for responders, newest first (responder or admin)",
                "security": auth,
                "parameters": [
                    {"name": n, "in": "query", "schema": {"type": t}}
                    for n, t in (
                        ("category", "string"),
                        ("since", "string"),
                        ("state", "string"),
                        ("limit", "integer"),
                        ("before", "integer"),
                        ("after", "integer"),
                    )
                ]
                + [
                    {"name": "cluster", "in": "query", "schema": CLUSTER_SCHEMA},
                    {"name": "alert", "in": "query", "schema": ALERT_ID_SCHEMA},
                ],
                "responses": {
                    "200": response_json({"type": "object"}, "{replies: [...], next?}"),
                    **error_responses(400, 401, 403),
                },
            },
            "post": {
                "summary": "A tip from the public (anonymous allowed; rate-limited per IP)",
                "security": [],
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["text"],
                                "additionalProperties": False,
                                "properties": {
                                    "text": {"type": "string", "maxLength": 2000},
                                    "alert_id": {"type": "string"},
                                    "lat": {"type": "number"},
                                    "lon": {"type": "number"},
                                    "media_url": {"type": "string", "format": "uri"},
                                    "contact": {"type": "string", "maxLength": 200},
                                },
                            }
                        },
                        "application/x-www-form-urlencoded": {
                            "schema": {"type": "object", "description": "the /tips form"}
                        },
                    }
                },
                "responses": {
                    "202": response_json({"type": "object"}, "stored: {id, status}"),
                    **error_responses(400, 403, 415, 422, 429),
                },
            },
        },
        "/v1/replies/{id}/{action}": {
            "post": {
                "summary": "acknowledge, escalate or dismiss a reply, with an optional note "
                "(audited)",
                "security": auth,
                "parameters": [
                    path_param("id", {"type": "integer", "minimum": 0}),
                    path_param(
                        "action",
                        {"type": "string", "enum": ["acknowledge", "escalate", "dismiss"]},
                    ),
                ],
                "requestBody": request_json({"note": {"type": "string", "maxLength": 1000}}),
                "responses": {
                    "200": response_json({"type": "object"}, "the reply"),
                    **error_responses(400, 401, 403, 404, 415, 422),
                },
            }
        },
        "/v1/replies/{id}/respond": {
            "post": {
                "summary": "Answer the sender on the channel the reply came from (audited)",
                "security": auth,
                "parameters": [path_param("id", {"type": "integer", "minimum": 0})],
                "requestBody": request_json({"text": {"type": "string", "maxLength": 1600}}),
                "responses": {
                    "201": response_json({"type": "object"}, "{id, source, provider_ref}"),
                    **error_responses(401, 403, 404, 409, 422, 502),
                },
            }
        },
        "/v1/replies/stream": {
            "get": {
                "summary": "Server-Sent Events of new and changed replies (resume with "
                "Last-Event-ID); Bearer token, ?ticket= or the dashboard session",
                "security": auth,
                "responses": {
                    "200": {
                        "description": "event: reply",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **error_responses(400, 401, 403),
                },
            }
        },
        "/v1/replies/stream-ticket": {
            "post": {
                "summary": "A 60-second ticket for EventSource on /v1/replies/stream",
                "security": auth,
                "responses": {
                    "200": response_json({"type": "object"}, "{ticket, expires_in, url}"),
                    **error_responses(401, 403),
                },
            }
        },
    }
