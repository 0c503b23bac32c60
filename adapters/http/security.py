"""Security headers on every response, and CORS closed unless configured.

Contract (every response, whatever produced it: a handler, the error middleware, the router's
404, a static file, an event stream):

- `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
  `Referrer-Policy: strict-origin-when-cross-origin`, a minimal `Permissions-Policy`;
- HTML: `Content-Security-Policy` = `PAGE_CSP` (scripts and styles from our origin only,
  no inline script, no framing, forms post only to us); anything else: `API_CSP`
  (`default-src 'none'`: a JSON or XML body opened in a browser runs nothing);
- `Cache-Control: no-store` on the private API (`/v1/*` except the public `/v1/stream`,
  and the responder desk `/responders*`): replies, senders, audit rows, subscribers and
  deliveries must not stay in a browser or proxy cache;
- no `Access-Control-Allow-Origin` unless `http.cors_origins` lists the request's `Origin`,
  and then only on GET/HEAD of the public feeds and the public stream (`PUBLIC_FEEDS`).

It is an `on_response_prepare` hook rather than a middleware because event streams and
static files send their headers from inside the handler, before a middleware would see the
response.
"""

from __future__ import annotations

import re

from aiohttp import web

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
REFERRER_POLICY = "strict-origin-when-cross-origin"

# Public, read-only resources other origins may be allowed to read (GET/HEAD only).
PUBLIC_FEEDS = re.compile(r"^/(feed\.atom|cap/index\.atom|v1/stream|alerts/[A-Za-z0-9_-]+\.cap)$")
_PUBLIC_V1 = frozenset({"/v1/stream"})

CORS_ORIGINS = web.AppKey("cors_origins", frozenset[str])


def install(app: web.Application, cors_origins: tuple[str, ...] = ()) -> None:
    """Add the headers to every response `app` sends."""
    app[CORS_ORIGINS] = frozenset(cors_origins)
    app.on_response_prepare.append(_add_headers)


def _private(path: str) -> bool:
    if path.startswith("/v1/"):
        return path not in _PUBLIC_V1
    return path == "/responders" or path.startswith("/responders/")


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = REFERRER_POLICY
    headers["Permissions-Policy"] = PERMISSIONS_POLICY
    html = headers.get("Content-Type", "").startswith("text/html")
    headers["Content-Security-Policy"] = PAGE_CSP if html else API_CSP
    if _private(request.path):
        headers["Cache-Control"] = "no-store"
    headers.popall("Access-Control-Allow-Origin", None)
    origin = request.headers.get("Origin")
    if (
        origin is not None
        and request.method in ("GET", "HEAD")
        and origin in request.app[CORS_ORIGINS]
        and PUBLIC_FEEDS.match(request.path)
    ):
        headers["Access-Control-Allow-Origin"] = origin
        headers.add("Vary", "Origin")
