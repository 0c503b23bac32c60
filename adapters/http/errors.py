"""Errors as JSON: every failure leaves as `{"error": code, "detail": text}`.

Bad input is always a 4xx. A 500 means a bug in us: it is logged with its traceback and the
client gets an opaque message (internals and secrets never reach a response).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy
from pydantic_core import to_json

from broadcaster.errors import (
    AuthError,
    AuthThrottled,
    IntakeError,
    MalformedPayload,
    PayloadError,
    StoreError,
    UnsupportedMediaType,
)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = web.AppKey("max_body_bytes", int)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
}


def json_response(
    body: object, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response serialised by pydantic-core (several times faster than json.dumps on
    alert views, which is most of what intake answers)."""
    return web.Response(
        body=to_json(body), status=status, headers=headers, content_type="application/json"
    )


def json_error(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> web.Response:
    return json_response({"error": code, "detail": detail}, status=status, headers=headers)


async def json_object_body(request: web.Request, *, required: bool = False) -> dict[str, Any]:
    """The body as a JSON object. An empty body is `{}` whatever its media type (a bare
    POST of an action whose fields are optional, or whose missing field the caller names),
    unless `required`: then 422 `invalid_request`. Otherwise: not application/json 415,
    not JSON (or a lone surrogate escape in it) 400 `malformed_json`, not an object 422
    `invalid_request`."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise PayloadError("send a JSON object", code="invalid_request")
        return {}
    if request.content_type != "application/json":
        raise UnsupportedMediaType("send application/json")
    try:
        body = json.loads(raw)
        # JSON may escape a lone surrogate ("\ud800"), which is not Unicode text: it would
        # fail later, where the text is encoded (the audit hash of a reason, a provider's
        # request), far from this request and possibly with other work. Refused here.
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        raise MalformedPayload("body holds a lone surrogate escape: not Unicode text") from exc
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError included; deep nesting
        raise MalformedPayload(f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise PayloadError("send a JSON object", code="invalid_request")
    return body


async def read_form(
    request: web.Request,
) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """`request.post()`, with a body that is not UTF-8 (aiohttp raises UnicodeDecodeError)
    a 400 `malformed_form` rather than a 500."""
    try:
        return await request.post()
    except UnicodeDecodeError as exc:
        raise MalformedPayload(
            f"form body is not UTF-8: {exc.reason}", code="malformed_form"
        ) from exc


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except IntakeError as exc:
        return json_error(exc.status, exc.code, exc.detail)
    except AuthThrottled as exc:
        wait = str(max(1, math.ceil(exc.retry_after)))
        return json_error(exc.status, exc.code, exc.detail, {"Retry-After": wait})
    except AuthError as exc:
        headers = {"WWW-Authenticate": 'Bearer realm="broadcaster"'} if exc.status == 401 else None
        return json_error(exc.status, exc.code, exc.detail, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else exc.reason
        if exc.status == 413:
            detail = f"body larger than {request.app[MAX_BODY_BYTES]} bytes"
        return json_error(
            exc.status,
            _CODES.get(exc.status, "http_error"),
            detail or "",
            {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None,
        )
    except StoreError as exc:
        log.error("store unavailable during %s %s: %s", request.method, request.path, exc)
        return json_error(
            503, "store_unavailable", "the database is unavailable; retry", {"Retry-After": "1"}
        )
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return json_error(500, "internal", "internal error; it has been logged")
