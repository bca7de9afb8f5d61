"""One transaction per request or message: intake's state and the messages it sends (in the
outbox) commit together, those its domain objects recorded first, in the order made."""

from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.envelope import EventEnvelope
from shared.unit_of_work import SqlUnitOfWork

from ..domain.events import RecordsMessages
from . import tables
from .repositories import (
    AssistantRepository,
    ConversationRepository,
    RefusalRepository,
    RequestRepository,
)


class UnitOfWork(SqlUnitOfWork):
    """Also publishes, with the commit, every message the loaded requests and conversations
    recorded."""

    outbox_table = tables.outbox
    inbox_table = tables.inbox
    assistants: AssistantRepository
    requests: RequestRepository
    conversations: ConversationRepository
    refusals: RefusalRepository

    def _open_repositories(self, session: AsyncSession) -> None:
        self.assistants = AssistantRepository(session)
        self.requests = RequestRepository(session)
        self.conversations = ConversationRepository(session)
        self.refusals = RefusalRepository(session)

    def _collect_messages(self) -> list[tuple[str, EventEnvelope]]:
        recorders: list[RecordsMessages] = [*self.conversations.seen, *self.requests.seen]
        messages = [message for recorder in recorders for message in recorder.pending_messages]
        for recorder in recorders:
            recorder.pending_messages.clear()
        return messages
