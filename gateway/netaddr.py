"""Client addresses: parsing, masking for storage, and resolution behind trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from gateway.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# ahoy / Google Analytics masking: IPv4 keeps 24 bits, IPv6 keeps 48.
_MASK_V4 = 24
_MASK_V6 = 48


def parse_ip(value: str) -> IPAddress:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise InvalidInput(f"not an IP address: {value!r}") from None


def parse_network(value: str) -> IPNetwork:
    """A single address or a CIDR; host bits are cleared (``10.1.2.3/24`` -> ``10.1.2.0/24``)."""
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise InvalidInput(f"not an IP address or CIDR: {value!r}") from None


def mask_ip(value: str | None) -> str | None:
    """The address with its host part zeroed, as a CIDR string; None stays None."""
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = _MASK_V4 if address.version == 4 else _MASK_V6
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def in_networks(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def resolve_client_ip(peer: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]) -> str | None:
    """The client's address: the peer, unless the peer is a trusted proxy.

    Behind trusted proxies, ``X-Forwarded-For`` is read from the right and the
    first hop that is not itself a trusted proxy is the client; anything to its
    left was supplied by the client and is ignored.
    """
    if peer is None:
        return None
    try:
        peer_ip = ipaddress.ip_address(peer)
    except ValueError:
        return None
    if not forwarded_for or not in_networks(peer_ip, trusted):
        return str(peer_ip)
    candidate = peer_ip
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        try:
            candidate = ipaddress.ip_address(hop)
        except ValueError:
            break
        if not in_networks(candidate, trusted):
            break
    return str(candidate)
