"""Kafka broker setup, the same for every service.

Two defaults of FastStream are wrong for this system and are fixed here once:

* its Kafka subscriber commits the offset before the handler runs (at-most-once). Every
  subscriber of the project is declared through `subscribe()` with manual acknowledgement,
  and `ReliableConsumeMiddleware` marks an offset processed only after the handler returned
  (the effect is stored); `OffsetCommitter` then commits the processed offsets in the
  background, a few times a second, instead of one round trip per message. A crash means
  redelivery of at most those messages, never loss, and the consumers' inbox drops the
  redelivered ones;
* it has no dead-letter topic for Kafka. The middleware sends a message that can never be
  processed to `<topic>.dlq` with the reason and marks it processed, so one poison message
  neither blocks its partition nor crashes the consumer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

import structlog
from aiokafka import TopicPartition
from faststream import AckPolicy
from faststream._internal.basic_types import AsyncFuncAny
from faststream._internal.context.repository import ContextRepo
from faststream._internal.middlewares import BaseMiddleware
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber.usecase import DefaultSubscriber
from faststream.message import StreamMessage
from pydantic import ValidationError

from shared.kafka_security import faststream_security
from shared.settings import SystemSettings

log = structlog.get_logger(__name__)

DEAD_LETTER_SUFFIX = ".dlq"
REASON_HEADER = "dead-letter-reason"
# Transient failures (a locked database, a broker hiccup) are retried in place this many
# times, with these pauses, before the message is declared poison.
RETRY_DELAYS_SECONDS: tuple[float, ...] = (0.2, 1.0, 3.0)


class PermanentFailure(Exception):
    """Raised by a handler for a message that can never be processed (retrying cannot help)."""


class OffsetCommitter:
    """Commits processed offsets in the background, at most once per `interval` seconds."""

    def __init__(self, interval_seconds: float = 0.1) -> None:
        self._interval = interval_seconds
        self._pending: dict[int, tuple[Any, dict[TopicPartition, int]]] = {}
        self._flush_task: asyncio.Task[None] | None = None

    def mark_processed(self, consumer: Any, record: Any) -> None:
        _, offsets = self._pending.setdefault(id(consumer), (consumer, {}))
        # Kafka's committed offset is the next one to read.
        offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
        if self._flush_task is None or self._flush_task.done():
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


def create_broker(settings: SystemSettings, *, client_id: str) -> KafkaBroker:
    """A broker whose producer is idempotent with acks=all and whose consumers commit after
    processing and dead-letter what they can never process."""
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=client_id,
        security=faststream_security(settings),
        enable_idempotence=True,
        acks="all",
        # Per-message "Received/Processed" lines would drown the service's own logs.
        log_level=logging.DEBUG,
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


async def stop_broker(broker: KafkaBroker) -> None:
    """Commit what was processed, then stop. A message finished in between is redelivered
    to the next consumer and dropped by its inbox."""
    committer = _committers.get(broker)
    if committer is not None:
        await committer.flush()
    await broker.stop()


def subscribe(
    broker: KafkaBroker,
    topic: str,
    *,
    group_id: str,
    title: str | None = None,
    description: str | None = None,
) -> DefaultSubscriber:
    """Declare a consumer-group subscriber that commits only what has been processed."""
    return broker.subscriber(
        topic,
        group_id=group_id,
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        title=title,
        description=description,
    )


def _reliable_consume_middleware_for(
    broker: KafkaBroker, committer: OffsetCommitter
) -> Callable[..., BaseMiddleware]:
    def build(msg: Any, /, *, context: ContextRepo) -> BaseMiddleware:
        return ReliableConsumeMiddleware(msg, context=context, broker=broker, committer=committer)

    return build


class ReliableConsumeMiddleware(BaseMiddleware):
    """Runs the handler; retries transient failures a few times, parks a message that can never
    be processed on `<topic>.dlq`, and marks the offset processed only after one of the two."""

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
        self._broker = broker
        self._committer = committer

    async def consume_scope(self, call_next: AsyncFuncAny, msg: StreamMessage[Any]) -> Any:
        try:
            result = await self._process_or_dead_letter(call_next, msg)
        except Exception:
            # Not even the dead-letter topic took it: read it again rather than skip it.
            await msg.nack()
            raise
        self._committer.mark_processed(msg.consumer, msg.raw_message)  # type: ignore[attr-defined]
        return result

    async def _process_or_dead_letter(
        self, call_next: AsyncFuncAny, msg: StreamMessage[Any]
    ) -> Any:
        for attempt, delay in enumerate((*RETRY_DELAYS_SECONDS, None)):
            try:
                return await call_next(msg)
            except (ValidationError, PermanentFailure, ValueError) as error:
                await self._dead_letter(msg, error)
                return None
            except Exception as error:
                if delay is None:
                    await self._dead_letter(msg, error)
                    return None
                log.warning("message_retry", attempt=attempt + 1, error=repr(error))
                await asyncio.sleep(delay)
        return None  # pragma: no cover - the loop always returns

    async def _dead_letter(self, msg: StreamMessage[Any], error: BaseException) -> None:
        record = msg.raw_message
        reason = _describe(error)
        log.error(
            "message_dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=reason,
        )
        headers = {key: value.decode(errors="replace") for key, value in record.headers or ()}
        headers.update(
            {
                REASON_HEADER: reason,
                "original-topic": record.topic,
                "original-partition": str(record.partition),
                "original-offset": str(record.offset),
            }
        )
        await self._broker.publish(
            record.value or b"",
            record.topic + DEAD_LETTER_SUFFIX,
            key=record.key,
            headers=headers,
        )


def _describe(error: BaseException) -> str:
    if isinstance(error, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '<body>'}: {item['msg']}"
            for item in error.errors()
        )
        return f"invalid message: {problems}"[:2000]
    return f"{type(error).__name__}: {error}"[:2000]
