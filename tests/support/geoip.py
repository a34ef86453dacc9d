"""A minimal MaxMind DB writer, so that tests build the tiny GeoIP databases they read.

The ``maxminddb`` package only reads. The format is documented
(https://maxmind.github.io/MaxMind-DB/): a binary search tree over the bits of
the address, 16 zero bytes, a data section of typed values, and a metadata
map after the marker ``\\xab\\xcd\\xefMaxMind.com``. This writer makes an
IPv6 tree with 24-bit records (IPv4 networks live under ``::/96``, where
readers look them up), stores each record once without pointers, and
supports the value types GeoIP records use: maps, arrays, strings, doubles,
unsigned integers and booleans. It is for tests: networks are inserted
broadest first and a more specific network overrides its part of a broader
one.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
RECORD_BITS = 24
BUILD_EPOCH = 1_795_000_000  # fixed, so that the same input gives the same bytes


def city_record(
    country: str, latitude: float, longitude: float, accuracy_km: int = 20
) -> dict[str, Any]:
    """A GeoIP2 City record with the fields mailwarden reads."""
    return {
        "country": {"iso_code": country, "names": {"en": country}},
        "location": {
            "latitude": latitude,
            "longitude": longitude,
            "accuracy_radius": accuracy_km,
        },
    }


def asn_record(number: int, organization: str) -> dict[str, Any]:
    """A GeoLite2 ASN record."""
    return {"autonomous_system_number": number, "autonomous_system_organization": organization}


def write_mmdb(
    path: Path, networks: Mapping[str, Mapping[str, Any]], database_type: str = "GeoIP2-City"
) -> Path:
    """Write a database mapping each network (CIDR) to its record; return ``path``."""
    data = bytearray()
    root = _Node()
    parsed = [(ipaddress.ip_network(text), record) for text, record in networks.items()]
    for network, record in sorted(parsed, key=lambda item: item[0].prefixlen):
        offset = len(data)
        data += encode(record)
        bits, length = _tree_bits(network)
        root.insert(bits, length, _Leaf(offset))
    nodes = root.numbered()
    tree = bytearray()
    for node in nodes:
        for child in node.children:
            tree += _record(child, len(nodes)).to_bytes(RECORD_BITS // 8, "big")
    # libmaxminddb (the C reader) insists on these exact integer types.
    metadata = {
        "binary_format_major_version": UInt(2, 16),
        "binary_format_minor_version": UInt(0, 16),
        "build_epoch": UInt(BUILD_EPOCH, 64),
        "database_type": database_type,
        "description": {"en": "mailwarden test database"},
        "ip_version": UInt(6, 16),
        "languages": ["en"],
        "node_count": UInt(len(nodes), 32),
        "record_size": UInt(RECORD_BITS, 16),
    }
    path.write_bytes(bytes(tree) + bytes(16) + bytes(data) + METADATA_MARKER + encode(metadata))
    return path


class UInt:
    """An unsigned integer of a given width (plain ints get the smallest type that fits)."""

    __slots__ = ("bits", "value")

    def __init__(self, value: int, bits: int) -> None:
        if bits not in _UINT_TYPES or not 0 <= value < 1 << bits:
            raise ValueError(f"{value} is not a uint{bits}")
        self.value = value
        self.bits = bits


_UINT_TYPES = {16: 5, 32: 6, 64: 9}


class _Leaf:
    __slots__ = ("offset",)

    def __init__(self, offset: int) -> None:
        self.offset = offset


class _Node:
    __slots__ = ("children", "number")

    def __init__(self) -> None:
        self.children: list[_Node | _Leaf | None] = [None, None]
        self.number = -1

    def insert(self, bits: int, length: int, leaf: _Leaf) -> None:
        node = self
        for depth in range(length):
            bit = (bits >> (127 - depth)) & 1
            if depth == length - 1:
                node.children[bit] = leaf
                return
            child = node.children[bit]
            if not isinstance(child, _Node):
                # Empty, or a broader network: split it, both halves keeping its record.
                split = _Node()
                split.children = [child, child]
                node.children[bit] = split
                child = split
            node = child

    def numbered(self) -> list[_Node]:
        """Every node, breadth first (the root is node 0), each told its number."""
        order: list[_Node] = [self]
        for node in order:  # grows while it is walked: a breadth-first queue
            order.extend(child for child in node.children if isinstance(child, _Node))
        for number, node in enumerate(order):
            node.number = number
        return order


def _record(child: _Node | _Leaf | None, node_count: int) -> int:
    if child is None:
        return node_count
    if isinstance(child, _Leaf):
        return node_count + 16 + child.offset
    return child.number


def _tree_bits(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, int]:
    """The network's address as 128 bits and its prefix length in the IPv6 tree."""
    if network.version == 4:
        return int(network.network_address), 96 + network.prefixlen
    return int(network.network_address), network.prefixlen


# -- the data section's encoding ------------------------------------------------------


def encode(value: Any) -> bytes:
    if isinstance(value, UInt):
        payload = value.value.to_bytes((value.value.bit_length() + 7) // 8, "big")
        return _control(_UINT_TYPES[value.bits], len(payload)) + payload
    if isinstance(value, bool):
        return _control(14, int(value))
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _control(2, len(raw)) + raw
    if isinstance(value, float):
        return _control(3, 8) + struct.pack(">d", value)
    if isinstance(value, int):
        return _encode_uint(value)
    if isinstance(value, Mapping):
        body = b"".join(encode(str(key)) + encode(item) for key, item in value.items())
        return _control(7, len(value)) + body
    if isinstance(value, list | tuple):
        return _control(11, len(value)) + b"".join(encode(item) for item in value)
    raise TypeError(f"cannot encode {type(value).__name__} in a MaxMind DB")


def _encode_uint(value: int) -> bytes:
    if value < 0:
        raise ValueError("only unsigned integers are supported")
    for bits in sorted(_UINT_TYPES):
        if value < 1 << bits:
            return encode(UInt(value, bits))
    raise ValueError("integer too large")


def _control(type_number: int, size: int) -> bytes:
    if size < 29:
        code, extra = size, b""
    elif size < 285:
        code, extra = 29, bytes([size - 29])
    elif size < 65_821:
        code, extra = 30, (size - 285).to_bytes(2, "big")
    else:
        code, extra = 31, (size - 65_821).to_bytes(3, "big")
    if type_number <= 7:
        return bytes([type_number << 5 | code]) + extra
    return bytes([code, type_number - 7]) + extra
