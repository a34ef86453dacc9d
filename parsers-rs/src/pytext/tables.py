"""Write tables.rs: the Unicode tables of the Python that runs this script.

``pytext`` gives Python's ``str`` behaviour in Rust; Rust's own Unicode data is a
newer version than Python 3.11's (Unicode 14.0), so wherever the parsers' results
depend on a character's class, ``pytext`` reads these tables instead. Run with the
interpreter the parsers are held to:

    .venv/bin/python parsers-rs/src/pytext/tables.py > parsers-rs/src/pytext/tables.rs

``cargo test`` (pytext's tests, linked to that interpreter) compares every code
point with Python, so a table that is out of date fails there.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Callable, Iterator

FIRST_NON_ASCII = 0x80
LAST_CODE_POINT = 0x10FFFF


def ranges(test: Callable[[str], bool], first: int = FIRST_NON_ASCII) -> list[tuple[int, int]]:
    """The runs of code points from ``first`` on for which ``test`` holds."""
    found: list[tuple[int, int]] = []
    start: int | None = None
    for code in range(first, LAST_CODE_POINT + 2):
        inside = code <= LAST_CODE_POINT and test(chr(code))
        if inside and start is None:
            start = code
        elif not inside and start is not None:
            found.append((start, code - 1))
            start = None
    return found


def is_cased(c: str) -> bool:
    """Unicode's Cased: lowercase, uppercase or titlecase (one code point's istitle())."""
    return c.islower() or c.istitle()


def has_case(c: str) -> bool:
    """Cased, or changed by lower(), upper() or casefold()."""
    return is_cased(c) or c.lower() != c or c.upper() != c or c.casefold() != c


def is_case_ignorable(c: str) -> bool:
    """Case_Ignorable (which unicodedata does not give), read off lower()'s final sigma.

    ``Σ`` lowers to final ``ς`` after a cased letter and any case-ignorable ones:
    an uncased ``c`` is case-ignorable when ``AcΣ`` ends in ``ς``, a cased one when
    ``1cΣ`` (nothing cased before ``c``) does not.
    """
    if is_cased(c):
        return ("1" + c + "Σ").lower()[-1] == "σ"
    return ("A" + c + "Σ").lower()[-1] == "ς"


def rust_char(code: int) -> str:
    return f"'\\u{{{code:x}}}'"


def rust_str(text: str) -> str:
    plain = (c if c.isascii() and c.isalnum() else f"\\u{{{ord(c):x}}}" for c in text)
    return '"' + "".join(plain) + '"'


def table(name: str, kind: str, doc: str, items: list[str], per_line: int) -> Iterator[str]:
    yield f"/// {doc}"
    yield "#[rustfmt::skip]"
    yield f"pub const {name}: &[{kind}] = &["
    for at in range(0, len(items), per_line):
        yield "    " + ", ".join(items[at : at + per_line]) + ","
    yield "];"
    yield ""


def range_table(name: str, doc: str, found: list[tuple[int, int]]) -> Iterator[str]:
    items = [f"({low:#x}, {high:#x})" for low, high in found]
    return table(name, "(u32, u32)", doc, items, 6)


def main() -> int:
    version = sys.version_info
    out = [
        f"//! Unicode {unicodedata.unidata_version} as Python {version.major}.{version.minor} "
        "has it: written by tables.py, do not edit.",
        "//!",
        "//! Ranges are sorted, inclusive and (except `CASE_IGNORABLE`) non-ASCII only.",
        "",
    ]
    zeros = [
        f"{code:#x}"
        for code in range(FIRST_NON_ASCII, LAST_CODE_POINT + 1)
        if unicodedata.decimal(chr(code), -1) == 0
    ]
    out += table(
        "DECIMAL_ZEROS",
        "u32",
        "The zeros of the decimal digits (`str.isdecimal()`): `zero + n` has the value `n`.",
        zeros,
        10,
    )
    out += range_table(
        "DIGIT_ONLY",
        "`str.isdigit()` but not `isdecimal()`, as superscripts: `int()` refuses them.",
        ranges(lambda c: c.isdigit() and not c.isdecimal()),
    )
    out += range_table("ALNUM", "`str.isalnum()`.", ranges(str.isalnum))
    out += range_table(
        "UNPRINTABLE",
        "Not `str.isprintable()`: `repr()` escapes them.",
        ranges(lambda c: not c.isprintable()),
    )
    out += range_table("LOWERCASE", "Lowercase (`c.islower()`).", ranges(str.islower))
    out += range_table("UPPERCASE", "Uppercase (`c.isupper()`).", ranges(str.isupper))
    out += range_table(
        "TITLECASE",
        "Titlecase (`c.istitle()`, not uppercase).",
        ranges(lambda c: c.istitle() and not c.isupper()),
    )
    out += range_table(
        "HAS_CASE",
        "Cased, or changed by `lower()`, `upper()` or `casefold()`: nothing else has a case.",
        ranges(has_case),
    )
    out += range_table(
        "CASE_IGNORABLE",
        "Case_Ignorable, for `lower()`'s final sigma (ASCII included).",
        ranges(is_case_ignorable, first=0),
    )
    folds = [
        f"({rust_char(code)}, {rust_str(chr(code).casefold())})"
        for code in range(LAST_CODE_POINT + 1)
        if chr(code).casefold() != chr(code).lower()
    ]
    out += table(
        "CASEFOLD",
        "(char, &str)",
        "`c.casefold()` where it is not `c.lower()`.",
        folds,
        4,
    )
    sys.stdout.write("\n".join(out).rstrip("\n") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
