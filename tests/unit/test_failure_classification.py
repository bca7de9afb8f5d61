"""What a consumer does with a failure: wait for a dependency that is down, dead-letter a
message that can never be processed, retry a bug a few times; and the backoff of the wait."""

import sqlite3
from uuid import uuid4

import asyncpg  # type: ignore[import-untyped]
import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from pydantic import ValidationError
from sqlalchemy import exc as sql_errors

from shared.broker import (
    DEPENDENCY_BACKOFF_CAP_SECONDS,
    DEPENDENCY_BACKOFF_FIRST_SECONDS,
    FailureKind,
    PermanentFailure,
    _describe,
    classify_failure,
    dependency_backoff_seconds,
)
from shared.contracts.commands import CommandResult
from shared.contracts.envelope import DATA_MAX_BYTES, Actor, EventEnvelope
from shared.outbox import refused_for_good


def wrapped(error: BaseException, wrapper: type[sql_errors.DBAPIError]) -> BaseException:
    """`error` as SQLAlchemy raises it: wrapped, with the statement and its parameters."""
    return wrapper("INSERT INTO t VALUES (?)", ("visitor text",), error)


def a_validation_error() -> ValidationError:
    with pytest.raises(ValidationError) as raised:
        EventEnvelope.model_validate({"type": "x"})
    return raised.value


@pytest.mark.parametrize(
    ("error", "dependency"),
    [
        (
            wrapped(sqlite3.OperationalError("database is locked"), sql_errors.OperationalError),
            "database",
        ),
        (
            wrapped(
                sqlite3.OperationalError("unable to open database file"),
                sql_errors.OperationalError,
            ),
            "database",
        ),
        (wrapped(Exception("connection was closed"), sql_errors.InterfaceError), "database"),
        (sql_errors.TimeoutError("QueuePool limit reached"), "database"),
        (
            asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
            "database",
        ),
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), "database"),
        (asyncpg.exceptions.ConnectionDoesNotExistError("connection lost"), "database"),
        (ConnectionRefusedError(111, "Connect call failed"), "network"),
        (TimeoutError(), "network"),
        (KafkaConnectionError("no broker"), "broker"),
        (KafkaTimeoutError(), "broker"),
        (RequestTimedOutError(), "broker"),
        (NotLeaderForPartitionError(), "broker"),
    ],
)
def test_a_dependency_that_is_down_is_waited_for(error: BaseException, dependency: str) -> None:
    assert classify_failure(error) == (FailureKind.DEPENDENCY_DOWN, dependency)


def test_a_connection_invalidated_by_the_driver_is_a_dependency_that_is_down() -> None:
    error = sql_errors.DBAPIError("SELECT 1", (), Exception("lost"), connection_invalidated=True)
    assert classify_failure(error) == (FailureKind.DEPENDENCY_DOWN, "database")


def test_a_cause_further_down_the_chain_counts() -> None:
    error = RuntimeError("handler failed")
    error.__cause__ = ConnectionResetError("reset by peer")
    assert classify_failure(error) == (FailureKind.DEPENDENCY_DOWN, "network")


@pytest.mark.parametrize(
    "error",
    [
        a_validation_error(),
        PermanentFailure("unknown command type"),
        ValueError("not json"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        wrapped(Exception("value too long for type character varying(64)"), sql_errors.DataError),
    ],
)
def test_a_message_that_can_never_be_processed_is_poison(error: BaseException) -> None:
    assert classify_failure(error) == (FailureKind.POISON, None)


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("a bug"),
        KeyError("missing"),
        wrapped(
            sqlite3.OperationalError("no such table: activity_entries"), sql_errors.OperationalError
        ),
        wrapped(
            Exception('relation "activity_entries" does not exist'), sql_errors.ProgrammingError
        ),
        wrapped(Exception("duplicate key"), sql_errors.IntegrityError),
    ],
)
def test_anything_else_is_unexpected(error: BaseException) -> None:
    assert classify_failure(error) == (FailureKind.UNEXPECTED, None)


def test_a_reason_names_the_driver_error_without_the_statement_or_its_parameters() -> None:
    reason = _describe(
        wrapped(sqlite3.OperationalError("database is locked"), sql_errors.OperationalError)
    )
    assert reason == "OperationalError: database is locked"
    assert "visitor text" not in reason
    assert "INSERT" not in reason


def test_a_validation_reason_names_fields_not_values() -> None:
    with pytest.raises(ValidationError) as raised:
        Actor(type="member", id="secret-value" * 30)
    reason = _describe(raised.value)
    assert reason.startswith("invalid message: id: String should have at most 256 characters")
    assert "secret-value" not in reason


@pytest.mark.parametrize("attempt", range(1, 40))
def test_the_backoff_doubles_up_to_the_cap_and_never_drops_below_half(attempt: int) -> None:
    ceiling = min(
        DEPENDENCY_BACKOFF_CAP_SECONDS, DEPENDENCY_BACKOFF_FIRST_SECONDS * 2 ** (attempt - 1)
    )
    assert dependency_backoff_seconds(attempt, jitter=lambda: 0.0) == pytest.approx(ceiling / 2)
    assert dependency_backoff_seconds(attempt, jitter=lambda: 1.0) == pytest.approx(ceiling)
    assert ceiling / 2 <= dependency_backoff_seconds(attempt) <= ceiling


def test_the_backoff_reaches_its_cap_and_stays_there() -> None:
    pauses = [dependency_backoff_seconds(n, jitter=lambda: 1.0) for n in range(1, 12)]
    assert pauses[:4] == pytest.approx([0.2, 0.4, 0.8, 1.6])
    assert pauses[-3:] == [DEPENDENCY_BACKOFF_CAP_SECONDS] * 3
    assert dependency_backoff_seconds(10_000, jitter=lambda: 1.0) == DEPENDENCY_BACKOFF_CAP_SECONDS


@pytest.mark.parametrize(
    ("error", "for_good"),
    [
        (MessageSizeTooLargeError(), True),
        (UnknownTopicOrPartitionError(), False),  # not created yet: wait
        (KafkaTimeoutError(), False),  # broker away
        (KafkaConnectionError(), False),
        (TopicAuthorizationFailedError(), False),  # an operator grants the ACL: wait
        (ValueError("payload is not JSON"), True),
    ],
)
def test_the_relay_sets_aside_only_what_the_broker_will_never_take(
    error: BaseException, for_good: bool
) -> None:
    assert refused_for_good(error) is for_good


def test_the_envelope_bounds_its_data_by_serialized_size() -> None:
    base = {
        "type": "ticket.edited",
        "source": "ticket-core",
        "workspace_id": uuid4(),
        "subject": "t-1",
        "sequence": 1,
        "actor": Actor(type="member", id="m-1"),
    }
    # {"blob":"..."} is 11 bytes around the text.
    EventEnvelope(**base, data={"blob": "x" * (DATA_MAX_BYTES - 11)})
    with pytest.raises(ValidationError, match=f"over the limit of {DATA_MAX_BYTES} bytes"):
        EventEnvelope(**base, data={"blob": "x" * (DATA_MAX_BYTES - 10)})
    with pytest.raises(ValidationError, match="over the limit"):
        EventEnvelope.model_validate({**base, "added_later": "x" * DATA_MAX_BYTES})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("type", "t" * 101),
        ("source", "s" * 101),
        ("subject", "s" * 201),
        ("subject", ""),
        ("correlation_id", "c" * 201),
        ("causation_id", "c" * 201),
    ],
)
def test_every_envelope_string_has_a_maximum(field: str, value: str) -> None:
    values: dict[str, object] = {
        "type": "ticket.edited",
        "source": "ticket-core",
        "workspace_id": uuid4(),
        "subject": "t-1",
        "sequence": 1,
        "actor": Actor(type="member", id="m-1"),
        field: value,
    }
    with pytest.raises(ValidationError):
        EventEnvelope.model_validate(values)


@pytest.mark.parametrize(
    ("field", "value"),
    [("command_type", "c" * 101), ("reason", "r" * 101), ("detail", "d" * 2001)],
)
def test_every_command_result_string_has_a_maximum(field: str, value: str) -> None:
    values: dict[str, object] = {
        "command_id": uuid4(),
        "command_type": "ticket.create_from_conversation",
        "outcome": "rejected",
        field: value,
    }
    with pytest.raises(ValidationError):
        CommandResult.model_validate(values)
