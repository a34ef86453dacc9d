"""The broker harness and topic setup, checked against the real broker."""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import UnknownTopicOrPartitionError

import streams.broker as broker_module
from mailwarden.config import Topics
from streams.broker import SINGLE_NODE_SETTINGS, KafkaBroker
from streams.topics import TopicError, ensure_topics
from tests.support.kafka import TEST_PARTITIONS

REPO = Path(__file__).resolve().parents[2]


def _names(topics: Topics) -> list[str]:
    return [topics.events, topics.events_by_ip, topics.alerts, topics.control, topics.deadletter]


async def _admin(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    return admin


async def _cleanup_policies(bootstrap: str, names: list[str]) -> dict[str, str]:
    admin = await _admin(bootstrap)
    try:
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        responses = await admin.describe_configs(resources)
    finally:
        await admin.close()
    policies = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            entries = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
            policies[resource["resource_name"]] = entries["cleanup.policy"]
    return policies


@pytest.mark.kafka
async def test_idempotent_producer_round_trip_keeps_per_key_order(
    kafka_bootstrap: str, unique_topics: Topics
) -> None:
    sent = {
        f"user{k}@example.org".encode(): [f"{k}:{i}".encode() for i in range(10)] for k in range(3)
    }
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        for i in range(10):
            for key, values in sent.items():
                await producer.send_and_wait(unique_topics.events, values[i], key=key)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    received: dict[bytes, list[bytes]] = defaultdict(list)
    partitions_of: dict[bytes, set[int]] = defaultdict(set)
    offsets: dict[int, list[int]] = defaultdict(list)
    try:
        consumer.assign([TopicPartition(unique_topics.events, p) for p in range(TEST_PARTITIONS)])
        for _ in range(60):
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    assert record.key is not None and record.value is not None
                    received[record.key].append(record.value)
                    partitions_of[record.key].add(tp.partition)
                    offsets[tp.partition].append(record.offset)
            if sum(len(v) for v in received.values()) >= 30:
                break
    finally:
        await consumer.stop()

    assert dict(received) == sent
    assert all(len(parts) == 1 for parts in partitions_of.values())
    # Exactly once per record: each partition holds offsets 0..n-1, no gaps, no repeats.
    assert all(found == list(range(len(found))) for found in offsets.values())


@pytest.mark.kafka
async def test_control_topic_is_compacted_and_the_others_are_not(
    kafka_bootstrap: str, unique_topics: Topics
) -> None:
    policies = await _cleanup_policies(kafka_bootstrap, _names(unique_topics))

    assert policies.pop(unique_topics.control) == "compact"
    assert set(policies.values()) == {"delete"}


@pytest.mark.kafka
async def test_ensure_topics_is_idempotent(kafka_bootstrap: str, unique_topics: Topics) -> None:
    await ensure_topics(kafka_bootstrap, unique_topics, TEST_PARTITIONS)
    await ensure_topics(kafka_bootstrap, unique_topics, TEST_PARTITIONS)

    admin = await _admin(kafka_bootstrap)
    try:
        described = await admin.describe_topics(_names(unique_topics))
    finally:
        await admin.close()
    assert sorted(t["topic"] for t in described) == sorted(_names(unique_topics))
    assert {t["error_code"] for t in described} == {0}
    assert {len(t["partitions"]) for t in described} == {TEST_PARTITIONS}
    policies = await _cleanup_policies(kafka_bootstrap, [unique_topics.control])
    assert policies[unique_topics.control] == "compact"


@pytest.mark.kafka
async def test_ensure_topics_refuses_a_control_topic_that_is_not_compacted(
    kafka_bootstrap: str,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    topics = Topics(
        events=f"{prefix}.events",
        events_by_ip=f"{prefix}.events.by-ip",
        alerts=f"{prefix}.alerts",
        control=f"{prefix}.control",
        deadletter=f"{prefix}.deadletter",
    )
    admin = await _admin(kafka_bootstrap)
    try:
        await admin.create_topics(
            [NewTopic(topics.control, 1, 1, topic_configs={"cleanup.policy": "delete"})]
        )
    finally:
        await admin.close()

    with pytest.raises(TopicError, match=r"cleanup\.policy='delete'.*needs 'compact'"):
        await ensure_topics(kafka_bootstrap, topics, TEST_PARTITIONS)


@pytest.mark.kafka
async def test_broker_does_not_create_topics_on_demand(kafka_bootstrap: str) -> None:
    missing = f"t{uuid.uuid4().hex[:10]}.typo"
    admin = await _admin(kafka_bootstrap)
    try:
        # A metadata request for a named topic asks for auto-creation.
        described = await admin.describe_topics([missing])
        listed = await admin.list_topics()
    finally:
        await admin.close()

    assert described[0]["error_code"] == UnknownTopicOrPartitionError.errno
    assert missing not in listed


@pytest.mark.kafka
def test_state_file_finds_the_running_broker(kafka_broker: KafkaBroker) -> None:
    found = KafkaBroker.from_state(kafka_broker.data_dir)

    assert found is not None
    assert (found.pid, found.bootstrap) == (kafka_broker.pid, kafka_broker.bootstrap)
    assert found.is_running()


def test_docker_compose_runs_the_same_broker_settings() -> None:
    compose = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    environment = dict(re.findall(r"^\s+(KAFKA_[A-Z_]+):\s*\"?([^\"\n]*)\"?\s*$", compose, re.M))

    expected = {
        "KAFKA_" + key.upper().replace(".", "_"): value
        for key, value in SINGLE_NODE_SETTINGS.items()
    }
    assert {key: environment.get(key) for key in expected} == expected


def test_a_cluster_id_that_starts_with_a_dash_still_formats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One random id in 64 starts with "-"; the storage tool must not read it as an option.
    monkeypatch.setattr(broker_module, "new_cluster_id", lambda: "-" + "A" * 21)
    with KafkaBroker.start(tmp_path / "kafka") as broker:
        assert broker.format_seconds > 0
        assert re.fullmatch(r"127\.0\.0\.1:\d+", broker.bootstrap)
