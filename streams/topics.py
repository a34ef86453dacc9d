"""Create mailwarden's topics with the settings the contracts rely on.

`mail.control` is compacted: adapters rebuild their active commands by reading
it from the start, and compaction keeps the latest command per key. The other
topics are plain retention logs; compacting them would silently drop events
that share a key. Existing topics are checked, never altered: a wrong cleanup
policy or partition count is an operator's decision to fix, reported clearly.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code

from mailwarden.config import KafkaSettings, Topics

DAY_MS = 24 * 3600 * 1000
DEFAULT_PARTITIONS = KafkaSettings().partitions
VISIBLE_TIMEOUT = 30.0

# The active segment is never compacted; rolling hourly (instead of weekly)
# keeps the part adapters replay at start-up short.
CONTROL_CONFIG = {"cleanup.policy": "compact", "segment.ms": str(3600 * 1000)}
# Dead letters wait for a parser fix and a replay; a week can be too short.
DEADLETTER_CONFIG = {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)}
LOG_CONFIG = {"cleanup.policy": "delete"}


class TopicError(RuntimeError):
    """A topic could not be created, or exists with settings that break a contract."""


def topic_configs(topics: Topics) -> dict[str, dict[str, str]]:
    """Topic name -> the configs it is created with."""
    configs = {
        topics.events: LOG_CONFIG,
        topics.events_by_ip: LOG_CONFIG,
        topics.alerts: LOG_CONFIG,
        topics.deadletter: DEADLETTER_CONFIG,
        topics.control: CONTROL_CONFIG,
    }
    if len(configs) != 5:
        raise TopicError(f"topic names must be distinct: {topics}")
    return configs


async def ensure_topics(
    bootstrap: str,
    topics: Topics,
    partitions: int = DEFAULT_PARTITIONS,
    *,
    replication_factor: int | None = None,
) -> None:
    """Create the missing topics; check that existing ones fit. Safe to repeat.

    Every topic gets `partitions` partitions. The replication factor defaults
    to min(3, number of brokers): 1 on a development broker, 3 in production.
    """
    if partitions < 1:
        raise TopicError(f"partitions must be at least 1, not {partitions}")
    configs = topic_configs(topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if replication_factor is None:
            cluster = await admin.describe_cluster()
            replication_factor = min(3, len(cluster["brokers"]))
        new_topics = [
            NewTopic(name, partitions, replication_factor, topic_configs=dict(config))
            for name, config in configs.items()
        ]
        response = await admin.create_topics(new_topics)
        existing = _already_existing(response.to_object()["topic_errors"])
        await _wait_visible(admin, list(configs))
        if existing:
            await _check_existing(admin, existing, configs, topics, partitions)
    finally:
        await admin.close()


def _already_existing(topic_errors: list[dict[str, Any]]) -> list[str]:
    existing = []
    for entry in topic_errors:
        code = entry["error_code"]
        if code == TopicAlreadyExistsError.errno:
            existing.append(entry["topic"])
        elif code != 0:
            detail = entry.get("error_message") or for_code(code).description
            raise TopicError(
                f"creating topic {entry['topic']} failed: {for_code(code).__name__}: {detail}"
            )
    return existing


async def _wait_visible(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Return once every topic is in the broker's metadata, with its partitions.

    A broker learns of a new topic from the controller a moment after the
    create request succeeded; callers that assign partitions or describe
    configs right away would otherwise be told the topic does not exist.
    """
    deadline = time.monotonic() + VISIBLE_TIMEOUT
    while True:
        described = await admin.describe_topics(names)
        missing = sorted(
            t["topic"] for t in described if t["error_code"] != 0 or not t["partitions"]
        )
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TopicError(
                f"topics not visible {VISIBLE_TIMEOUT:.0f} s after creation: {', '.join(missing)}"
            )
        await asyncio.sleep(0.1)


async def _check_existing(
    admin: AIOKafkaAdminClient,
    names: list[str],
    configs: dict[str, dict[str, str]],
    topics: Topics,
    partitions: int,
) -> None:
    actual = await describe_topic_configs(admin, names)
    for name in names:
        wanted = configs[name]["cleanup.policy"]
        found = actual[name].get("cleanup.policy", "")
        if set(found.split(",")) != {wanted}:
            raise TopicError(
                f"topic {name} exists with cleanup.policy={found!r}, mailwarden needs {wanted!r}; "
                f"fix it with kafka-configs.sh --alter --entity-type topics --entity-name {name} "
                f"--add-config cleanup.policy={wanted}"
            )
    # Faust co-partitions its tables with the two event topics; a mismatch
    # would put an account's state on a different worker than its events.
    keyed = [name for name in (topics.events, topics.events_by_ip) if name in names]
    if keyed:
        for described in await admin.describe_topics(keyed):
            count = len(described["partitions"])
            if count != partitions:
                raise TopicError(
                    f"topic {described['topic']} has {count} partitions, the configuration says "
                    f"{partitions}: set [kafka] partitions = {count}"
                )


async def describe_topic_configs(
    admin: AIOKafkaAdminClient, names: list[str]
) -> dict[str, dict[str, str]]:
    """Topic name -> its effective configs (defaults included)."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    found: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.to_object()["resources"]:
            if resource["error_code"] != 0:
                error = for_code(resource["error_code"])
                raise TopicError(f"describing topic {resource['resource_name']}: {error.__name__}")
            found[resource["resource_name"]] = {
                entry["config_names"]: entry["config_value"] for entry in resource["config_entries"]
            }
    return found
