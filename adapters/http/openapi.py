"""The OpenAPI 3.1 description of the REST API, with request schemas taken from the pydantic
models themselves so the document cannot drift from what intake accepts."""

from __future__ import annotations

from functools import cache
from typing import Any

from alerts.requests import AlertRequest

_ERROR = {"$ref": "#/components/schemas/Error"}
_FORM = "application/x-www-form-urlencoded"


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(s): {"description": "error", "content": {"application/json": {"schema": _ERROR}}}
        for s in statuses
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


@cache
def _schemas() -> dict[str, Any]:
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
                "alert": {"type": "object"},
                "links": {"type": "object"},
            },
        },
    }


def _json_body(properties: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties}
    return {"content": {"application/json": {"schema": schema}}}


def build_openapi(base_url: str) -> dict[str, Any]:
    view = {"$ref": "#/components/schemas/AlertView"}
    auth = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "broadcaster",
            "version": "0.1.0",
            "description": "Emergency alert intake and broadcast.",
        },
        "servers": [{"url": base_url}],
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
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
                        "201": _json(view, "stored (committed) and accepted"),
                        "200": _json(view, "a repeat: the alert stored the first time"),
                        **_errors(400, 401, 403, 409, 413, 415, 422, 503),
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
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "alerts": {"type": "array", "items": view},
                                    "next": {"type": "string"},
                                },
                            },
                            "a page of alerts",
                        ),
                        **_errors(400, 401, 403),
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
                        "200": _json(
                            view,
                            "the alert; `deliveries` counts its deliveries per channel and state",
                        ),
                        **_errors(401, 403, 404),
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
                        "200": _json({"type": "object"}, "deliveries by id, with a `next` link"),
                        **_errors(400, 401, 403, 404),
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
                        "200": _json({"type": "object"}, "updated"),
                        "201": _json({"type": "object"}, "created"),
                        **_errors(400, 401, 403, 422),
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
                        "200": _json({"type": "object"}, "subscribers with a `next` link"),
                        **_errors(400, 401, 403),
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
                        "200": _json({"type": "object"}, "the subscriber"),
                        **_errors(401, 403, 404),
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
                    "responses": {"204": {"description": "deleted"}, **_errors(401, 403, 404)},
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
                        "200": _json({"type": "object"}, "rows in seq order, with a `next` link"),
                        **_errors(400, 401, 403, 429),
                    },
                }
            },
            "/hooks/twilio/status": {
                "post": {
                    "summary": "Twilio delivery receipt (signed with X-Twilio-Signature)",
                    "requestBody": {
                        "content": {
                            "application/x-www-form-urlencoded": {"schema": {"type": "object"}}
                        }
                    },
                    "responses": {
                        "200": _json({"type": "object"}, "whether a delivery changed"),
                        **_errors(403, 404),
                    },
                }
            },
            "/hooks/twilio/sms": {
                "post": {
                    "summary": "Inbound SMS (signed): STOP/START/HELP/JOIN <area>, else a reply",
                    "requestBody": {
                        "content": {
                            "application/x-www-form-urlencoded": {"schema": {"type": "object"}}
                        }
                    },
                    "responses": {
                        "200": {
                            "description": "TwiML: a confirmation, or an empty <Response/>",
                            "content": {"text/xml": {"schema": {"type": "string"}}},
                        },
                        **_errors(400, 403, 404),
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
                    ],
                    "responses": {
                        "200": _json({"type": "object"}, "{replies: [...], next?}"),
                        **_errors(400, 401, 403),
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
                        "202": _json({"type": "object"}, "stored: {id, status}"),
                        **_errors(400, 403, 415, 422, 429),
                    },
                },
            },
            "/v1/replies/{id}/{action}": {
                "post": {
                    "summary": "acknowledge, escalate or dismiss a reply, with an optional note "
                    "(audited)",
                    "security": auth,
                    "parameters": [
                        _path_param("id", {"type": "integer", "minimum": 0}),
                        _path_param(
                            "action",
                            {"type": "string", "enum": ["acknowledge", "escalate", "dismiss"]},
                        ),
                    ],
                    "requestBody": _json_body({"note": {"type": "string", "maxLength": 1000}}),
                    "responses": {
                        "200": _json({"type": "object"}, "the reply"),
                        **_errors(400, 401, 403, 404, 415, 422),
                    },
                }
            },
            "/v1/replies/{id}/respond": {
                "post": {
                    "summary": "Answer the sender on the channel the reply came from (audited)",
                    "security": auth,
                    "parameters": [_path_param("id", {"type": "integer", "minimum": 0})],
                    "requestBody": _json_body({"text": {"type": "string", "maxLength": 1600}}),
                    "responses": {
                        "201": _json({"type": "object"}, "{id, source, provider_ref}"),
                        **_errors(401, 403, 404, 409, 422, 502),
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
                        **_errors(400, 401, 403),
                    },
                }
            },
            "/v1/replies/stream-ticket": {
                "post": {
                    "summary": "A 60-second ticket for EventSource on /v1/replies/stream",
                    "security": auth,
                    "responses": {
                        "200": _json({"type": "object"}, "{ticket, expires_in, url}"),
                        **_errors(401, 403),
                    },
                }
            },
            "/alerts/{id}.cap": {
                "get": {
                    "summary": "One alert as CAP 1.2 XML",
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {
                            "description": "CAP 1.2",
                            "content": {"application/cap+xml": {"schema": {"type": "string"}}},
                        },
                        "304": {"description": "not modified (If-None-Match/If-Modified-Since)"},
                        **_errors(404),
                    },
                }
            },
            "/feed.atom": {
                "get": {
                    "summary": "Atom feed of the latest 50 alert events, newest first",
                    "responses": {
                        "200": {
                            "description": "Atom 1.0",
                            "content": {"application/atom+xml": {"schema": {"type": "string"}}},
                        },
                        "304": {"description": "not modified (If-None-Match/If-Modified-Since)"},
                    },
                }
            },
            "/cap/index.atom": {
                "get": {
                    "summary": "CAP-over-Atom index of the alerts in force, linking to CAP 1.2",
                    "responses": {
                        "200": {
                            "description": "Atom 1.0 with CAP 1.2 fields per entry",
                            "content": {"application/atom+xml": {"schema": {"type": "string"}}},
                        },
                        "304": {"description": "not modified (If-None-Match/If-Modified-Since)"},
                    },
                }
            },
            "/": {
                "get": {
                    "summary": "Public page: the alerts in force (HTML); ETag and 304",
                    "parameters": [
                        {"name": n, "in": "query", "schema": {"type": "string"}}
                        for n in ("lang", "exercises", "fragment")
                    ],
                    "responses": {
                        "200": {"description": "HTML", "content": {"text/html": {}}},
                        "304": {"description": "not modified (If-None-Match)"},
                    },
                }
            },
            "/alerts/{id}": {
                "get": {
                    "summary": "Public page: one alert with its history (HTML)",
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ]
                    + [
                        {"name": n, "in": "query", "schema": {"type": "string"}}
                        for n in ("lang", "fragment")
                    ],
                    "responses": {
                        "200": {"description": "HTML", "content": {"text/html": {}}},
                        "304": {"description": "not modified (If-None-Match)"},
                        "404": {"description": "no public alert with this id (HTML)"},
                    },
                }
            },
            "/v1/stream": {
                "get": {
                    "summary": "Public alert events as Server-Sent Events; resume with "
                    "Last-Event-ID or ?last_event_id=",
                    "parameters": [
                        {"name": "Last-Event-ID", "in": "header", "schema": {"type": "integer"}},
                        {"name": "last_event_id", "in": "query", "schema": {"type": "integer"}},
                    ],
                    "responses": {
                        "200": {"description": "events", "content": {"text/event-stream": {}}},
                        **_errors(400),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "The process is alive",
                    "responses": {"200": {"description": "alive"}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Dependencies reachable",
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready"},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "text exposition"}},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI"}},
                }
            },
            **_more_paths(view, auth),
        },
    }


def _path_param(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _more_paths(view: dict[str, Any], auth: list[dict[str, list[str]]]) -> dict[str, Any]:
    """The comms-desk actions, templates, single replies and the HTML pages for the public
    and responders (so a fuzzer and a client generator reach every route)."""
    reason = _json_body({"reason": {"type": "string", "maxLength": 1000}})
    reply_id = _path_param("id", {"type": "integer", "minimum": 0})
    alert_id = _path_param("id")
    reply = _json({"type": "object"}, "the reply")

    def action(summary: str, body: dict[str, Any], ok: str, *errors: int) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "security": auth,
                "parameters": [alert_id],
                "requestBody": body,
                "responses": {ok: _json(view, summary), **_errors(*errors)},
            }
        }

    values = {"type": "object", "additionalProperties": {"type": "string"}}
    return {
        "/v1/alerts/from-template/{name}": {
            "post": {
                "summary": "Issue an alert from a pre-approved template (issuer)",
                "security": auth,
                "parameters": [_path_param("name")],
                "requestBody": _json_body(
                    {
                        "values": values,
                        "areas": {"type": "array", "items": {"type": "object"}},
                        "expires": {"type": "string"},
                        "status": {"type": "string"},
                        "languages": {"type": "array", "items": {"type": "string"}},
                        "channels": {"type": "array", "items": {"type": "string"}},
                        "groups": {"type": "array", "items": {"type": "string"}},
                    }
                ),
                "responses": {
                    "201": _json(view, "stored (committed) and accepted"),
                    "200": _json(view, "a repeat: the alert stored the first time"),
                    **_errors(400, 401, 403, 404, 409, 415, 422),
                },
            }
        },
        "/v1/templates": {
            "get": {
                "summary": "Every alert template with its placeholders (issuer, approver)",
                "security": auth,
                "responses": {
                    "200": _json({"type": "object"}, "{templates: [...]}"),
                    **_errors(401, 403),
                },
            }
        },
        "/v1/alerts/{id}/approve": action(
            "Approve a pending alert (approver; audited)",
            reason,
            "200",
            400,
            401,
            403,
            404,
            409,
            415,
            422,
        ),
        "/v1/alerts/{id}/reject": action(
            "Reject a pending alert (approver; audited)",
            reason,
            "200",
            400,
            401,
            403,
            404,
            409,
            415,
            422,
        ),
        "/v1/alerts/{id}/cancel": action(
            "Cancel an alert in one step, with its correction (issuer, approver; audited)",
            _json_body({"reason": {"type": "string", "maxLength": 1000}, "values": values}),
            "201",
            400,
            401,
            403,
            404,
            409,
            415,
            422,
        ),
        "/v1/replies/{id}": {
            "get": {
                "summary": "One reply (responder)",
                "security": auth,
                "parameters": [reply_id],
                "responses": {"200": reply, **_errors(401, 403, 404)},
            }
        },
        "/tips": {
            "get": {
                "summary": "The tip form (HTML, works without JavaScript; sets its CSRF cookie)",
                "responses": {"200": _html("the form")},
            }
        },
        "/responders": {
            "get": {
                "summary": "The responder desk (HTML): the login form without a session",
                "responses": {"200": _html("the desk, or its login form")},
            }
        },
        "/responders/login": {
            "post": {
                "summary": "Log in to the desk with a responder token (form, CSRF token)",
                "requestBody": {
                    "content": {_FORM: {"schema": {"type": "object"}}},
                },
                "responses": {
                    "303": {"description": "logged in: to the desk"},
                    "403": {"description": "missing or bad CSRF token (HTML or JSON)"},
                },
            }
        },
        "/responders/logout": {
            "post": {
                "summary": "End the desk session (form, CSRF token)",
                "responses": {"303": {"description": "to the login form"}},
            }
        },
    }
