"""Shared test fixtures.

The corpus in ../shared is read where it is (its licences differ from ours);
tests that need it skip with a clear message when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.support.kafka", "tests.support.mail_lab"]

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"
LAB = CORPUS / "lab"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}: clone ../shared beside the repo")
    return CORPUS


@pytest.fixture(scope="session")
def lab_dir(corpus_dir: Path) -> Path:
    if not LAB.is_dir():
        pytest.skip(f"lab corpus not found at {LAB}")
    return LAB
