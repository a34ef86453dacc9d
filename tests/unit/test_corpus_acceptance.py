"""Acceptance: our parsers against fail2ban's and CrowdSec's expectations and the lab labels.

The comparison is `mailwarden.corpus`, the code behind `mailwarden corpus-check`,
so this test and the command can never disagree; run the command to see every
disagreement with the line, what was expected and what we produced.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailwarden.corpus import (
    ACCEPTANCE_FAMILIES,
    ACCEPTANCE_RATIO,
    KNOWN_DISAGREEMENTS,
    CorpusReport,
    LabReport,
    check_corpus,
    check_lab,
    render_judgement,
    render_lab_judgement,
)

pytestmark = pytest.mark.corpus


@pytest.fixture(scope="module")
def report(corpus_dir: Path) -> CorpusReport:
    return check_corpus(corpus_dir)


@pytest.fixture(scope="module")
def lab(lab_dir: Path) -> LabReport:
    return check_lab(lab_dir)


@pytest.mark.parametrize("family", ACCEPTANCE_FAMILIES)
def test_family_agreement_with_fail2ban_and_crowdsec(report: CorpusReport, family: str) -> None:
    total = report.family_tally(family)
    assert total.judged > 0, f"no judged {family} lines: the corpus or its reading changed"
    open_lines = [
        render_judgement(j)
        for j in report.judgements
        if j.item.family == family and j.status == "open"
    ]
    assert total.agreement >= ACCEPTANCE_RATIO, (
        f"{family}: {total.agreed + total.known}/{total.judged} agree\n\n" + "\n\n".join(open_lines)
    )


def test_authentication_families_have_failures_to_find(report: CorpusReport) -> None:
    """Agreement must not come from judging nothing. (Postfix SASL lines are family "sasl";
    what stays "postfix" is rejects and connection abuse, with no auth failure expected.)"""
    for family in ("sasl", "dovecot", "pam"):
        assert report.family_tally(family).expected_failures > 0, family


def test_known_disagreements_still_hold(report: CorpusReport) -> None:
    """A reviewed entry that no longer disagrees (or no longer exists) must be removed."""
    by_key = {j.item.key: j for j in report.judgements}
    stale = []
    for key in KNOWN_DISAGREEMENTS:
        judgement = by_key.get(key)
        if judgement is None:
            stale.append(f"{key}: not in the corpus")
        elif judgement.status != "known":
            stale.append(f"{key}: status {judgement.status}\n{render_judgement(judgement)}")
    assert not stale, "\n".join(stale)


def test_no_event_blames_an_ip_from_outside_the_fixed_position(report: CorpusReport) -> None:
    """On every corpus line, targeted or not: client_ip is the expected client or null."""
    blamed = [
        render_judgement(j)
        for j in report.judgements
        if any(p.aspect == "client_ip" and "is not the client" in p.text for p in j.problems)
    ]
    assert not blamed, "\n\n".join(blamed)


def test_every_corpus_line_keeps_the_parse_result_contract(report: CorpusReport) -> None:
    """Every line, of every family: no exception, exactly one of events/ignored/error."""
    broken = [
        render_judgement(j)
        for j in report.judgements
        if any(p.aspect == "shape" for p in j.problems)
    ]
    assert not broken, "\n\n".join(broken)


def test_lab_labels_all_met(lab: LabReport) -> None:
    assert lab.judgements, "no lab lines read"
    assert not lab.failed, "\n\n".join(render_lab_judgement(j) for j in lab.failed)


def test_lab_attempts_counted_exactly_once(lab: LabReport) -> None:
    """Postfix, Dovecot's auth process and the login summary log one attempt up to 3 times."""
    assert any(a.expected > 0 for a in lab.attempts)
    wrong = [
        f"{a.scenario} {a.ip} {a.protocol}: {a.expected} attempt(s), counted {a.counted}"
        for a in lab.miscounted
    ]
    assert not wrong, "\n".join(wrong)
