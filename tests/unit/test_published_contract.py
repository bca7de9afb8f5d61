"""The committed AsyncAPI document is the one the code generates: a contract change shows up
in review as a change of docs/asyncapi.json (regenerate with `make contract`)."""

import json
from pathlib import Path

from shared.contracts.asyncapi import specification_json
from shared.contracts.tickets import MemberEventType, TicketEventType, WorkspaceEventType
from shared.contracts.topics import ALL_TOPICS

DOCUMENT = Path(__file__).parents[2] / "docs" / "asyncapi.json"


def test_the_committed_document_is_the_generated_one() -> None:
    assert DOCUMENT.read_text() == specification_json(), (
        "docs/asyncapi.json is stale: run `make contract` and commit the result"
    )


def test_it_documents_every_topic_and_every_event_type() -> None:
    document = json.loads(specification_json())
    assert {channel["address"] for channel in document["channels"].values()} == {
        topic.name for topic in ALL_TOPICS
    }
    text = DOCUMENT.read_text()
    for event_type in (*TicketEventType, *MemberEventType, *WorkspaceEventType):
        assert f'"const": "{event_type.value}"' in text, event_type


def test_the_events_guide_names_every_event_type() -> None:
    guide = (DOCUMENT.parent / "events.md").read_text()
    for event_type in (*TicketEventType, *MemberEventType, *WorkspaceEventType):
        assert f"`{event_type.value}`" in guide, event_type
