"""Who is calling: bearer-token authentication and role checks for routes.

Contract:
- `authenticate(request, service, *roles)` checks `Authorization: Bearer` (401 when missing,
  malformed, unknown, expired or revoked; 429 with Retry-After when the client's IP has
  failed too often; see `broadcaster.auth`), then the role (403; admin passes every check),
  records the use (`token.used`, at most once a minute per token) and keeps the token on
  the request (`request_token`) for handlers that audit what they do.
- `client_of(request)` is the address the per-client limits (failed authentication, web
  tips) count against: the peer (`request.remote`), unless the peer is one of
  `http.trusted_proxies`; then it is the nearest address in `X-Forwarded-For` that is not a
  trusted proxy (`forwarded_client`). From any other peer the header is ignored, so a
  client cannot choose its own address.
- `route_name(request)` is "METHOD /path/{template}": what the audit log names a route by
  (ids stay out of it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import hdrs, web

from broadcaster.auth import require_role
from broadcaster.ports import ApiToken, Role
from broadcaster.service import Service

_TOKEN = web.RequestKey("token", ApiToken)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_of(request: web.Request, service: Service) -> str:
    """The client address the per-client limits count against (see the module docstring)."""
    trusted = service.settings.http.trusted_proxies
    if not trusted:
        return request.remote or "unknown"
    lines = request.headers.getall(hdrs.X_FORWARDED_FOR, [])
    return forwarded_client(request.remote, lines, trusted)


def forwarded_client(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> str:
    """The client's address, given the peer, the `X-Forwarded-For` header lines in order and
    the trusted proxies' networks.

    Each proxy appends the address it received the request from, so the list is read from
    the right, and only as far as our own proxies vouch for it: the first address that is
    not a trusted proxy is the client (anything left of it is the client's own claim). When
    every address is trusted, the leftmost. A peer that is not trusted is the client, whatever
    the header says. An entry that is not an IP address (with or without a port) ends the
    walk at the last address believed. Addresses come back normalised
    (`str(ip_address(...))`)."""
    if peer is None:
        return "unknown"
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:  # not an IP peer (a Unix socket): nothing to trust
        return peer
    if not _trusted(address, trusted):
        return peer
    client = str(address)
    hops = [hop.strip() for line in forwarded_for for hop in line.split(",")]
    for hop in reversed(hops):
        try:
            address = _hop_address(hop)
        except ValueError:
            return client
        client = str(address)
        if not _trusted(address, trusted):
            return client
    return client


def _hop_address(hop: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """One X-Forwarded-For entry as an address. Some proxies add the port ("203.0.113.7:5123",
    "[2001:db8::1]:443"); it is dropped."""
    if hop.startswith("["):
        hop = hop[1 : hop.find("]")] if "]" in hop else hop
    elif hop.count(":") == 1:
        hop = hop.partition(":")[0]
    return ipaddress.ip_address(hop)


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Sequence[Network]
) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:10.0.0.1 is 10.0.0.1
    return any(
        address in network or (mapped is not None and mapped in network) for network in trusted
    )


def route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else request.path
    return f"{request.method} {path}"


async def authenticate(request: web.Request, service: Service, *roles: Role) -> ApiToken:
    token = await service.authenticator.authenticate(
        request.headers.get("Authorization"),
        client=client_of(request, service),
        route=route_name(request),
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
