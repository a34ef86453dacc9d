"""Readings the parsers remember give exactly what reading the text again gives.

- the counters of ``disconnect from`` lines (parsers/postfix.py,
  ``PostfixParser._session_counters``): most sessions end with one of a few texts;
- the envelope's fast path for a second seen before, with a new program tag
  (parsers/envelope.py, ``EnvelopeReader._tagged_at``).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from models.events import Origin
from parsers.api import LogParser
from parsers.correlation import HostState
from parsers.envelope import EnvelopeReader
from parsers.postfix import _COUNTERS_TEXT_LIMIT, PostfixParser, _counters, _ratio

ORIGIN = Origin("test.log", 1)

TOKEN = st.one_of(
    st.sampled_from(["ehlo=1", "auth=0/1", "auth=1", "auth=x/2", "quit=1", "commands=2/3"]),
    st.sampled_from(["auth=", "=1", "auth", "auth=1/", "rset=1=2", "auth=٣/٤", "auth=-1/2"]),
    st.text(alphabet=st.sampled_from(list("a=/1 \t")), max_size=8),
)
COUNTER_TEXTS = st.lists(TOKEN, max_size=8).map(lambda tokens: " " + " ".join(tokens))


@settings(max_examples=500)
@given(st.lists(COUNTER_TEXTS, min_size=1, max_size=6))
def test_remembered_counters_are_the_counters_of_the_text(texts: list[str]) -> None:
    parser = PostfixParser(HostState())
    for text in texts + texts:  # the second round comes from the cache
        counters, auth_ok, auth_total = parser._session_counters(text)
        assert counters == _counters(text)
        assert list(counters) == list(_counters(text))  # the order the event's extra keeps
        assert (auth_ok, auth_total) == _ratio(_counters(text).get("auth"))


def test_each_disconnect_gets_its_own_counters_dict() -> None:
    parser = PostfixParser(HostState())
    first, _, _ = parser._session_counters(" ehlo=1 auth=0/1 quit=1 commands=2/3")
    first["invalid_utf8"] = "changed by a caller"
    second, _, _ = parser._session_counters(" ehlo=1 auth=0/1 quit=1 commands=2/3")
    assert second == {"ehlo": "1", "auth": "0/1", "quit": "1", "commands": "2/3"}
    assert second is not first


def test_long_counter_texts_are_read_but_not_kept() -> None:
    parser = PostfixParser(HostState())
    text = " ehlo=1" + " x=1" * _COUNTERS_TEXT_LIMIT
    assert parser._session_counters(text)[0] == _counters(text)
    assert text not in parser._counters


def test_disconnect_events_of_equal_counters_do_not_share_extra() -> None:
    parser = LogParser(year=2026)
    line = "Nov 27 00:00:0{} mail postfix/smtpd[{}]: disconnect from x[192.0.2.{}] ehlo=1 quit=1"
    first = parser.feed(line.format(1, 10, 1), ORIGIN).events[0]
    second = parser.feed(line.format(2, 11, 2), ORIGIN).events[0]
    assert first.extra == second.extra == {"ehlo": "1", "quit": "1"}
    first.extra["invalid_utf8"] = True
    assert second.extra == {"ehlo": "1", "quit": "1"}


TAGS = st.one_of(
    st.sampled_from(
        [
            "mail postfix/smtpd[12]",
            "mail postfix/smtpd[13]",
            "mail dovecot",
            "imap-login",
            "mail imap(u)<1><s>",
            "mail postfix/smtpd[x]",
            "mail a b[1]",
            "",
            "mail",
        ]
    ),
    st.text(alphabet=st.sampled_from(list("ab []()<>:1 ")), max_size=12),
)


@settings(max_examples=500)
@given(st.lists(TAGS, min_size=1, max_size=6), st.sampled_from([": msg", ":", ": ", " msg"]))
def test_fast_path_reads_the_tag_as_a_fresh_reader_does(tags: list[str], end: str) -> None:
    warm = EnvelopeReader(year=2026)
    warm.read("Nov 27 00:00:01 mail postfix/qmgr[1]: warm", ORIGIN)  # the stamp is now cached
    for tag in tags:
        line = f"Nov 27 00:00:01 {tag}{end}"
        fresh = EnvelopeReader(year=2026)
        expected = _outcome(fresh, line)
        assert _outcome(warm, line) == expected
        assert _outcome(warm, line) == expected  # and again, from the tag cache


def _outcome(reader: EnvelopeReader, line: str) -> object:
    try:
        context = reader.read(line, ORIGIN)
    except ValueError as exc:
        return type(exc).__name__, str(exc)
    return (
        context.ts,
        context.epoch,
        context.host,
        context.program,
        context.pid,
        context.message,
    )
