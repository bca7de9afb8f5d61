"""What the integration tests do as the other services and the dashboard would: publish their
messages, start a service's consumers, set an assistant up."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

from aiokafka import AIOKafkaProducer

from services.intake import handlers as intake_handlers
from services.intake.bootstrap import Intake
from services.ticket_core.bootstrap import TicketCore
from services.ticket_core.domain.permissions import capabilities_of
from shared.contracts.api import Role
from shared.contracts.envelope import Actor, EventEnvelope
from shared.contracts.widget import AssistantTicketSettings

PARTITION = 0
VISITOR = Actor(type="visitor", id="visitor-7")


def create_command(workspace_id: UUID, conversation_id: str, **data: Any) -> EventEnvelope:
    """intake's command to make a ticket of a conversation."""
    return EventEnvelope(
        type="ticket.create_from_conversation",
        source="intake",
        workspace_id=workspace_id,
        subject=conversation_id,
        sequence=1,
        correlation_id=f"widget-request-{uuid4()}",
        actor=VISITOR,
        data={"conversation_id": conversation_id, "subject": "Refund please", **data},
    )


def ticket_event(workspace: UUID, ticket: str, sequence: int) -> EventEnvelope:
    """ticket-core's event number `sequence` of a ticket: created, then edited."""
    return EventEnvelope(
        type="ticket.created" if sequence == 1 else "ticket.edited",
        source="ticket-core",
        workspace_id=workspace,
        subject=ticket,
        sequence=sequence,
        actor=Actor(type="member", id="m-1"),
        data={"changes": {"subject": {"from": None, "to": f"v{sequence}"}}},
    )


async def publish_on_one_partition(
    producer: AIOKafkaProducer, topic: str, messages: Sequence[EventEnvelope | bytes]
) -> None:
    """Every message on one partition, in this order (the consumer's offset order, as a
    ticket's events are); bytes are sent as they are, as a poison message."""
    for message in messages:
        value = message if isinstance(message, bytes) else message.model_dump_json().encode()
        key = b"poison" if isinstance(message, bytes) else message.subject.encode()
        await producer.send(topic, value, key=key, partition=PARTITION)
    await producer.flush()


async def start_ticket_core(core: TicketCore) -> None:
    """Its consumers and its outbox relay, as its process starts them."""
    await core.broker.start()
    core.relay.start()


async def configure_assistant(
    intake: Intake, assistant: str, settings: AssistantTicketSettings
) -> tuple[UUID, str]:
    """An assistant of a new workspace with these ticket settings, as its owner saves them in
    the dashboard: the workspace, and the widget key intake gave the assistant."""
    workspace = uuid4()
    owner = capabilities_of(Role.OWNER)
    await intake_handlers.put_settings(
        intake.unit_of_work(), workspace, uuid4(), owner, assistant, settings
    )
    saved, _ = await intake_handlers.get_settings(intake.reader(), workspace, owner, assistant)
    assert saved.widget_key is not None
    return workspace, saved.widget_key
