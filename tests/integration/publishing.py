"""Run the publisher in the test's own event loop against the test broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from mailwarden.config import Config, KafkaSettings, Topics
from streams.publisher import Publisher, PublisherSettings
from tests.support.kafka import TEST_PARTITIONS

HOST = "mx1.example.org"


def config_for(tmp_path: Path, bootstrap: str, topics: Topics) -> Config:
    return Config(
        kafka=KafkaSettings(bootstrap=bootstrap, partitions=TEST_PARTITIONS),
        topics=topics,
        state_dir=tmp_path / "state",
    )


@asynccontextmanager
async def publishing(config: Config, *paths: Path) -> AsyncIterator[Publisher]:
    """A publisher following ``paths`` from their start; stopped cleanly on exit."""
    settings = PublisherSettings(host=HOST, timezone="UTC", from_start=True, poll_interval=0.05)
    publisher = Publisher(config, list(paths), settings)
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    try:
        yield publisher
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
