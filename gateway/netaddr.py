"""Client addresses: parsing, masking for storage, and resolution behind trusted proxies.

Resolution and masking are pure and asked for on every request with the same
few inputs (a player's address, the proxy's): they are memoised, bounded.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

from gateway.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# ahoy / Google Analytics masking: IPv4 keeps 24 bits, IPv6 keeps 48.
_MASK_V4 = 24
_MASK_V6 = 48


def parse_ip(value: str) -> IPAddress:
    _no_zone(value)
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise InvalidInput(f"not an IP address: {value!r}") from None


def parse_network(value: str) -> IPNetwork:
    """A single address or a CIDR; host bits are cleared (``10.1.2.3/24`` -> ``10.1.2.0/24``)."""
    _no_zone(value)
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise InvalidInput(f"not an IP address or CIDR: {value!r}") from None


def unmapped(value: str) -> str:
    """``value`` (an address or CIDR) with an IPv4-mapped IPv6 form (``::ffff:1.2.3.4``, what a dual-stack socket
    reports for an IPv4 peer) written as the IPv4 it is; anything else as given. InvalidInput if it is neither.

    Client addresses are resolved to IPv4 the same way, so a binding kept in the mapped form never matched.
    """
    network = parse_network(value)
    if not isinstance(network, ipaddress.IPv6Network) or network.prefixlen < 96:
        return value
    mapped = network.network_address.ipv4_mapped
    if mapped is None:
        return value
    ipv4 = ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return str(ipv4.network_address) if ipv4.prefixlen == 32 else str(ipv4)


def _no_zone(value: str) -> None:
    """``fe80::1%eth0`` names an interface of the machine that wrote it, not a client: and its raw ``%``
    would be written into signed URLs, where formats read it as a percent-escape."""
    if "%" in value:
        raise InvalidInput(f"a scoped address (with a %zone) is not a client address: {value!r}")


@functools.lru_cache(maxsize=65536)
def mask_ip(value: str | None) -> str | None:
    """The address with its host part zeroed, as a CIDR string; None stays None."""
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    address = plain_ip(address)
    prefix = _MASK_V4 if address.version == 4 else _MASK_V6
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def mask_network(value: str | None) -> str | None:
    """A CIDR no narrower than the masks ``mask_ip`` keeps (``203.0.113.7/32`` -> ``203.0.113.0/24``; a
    broader one as it is); None for None or for what is not a network."""
    if not value:
        return None
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None
    keep = _MASK_V4 if network.version == 4 else _MASK_V6
    return str(network.supernet(new_prefix=keep) if network.prefixlen > keep else network)


class ClientAddresses:
    """Client-address resolution behind one deployment's trusted proxies, memoised (bounded).

    The same few (peer, X-Forwarded-For) pairs arrive on every request of a
    session: parsing them once keeps ``ipaddress`` off the hot path.
    """

    def __init__(self, trusted: tuple[IPNetwork, ...]) -> None:
        self._trusted = trusted
        self.resolve = functools.lru_cache(maxsize=65536)(self._resolve)
        self.is_trusted = functools.lru_cache(maxsize=4096)(self._is_trusted)

    def _resolve(self, peer: str | None, forwarded_for: str | None) -> str | None:
        return resolve_client_ip(peer, forwarded_for, self._trusted)

    def _is_trusted(self, peer: str | None) -> bool:
        """Whether the TCP peer is one of the proxies whose headers are believed."""
        try:
            return in_networks(plain_ip(ipaddress.ip_address(peer or "")), self._trusted)
        except ValueError:
            return False


def in_networks(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def resolve_client_ip(peer: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]) -> str | None:
    """The client's address: the peer, unless the peer is a trusted proxy.

    Behind trusted proxies, ``X-Forwarded-For`` is read from the right and the
    first hop that is not itself a trusted proxy is the client; anything to its
    left was supplied by the client and is ignored. IPv4-mapped addresses count, and are given, as IPv4.
    """
    if peer is None:
        return None
    try:
        peer_ip = plain_ip(ipaddress.ip_address(peer))
    except ValueError:
        return None
    if not forwarded_for or not in_networks(peer_ip, trusted):
        return str(peer_ip)
    candidate = peer_ip
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        try:
            candidate = plain_ip(ipaddress.ip_address(hop))
        except ValueError:
            break
        if not in_networks(candidate, trusted):
            break
    return str(candidate)


def plain_ip(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (``::ffff:10.0.0.5``, what a dual-stack socket or proxy reports for an IPv4
    peer) as the IPv4 it is: a proxy listed as ``10.0.0.5`` is that proxy in either spelling, and a client is
    recorded, masked and bound in one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
