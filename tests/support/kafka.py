"""Pytest fixtures for the real Kafka broker.

One broker per test session, on free loopback ports and a fresh data
directory, started from the Maven jars by `streams.broker.KafkaBroker` and
stopped at the end. Missing Java or Maven fails the tests that need the
broker (CI installs both): a skipped integration suite would look green.
"""

from __future__ import annotations

import string
import uuid
from collections.abc import Iterator

import pytest

from mailwarden.config import KafkaSettings, Topics
from streams.broker import BrokerError, KafkaBroker
from streams.topics import ensure_topics

# Workers take their partition count from the config; tests use the same.
TEST_PARTITIONS = KafkaSettings().partitions
TOPIC_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "._-")


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    data_dir = tmp_path_factory.mktemp("kafka")
    try:
        broker = KafkaBroker.start(data_dir)
    except BrokerError as exc:
        pytest.fail(f"could not start the Kafka test broker: {exc}", pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: KafkaBroker) -> str:
    return kafka_broker.bootstrap


@pytest.fixture
async def unique_topics(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Topics:
    """The five mailwarden topics under names no other test uses, already created."""
    prefix = f"t{uuid.uuid4().hex[:10]}-{request.node.name[:40]}"
    # Parametrised test ids hold characters that Kafka topic names do not allow.
    prefix = "".join(c if c in TOPIC_NAME_CHARS else "_" for c in prefix)
    topics = Topics(
        events=f"{prefix}.mail.events",
        events_by_ip=f"{prefix}.mail.events.by-ip",
        alerts=f"{prefix}.mail.alerts",
        control=f"{prefix}.mail.control",
        deadletter=f"{prefix}.mail.deadletter",
    )
    await ensure_topics(kafka_bootstrap, topics, TEST_PARTITIONS)
    return topics
