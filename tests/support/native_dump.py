"""Parse named streams of raw lines and write every result as JSON lines.

The native-parser test runs this file as a script in a child process whose
``PYTHONPATH`` starts with a mypyc build, and calls :func:`dump_streams` in its
own process (interpreted parsers); the two outputs must be byte-identical.
Input: a JSON object ``{stream name: [line, ...]}`` with each raw line decoded
as Latin-1 (lossless for any bytes). Output: one JSON line per input line
(events, ignored category, error), then the parser's statistics per stream.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import orjson

from models.events import Origin
from parsers.api import LogParser

YEAR = 2026


def dump_streams(streams: dict[str, list[bytes]]) -> bytes:
    out = bytearray()
    for name, lines in streams.items():
        parser = LogParser(year=YEAR)
        for number, raw in enumerate(lines, 1):
            result = parser.feed(raw, Origin(name, number))
            out += orjson.dumps({"e": result.events, "i": result.ignored, "x": result.error})
            out += b"\n"
        out += orjson.dumps({"stream": name, "stats": asdict(parser.stats)}) + b"\n"
    return bytes(out)


def encode_streams(streams: dict[str, list[bytes]]) -> bytes:
    return orjson.dumps(
        {name: [raw.decode("latin-1") for raw in lines] for name, lines in streams.items()}
    )


def decode_streams(data: bytes) -> dict[str, list[bytes]]:
    loaded = orjson.loads(data)
    return {name: [text.encode("latin-1") for text in lines] for name, lines in loaded.items()}


def main(argv: list[str]) -> int:
    from mailwarden.native import parsers_in_use

    in_use = parsers_in_use()
    if not in_use.compiled:
        print(f"expected compiled parsers, got {in_use.describe()}", file=sys.stderr)
        return 2
    source, target = Path(argv[1]), Path(argv[2])
    target.write_bytes(dump_streams(decode_streams(source.read_bytes())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
