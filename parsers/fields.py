"""Small field readers shared by the log families: client addresses, ``host[ip]``, counts.

An address is accepted only where the log format puts one, and only when
``ipaddress`` says it is one; IPv4-mapped IPv6 (``::ffff:1.2.3.4``) becomes the
IPv4 address. Nothing here searches a line for "something that looks like an IP".
Addresses already written the way ``ipaddress`` writes them are recognised
without building its objects (most addresses are, and that is ten times cheaper).
"""

from __future__ import annotations

import ipaddress
from typing import Final

_CACHE_LIMIT: Final = 65536
_valid: Final[dict[str, str | None]] = {}
_IPV6_CHARACTERS: Final = frozenset("0123456789abcdef:")
# "0" to "255": the octets ipaddress accepts (ASCII digits, no leading zero) and prints as is
_CANONICAL_OCTETS: Final = frozenset(str(number) for number in range(256))
# the largest integer an event may carry: JSON readers (orjson among them) stop at 64 bits
INT64_MAX: Final = 2**63 - 1


def count_or_none(value: int) -> int | None:
    """``value`` when it fits in a signed 64-bit integer, else None.

    Only a crafted line holds a larger count; the event keeps its other fields.
    """
    return value if -INT64_MAX - 1 <= value <= INT64_MAX else None


def normalize_ip(text: str) -> str | None:
    """The canonical form of the address ``text``, or None when it is not an address."""
    cached = _valid.get(text, _valid)
    if cached is not _valid:
        return cached  # type: ignore[return-value]
    result = _parse_ip(text)
    if len(_valid) >= _CACHE_LIMIT:
        _valid.clear()
    _valid[text] = result
    return result


def _parse_ip(text: str) -> str | None:
    candidate = text
    if candidate[:5].lower() == "ipv6:":
        candidate = candidate[5:]
    if not candidate or len(candidate) > 45:
        return None
    if _is_canonical_ipv4(candidate) or _is_canonical_ipv6(candidate):
        return candidate  # what str(ip_address(candidate)) gives, without building it
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _is_canonical_ipv4(text: str) -> bool:
    """Whether ``text`` is a dotted quad that ``ipaddress`` accepts and prints unchanged.

    Four ASCII decimal octets up to 255 without leading zeros: exactly the
    rules of ``ipaddress.IPv4Address``, whose text form is then ``text``.
    Anything else (IPv6, odd forms, garbage) is left to ``ipaddress``.
    """
    octets = text.split(".")
    return len(octets) == 4 and all(octet in _CANONICAL_OCTETS for octet in octets)


def _is_canonical_ipv6(text: str) -> bool:
    """Whether ``text`` is an IPv6 address written as ``ipaddress`` writes it (RFC 5952).

    Lower-case groups of hex digits without leading zeros, the longest run of
    two or more zero groups (the first of equal runs) written as ``::``.
    IPv4-mapped addresses (``::ffff:a:b``), which become IPv4, and every other
    form (upper case, dotted tails, zones) are left to ``ipaddress``.
    """
    if text.startswith("::ffff:") or not _IPV6_CHARACTERS.issuperset(text):
        return False
    before_text, compressed, after_text = text.partition("::")
    if not compressed:
        groups = text.split(":")
        return len(groups) == 8 and _plain_groups(groups, 1)
    before = before_text.split(":") if before_text else []
    after = after_text.split(":") if after_text else []
    skipped = 8 - len(before) - len(after)
    # the zero groups next to "::" would belong to its run
    return (
        skipped >= 2
        and (not before or before[-1] != "0")
        and (not after or after[0] != "0")
        and _plain_groups(before, skipped - 1)
        and _plain_groups(after, skipped)
    )


def _plain_groups(groups: list[str], longest_zero_run: int) -> bool:
    """Whether the groups are 1-4 digits without leading zeros, no run of "0" too long."""
    run = 0
    for group in groups:
        if not 0 < len(group) <= 4 or (len(group) > 1 and group[0] == "0"):
            return False
        run = run + 1 if group == "0" else 0
        if run > longest_zero_run:
            return False
    return True


def host_and_ip(text: str, start: int = 0) -> tuple[str, str | None, int]:
    """Read ``host[ip]`` (optionally ``:port``) at ``start``.

    Returns the host name, the address (None if the brackets hold no valid
    address) and the index just past what was read. Raises ValueError when
    there is no ``host[...]`` at ``start``. The token ends at the first space;
    the address is in its last brackets, so a reverse name that holds
    brackets (Postfix refuses those, but the PTR record is the client's)
    cannot supply it.
    """
    space = text.find(" ", start)
    end_of_token = len(text) if space < 0 else space
    close = text.rfind("]", start, end_of_token)
    if close < 0:
        raise ValueError("no host[address]")
    open_bracket = text.rfind("[", start, close)
    if open_bracket < 0:
        raise ValueError("no host[address]")
    host = text[start:open_bracket]
    address = text[open_bracket + 1 : close]
    ip = _valid.get(address)  # normalize_ip's cache, read here to save a call
    if ip is None and address not in _valid:
        ip = normalize_ip(address)
    end = close + 1
    if text[end : end + 1] == ":" and text[end + 1 : end + 2].isdigit():
        end += 1
        while end < len(text) and text[end].isdigit():
            end += 1
    return host, ip, end
