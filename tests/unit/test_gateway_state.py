"""The gateway's two bits of state: stream positions (SSE ids) and the role cache."""

import time
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from services.gateway.auth import MembershipCache
from services.gateway.live import InvalidPosition, decode_position, encode_position
from shared.contracts.api import MemberOut, Role


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
