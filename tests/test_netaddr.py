from __future__ import annotations

import ipaddress

import pytest

from gateway.errors import InvalidInput
from gateway.netaddr import ClientAddresses, mask_ip, parse_ip, parse_network, resolve_client_ip, unmapped

TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:1234:5678::1", "2001:db8:1234::/48"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),
        ("not-an-ip", None),
        (None, None),
    ],
)
def test_mask_ip(raw: str | None, masked: str | None) -> None:
    assert mask_ip(raw) == masked


def test_parse_network_normalises_and_refuses_garbage() -> None:
    assert str(parse_network("10.1.2.3/24")) == "10.1.2.0/24"
    assert str(parse_network("2001:db8::1")) == "2001:db8::1/128"
    with pytest.raises(InvalidInput):
        parse_network("10.0.0.0/33")


@pytest.mark.parametrize("parse", [parse_ip, parse_network], ids=["address", "network"])
@pytest.mark.parametrize("value", ["fe80::1%eth0", "fe80::1%1", "fe80::%25eth0/64"])
def test_a_scoped_address_is_refused(parse: object, value: str) -> None:
    """Red team 2026-11-25: it was written raw into URLs (gw_ip=fe80::1%eth0/128), an Akamai URL that never verified."""
    with pytest.raises(InvalidInput) as refused:
        parse(value)  # type: ignore[operator]
    assert str(refused.value) == f"a scoped address (with a %zone) is not a client address: {value!r}"


def test_forwarded_header_is_ignored_from_untrusted_peers() -> None:
    assert resolve_client_ip("198.51.100.1", "1.2.3.4", TRUSTED) == "198.51.100.1"


def test_forwarded_header_is_read_right_to_left_behind_trusted_proxies() -> None:
    # the client spoofed 6.6.6.6; the proxy chain appended the real address
    assert resolve_client_ip("10.0.0.5", "6.6.6.6, 203.0.113.9, 10.0.0.7", TRUSTED) == "203.0.113.9"
    assert resolve_client_ip("::1", "2001:db8::5", TRUSTED) == "2001:db8::5"
    assert resolve_client_ip("10.0.0.5", None, TRUSTED) == "10.0.0.5"


def test_an_ipv4_mapped_proxy_or_client_is_the_ipv4_it_is() -> None:
    """Red team round 10's note: a proxy listed as 10.0.0.5 whose connection arrives on a dual-stack socket
    (::ffff:10.0.0.5) was not trusted; a mapped hop in X-Forwarded-For ended the chain at the proxy, so every
    viewer behind it was the proxy's address (its network, its rate limits)."""
    assert resolve_client_ip("::ffff:10.0.0.5", "203.0.113.9", TRUSTED) == "203.0.113.9"
    assert resolve_client_ip("10.0.0.5", "6.6.6.6, ::ffff:203.0.113.9, ::ffff:10.0.0.7", TRUSTED) == "203.0.113.9"
    assert resolve_client_ip("::ffff:198.51.100.1", None, TRUSTED) == "198.51.100.1"
    assert resolve_client_ip("::ffff:198.51.100.1", "1.2.3.4", TRUSTED) == "198.51.100.1"  # not a proxy of ours
    addresses = ClientAddresses(tuple(TRUSTED))
    assert addresses.is_trusted("::ffff:10.0.0.5") and addresses.is_trusted("10.0.0.5")
    assert not addresses.is_trusted("::ffff:198.51.100.1")


@pytest.mark.parametrize(
    ("given", "bound"),
    [
        ("::ffff:1.2.3.4", "1.2.3.4"),
        ("::ffff:1.2.3.4/128", "1.2.3.4"),
        ("::ffff:1.2.3.0/120", "1.2.3.0/24"),
        ("1.2.3.4", "1.2.3.4"),
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:0:0/95", "::ffff:0:0/95"),  # wider than the mapped range: not one IPv4 network, kept
    ],
)
def test_an_ipv4_mapped_binding_is_the_ipv4_it_is(given: str, bound: str) -> None:
    """Red team round 5: a URL bound to ::ffff:1.2.3.4 was refused from that very client, seen as 1.2.3.4."""
    assert unmapped(given) == bound


def test_unmapped_refuses_what_is_no_address() -> None:
    with pytest.raises(InvalidInput):
        unmapped("1.2.3.4.5")
