"""Where messages enter intake: widget requests published by a widget's backend, and
ticket-core's answers to intake's commands."""

from collections.abc import Callable
from typing import Annotated

from faststream import Header
from faststream.kafka import KafkaBroker

from shared.broker import Subscriptions
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

    @subscriptions.on(
        WIDGET_TICKET_REQUESTS,
        "The same body as POST /widget/v1/ticket-requests, with the assistant's "
        f"widget key in the `{WIDGET_KEY_HEADER}` header; the same handler and checks (key, "
        "identity verification, the assistant's rules). No origin (no browser) and no token "
        "buckets: the broker authenticates the producer and its quotas bound it.",
    )
    async def on_widget_ticket_requests(
        request: WidgetTicketRequest,
        widget_key: Annotated[str | None, Header(WIDGET_KEY_HEADER, default=None)],
    ) -> None:
        await handlers.receive_request(unit_of_work(), request, limits, guard, widget_key)

    @subscriptions.on_batch(
        TICKET_COMMAND_RESULTS,
        "ticket-core's answer to each create-from-conversation command.",
        EventEnvelope,
    )
    async def on_ticket_command_results(messages: list[EventEnvelope]) -> None:
        results = [message for message in messages if message.type == CommandResultType.RESULT]
        if results:
            await handlers.record_command_results(unit_of_work(), results)
