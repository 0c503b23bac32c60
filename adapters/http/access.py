"""Who is calling: bearer-token authentication and role checks for routes.

Contract:
- `authenticate(request, service, *roles)` checks `Authorization: Bearer` (401 when missing,
  malformed, unknown, expired or revoked; 429 with Retry-After when the client's IP has
  failed too often; see `broadcaster.auth`), then the role (403; admin passes every check),
  records the use (`token.used`, at most once a minute per token) and keeps the token on
  the request (`request_token`) for handlers that audit what they do.
- The client is the peer address (`request.remote`): no proxy header is trusted, as for
  the tips limit.
- `route_name(request)` is "METHOD /path/{template}": what the audit log names a route by
  (ids stay out of it).
"""

from __future__ import annotations

from aiohttp import web

from broadcaster.auth import require_role
from broadcaster.ports import ApiToken, Role
from broadcaster.service import Service

_TOKEN = web.RequestKey("token", ApiToken)


def client_of(request: web.Request) -> str:
    return request.remote or "unknown"


def route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else request.path
    return f"{request.method} {path}"


async def authenticate(request: web.Request, service: Service, *roles: Role) -> ApiToken:
    token = await service.authenticator.authenticate(
        request.headers.get("Authorization"), client=client_of(request), route=route_name(request)
    )
    require_role(token, *roles)
    request[_TOKEN] = token
    return token


def request_token(request: web.Request) -> ApiToken:
    """The token `authenticate` accepted for this request."""
    try:
        return request[_TOKEN]
    except KeyError:
        raise RuntimeError("route did not authenticate") from None
