"""Where messages enter ticket-core: commands from intake, and conversation events."""

from collections.abc import Callable

from faststream.kafka import KafkaBroker

from shared.broker import PermanentFailure, Subscriptions
from shared.contracts.commands import CommandType
from shared.contracts.conversations import ConversationEventType
from shared.contracts.envelope import EventEnvelope
from shared.contracts.topics import INTAKE_CONVERSATIONS, TICKET_COMMANDS

from .. import handlers
from ..store.unit_of_work import Causation, UnitOfWork


def register_consumers(
    broker: KafkaBroker, unit_of_work: Callable[[Causation], UnitOfWork], *, group_id: str
) -> None:
    subscriptions = Subscriptions(broker, "ticket-core", group_id)

    @subscriptions.on(
        TICKET_COMMANDS, "Runs each command once; answers on ticket.command-results.v1."
    )
    async def on_ticket_commands(command: EventEnvelope) -> None:
        if command.type != CommandType.CREATE_FROM_CONVERSATION:
            raise PermanentFailure(
                f"unknown command type {command.type!r}; "
                f"known: {', '.join(t.value for t in CommandType)}"
            )
        await handlers.create_ticket_from_conversation(unit_of_work(_caused_by(command)), command)

    @subscriptions.on(
        INTAKE_CONVERSATIONS, "A visitor's reply reopens a linked ticket that waits on them."
    )
    async def on_intake_conversations(event: EventEnvelope) -> None:
        # Tolerant reader: other conversation events are not ticket-core's business.
        if event.type == ConversationEventType.VISITOR_REPLIED:
            await handlers.reopen_on_visitor_reply(unit_of_work(_caused_by(event)), event)


def _caused_by(message: EventEnvelope) -> Causation:
    return Causation(
        correlation_id=message.correlation_id or str(message.id), causation_id=str(message.id)
    )
