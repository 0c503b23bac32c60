"""`forwarded_client`: which address the per-client limits count against behind our own
reverse proxies, and that a client can never choose it by sending X-Forwarded-For."""

from __future__ import annotations

import ipaddress

import pytest

from adapters.http.access import forwarded_client
from broadcaster.config import load_settings
from broadcaster.errors import ConfigError

PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]


def test_no_trusted_proxy_means_the_peer() -> None:
    """With no trusted proxies configured the header is never read."""
    assert forwarded_client("203.0.113.7", ["198.51.100.1"], []) == "203.0.113.7"


def test_an_untrusted_peer_cannot_claim_an_address() -> None:
    """A peer that is not one of our proxies is the client, whatever its header says."""
    assert forwarded_client("203.0.113.7", ["198.51.100.1"], PROXIES) == "203.0.113.7"


def test_the_address_our_proxy_received_from_is_the_client() -> None:
    """Behind one trusted proxy, the last entry (the one it appended) is the client."""
    assert forwarded_client("10.0.0.5", ["198.51.100.1"], PROXIES) == "198.51.100.1"


def test_a_forged_left_part_is_ignored() -> None:
    """Entries left of the first untrusted address are the client's own claim: ignored."""
    header = ["1.2.3.4, 198.51.100.1"]
    assert forwarded_client("10.0.0.5", header, PROXIES) == "198.51.100.1"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right() -> None:
    """Trusted hops (over several header lines too) are skipped until the first other one."""
    lines = ["192.0.2.9, 198.51.100.1", "10.1.1.1", "10.2.2.2"]
    assert forwarded_client("10.0.0.5", lines, PROXIES) == "198.51.100.1"


def test_every_hop_trusted_gives_the_leftmost() -> None:
    """A client inside the proxies' own network is the leftmost address."""
    assert forwarded_client("10.0.0.5", ["10.9.9.9, 10.1.1.1"], PROXIES) == "10.9.9.9"


def test_no_header_from_a_trusted_proxy_is_the_proxy() -> None:
    """A trusted peer that forwards nothing (a health check, a scraper) is itself."""
    assert forwarded_client("10.0.0.5", [], PROXIES) == "10.0.0.5"


def test_garbage_ends_the_walk_at_the_last_address_believed() -> None:
    """An entry that is not an address stops the walk; nothing unparsed becomes the key."""
    assert forwarded_client("10.0.0.5", ["unknown, 10.1.1.1"], PROXIES) == "10.1.1.1"
    assert forwarded_client("10.0.0.5", ["not-an-ip"], PROXIES) == "10.0.0.5"


def test_ports_brackets_and_ipv6_are_normalised() -> None:
    """Entries with a port, bracketed IPv6 and IPv4-mapped peers are read as addresses."""
    assert forwarded_client("10.0.0.5", ["198.51.100.1:5123"], PROXIES) == "198.51.100.1"
    assert forwarded_client("fd00::1", ["[2001:DB8::1]:443"], PROXIES) == "2001:db8::1"
    assert forwarded_client("::ffff:10.0.0.5", ["198.51.100.1"], PROXIES) == "198.51.100.1"


def test_unix_socket_and_missing_peers() -> None:
    """A peer that is not an IP address, or none, is returned as it is ("unknown" for none)."""
    assert forwarded_client("", ["198.51.100.1"], PROXIES) == ""
    assert forwarded_client(None, ["198.51.100.1"], PROXIES) == "unknown"


def test_trusted_proxies_setting_is_validated() -> None:
    """The setting takes networks and single addresses; a typo is a ConfigError naming it."""
    settings = load_settings(None, http={"trusted_proxies": ["10.0.0.0/8", "192.0.2.1"]})
    assert [str(n) for n in settings.http.trusted_proxies] == ["10.0.0.0/8", "192.0.2.1/32"]
    with pytest.raises(ConfigError, match="trusted_proxies"):
        load_settings(None, http={"trusted_proxies": ["10.0.0.1/8"]})
    with pytest.raises(ConfigError, match="trusted_proxies"):
        load_settings(None, http={"trusted_proxies": ["proxy.local"]})
