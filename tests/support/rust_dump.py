"""Parse the reference streams with the Rust parsers and write every result as JSON lines.

For the full differential check outside pytest (tests/unit/test_rust_parsers.py
is the one that runs in `make test`): ``/tmp/parse_dump.py`` writes what the
Python parsers give for the same streams, one line per input line
(``{"e": events, "err": error, "ign": ignored}``); this script writes what the
Rust module ``mailwarden_parsers_rs`` gives, each event embedded as the JSON
bytes it returns (``orjson.Fragment``), so the two files compare with ``cmp``.

The module comes from ``parsers-rs/build.sh OUTDIR``:
``python tests/support/rust_dump.py OUT.jsonl [OUTDIR]``.
"""

from __future__ import annotations

import importlib
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

YEAR = 2026
MODULE = "mailwarden_parsers_rs"


def rust_parsers(build: Path | str | None = None) -> ModuleType:
    """The Rust parsers module, imported from ``build`` when given."""
    if build is not None and str(build) not in sys.path:
        sys.path.insert(0, str(build))
    return importlib.import_module(MODULE)


Result = tuple[list[orjson.Fragment], str | None, str | None]


def _results(parser: Any, name: str, lines: list[bytes]) -> list[Result]:
    """(events, ignored, error) of each line, the events ready for orjson.dumps."""
    feed = parser.feed
    fragment = orjson.Fragment
    results = []
    for number, raw in enumerate(lines, 1):
        events, ignored, error = feed(raw, name, number)
        results.append(([fragment(event) for event in events], ignored, error))
    return results


def reference_streams(shared: Path = Path("/work/shared/corpus")) -> dict[str, list[bytes]]:
    """The streams of ``/tmp/parse_dump.py``, by origin path, in its order."""
    mix = Path("/tmp/mix.log").read_bytes().splitlines()
    streams = {"/tmp/mix.log": mix}
    for name in ("fail2ban.jsonl", "crowdsec.jsonl"):
        records = [orjson.loads(line) for line in (shared / name).open("rb")]
        streams[name] = [
            r["line"].encode("utf-8", "surrogateescape")
            for r in records
            if isinstance(r.get("line"), str)
        ]
    for name in ("postfix.log", "dovecot.log"):
        streams[name] = (shared / "lab" / name).read_bytes().splitlines()
    rng = random.Random(5)
    mutated = []
    for line in mix[:20000]:
        changed = bytearray(line)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(changed))
            changed[pos] = rng.choice(b"[]<>=:;, ()\x00\xff\xc3@.")
        mutated.append(bytes(changed))
    streams["mutated"] = mutated
    return streams


def dump_reference_format(
    streams: dict[str, list[bytes]], build: Path | str | None = None
) -> bytes:
    """``/tmp/parse_dump.py``'s lines (``{"e", "err", "ign"}``, no statistics)."""
    module = rust_parsers(build)
    out = bytearray()
    for name, lines in streams.items():
        parser = module.LogParser(year=YEAR)
        for events, ignored, error in _results(parser, name, lines):
            out += orjson.dumps({"e": events, "err": error, "ign": ignored})
            out += b"\n"
    return bytes(out)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(f"usage: {argv[0]} OUT.jsonl [BUILD_DIR]", file=sys.stderr)
        return 2
    build = argv[2] if len(argv) == 3 else None
    print("parsers from", rust_parsers(build).__file__, file=sys.stderr)
    Path(argv[1]).write_bytes(dump_reference_format(reference_streams(), build))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
