"""Dead letters: what `ReliableConsumeMiddleware` parked on `<topic>.dlq`, listed and replayed.

A replay publishes a dead letter back to its original topic with its original key and headers
(the dead-letter ones removed), so every consumer group of that topic sees it again. That is
safe because consumers de-duplicate by event id: a group that had applied it drops it, the
one that dead-lettered it applies it now (once, however often it is replayed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.broker import (
    DEAD_LETTER_HEADERS,
    DEAD_LETTER_SUFFIX,
    DEAD_LETTERED_AT_HEADER,
    KIND_HEADER,
    ORIGINAL_OFFSET_HEADER,
    ORIGINAL_PARTITION_HEADER,
    ORIGINAL_TOPIC_HEADER,
    REASON_HEADER,
    VALUE_DROPPED_HEADER,
)

# A dead-letter topic is read whole; this bounds what one listing holds in memory.
LIST_LIMIT = 10_000


class NoSuchDeadLetter(Exception):
    """The dead-letter topic does not exist, or holds no dead letter with that event id."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str  # the dead-letter topic
    partition: int
    offset: int
    event_id: str | None
    type: str | None
    original_topic: str
    original_partition: int | None
    original_offset: int | None
    kind: str | None
    reason: str
    dead_lettered_at: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @property
    def replayable(self) -> bool:
        return not any(name == VALUE_DROPPED_HEADER for name, _ in self.headers)

    def as_dict(self) -> dict[str, object]:
        return {
            "offset": self.offset,
            "partition": self.partition,
            "event_id": self.event_id,
            "type": self.type,
            "original_topic": self.original_topic,
            "original_partition": self.original_partition,
            "original_offset": self.original_offset,
            "kind": self.kind,
            "reason": self.reason,
            "time": self.dead_lettered_at,
        }


@dataclass(frozen=True, slots=True)
class Replayed:
    letter: DeadLetter
    partition: int
    offset: int


def dead_letter_topic(topic: str) -> str:
    """`ticket.events.v1` or `ticket.events.v1.dlq` → `ticket.events.v1.dlq`."""
    return topic if topic.endswith(DEAD_LETTER_SUFFIX) else topic + DEAD_LETTER_SUFFIX


async def list_dead_letters(
    bootstrap_servers: str,
    topic: str,
    *,
    limit: int = LIST_LIMIT,
    security: Mapping[str, Any] | None = None,
) -> list[DeadLetter]:
    """Every dead letter of `topic` (the original topic or its `.dlq`), oldest first.
    `security`: `shared.kafka_security.aiokafka_security` arguments (an operator's user)."""
    name = dead_letter_topic(topic)
    partitions = await _partitions(bootstrap_servers, name, security)
    if not partitions:
        raise NoSuchDeadLetter(f"There is no topic {name!r}; `helpdesk topics` creates it.")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        **(security or {}),
    )
    await consumer.start()
    try:
        assigned = [TopicPartition(name, number) for number in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        records: list[ConsumerRecord] = []
        unread = {tp for tp, end in ends.items() if end > 0}
        while unread and len(records) < limit:
            batches = await consumer.getmany(*unread, timeout_ms=1000, max_records=500)
            for partition, batch in batches.items():
                records.extend(r for r in batch if r.offset < ends[partition])
            unread = {tp for tp in unread if await consumer.position(tp) < ends[tp]}
        records.sort(key=lambda record: (record.partition, record.offset))
        return [_letter(record) for record in records[:limit]]
    finally:
        await consumer.stop()


async def replay_dead_letters(
    bootstrap_servers: str,
    topic: str,
    *,
    event_id: str | None = None,
    max_message_bytes: int,
    security: Mapping[str, Any] | None = None,
) -> list[Replayed]:
    """Publish the dead letters of `topic` (all, or those of `event_id`) back to their
    original topic, oldest first; returns where each went."""
    letters = await list_dead_letters(bootstrap_servers, topic, security=security)
    if event_id is not None:
        letters = [letter for letter in letters if letter.event_id == event_id]
        if not letters:
            raise NoSuchDeadLetter(
                f"No dead letter with event id {event_id} in {dead_letter_topic(topic)}; "
                f"`helpdesk dlq list {topic}` shows the ids."
            )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        max_request_size=max_message_bytes,
        **(security or {}),
    )
    await producer.start()
    try:
        replayed: list[Replayed] = []
        for letter in letters:
            if not letter.replayable:
                continue
            headers = [
                (name, value) for name, value in letter.headers if name not in DEAD_LETTER_HEADERS
            ]
            sent = await producer.send_and_wait(
                letter.original_topic, letter.value, key=letter.key, headers=headers
            )
            replayed.append(Replayed(letter, sent.partition, sent.offset))
        return replayed
    finally:
        await producer.stop()


async def _partitions(
    bootstrap_servers: str, topic: str, security: Mapping[str, Any] | None
) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **(security or {}))
    await admin.start()
    try:
        [description] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if description.get("error_code"):
        return []
    return [int(partition["partition"]) for partition in description.get("partitions", [])]


def _letter(record: ConsumerRecord) -> DeadLetter:
    headers: Sequence[tuple[str, bytes]] = tuple(record.headers or ())
    values = {name: value.decode(errors="replace") for name, value in headers}
    body = _body(record.value)
    original_topic = values.get(ORIGINAL_TOPIC_HEADER) or record.topic.removesuffix(
        DEAD_LETTER_SUFFIX
    )
    timestamp = datetime.fromtimestamp(record.timestamp / 1000, UTC).isoformat()
    return DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        event_id=values.get("event-id") or _text(body.get("id")),
        type=values.get("event-type") or _text(body.get("type")),
        original_topic=original_topic,
        original_partition=_number(values.get(ORIGINAL_PARTITION_HEADER)),
        original_offset=_number(values.get(ORIGINAL_OFFSET_HEADER)),
        kind=values.get(KIND_HEADER),
        reason=values.get(REASON_HEADER, "(no reason recorded)"),
        dead_lettered_at=values.get(DEAD_LETTERED_AT_HEADER, timestamp),
        key=record.key,
        value=record.value or b"",
        headers=tuple(headers),
    )


def _body(value: bytes | None) -> dict[str, object]:
    try:
        body = json.loads(value or b"")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _text(value: object) -> str | None:
    return value[:200] if isinstance(value, str) else None


def _number(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None
