"""The OpenAPI 3.1 description of the REST API, with request schemas taken from the pydantic
models themselves so the document cannot drift from what intake accepts.

Contract: `build_openapi(base_url)` returns the whole document, its paths in a fixed order:
the JSON API and webhooks (`openapi_api_paths.py`), then the public feeds, pages, event
stream and operational endpoints (here), then the comms-desk actions, templates and HTML
desk pages (`_more_paths`). `components.schemas` is computed once and shared between calls:
do not mutate it. Shared schemas and builders live in `openapi_schemas.py`.
"""

from __future__ import annotations

from typing import Any

from adapters.http.openapi_api_paths import api_paths
from adapters.http.openapi_schemas import (
    FORM_TYPE,
    component_schemas,
    error_responses,
    path_param,
    request_json,
    response_html,
    response_json,
)


def build_openapi(base_url: str) -> dict[str, Any]:
    view = {"$ref": "#/components/schemas/AlertView"}
    auth: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "broadcaster",
            "version": "0.1.0",
            "description": "Emergency alert intake and broadcast.",
        },
        "servers": [{"url": base_url}],
        "components": {
            "schemas": component_schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            **api_paths(view, auth),
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
                        **error_responses(404),
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
                        **error_responses(400),
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


def _more_paths(view: dict[str, Any], auth: list[dict[str, list[str]]]) -> dict[str, Any]:
    """The comms-desk actions, templates, single replies and the HTML pages for the public
    and responders (so a fuzzer and a client generator reach every route)."""
    reason = request_json({"reason": {"type": "string", "maxLength": 1000}})
    reply_id = path_param("id", {"type": "integer", "minimum": 0})
    alert_id = path_param("id")
    reply = response_json({"type": "object"}, "the reply")

    def action(summary: str, body: dict[str, Any], ok: str, *errors: int) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "security": auth,
                "parameters": [alert_id],
                "requestBody": body,
                "responses": {ok: response_json(view, summary), **error_responses(*errors)},
            }
        }

    values = {"type": "object", "additionalProperties": {"type": "string"}}
    return {
        "/v1/alerts/from-template/{name}": {
            "post": {
                "summary": "Issue an alert from a pre-approved template (issuer)",
                "security": auth,
                "parameters": [path_param("name")],
                "requestBody": request_json(
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
                    "201": response_json(view, "stored (committed) and accepted"),
                    "200": response_json(view, "a repeat: the alert stored the first time"),
                    **error_responses(400, 401, 403, 404, 409, 415, 422),
                },
            }
        },
        "/v1/templates": {
            "get": {
                "summary": "Every alert template with its placeholders (issuer, approver)",
                "security": auth,
                "responses": {
                    "200": response_json({"type": "object"}, "{templates: [...]}"),
                    **error_responses(401, 403),
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
            request_json({"reason": {"type": "string", "maxLength": 1000}, "values": values}),
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
                "responses": {"200": reply, **error_responses(401, 403, 404)},
            }
        },
        "/tips": {
            "get": {
                "summary": "The tip form (HTML, works without JavaScript; sets its CSRF cookie)",
                "responses": {"200": response_html("the form")},
            }
        },
        "/responders": {
            "get": {
                "summary": "The responder desk (HTML): the login form without a session",
                "responses": {"200": response_html("the desk, or its login form")},
            }
        },
        "/responders/login": {
            "post": {
                "summary": "Log in to the desk with a responder token (form, CSRF token)",
                "requestBody": {
                    "content": {FORM_TYPE: {"schema": {"type": "object"}}},
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
