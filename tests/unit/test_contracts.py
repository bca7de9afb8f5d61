import re
from uuid import uuid4

import pytest
from pydantic import BaseModel, ValidationError

from services.activity_log.domain.entries import ActivityEntry
from services.activity_log.domain.ordering import place
from shared.broker import _describe
from shared.contracts.api import NoteCreate
from shared.contracts.envelope import Actor, EventEnvelope
from shared.contracts.topics import ALL_TOPICS, topic_names_with_dead_letters


def an_event(**overrides: object) -> EventEnvelope:
    values: dict[str, object] = {
        "type": "ticket.created",
        "source": "ticket-core",
        "workspace_id": uuid4(),
        "subject": str(uuid4()),
        "sequence": 1,
        "actor": Actor(type="member", id="m-1"),
        "data": {"changes": {"status": {"from": None, "to": "new"}}},
    }
    values.update(overrides)
    return EventEnvelope(**values)


def test_the_envelope_round_trips_through_json_with_every_field() -> None:
    event = an_event(correlation_id="req-1", causation_id="req-1")

    wire = event.model_dump(mode="json")

    assert set(wire) == {
        "id",
        "type",
        "schema_version",
        "source",
        "time",
        "workspace_id",
        "subject",
        "sequence",
        "correlation_id",
        "causation_id",
        "actor",
        "data",
    }
    assert EventEnvelope.model_validate_json(event.model_dump_json()) == event


def test_a_reader_keeps_fields_it_does_not_know() -> None:
    wire = an_event().model_dump(mode="json") | {"added_in_a_later_version": 1}
    assert EventEnvelope.model_validate(wire).model_extra == {"added_in_a_later_version": 1}


@pytest.mark.parametrize("sequence", [0, -1])
def test_sequence_starts_at_one(sequence: int) -> None:
    with pytest.raises(ValidationError):
        an_event(sequence=sequence)


def test_an_activity_entry_keeps_who_when_and_from_to() -> None:
    event = an_event()
    entry = ActivityEntry.from_event(event)
    assert entry.event_id == event.id
    assert entry.ticket_id == event.subject
    assert entry.actor == event.actor
    assert entry.changes == {"status": {"from": None, "to": "new"}}


def test_an_entry_of_an_unknown_type_is_kept_with_no_changes() -> None:
    entry = ActivityEntry.from_event(an_event(type="ticket.teleported", data={"where": "moon"}))
    assert entry.type == "ticket.teleported"
    assert entry.changes == {}
    assert entry.data == {"where": "moon"}


def test_every_topic_has_a_dead_letter_topic_and_explicit_partitions() -> None:
    names = dict(topic_names_with_dead_letters())
    for topic in ALL_TOPICS:
        assert names[topic.name] == topic.partitions >= 1
        assert names[topic.dead_letter] == 1


def test_a_dead_letter_reason_names_the_broken_field() -> None:
    class Body(BaseModel):
        sequence: int

    with pytest.raises(ValidationError) as invalid:
        Body.model_validate({"sequence": "three"})
    reason = _describe(invalid.value)
    assert reason.startswith("invalid message: sequence:")


@pytest.mark.parametrize(
    ("last", "sequence", "verdict"),
    [
        (0, 1, "apply"),
        (4, 5, "apply"),
        (0, 2, "hold"),
        (4, 9, "hold"),
        (4, 4, "conflict"),
        (4, 1, "conflict"),
    ],
)
def test_an_event_is_applied_only_right_after_the_last_one(
    last: int, sequence: int, verdict: str
) -> None:
    assert place(last, sequence).value == verdict


# Every character Python's str.isspace (and so str.strip) calls whitespace, U+001C to U+001F
# and U+0085 among them, which the ECMAScript `\s` of an OpenAPI document's pattern leaves out.
PYTHON_SPACES = [chr(code) for code in range(0x3001) if chr(code).isspace()]


@pytest.mark.parametrize("space", PYTHON_SPACES, ids=lambda space: f"U+{ord(space):04X}")
def test_a_note_of_whitespace_alone_is_refused_by_the_pattern_the_document_states(
    space: str,
) -> None:
    """The document's pattern (without `\\s`, so ECMAScript and Python read it alike) refuses
    what the model refuses: fuzzing found `\\x1c` allowed by the document's `\\s` and refused
    by the API."""
    pattern = NoteCreate.model_json_schema()["properties"]["body"]["pattern"]

    assert "\\s" not in pattern
    assert re.search(pattern, space * 3) is None
    assert re.search(pattern, f"{space}ok{space}") is not None
    with pytest.raises(ValidationError, match="note_required"):
        NoteCreate(body=space * 3)
