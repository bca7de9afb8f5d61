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

    @subscriptions.on_batch(
        TICKET_COMMANDS,
        "Runs each command once, a poll's batch in one transaction; answers on "
        "ticket.command-results.v1.",
        EventEnvelope,
    )
    async def on_ticket_commands(commands: list[EventEnvelope]) -> None:
        for command in commands:
            if command.type != CommandType.CREATE_FROM_CONVERSATION:
                # The batch is then applied one command at a time: only this one is parked.
                raise PermanentFailure(
                    f"unknown command type {command.type!r}; "
                    f"known: {', '.join(t.value for t in CommandType)}"
                )
        await handlers.create_tickets_from_conversations(unit_of_work(Causation.new()), commands)

    @subscriptions.on(
        INTAKE_CONVERSATIONS, "A visitor's reply reopens a linked ticket that waits on them."
    )
    async def on_intake_conversations(event: EventEnvelope) -> None:
        # Tolerant reader: other conversation events are not ticket-core's business.
        if event.type == ConversationEventType.VISITOR_REPLIED:
            await handlers.reopen_on_visitor_reply(unit_of_work(Causation.of(event)), event)
