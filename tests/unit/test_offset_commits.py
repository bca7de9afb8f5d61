"""When offsets are committed: a moment after a message is processed, and, once the service
is stopping, before the handler returns, so its consumer cannot be closed first."""

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition

from shared.broker import OffsetCommitter


class RecordingConsumer:
    """Stands in for aiokafka's consumer: only what `commit` was given."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.committed = asyncio.Event()

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))
        self.committed.set()


def record(offset: int) -> Any:
    return SimpleNamespace(topic="ticket.events.v1", partition=2, offset=offset)


async def test_processed_offsets_are_committed_together_a_moment_later() -> None:
    committer = OffsetCommitter(interval_seconds=0.05)
    consumer = RecordingConsumer()
    await committer.mark_processed(consumer, record(7))
    await committer.mark_processed(consumer, record(8))
    assert consumer.commits == []
    await asyncio.wait_for(consumer.committed.wait(), timeout=5)  # bounds a failure only
    # The next offset to read, once for both.
    assert consumer.commits == [{TopicPartition("ticket.events.v1", 2): 9}]


async def test_while_stopping_each_processed_message_is_committed_at_once() -> None:
    committer = OffsetCommitter(interval_seconds=60)
    consumer = RecordingConsumer()
    committer.stopping = True
    await committer.mark_processed(consumer, record(41))
    assert consumer.commits == [{TopicPartition("ticket.events.v1", 2): 42}]
