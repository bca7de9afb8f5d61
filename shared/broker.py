"""Kafka broker setup, the same for every service.

Two defaults of FastStream are wrong for this system and are fixed here once:

* its Kafka subscriber commits the offset before the handler runs (at-most-once). Every
  subscriber of the project is declared through `subscribe()`, which commits only after the
  handler returned (the effect is stored), so a crash means redelivery, never loss;
* it has no dead-letter topic for Kafka. `DeadLetterMiddleware` sends a message that can never
  be processed to `<topic>.dlq` with the reason, then lets the offset be committed, so one
  poison message neither blocks its partition nor crashes the consumer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import structlog
from faststream import AckPolicy
from faststream._internal.basic_types import AsyncFuncAny
from faststream._internal.context.repository import ContextRepo
from faststream._internal.middlewares import BaseMiddleware
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber.usecase import DefaultSubscriber
from faststream.message import StreamMessage
from pydantic import ValidationError

from shared.settings import SystemSettings

log = structlog.get_logger(__name__)

DEAD_LETTER_SUFFIX = ".dlq"
REASON_HEADER = "dead-letter-reason"
# Transient failures (a locked database, a broker hiccup) are retried in place this many
# times, with these pauses, before the message is declared poison.
RETRY_DELAYS_SECONDS: tuple[float, ...] = (0.2, 1.0, 3.0)


class PermanentFailure(Exception):
    """Raised by a handler for a message that can never be processed (retrying cannot help)."""


def create_broker(settings: SystemSettings, *, client_id: str) -> KafkaBroker:
    """A broker whose producer is idempotent with acks=all and whose consumers dead-letter."""
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        # Per-message "Received/Processed" lines would drown the service's own logs.
        log_level=logging.DEBUG,
    )
    broker.add_middleware(_dead_letter_middleware_for(broker))
    return broker


def subscribe(
    broker: KafkaBroker,
    topic: str,
    *,
    group_id: str,
    title: str | None = None,
    description: str | None = None,
) -> DefaultSubscriber:
    """Declare a consumer-group subscriber that commits after the effect is stored.

    `NACK_ON_ERROR` seeks back on an error that escaped the dead-letter middleware (the
    dead-letter topic itself was unreachable), so even then the message is not skipped.
    """
    return broker.subscriber(
        topic,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        title=title,
        description=description,
    )


def _dead_letter_middleware_for(broker: KafkaBroker) -> Callable[..., BaseMiddleware]:
    def build(msg: Any, /, *, context: ContextRepo) -> BaseMiddleware:
        return DeadLetterMiddleware(msg, context=context, broker=broker)

    return build


class DeadLetterMiddleware(BaseMiddleware):
    """Retries transient failures a few times, then parks the message on `<topic>.dlq`."""

    def __init__(self, msg: Any, /, *, context: ContextRepo, broker: KafkaBroker) -> None:
        super().__init__(msg, context=context)
        self._broker = broker

    async def consume_scope(self, call_next: AsyncFuncAny, msg: StreamMessage[Any]) -> Any:
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
