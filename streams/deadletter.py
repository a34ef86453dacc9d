"""Dead letters: input that could not become an event, kept with the reason.

One JSON object per record on ``mail.deadletter``: ``line`` (the text, invalid
UTF-8 replaced), ``raw_b64`` (the exact bytes, only when they are not valid
UTF-8), ``reason``, ``origin`` (where it came from), ``received_at`` (wall
clock, ISO-8601 UTC) and ``length`` (bytes of the original). At most
:data:`MAX_KEPT_BYTES` of it is kept, with ``truncated`` set, so that one
record always fits the broker's size limit.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson

MAX_KEPT_BYTES = 64 * 1024


def deadletter_json(
    raw: bytes,
    reason: str,
    origin: dict[str, Any],
    *,
    received_epoch: float,
    length: int | None = None,
) -> bytes:
    """The dead-letter record for ``raw``; ``length`` when ``raw`` is already cut short."""
    kept = raw[:MAX_KEPT_BYTES]
    full_length = len(raw) if length is None else length
    doc: dict[str, Any] = {
        "type": "deadletter",
        "reason": reason,
        "line": kept.decode("utf-8", "replace"),
        "origin": origin,
        "received_at": datetime.fromtimestamp(received_epoch, tz=UTC).isoformat(
            timespec="milliseconds"
        ),
        "length": full_length,
    }
    if full_length > len(kept):
        doc["truncated"] = True
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        doc["raw_b64"] = base64.b64encode(kept).decode("ascii")
    return orjson.dumps(doc)
