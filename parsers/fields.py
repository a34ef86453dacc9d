"""Small field readers shared by the log families: client addresses and ``host[ip]``.

An address is accepted only where the log format puts one, and only when
``ipaddress`` says it is one; IPv4-mapped IPv6 (``::ffff:1.2.3.4``) becomes the
IPv4 address. Nothing here searches a line for "something that looks like an IP".
"""

from __future__ import annotations

import ipaddress

_CACHE_LIMIT = 65536
_valid: dict[str, str | None] = {}


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
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


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
