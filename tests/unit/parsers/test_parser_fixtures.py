"""Our own fixtures, CrowdSec style: ``tests/fixtures/parsers/<family>/<name>.log``
holds realistic lines (written for mailwarden, modelled on real output) and
``<name>.jsonl`` what each line must give, in order, through one parser:
``{"line": n, "events": [{field: value, ...}]}``, ``{"ignored": category}`` or
``{"error": reason}``. Only the fields listed are compared, and listing a field
as null asserts it is null (an address or account that must NOT be read).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.events import Origin
from parsers.api import LogParser

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "parsers"
LOGS = sorted(FIXTURES.glob("*/*.log"))


def test_fixtures_exist() -> None:
    assert {path.parent.name for path in LOGS} == {"postfix", "dovecot", "auth"}


@pytest.mark.parametrize("log", LOGS, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_fixture(log: Path) -> None:
    expected = [json.loads(line) for line in log.with_suffix(".jsonl").read_text().splitlines()]
    lines = log.read_text(encoding="utf-8").splitlines()
    assert [item["line"] for item in expected] == list(range(1, len(lines) + 1))
    parser = LogParser(year=2026)
    for number, (line, want) in enumerate(zip(lines, expected, strict=True), start=1):
        result = parser.feed(line, Origin(str(log), number))
        where = f"{log.name}:{number}: {line}"
        if "events" in want:
            got = [
                {name: getattr(event, name) for name in fields}
                for event, fields in zip(result.events, want["events"], strict=False)
            ]
            assert len(result.events) == len(want["events"]), where
            assert got == want["events"], where
            assert all(event.origin == Origin(str(log), number) for event in result.events)
        else:
            assert result.events == [], where
            assert result.ignored == want.get("ignored"), where
            assert result.error == want.get("error"), where
