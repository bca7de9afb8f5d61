"""activity-log's use cases."""

from uuid import UUID

from sqlalchemy.exc import IntegrityError

from shared.contracts.envelope import EventEnvelope

from .domain.entries import ActivityEntry
from .store.unit_of_work import UnitOfWork

CONSUMER = "activity-log"


async def record_event(uow: UnitOfWork, event: EventEnvelope) -> bool:
    """Store the event's entry once; False when it was already stored (a redelivery)."""
    try:
        async with uow:
            if not await uow.first_delivery(CONSUMER, event.id):
                return False
            await uow.activity.add(ActivityEntry.from_event(event))
            await uow.commit()
    except IntegrityError:
        # Another replica stored the same event between our check and our commit.
        return False
    return True


async def ticket_history(
    uow: UnitOfWork, workspace_id: UUID, ticket_id: str
) -> list[ActivityEntry]:
    async with uow:
        return await uow.activity.for_ticket(workspace_id, ticket_id)
