"""Where messages enter intake: widget requests published by a widget's backend, and
ticket-core's answers to intake's commands."""

from collections.abc import Callable

from faststream.kafka import KafkaBroker

from shared.broker import Received, Subscriptions
from shared.contracts.commands import CommandResultType
from shared.contracts.envelope import EventEnvelope
from shared.contracts.topics import TICKET_COMMAND_RESULTS, WIDGET_TICKET_REQUESTS
from shared.contracts.widget import WIDGET_KEY_HEADER, WidgetTicketRequest

from .. import handlers
from ..store.unit_of_work import UnitOfWork


def register_consumers(
    broker: KafkaBroker,
    unit_of_work: Callable[[], UnitOfWork],
    limits: handlers.IntakeLimits,
    guard: handlers.WidgetGuard,
    *,
    group_id: str,
) -> None:
    subscriptions = Subscriptions(broker, "intake", group_id)

    @subscriptions.on_batch_with_headers(
        WIDGET_TICKET_REQUESTS,
        "The same body as POST /widget/v1/ticket-requests, with the assistant's "
        f"widget key in the `{WIDGET_KEY_HEADER}` header; the same handler and checks (key, "
        "identity verification, the assistant's rules), a poll's requests in one transaction. "
        "No origin (no browser) and no token buckets: the broker authenticates the producer "
        "and its quotas bound it.",
        WidgetTicketRequest,
    )
    async def on_widget_ticket_requests(received: list[Received[WidgetTicketRequest]]) -> None:
        # The key is only ever compared in constant time, never looked up: its size is the
        # broker's to bound (a record's headers count against its maximum message size).
        calls = [(each.message, each.headers.get(WIDGET_KEY_HEADER)) for each in received]
        await handlers.receive_requests(unit_of_work(), calls, limits, guard)

    @subscriptions.on_batch(
        TICKET_COMMAND_RESULTS,
        "ticket-core's answer to each create-from-conversation command.",
        EventEnvelope,
    )
    async def on_ticket_command_results(messages: list[EventEnvelope]) -> None:
        results = [message for message in messages if message.type == CommandResultType.RESULT]
        if results:
            await handlers.record_command_results(unit_of_work(), results)
