"""Live events for the dashboard: `GET /api/v1/stream` (Server-Sent Events).

One reader of `ticket.events.v1` per gateway process (a FastStream subscriber with no consumer
group, so every replica sees every event) fans each event out to the open streams of its
workspace. A client that reconnects with `Last-Event-ID` first gets what it missed, read
straight from the topic, then the live events: nothing still in the topic is lost.

An SSE event id is a position in the whole topic: for every partition, the offset of the next
event to read, `<partition>:<offset>` joined by `.` (e.g. `0:17.1:4.2:9`). The offsets are
Kafka's own, so any replica can resume any client's stream.

How the replay and the live feed join without a gap or a repeat: a stream registers with the
feed first (from then on the feed queues every event it reads, starting at the feed's
position P), then replays [Last-Event-ID, P) from the topic, then drains its queue. Whatever the
replay read lies before P and whatever the feed queued lies at or after P.

The replay is a bounded read from given offsets, which needs `seek`; FastStream's subscribers
have none, so it uses aiokafka (FastStream's own client library) directly, like the activity
log's rebuild.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.subscriber.usecase import DefaultSubscriber
from pydantic import ValidationError

from shared.broker import existing_topic
from shared.contracts.envelope import EventEnvelope
from shared.contracts.tickets import MemberEventType
from shared.contracts.topics import TICKET_EVENTS

log = structlog.get_logger(__name__)

Position = dict[int, int]  # partition -> offset of the next event to read
MEMBER_EVENT_TYPES = frozenset(t.value for t in MemberEventType)


class InvalidPosition(ValueError):
    pass


def encode_position(position: Position) -> str:
    return ".".join(f"{partition}:{offset}" for partition, offset in sorted(position.items()))


def decode_position(text: str) -> Position:
    try:
        position = {
            int(partition): int(offset)
            for partition, offset in (part.split(":") for part in text.split("."))
        }
    except ValueError:
        raise InvalidPosition(
            f"Last-Event-ID {text[:80]!r} is not an id this stream sent; "
            "reconnect without it to get live events from now on."
        ) from None
    if any(partition < 0 or offset < 0 for partition, offset in position.items()):
        raise InvalidPosition(f"Last-Event-ID {text[:80]!r} has a negative partition or offset.")
    return position


@dataclass(frozen=True, slots=True)
class StreamedEvent:
    partition: int
    offset: int
    envelope: EventEnvelope


# Put on a stream's queue instead of an event: the stream must end (why, for the log).
@dataclass(frozen=True, slots=True)
class EndOfStream:
    reason: str


@dataclass(eq=False)
class Subscription:
    workspace_id: UUID
    member_id: UUID
    queue: asyncio.Queue[StreamedEvent | EndOfStream]
    starts_at: Position  # the feed's position when the stream registered
    dropped: bool = field(default=False)


class EventFeed:
    """The process's one live reader of ticket events, and the streams it feeds."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        queue_size: int = 1000,
        security: Mapping[str, Any] | None = None,
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        # aiokafka's arguments for the broker's security (shared.kafka_security).
        self.kafka_security: Mapping[str, Any] = security or {}
        self._queue_size = queue_size
        self._position: Position = {}
        self._subscriptions: set[Subscription] = set()
        self._ready = asyncio.Event()
        self._subscriber: DefaultSubscriber | None = None
        self._on_member_change: list[Callable[[UUID, UUID], None]] = []

    def on_member_change(self, callback: Callable[[UUID, UUID], None]) -> None:
        """`callback(workspace_id, member_id)` runs for every member.* event."""
        self._on_member_change.append(callback)

    def register(self, broker: KafkaBroker) -> None:
        self._subscriber = broker.subscriber(
            existing_topic(TICKET_EVENTS.name),
            group_id=None,  # no group: every gateway replica reads every event
            auto_offset_reset="latest",
            ack_policy=AckPolicy.MANUAL,  # and never commits: there is no group to commit to
            title="gateway:live_events",
            description="Feeds the dashboard's live stream and drops cached roles on "
            "member.* events.",
        )

        @self._subscriber
        async def on_ticket_event(_decoded: Any, message: KafkaMessage) -> None:
            # Parsed here from the raw bytes: an unreadable event is skipped, not an error.
            record: ConsumerRecord[Any, Any] = message.raw_message
            self.fan_out(record.partition, record.offset, record.value or b"")

    async def start(self) -> None:
        """Before the broker starts: where the topic ends now, the feed's first position."""
        reader = AIOKafkaConsumer(bootstrap_servers=self._bootstrap_servers, **self.kafka_security)
        await reader.start()
        try:
            # The topic exists: the connection's probe waits for every subscribed topic.
            partitions = _partitions()
            ends = await reader.end_offsets(partitions)
            self._position = {tp.partition: offset for tp, offset in ends.items()}
        finally:
            await reader.stop()

    async def wait_until_reading(self) -> None:
        """After the broker started: wait until the live reader knows where it reads from, so
        that a stream registered from now on misses nothing."""
        assert self._subscriber is not None
        # The client library offers no event for "assigned"; its state is polled briefly.
        while (consumer := self._subscriber.consumer) is None or len(  # noqa: ASYNC110
            consumer.assignment()
        ) < len(_partitions()):
            await asyncio.sleep(0.05)
        for partition in _partitions():
            await consumer.position(partition)  # resolves "latest" to an offset
        self._ready.set()

    @property
    def reading(self) -> bool:
        """The live reader knows where it reads from (the broker has answered)."""
        return self._ready.is_set()

    async def subscribe(self, workspace_id: UUID, member_id: UUID) -> Subscription:
        await self._ready.wait()
        subscription = Subscription(
            workspace_id=workspace_id,
            member_id=member_id,
            queue=asyncio.Queue(maxsize=self._queue_size),
            starts_at=dict(self._position),
        )
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def close_streams_of(self, workspace_id: UUID, member_id: UUID, reason: str) -> None:
        for subscription in list(self._subscriptions):
            if (subscription.workspace_id, subscription.member_id) == (workspace_id, member_id):
                self._end(subscription, reason)

    def fan_out(self, partition: int, offset: int, body: bytes) -> None:
        """One event read from the topic: to the role cache, and to its workspace's streams."""
        self._position[partition] = max(self._position.get(partition, 0), offset + 1)
        event = _parse(partition, offset, body)
        if event is None:
            return
        envelope = event.envelope
        if envelope.type in MEMBER_EVENT_TYPES:
            try:
                member_id = UUID(envelope.subject)
            except ValueError:
                log.warning("member_event_without_member_id", partition=partition, offset=offset)
                return
            for callback in self._on_member_change:
                callback(envelope.workspace_id, member_id)
            if envelope.type == MemberEventType.REMOVED:
                self.close_streams_of(envelope.workspace_id, member_id, "member_removed")
        for subscription in list(self._subscriptions):
            if subscription.workspace_id != envelope.workspace_id or subscription.dropped:
                continue
            try:
                subscription.queue.put_nowait(event)
            except asyncio.QueueFull:
                # A client that cannot keep up reconnects with its Last-Event-ID and replays
                # from the topic; the feed never waits for one slow reader.
                self._end(subscription, "client_too_slow")

    def _end(self, subscription: Subscription, reason: str) -> None:
        subscription.dropped = True
        self._subscriptions.discard(subscription)
        if subscription.queue.full():
            # Room for the end marker; the client replays what it loses here on reconnecting.
            subscription.queue.get_nowait()
        subscription.queue.put_nowait(EndOfStream(reason))


async def replay(
    bootstrap_servers: str,
    since: Position,
    until: Position,
    security: Mapping[str, Any] | None = None,
) -> AsyncIterator[StreamedEvent]:
    """The events from `since` up to (not including) `until`, partition by partition in
    offset order. Offsets the topic no longer holds are skipped: retention removed them."""
    wanted = {
        partition: (since[partition], end)
        for partition, end in until.items()
        if partition in since and since[partition] < end
    }
    if not wanted:
        return
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **(security or {}),
    )
    await reader.start()
    try:
        partitions = {p: TopicPartition(TICKET_EVENTS.name, p) for p in wanted}
        reader.assign(list(partitions.values()))
        for partition, (start, _end) in wanted.items():
            reader.seek(partitions[partition], start)
        remaining = set(wanted)
        while remaining:
            batches = await reader.getmany(
                *(partitions[p] for p in remaining), timeout_ms=500, max_records=500
            )
            for tp, records in batches.items():
                end = wanted[tp.partition][1]
                for record in records:
                    if record.offset >= end:
                        break
                    event = _parse(tp.partition, record.offset, record.value or b"")
                    if event is not None:
                        yield event
            for partition in list(remaining):
                if await reader.position(partitions[partition]) >= wanted[partition][1]:
                    remaining.discard(partition)
    finally:
        await reader.stop()


def _partitions() -> list[TopicPartition]:
    return [TopicPartition(TICKET_EVENTS.name, p) for p in range(TICKET_EVENTS.partitions)]


def _parse(partition: int, offset: int, body: bytes) -> StreamedEvent | None:
    try:
        return StreamedEvent(partition, offset, EventEnvelope.model_validate_json(body))
    except ValidationError:
        # Not ours to dead-letter: the owning consumers do that. The stream just skips it.
        log.warning("live_event_unreadable", partition=partition, offset=offset)
        return None


async def server_sent_events(
    feed: EventFeed,
    subscription: Subscription,
    *,
    since: Position | None,
    bootstrap_servers: str,
    heartbeat_seconds: float,
) -> AsyncIterator[str]:
    """The stream's text: what the client missed since `since`, then live events, with a
    comment line after each quiet `heartbeat_seconds`. Ends with an `end` event when the feed
    drops the stream (the member was removed, or the client fell too far behind)."""
    start = subscription.starts_at
    position = {**start, **(since or {})}
    try:
        yield "retry: 2000\n\n"
        if since:
            async for event in replay(bootstrap_servers, since, start, feed.kafka_security):
                position[event.partition] = event.offset + 1
                if event.envelope.workspace_id == subscription.workspace_id:
                    yield _frame(event, position)
            position = {p: max(offset, start.get(p, 0)) for p, offset in position.items()}
        # Where this stream stands before any event: an `id` without data sets the browser's
        # last event id and dispatches nothing, so a page that has seen no event yet still
        # resumes from here (not from "now") after a dropped connection.
        yield f"id: {encode_position(position)}\n\n"
        while True:
            try:
                item = await asyncio.wait_for(subscription.queue.get(), heartbeat_seconds)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if isinstance(item, EndOfStream):
                yield f"event: end\ndata: {json.dumps({'reason': item.reason})}\n\n"
                return
            if item.offset < position.get(item.partition, 0):
                continue  # the client had it already (its id came from a replica further on)
            position[item.partition] = item.offset + 1
            yield _frame(item, position)
    finally:
        feed.unsubscribe(subscription)


def _frame(event: StreamedEvent, position: Position) -> str:
    return (
        f"id: {encode_position(position)}\n"
        f"event: {event.envelope.type}\n"
        f"data: {event.envelope.model_dump_json()}\n\n"
    )
