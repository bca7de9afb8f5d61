"""One transaction per request or message: intake's state and the messages it sends (in the
outbox) commit together."""

from sqlalchemy.ext.asyncio import AsyncSession

from shared.unit_of_work import SqlUnitOfWork

from . import tables
from .repositories import (
    AssistantRepository,
    ConversationRepository,
    RefusalRepository,
    RequestRepository,
)


class UnitOfWork(SqlUnitOfWork):
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
