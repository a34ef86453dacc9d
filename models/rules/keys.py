"""The keys state is kept under: normalized account names, client IPs and their prefixes.

An account is logged as the client typed it ("Alice@Example.org ", "alice@example.org"),
and every spelling is the same mailbox to the servers, so state is keyed by the
name stripped and case-folded, as the enforcement adapters compare it. The
spelling that was logged stays in the alert's evidence.

A prefix is the network around a client IP (/24 for IPv4, /64 for IPv6 by
default: what one customer or one hosting tenant usually holds), written as a
canonical CIDR string; an IPv4-mapped IPv6 address counts as its IPv4 address.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from dataclasses import dataclass

from models.events import normalize_account


def account_key(user: str) -> str | None:
    """The normalized account name, or None when nothing is left of it.

    Interned, so that the many stores holding one account share one string.
    """
    key = normalize_account(user)
    return sys.intern(key) if key else None


class Networks:
    """Maps client IPs to their prefixes, with a bounded cache (one parse per address)."""

    __slots__ = ("_cache", "_cache_size", "ipv4_prefix", "ipv6_prefix")

    def __init__(self, ipv4_prefix: int = 24, ipv6_prefix: int = 64, cache_size: int = 65_536):
        self.ipv4_prefix = ipv4_prefix
        self.ipv6_prefix = ipv6_prefix
        self._cache: dict[str, str | None] = {}
        self._cache_size = cache_size

    def prefix_of(self, ip: str) -> str | None:
        """The CIDR string of the prefix holding ``ip``; None when ``ip`` is not an address."""
        cache = self._cache
        found = cache.get(ip, _MISSING)
        if found is not _MISSING:
            return found
        prefix = self._compute(ip)
        if len(cache) >= self._cache_size:
            cache.clear()
        cache[ip] = prefix
        return prefix

    def _compute(self, ip: str) -> str | None:
        if _DOTTED_QUAD.fullmatch(ip):
            length = self.ipv4_prefix
            if length % 8 == 0:
                kept = ip.split(".")[: length // 8]
                network = ".".join(kept + ["0"] * (4 - len(kept)))
            else:
                value = int(ipaddress.IPv4Address(ip)) & (0xFFFFFFFF << (32 - length))
                network = str(ipaddress.IPv4Address(value))
            return sys.intern(f"{network}/{length}")
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        length = self.ipv4_prefix if address.version == 4 else self.ipv6_prefix
        return sys.intern(str(ipaddress.ip_network((address, length), strict=False)))


_MISSING: str = "\x00missing"


# A canonical dotted-quad IPv4 address, as parsers emit it (no leading zeros);
# anything else is left to :mod:`ipaddress`, which is exact but slower.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}", re.ASCII)


@dataclass(slots=True)
class EventKeys:
    """The keys of one event, worked out once for every store and rule that needs them."""

    account: str | None
    ip: str | None
    networks: Networks

    @property
    def prefix(self) -> str | None:
        return self.networks.prefix_of(self.ip) if self.ip is not None else None
