"""Kafka broker setup, the same for every service.

Three defaults of FastStream are wrong for this system and are fixed here once:

* its Kafka subscriber commits the offset before the handler runs (at-most-once). Every
  subscriber of the project is declared through `Subscriptions` with manual acknowledgement,
  and `ReliableConsumeMiddleware` marks an offset processed only after the handler returned
  (the effect is stored); `OffsetCommitter` then commits the processed offsets in the
  background, a few times a second, instead of one round trip per message. A crash means
  redelivery of at most those messages, never loss, and the consumers' inbox drops the
  redelivered ones;
* it has no dead-letter topic for Kafka. The middleware sends a message that can never be
  processed to `<topic>.dlq` with the reason and marks it processed, so one poison message
  neither blocks its partition nor crashes the consumer;
* a subscriber that starts creates its topic when it is missing, with one partition and the
  broker's defaults. The project creates its topics itself (`helpdesk topics`), each with its
  partition count, maximum message size and dead-letter topic, and `ensure_topics` leaves an
  existing topic alone: a service that came up first left the topic with one partition for
  good (the gateway's live feed waited for six). Every subscriber names its topic through
  `existing_topic`, and `probe_broker` waits until the topics are there.

What a failure means is decided by `classify_failure`:

* a dependency is down (the database refuses, loses or locks the connection; the broker or
  the network is away): the message is fine, the world is not. It is retried in place with
  capped exponential backoff and jitter for as long as it takes; its partition is paused and
  its offset is not committed; it is never dead-lettered. One log line per attempt says what
  is waited for (never the message's content);
* the message can never be processed (it does not validate, a handler raised
  `PermanentFailure`, a value the database can never store): dead-lettered at once;
* anything else is unexpected (a bug): retried a few times (`RETRY_DELAYS_SECONDS`), then
  dead-lettered with the reason, so that it can be replayed once the bug is fixed
  (`helpdesk dlq replay`, `shared.dead_letters`). Blocking a partition forever on a bug
  would stop every later event of the partition's subjects, most of them fine.

A batch subscriber (`Subscriptions.on_batch`, FastStream's `batch=True`) applies what one poll
returned in one transaction under the same rules, per message (`BatchConsumer`): a record that
does not validate is dead-lettered alone; a dependency that is down is waited for and the whole
batch retried; any other failure makes it apply the batch one message at a time, so that only
the failing one is retried and dead-lettered; the offsets are marked processed only once every
record of the batch is stored or dead-lettered.

A wait for a dependency happens inside the handler, so the subscriber reads nothing meanwhile.
aiokafka heartbeats in the background, so the group keeps the member; a member that has not
polled for `max_poll_interval_ms` leaves the group, though, and it rejoins at its next poll.
`Subscriptions` raises that interval to `MAX_POLL_INTERVAL_MS` (15 minutes), so a usual outage
keeps the assignment; a longer one moves this member's partitions to another replica for the
rest of the outage (which waits the same way), and the member rejoins when its own wait ends.
Whatever it processed meanwhile but could not commit is redelivered and dropped by the inbox.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import Enum
from functools import partial
from typing import Any, Generic, TypeVar
from weakref import WeakKeyDictionary

import asyncpg  # type: ignore[import-untyped]
import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
)
from faststream import AckPolicy, BaseMiddleware, ContextRepo
from faststream.kafka import KafkaBroker
from faststream.kafka import Topic as FastStreamTopic
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from faststream.types import AsyncFuncAny
from pydantic import BaseModel, ValidationError
from sqlalchemy import exc as sql_errors

from shared.contracts.topics import Topic
from shared.kafka_security import aiokafka_security, faststream_security
from shared.logging import exception_chain, validation_problems
from shared.settings import SystemSettings

log = structlog.get_logger(__name__)

DEAD_LETTER_SUFFIX = ".dlq"
REASON_HEADER = "dead-letter-reason"
KIND_HEADER = "dead-letter-kind"
DEAD_LETTERED_AT_HEADER = "dead-lettered-at"
ORIGINAL_TOPIC_HEADER = "original-topic"
ORIGINAL_PARTITION_HEADER = "original-partition"
ORIGINAL_OFFSET_HEADER = "original-offset"
VALUE_DROPPED_HEADER = "dead-letter-value-dropped"
# What the middleware adds to a dead letter; a replay removes exactly these.
DEAD_LETTER_HEADERS: frozenset[str] = frozenset(
    {
        REASON_HEADER,
        KIND_HEADER,
        DEAD_LETTERED_AT_HEADER,
        ORIGINAL_TOPIC_HEADER,
        ORIGINAL_PARTITION_HEADER,
        ORIGINAL_OFFSET_HEADER,
        VALUE_DROPPED_HEADER,
    }
)
REASON_MAX_LENGTH = 1000
# Room the dead-letter headers need on top of a message: the outbox keeps every event this
# much below the maximum message size, so any event of the system can be dead-lettered.
DEAD_LETTER_HEADROOM_BYTES = 4096

# An unexpected failure (a bug) is retried in place this many times, with these pauses,
# before the message is dead-lettered.
RETRY_DELAYS_SECONDS: tuple[float, ...] = (0.2, 1.0, 3.0)
# A dependency that is down is waited for with these pauses: doubling from the first, at
# most the cap, each with jitter so that many consumers do not retry in step.
DEPENDENCY_BACKOFF_FIRST_SECONDS = 0.2
DEPENDENCY_BACKOFF_CAP_SECONDS = 10.0
# See the module's docstring: how long a member may wait for a dependency without polling
# before aiokafka lets it leave its group (aiokafka's default is 5 minutes).
MAX_POLL_INTERVAL_MS = 15 * 60 * 1000
# On stop, how long the subscribers may go on with the messages they hold (FastStream's
# graceful timeout); each one finished meanwhile has its offset committed at once.
CONSUMER_DRAIN_SECONDS = 15.0


class PermanentFailure(Exception):
    """Raised by a handler for a message that can never be processed (retrying cannot help)."""


class FailureKind(Enum):
    DEPENDENCY_DOWN = "dependency_down"  # wait and retry for as long as it takes
    POISON = "poison"  # dead-letter at once
    UNEXPECTED = "unexpected"  # a bug: a few retries, then dead-letter


# SQLite reports a missing table or column, or bad SQL, as an OperationalError, as it reports a
# locked or unreadable file; those are not the database being away but a bug or a missing
# migration, which PostgreSQL reports as a ProgrammingError.
_SQLITE_PROGRAMMING_ERRORS = ("no such table", "no such column", "has no column", "syntax error")

_ASYNCPG_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.exceptions.CannotConnectNowError,  # starting up, shutting down
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
)


def _is_dependency_down(error: BaseException) -> str | None:
    """What is down ("database", "broker", "network"), or None when nothing is."""
    if isinstance(error, sql_errors.DBAPIError) and error.connection_invalidated:
        return "database"
    if isinstance(error, sql_errors.OperationalError | sqlite3.OperationalError):
        text = str(getattr(error, "orig", None) or error).lower()
        if any(marker in text for marker in _SQLITE_PROGRAMMING_ERRORS):
            return None
        return "database"
    if isinstance(
        error,
        (
            sql_errors.InterfaceError,
            sql_errors.DisconnectionError,
            sql_errors.TimeoutError,  # no free connection in the pool
            *_ASYNCPG_CONNECTION_ERRORS,
        ),
    ):
        return "database"
    if isinstance(error, KafkaConnectionError | KafkaTimeoutError):
        return "broker"
    if isinstance(error, KafkaError) and error.retriable:
        return "broker"
    if isinstance(error, OSError | TimeoutError):
        return "network"
    return None


def _is_poison(error: BaseException) -> bool:
    # ValueError covers pydantic's ValidationError, undecodable JSON and text; DataError is a
    # value the database can never store (too long for its column, a byte it refuses).
    return isinstance(error, PermanentFailure | ValueError | sql_errors.DataError)


def classify_failure(error: BaseException) -> tuple[FailureKind, str | None]:
    """What a handler's exception means, and for a dependency that is down, which one."""
    chain = exception_chain(error)
    for cause in chain:
        if dependency := _is_dependency_down(cause):
            return FailureKind.DEPENDENCY_DOWN, dependency
    if any(_is_poison(cause) for cause in chain):
        return FailureKind.POISON, None
    return FailureKind.UNEXPECTED, None


def dependency_backoff_seconds(
    attempt: int,
    *,
    first: float = DEPENDENCY_BACKOFF_FIRST_SECONDS,
    cap: float = DEPENDENCY_BACKOFF_CAP_SECONDS,
    jitter: Callable[[], float] = random.random,
) -> float:
    """The pause before retry number `attempt` (1, 2, ...): `first` doubled per attempt, at
    most `cap`, of which a random half is taken off ("equal jitter": never less than half)."""
    ceiling = min(cap, first * 2.0 ** min(max(attempt - 1, 0), 32))
    return ceiling / 2 + jitter() * ceiling / 2


class OffsetCommitter:
    """Commits processed offsets in the background, at most once per `interval` seconds."""

    def __init__(self, interval_seconds: float = 0.1) -> None:
        self._interval = interval_seconds
        self._pending: dict[int, tuple[Any, dict[TopicPartition, int]]] = {}
        self._flush_task: asyncio.Task[None] | None = None
        self.stopping = False
        """Set on stop: a message finished from then on is committed before its consumer
        closes, instead of a moment later when the consumer may be gone."""

    async def mark_processed(self, consumer: Any, record: Any) -> None:
        await self.mark_all_processed(consumer, (record,))

    async def mark_all_processed(self, consumer: Any, records: Iterable[Any]) -> None:
        _, offsets = self._pending.setdefault(id(consumer), (consumer, {}))
        for record in records:
            # Kafka's committed offset is the next one to read.
            partition = TopicPartition(record.topic, record.partition)
            offsets[partition] = max(offsets.get(partition, 0), record.offset + 1)
        if self.stopping:
            await self.flush()
        elif self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self._interval)
        await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for consumer, offsets in pending.values():
            try:
                await consumer.commit(offsets)
            except Exception as error:
                # E.g. the partition moved to another replica in a rebalance. Those messages
                # are redelivered there and dropped by its inbox; nothing is lost.
                log.warning("offset_commit_failed", error=repr(error))


_committers: WeakKeyDictionary[KafkaBroker, OffsetCommitter] = WeakKeyDictionary()


def kafka_producer(broker: KafkaBroker) -> AIOKafkaProducer | None:
    """The started broker's own aiokafka producer, for handing it many records at once without
    FastStream's per-message publish machinery (a third of the outbox relay's CPU per row).
    FastStream 0.7 keeps it at `config.producer._producer.producer`; None when it is not there
    (not started, a test broker, another FastStream version): callers then publish through
    the broker, so this is a shortcut, never a requirement."""
    state = getattr(getattr(broker.config, "producer", None), "_producer", None)
    producer = getattr(state, "producer", None)
    return producer if isinstance(producer, AIOKafkaProducer) else None


def kafka_client_tasks(broker: KafkaBroker) -> list[tuple[str, asyncio.Future[Any]]]:
    """The background tasks of the started broker's aiokafka clients, each named: a consumer's
    group coordination and its fetching, the producer's sending. aiokafka never starts one of
    them again: once one has ended with an error the client is dead for good, though the
    process looks alive (FastStream's loop then only logs "Kafka error occurred" every 5 s).
    These are aiokafka 0.14's private attributes; a test proves they are still found."""
    tasks: list[tuple[str, asyncio.Future[Any]]] = []
    for subscriber in broker.subscribers:
        consumer = getattr(subscriber, "consumer", None)
        if consumer is None:
            continue
        topics = ",".join(sorted(consumer.subscription())) or "no topic"
        coordinator = getattr(consumer, "_coordinator", None)
        for attribute in ("_coordination_task", "_reset_committed_task"):  # with a group, without
            task = getattr(coordinator, attribute, None)
            if isinstance(task, asyncio.Future):
                tasks.append((f"consumer of {topics}: group coordination", task))
        fetching = getattr(getattr(consumer, "_fetcher", None), "error_future", None)
        if isinstance(fetching, asyncio.Future):
            tasks.append((f"consumer of {topics}: fetching", fetching))
    producer = kafka_producer(broker)
    sending = getattr(getattr(producer, "_sender", None), "sender_task", None)
    if isinstance(sending, asyncio.Future):
        tasks.append(("producer: sending", sending))
    return tasks


def failed_kafka_clients(broker: KafkaBroker) -> list[str]:
    """What has ended of the broker's clients' background work, and why; call it only while
    the broker runs (a stop ends them all)."""
    failed = []
    for name, task in kafka_client_tasks(broker):
        if not task.done():
            continue
        error = None if task.cancelled() else task.exception()
        failed.append(f"{name} ended" + (f" after {_describe(error)}" if error else ""))
    return failed


def producer_batch_bytes(settings: SystemSettings) -> int:
    """The producer's batch per partition: a quarter of the maximum message size (256 KiB by
    default), so a relay's burst goes out in a few requests instead of one per 16 KiB (the
    aiokafka default, which made every 14th `ticket.created` wait for a round trip). Never
    more than the maximum: the broker measures a whole batch against `message.max.bytes`."""
    return max(16 * 1024, settings.kafka_max_message_bytes // 4)


def create_broker(settings: SystemSettings, *, client_id: str) -> KafkaBroker:
    """A broker whose producer is idempotent with acks=all and whose consumers commit after
    processing and dead-letter what they can never process."""
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=client_id,
        security=faststream_security(settings),
        enable_idempotence=True,
        acks="all",
        # The one maximum of the system: the broker's message.max.bytes is the same number.
        max_request_size=settings.kafka_max_message_bytes,
        max_batch_size=producer_batch_bytes(settings),
        # Per-message "Received/Processed" lines would drown the service's own logs.
        log_level=logging.DEBUG,
        graceful_timeout=CONSUMER_DRAIN_SECONDS,
    )
    committer = _committers[broker] = OffsetCommitter()
    broker.add_middleware(_reliable_consume_middleware_for(broker, committer))
    return broker


def create_watching_broker(settings: SystemSettings, *, client_id: str) -> KafkaBroker:
    """A broker for a process that only watches topics, with subscribers that have no
    consumer group (every replica sees every message) and so nothing to commit. It neither
    retries nor dead-letters: that is the owning consumers' job."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=client_id,
        security=faststream_security(settings),
        log_level=logging.DEBUG,
    )


def existing_topic(name: str) -> FastStreamTopic:
    """A topic for `broker.subscriber` that FastStream never creates (see the module's text)."""
    return FastStreamTopic(name, declare=False)


def subscribed_topics(broker: KafkaBroker) -> list[str]:
    """The topics `broker`'s subscribers read."""
    return sorted(
        {name for sub in broker.subscribers for name in sub.topic_names}  # type: ignore[attr-defined]
    )


class TopicsMissing(RuntimeError):
    def __init__(self, missing: Sequence[str]) -> None:
        # The remedy first: /readyz shows the first 300 characters.
        super().__init__(
            "waiting for `helpdesk topics` (make run and the compose file run it first) to "
            f"create the topics {', '.join(missing)}"
        )


async def probe_broker(settings: SystemSettings, topics: Iterable[str] = ()) -> None:
    """Raises unless the brokers answer (bootstrap: metadata, with the service's credentials)
    and every one of `topics` exists; a consumer started before its topic would wait on it
    for aiokafka's whole request timeout, saying nothing. Done before `broker.start()`, whose
    failed attempts leave their producer unclosed."""
    client = AIOKafkaClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, **aiokafka_security(settings)
    )
    try:
        await client.bootstrap()
        wanted = set(topics)
        if wanted:
            missing = wanted - (await client.fetch_all_metadata()).topics()
            if missing:
                raise TopicsMissing(sorted(missing))
    finally:
        await client.close()


async def stop_consuming(broker: KafkaBroker) -> None:
    """Let the subscribers finish the messages they hold (at most CONSUMER_DRAIN_SECONDS),
    each committed as it finishes, and stop them; the producer stays, so what they wrote to an
    outbox can still be published before `stop_broker`."""
    committer = _committers.get(broker)
    if committer is not None:
        committer.stopping = True
        await committer.flush()
    for subscriber in broker.subscribers:
        await subscriber.stop()


async def stop_broker(broker: KafkaBroker) -> None:
    """Commit what was processed; let the subscribers finish the messages they hold (at most
    CONSUMER_DRAIN_SECONDS), each committed as it finishes; then stop. A message still
    unfinished then is redelivered to the next consumer (and dropped by its inbox if it had
    been stored)."""
    await stop_consuming(broker)
    await broker.stop()


Handler = TypeVar("Handler", bound=Callable[..., Awaitable[None]])


# A batch subscriber takes at most this many records per poll, applied in one transaction (on
# SQLite, the write lock is held that long: ~1,000 entries take a few tens of milliseconds).
BATCH_MAX_RECORDS = 1000
# When nothing is waiting, how long a batch subscriber's poll waits for a first record (it
# returns as soon as one arrives), and then pauses before the next poll (FastStream's).
BATCH_POLL_TIMEOUT_MS = 50


@dataclass(frozen=True, slots=True)
class Subscriptions:
    """How every service declares its subscribers: each a consumer group that commits only
    what has been processed, from the topic's earliest offset for a new group, titled
    `<service>:<handler>`."""

    broker: KafkaBroker
    service: str
    group_id: str
    group_per_topic: bool = True
    """`<group_id>.<topic>` per subscriber, so that a rebalance of one never pauses another."""

    def _common(self, topic: Topic, handler_name: str, description: str) -> dict[str, Any]:
        """What every subscriber of a service is declared with, single or batch."""
        return {
            "group_id": (
                f"{self.group_id}.{topic.name}" if self.group_per_topic else self.group_id
            ),
            "ack_policy": AckPolicy.MANUAL,
            "auto_offset_reset": "earliest",
            "max_poll_interval_ms": MAX_POLL_INTERVAL_MS,
            "title": f"{self.service}:{handler_name}",
            "description": description,
        }

    def on(self, topic: Topic, description: str) -> Callable[[Handler], Handler]:
        def declare(handler: Handler) -> Handler:
            self.broker.subscriber(
                existing_topic(topic.name),
                parser=_headers_left_to_middleware,
                **self._common(topic, handler.__name__, description),
            )(handler)
            return handler

        return declare

    def on_batch(
        self,
        topic: Topic,
        description: str,
        model: type[Model],
        *,
        max_records: int = BATCH_MAX_RECORDS,
    ) -> Callable[[BatchHandler[Model]], BatchHandler[Model]]:
        """Like `on`, for a handler that stores a whole batch of `model` messages (up to
        `max_records`, what one poll returned) in one transaction; see `BatchConsumer`."""

        def declare(handler: BatchHandler[Model]) -> BatchHandler[Model]:
            async def without_headers(received: list[Received[Model]]) -> None:
                await handler([each.message for each in received])

            self._declare_batch(topic, description, model, max_records, handler, without_headers)
            return handler

        return declare

    def on_batch_with_headers(
        self,
        topic: Topic,
        description: str,
        model: type[Model],
        *,
        max_records: int = BATCH_MAX_RECORDS,
    ) -> Callable[[ReceivedBatchHandler[Model]], ReceivedBatchHandler[Model]]:
        """`on_batch` for a handler that also reads each message's headers (`Received`)."""

        def declare(handler: ReceivedBatchHandler[Model]) -> ReceivedBatchHandler[Model]:
            self._declare_batch(
                topic, description, model, max_records, handler, handler, with_headers=True
            )
            return handler

        return declare

    def _declare_batch(
        self,
        topic: Topic,
        description: str,
        model: type[Model],
        max_records: int,
        named: Callable[..., Any],
        handler: ReceivedBatchHandler[Model],
        *,
        with_headers: bool = False,
    ) -> None:
        consume = BatchConsumer(
            model,
            handler,
            FailurePolicy(self.broker),
            _committers[self.broker],
            with_headers=with_headers,
        )

        async def on_batch(message: KafkaMessage) -> None:
            await consume(message.consumer, message.raw_message)

        self.broker.subscriber(
            existing_topic(topic.name),
            batch=True,
            max_records=max_records,
            batch_timeout_ms=BATCH_POLL_TIMEOUT_MS,
            # The batch consumer validates each message and its headers itself (a bad one
            # must not fail the others); FastStream's own decoding would only be thrown away.
            parser=_headers_left_to_middleware,
            decoder=_undecoded,
            **self._common(topic, named.__name__, description),
        )(on_batch)


async def _headers_left_to_middleware(
    raw: Any, parse: Callable[[Any], Awaitable[StreamMessage[Any]]]
) -> StreamMessage[Any]:
    """FastStream's parser decodes every header as UTF-8, and a header that is not fails the
    message (a batch: the whole poll) before any middleware sees it: neither applied nor
    dead-lettered, its offset passed by the next commit. Parsed without headers instead, the
    raw record(s) kept: the middleware (`decoded_headers`) dead-letters what has a bad one."""
    try:
        return await parse(raw)
    except UnicodeDecodeError:
        without_headers = (
            tuple(replace(record, headers=()) for record in raw)
            if isinstance(raw, tuple)
            else replace(raw, headers=())
        )
        message = await parse(without_headers)
        message.raw_message = raw
        return message


def decoded_headers(record: Any) -> dict[str, str]:
    """A record's headers as text, or ValueError (never retried: dead-lettered) naming the
    first that is not UTF-8."""
    headers = {}
    for key, value in record.headers or ():
        try:
            headers[key] = (value or b"").decode()
        except UnicodeDecodeError:
            raise ValueError(f"header {key!r} is not UTF-8 text; every header must be") from None
    return headers


async def _undecoded(msg: StreamMessage[Any]) -> Any:
    return None


def _reliable_consume_middleware_for(
    broker: KafkaBroker, committer: OffsetCommitter
) -> Callable[..., BaseMiddleware]:
    def build(msg: Any, /, *, context: ContextRepo) -> BaseMiddleware:
        return ReliableConsumeMiddleware(msg, context=context, broker=broker, committer=committer)

    return build


class FailurePolicy:
    """What every consumer does when applying a message fails (`classify_failure`): wait out a
    dependency that is down with its partitions paused, retry an unexpected failure a few
    times, dead-letter what can never be processed. One for single messages and batches."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def process_or_dead_letter(
        self, attempt: Callable[[], Awaitable[Any]], consumer: Any, record: Any
    ) -> Any:
        """`attempt()`'s result once it succeeds, or None once `record` is dead-lettered."""
        waits = 0
        unexpected = 0
        paused: list[TopicPartition] = []
        try:
            while True:
                try:
                    return await attempt()
                except Exception as error:
                    kind, dependency = classify_failure(error)
                    if kind is FailureKind.DEPENDENCY_DOWN:
                        waits += 1
                        paused = paused or _pause(consumer, [record])
                        await self.wait_for(dependency or "dependency", error, waits, record)
                        continue
                    if kind is FailureKind.UNEXPECTED and unexpected < len(RETRY_DELAYS_SECONDS):
                        delay = RETRY_DELAYS_SECONDS[unexpected]
                        unexpected += 1
                        log.warning(
                            "message_retry",
                            attempt=unexpected,
                            retry_in_seconds=delay,
                            error=_describe(error),
                            **_position(record),
                        )
                        await asyncio.sleep(delay)
                        continue
                    await self.dead_letter_until_stored(record, error, kind)
                    return None
        finally:
            _resume(consumer, paused)

    async def apply_whole(
        self, attempt: Callable[[], Awaitable[Any]], consumer: Any, records: Sequence[Any]
    ) -> BaseException | None:
        """Run `attempt()` (a whole batch, all or nothing) until it succeeds, waiting out a
        dependency that is down; None then. Any other failure is returned at once: the caller
        takes the batch one message at a time, so that only the bad one is dead-lettered."""
        waits = 0
        paused: list[TopicPartition] = []
        try:
            while True:
                try:
                    await attempt()
                    return None
                except Exception as error:
                    kind, dependency = classify_failure(error)
                    if kind is not FailureKind.DEPENDENCY_DOWN:
                        return error
                    waits += 1
                    paused = paused or _pause(consumer, records)
                    await self.wait_for(dependency or "dependency", error, waits, records[0])
        finally:
            _resume(consumer, paused)

    async def wait_for(
        self, dependency: str, error: BaseException, attempt: int, record: Any
    ) -> None:
        delay = dependency_backoff_seconds(attempt)
        log.warning(
            "waiting_for_dependency",
            dependency=dependency,
            attempt=attempt,
            retry_in_seconds=round(delay, 2),
            error=_describe(error, limit=300),
            **_position(record),
        )
        await asyncio.sleep(delay)

    async def dead_letter_until_stored(
        self, record: Any, error: BaseException, kind: FailureKind
    ) -> None:
        """Publish the dead letter, waiting for the broker for as long as it is away."""
        attempt = 0
        while True:
            try:
                await self._dead_letter(record, error, kind)
                return
            except Exception as publish_error:
                failure, dependency = classify_failure(publish_error)
                if failure is not FailureKind.DEPENDENCY_DOWN:
                    raise
                attempt += 1
                await self.wait_for(dependency or "broker", publish_error, attempt, record)

    async def _dead_letter(self, record: Any, error: BaseException, kind: FailureKind) -> None:
        reason = _describe(error)
        log.error("message_dead_lettered", kind=kind.value, reason=reason, **_position(record))
        headers = {key: value.decode(errors="replace") for key, value in record.headers or ()}
        headers.update(
            {
                REASON_HEADER: reason,
                KIND_HEADER: kind.value,
                DEAD_LETTERED_AT_HEADER: datetime.now(UTC).isoformat(),
                ORIGINAL_TOPIC_HEADER: record.topic,
                ORIGINAL_PARTITION_HEADER: str(record.partition),
                ORIGINAL_OFFSET_HEADER: str(record.offset),
            }
        )
        target = record.topic + DEAD_LETTER_SUFFIX
        try:
            await self._broker.publish(record.value or b"", target, key=record.key, headers=headers)
        except MessageSizeTooLargeError:
            # A message from outside the system, at the maximum size already: the headers
            # above do not fit beside it. Park where it was and why; the value stays in the
            # original topic at that offset until the topic's retention removes it.
            headers[VALUE_DROPPED_HEADER] = "too large with the dead-letter headers"
            await self._broker.publish(b"", target, key=record.key, headers=headers)


def _pause(consumer: Any, records: Iterable[Any]) -> list[TopicPartition]:
    # Nothing more is fetched for the partitions while their messages wait; the positions
    # stay, so the fetch resumes right after them.
    partitions = list(dict.fromkeys(TopicPartition(r.topic, r.partition) for r in records))
    try:
        consumer.pause(*partitions)
    except Exception:  # no longer assigned to this member: nothing to pause
        return []
    return partitions


def _resume(consumer: Any, partitions: list[TopicPartition]) -> None:
    if not partitions:
        return
    try:
        consumer.resume(*partitions)
    except Exception as error:  # revoked meanwhile: its new owner reads it
        log.debug("partition_resume_skipped", error=repr(error))


class ReliableConsumeMiddleware(BaseMiddleware):
    """Runs the handler; waits out a dependency that is down, parks a message that can never
    be processed on `<topic>.dlq`, and marks the offset processed only after one of the two.
    A batch (`Subscriptions.on_batch`) does the same per batch in `BatchConsumer`."""

    def __init__(
        self,
        msg: Any,
        /,
        *,
        context: ContextRepo,
        broker: KafkaBroker,
        committer: OffsetCommitter,
    ) -> None:
        super().__init__(msg, context=context)
        self._policy = FailurePolicy(broker)
        self._committer = committer

    async def consume_scope(self, call_next: AsyncFuncAny, msg: StreamMessage[Any]) -> Any:
        batch = isinstance(msg.raw_message, tuple)
        try:
            if batch:
                return await call_next(msg)  # BatchConsumer: stores, then marks processed

            async def headers_checked_then_handled() -> Any:
                decoded_headers(msg.raw_message)
                return await call_next(msg)

            result = await self._policy.process_or_dead_letter(
                headers_checked_then_handled,
                msg.consumer,  # type: ignore[attr-defined]
                msg.raw_message,
            )
        except Exception:
            # Neither processed nor dead-lettered (only a failure of the dead-letter topic
            # that is not a broker outage gets here): read it again rather than skip it. For
            # a batch, each partition goes back to its first record of the batch; what the
            # batch stored already is dropped by the inbox when it comes again.
            await msg.nack()
            raise
        # The effect is stored (or the message dead-lettered): only now may it be committed.
        await self._committer.mark_processed(msg.consumer, msg.raw_message)  # type: ignore[attr-defined]
        return result


Model = TypeVar("Model", bound=BaseModel)
BatchHandler = Callable[[list[Model]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Received(Generic[Model]):
    """A batch's message with its record's headers, decoded as FastStream decodes a single
    message's (UTF-8; only for `Subscriptions.on_batch_with_headers`, empty otherwise)."""

    message: Model
    headers: Mapping[str, str]


ReceivedBatchHandler = Callable[[list[Received[Model]]], Awaitable[None]]


class BatchConsumer(Generic[Model]):
    """Applies what one poll returned as one batch: `handler` gets every valid message of it
    (each partition's in offset order) and stores them all in one transaction, or raises
    having stored none.

    The guarantees of the single-message path, per message: a message that does not validate
    is dead-lettered at once; a dependency that is down is waited for, the whole batch retried;
    any other failure of the batch makes it go through `handler` one message at a time with the
    single-message policy, so that only the message that fails is retried and dead-lettered
    and the others are stored. Offsets are marked processed only after all of that.
    """

    def __init__(
        self,
        model: type[Model],
        handler: ReceivedBatchHandler[Model],
        policy: FailurePolicy,
        committer: OffsetCommitter,
        *,
        with_headers: bool = False,
    ) -> None:
        self._model = model
        self._handler = handler
        self._policy = policy
        self._committer = committer
        self._with_headers = with_headers

    def _received(self, record: Any) -> Received[Model]:
        headers = decoded_headers(record) if self._with_headers else {}
        return Received(self._model.model_validate_json(record.value or b""), headers)

    async def __call__(self, consumer: Any, records: Sequence[Any]) -> None:
        valid: list[tuple[Received[Model], Any]] = []
        for record in records:
            try:
                valid.append((self._received(record), record))
            except ValueError as error:  # ValidationError, a header not text; never retried
                await self._policy.dead_letter_until_stored(record, error, FailureKind.POISON)
        if valid:
            await self._apply(consumer, valid)
        # Every record is stored or dead-lettered: only now may the offsets be committed.
        await self._committer.mark_all_processed(consumer, records)

    async def _apply(self, consumer: Any, valid: list[tuple[Received[Model], Any]]) -> None:
        messages = [message for message, _ in valid]
        failure = await self._policy.apply_whole(
            lambda: self._handler(messages), consumer, [record for _, record in valid]
        )
        if failure is None:
            return
        log.warning(
            "batch_failed_applying_one_at_a_time",
            messages=len(valid),
            error=_describe(failure),
            **_position(valid[0][1]),
        )
        for message, record in valid:
            await self._policy.process_or_dead_letter(
                partial(self._handler, [message]), consumer, record
            )


def _position(record: Any) -> dict[str, Any]:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}


def _describe(error: BaseException, *, limit: int = REASON_MAX_LENGTH) -> str:
    """Why it failed, without the message's content: a validation error names the fields and
    what was wrong (not the values); a database error its driver's message (not the SQL
    statement with its parameters)."""
    if isinstance(error, ValidationError):
        return f"invalid message: {validation_problems(error, whole='<body>')}"[:limit]
    if isinstance(error, sql_errors.StatementError) and error.orig is not None:
        cause: BaseException = error.orig
        names = type(error).__name__
        if type(cause).__name__ != names:
            names = f"{names} ({type(cause).__name__})"
        return f"{names}: {cause}".splitlines()[0][:limit]
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}"[:limit]
