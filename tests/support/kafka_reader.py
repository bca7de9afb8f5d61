"""Reads topics the way an outside subscriber would: a plain aiokafka consumer, no project code."""

import json
import time
from collections.abc import Callable
from typing import Any
from uuid import uuid4

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared.contracts.topics import ALL_TOPICS, Topic
from shared.kafka_security import aiokafka_security
from shared.settings import SystemSettings


async def read_until(
    bootstrap: str,
    topic: str,
    matches: Callable[[ConsumerRecord], bool],
    *,
    count: int = 1,
    timeout: float = 30.0,
) -> list[ConsumerRecord]:
    """Read `topic` from the beginning until `count` records match (or fail after `timeout`)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-reader-{uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **aiokafka_security(SystemSettings()),
    )
    await consumer.start()
    found: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + timeout
        while len(found) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"found {len(found)} of {count} matching records on {topic} in {timeout}s"
                )
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                found.extend(record for record in records if matches(record))
    finally:
        await consumer.stop()
    return found


def body(record: ConsumerRecord) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(record.value)
    return value


def header(record: ConsumerRecord, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return str(value.decode())
    return None


async def start_group_at_end(bootstrap: str, group: str, topic: Topic) -> None:
    """Commit `group`'s offsets at the topic's current end, so a consumer of that group sees
    only what is published from now on, not the backlog earlier tests left in the topic."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, **aiokafka_security(SystemSettings())
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit({partition: offset for partition, offset in ends.items()})
    finally:
        await consumer.stop()


async def start_service_groups_at_end(bootstrap: str, group: str) -> None:
    """A service started with `consumer_group=group` uses `<group>.<topic>` per topic: start
    each at the end, so it sees only what is published from now on."""
    for topic in ALL_TOPICS:
        await start_group_at_end(bootstrap, f"{group}.{topic.name}", topic)
