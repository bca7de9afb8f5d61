"""The published Kafka contract as an AsyncAPI 3 document, generated from the contract models.

`helpdesk contract` writes it to `docs/asyncapi.json` (a test fails when the committed file
differs from what this module generates), and the gateway serves it at
`/api/v1/asyncapi.json`. Every message is the envelope (`envelope.py`) with a `type` and the
`data` documented here for that type.
"""

import json
from typing import Annotated, Any, Literal, Union

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import BaseModel, Field, create_model

from .api import MemberOut
from .commands import CommandResult, CommandResultType, CommandType, CreateFromConversation
from .conversations import ConversationEventType, VisitorReplied
from .envelope import EnvelopeHeaders, EventEnvelope
from .tickets import (
    FieldChange,
    MemberEventType,
    TicketEventType,
    TicketSnapshot,
    WorkspaceEventType,
)
from .topics import (
    INTAKE_ASSISTANTS,
    INTAKE_CONVERSATIONS,
    INTAKE_REQUEST_OUTCOMES,
    TICKET_COMMAND_RESULTS,
    TICKET_COMMANDS,
    TICKET_EVENTS,
    WIDGET_TICKET_REQUESTS,
    Topic,
)
from .widget import WidgetEventType, WidgetRequestAnswer, WidgetTicketRequest

VERSION = "1.0.0"


class Changes(BaseModel):
    changes: dict[str, FieldChange] = Field(description="Each changed field: from → to.")


class TicketCreatedData(Changes):
    ticket: TicketSnapshot


class Note(BaseModel):
    id: str
    body: str = Field(description="Internal note: for the team, never shown to the visitor.")


class NoteAddedData(Changes):
    note: Note


class ConversationLinkData(Changes):
    conversation_id: str


class MemberData(Changes):
    member: MemberOut


class RequestOutcomeData(WidgetRequestAnswer):
    assistant_id: str
    conversation_id: str | None


TICKET_EVENT_DATA: dict[str, type[BaseModel]] = {
    TicketEventType.CREATED: TicketCreatedData,
    TicketEventType.EDITED: Changes,
    TicketEventType.STATUS_CHANGED: Changes,
    TicketEventType.PRIORITY_CHANGED: Changes,
    TicketEventType.ASSIGNED: Changes,
    TicketEventType.UNASSIGNED: Changes,
    TicketEventType.NOTE_ADDED: NoteAddedData,
    TicketEventType.CONVERSATION_LINKED: ConversationLinkData,
    TicketEventType.CONVERSATION_UNLINKED: ConversationLinkData,
    TicketEventType.DELETED: TicketCreatedData,
    MemberEventType.ADDED: MemberData,
    MemberEventType.ROLE_CHANGED: MemberData,
    MemberEventType.REMOVED: MemberData,
    WorkspaceEventType.SETTINGS_CHANGED: Changes,
}


def _envelope(event_type: str, data: type[BaseModel]) -> type[BaseModel]:
    """The envelope with `type` fixed to `event_type` and `data` typed for it."""
    name = "".join(part.capitalize() for part in event_type.replace(".", "_").split("_"))
    model: type[BaseModel] = create_model(
        name,
        __base__=EventEnvelope,
        type=(Literal[event_type], Field(description="Event type.")),  # type: ignore[arg-type]
        data=(data, ...),
    )
    return model


def _one_of(types: dict[str, type[BaseModel]]) -> Any:
    envelopes = tuple(_envelope(t, data) for t, data in types.items())
    if len(envelopes) == 1:
        return envelopes[0]
    return Annotated[Union[envelopes], Field(discriminator="type")]  # noqa: UP007


def _publications() -> tuple[tuple[Topic, Any, str], ...]:
    """Each topic the services publish: its messages, and who publishes them how."""
    return (
        (
            TICKET_EVENTS,
            _one_of(TICKET_EVENT_DATA),
            "Published by ticket-core (transactional outbox, idempotent producer, acks=all). "
            "`sequence` counts each subject's events 1, 2, 3, ... without gaps.",
        ),
        (
            TICKET_COMMANDS,
            _one_of({CommandType.CREATE_FROM_CONVERSATION: CreateFromConversation}),
            "Published by intake; the envelope id is the command id, run once.",
        ),
        (
            TICKET_COMMAND_RESULTS,
            _one_of({CommandResultType.RESULT: CommandResult}),
            "ticket-core's answer to each command; `causation_id` is the command id.",
        ),
        (
            INTAKE_REQUEST_OUTCOMES,
            _one_of(
                {
                    WidgetEventType.REQUEST_CREATED: RequestOutcomeData,
                    WidgetEventType.REQUEST_REJECTED: RequestOutcomeData,
                }
            ),
            "Published by intake when a widget request is decided (and again if a late answer "
            "corrects a timeout).",
        ),
        (
            INTAKE_ASSISTANTS,
            _one_of({WidgetEventType.SETTINGS_CHANGED: Changes}),
            "Published by intake when an admin changes an assistant's ticket settings.",
        ),
        (
            INTAKE_CONVERSATIONS,
            _one_of({ConversationEventType.VISITOR_REPLIED: VisitorReplied}),
            "Published by intake when a visitor writes again on a conversation with a ticket.",
        ),
    )


def documentation_broker() -> KafkaBroker:
    """A broker that is never started: it only carries the declarations of the contract."""
    broker = KafkaBroker("localhost:9092", description="The help desk's Kafka topics.")
    for topic, schema, description in _publications():
        broker.publisher(
            topic.name,
            schema=schema,
            title=topic.name,
            description=f"{description} {topic.description} Unprocessable messages go to "
            f"`{topic.dead_letter}` unchanged, with the header `dead-letter-reason`.",
        )

    @broker.subscriber(
        WIDGET_TICKET_REQUESTS.name,
        title=WIDGET_TICKET_REQUESTS.name,
        description="Consumed by intake: a widget backend may publish the body of "
        "POST /widget/v1/ticket-requests here (no envelope), keyed by request id.",
    )
    async def widget_ticket_requests(request: WidgetTicketRequest) -> None:
        """Documentation only: intake's real subscriber lives in intake."""

    return broker


def _with_envelope_headers(document: dict[str, Any]) -> None:
    """FastStream documents a message's correlation id as the `correlation_id` header but not
    what it holds, nor the other headers: both are added to every enveloped message."""
    headers = EnvelopeHeaders.model_json_schema(by_alias=True, mode="serialization")
    published = {f"{topic.name}:Message" for topic, _, _ in _publications()}
    for name, message in document["components"]["messages"].items():
        if name in published:
            message["headers"] = headers
            message["correlationId"]["description"] = headers["properties"]["correlation_id"][
                "description"
            ]


def specification() -> dict[str, Any]:
    document = AsyncAPI(
        documentation_broker(),
        title="Help desk events",
        version=VERSION,
        description="Topics, keys and messages of the help desk. See docs/events.md.",
    ).to_specification()
    result: dict[str, Any] = json.loads(document.to_json())
    _with_envelope_headers(result)
    return result


def specification_json() -> str:
    return json.dumps(specification(), indent=2, sort_keys=True) + "\n"
