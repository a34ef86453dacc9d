"""A Faust schema for raw bytes, without a codec lookup per message.

:class:`BytesSchema` hands the record's key and value bytes to the stream as
they are; Faust's own schema looks up a codec for each of them per message,
to the same effect for the ``raw`` serializer. The worker decodes JSON itself.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import AppT, EventT, Message


class BytesSchema(faust.Schema[bytes, bytes]):
    """Key and value exactly as Kafka delivered them (the ``raw`` codec, without lookups)."""

    def __init__(self) -> None:
        super().__init__(
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    def compile(self, app: AppT, **_: Any) -> Any:
        create_event = app.create_event

        async def decode(message: Message, *, propagate: bool = False) -> EventT[bytes]:
            return create_event(message.key, message.value, message.headers, message)

        return decode
