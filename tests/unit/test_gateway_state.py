"""The gateway's two bits of state: stream positions (SSE ids) and the role cache."""

import time
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from services.gateway.auth import MembershipCache
from services.gateway.live import (
    EndOfStream,
    EventFeed,
    InvalidPosition,
    StreamedEvent,
    decode_position,
    encode_position,
)
from shared.contracts.api import MemberOut, Role
from shared.contracts.envelope import Actor, EventEnvelope


def test_a_position_survives_its_round_trip_through_an_event_id() -> None:
    position = {3: 17, 0: 5, 1: 0}

    text = encode_position(position)

    assert text == "0:5.1:0.3:17"
    assert decode_position(text) == position


@pytest.mark.parametrize("text", ["", "yesterday", "0:1.x:2", "0:1:2", "-1:5", "0:-3", "0"])
def test_an_id_the_stream_never_sent_is_refused_with_what_to_do(text: str) -> None:
    with pytest.raises(InvalidPosition) as refused:
        decode_position(text)

    assert "Last-Event-ID" in str(refused.value)


def member(role: Role = Role.ADMIN) -> MemberOut:
    return MemberOut(
        id=uuid4(),
        workspace_id=uuid4(),
        email="a@acme.io",
        role=role,
        created_at=datetime.now(UTC),
    )


def test_a_cached_role_is_reused_until_its_member_changes() -> None:
    cache = MembershipCache(ttl_seconds=60)
    admin = member()
    cache.put(admin, asked_at=0.0)
    assert cache.get(admin.workspace_id, admin.id) == admin

    cache.forget(admin.workspace_id, admin.id)

    assert cache.get(admin.workspace_id, admin.id) is None


def test_an_answer_asked_for_before_the_change_is_not_cached() -> None:
    """A lookup that raced a member.* event may carry the old role: it is not kept."""
    cache = MembershipCache(ttl_seconds=60)
    admin = member()
    asked_at = time.monotonic()
    cache.forget(admin.workspace_id, admin.id)  # the event arrives while ticket-core answers

    cache.put(admin, asked_at=asked_at)

    assert cache.get(admin.workspace_id, admin.id) is None


def test_a_zero_ttl_caches_nothing() -> None:
    cache = MembershipCache(ttl_seconds=0)
    admin = member()
    cache.put(admin, asked_at=0.0)

    assert cache.get(admin.workspace_id, admin.id) is None


def test_an_entry_of_one_workspace_never_answers_for_another() -> None:
    cache = MembershipCache(ttl_seconds=60)
    admin = member()
    cache.put(admin, asked_at=0.0)

    assert cache.get(uuid4(), admin.id) is None


def envelope(
    workspace_id: UUID, type_: str = "ticket.created", subject: str | None = None
) -> bytes:
    return (
        EventEnvelope(
            type=type_,
            source="ticket-core",
            workspace_id=workspace_id,
            subject=subject or str(uuid4()),
            sequence=1,
            actor=Actor.system("test"),
        )
        .model_dump_json()
        .encode()
    )


async def reading_feed(queue_size: int = 10) -> EventFeed:
    feed = EventFeed("unused:9092", queue_size=queue_size)
    feed._ready.set()  # as after wait_until_reading(): no broker in a unit test
    return feed


async def test_the_feed_gives_each_stream_only_its_workspaces_events() -> None:
    feed = await reading_feed()
    mine, theirs = uuid4(), uuid4()
    stream = await feed.subscribe(mine, uuid4())

    feed.fan_out(0, 10, envelope(theirs))
    feed.fan_out(1, 4, envelope(mine))
    feed.fan_out(1, 5, b"not an envelope")  # skipped, but its offset is passed

    delivered = stream.queue.get_nowait()
    assert isinstance(delivered, StreamedEvent)
    assert (delivered.partition, delivered.offset) == (1, 4)
    assert stream.queue.empty()
    later = await feed.subscribe(mine, uuid4())
    assert later.starts_at == {0: 11, 1: 6}


async def test_a_stream_that_falls_too_far_behind_is_ended_to_resume_by_its_id() -> None:
    feed = await reading_feed(queue_size=3)
    workspace = uuid4()
    stream = await feed.subscribe(workspace, uuid4())

    for offset in range(5):
        feed.fan_out(0, offset, envelope(workspace))

    items = [stream.queue.get_nowait() for _ in range(stream.queue.qsize())]
    assert items[-1] == EndOfStream("client_too_slow")
    assert all(isinstance(item, StreamedEvent) for item in items[:-1])


async def test_a_removed_member_loses_the_cached_role_and_the_stream() -> None:
    feed = await reading_feed()
    forgotten: list[tuple[UUID, UUID]] = []
    feed.on_member_change(lambda workspace, member: forgotten.append((workspace, member)))
    workspace, member = uuid4(), uuid4()
    stream = await feed.subscribe(workspace, member)
    colleague = await feed.subscribe(workspace, uuid4())

    feed.fan_out(0, 1, envelope(workspace, "member.removed", subject=str(member)))

    assert forgotten == [(workspace, member)]
    assert stream.queue.get_nowait() == EndOfStream("member_removed")
    assert isinstance(colleague.queue.get_nowait(), StreamedEvent)  # they see the removal
