"""One transaction per request or message: intake's state and the messages it sends (in the
outbox) commit together, those its domain objects recorded first, in the order made."""

from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.envelope import EventEnvelope
from shared.contracts.topics import (
    INTAKE_ASSISTANTS,
    INTAKE_CONVERSATIONS,
    INTAKE_REQUEST_OUTCOMES,
    TICKET_COMMANDS,
)
from shared.unit_of_work import SqlUnitOfWork

from ..domain.events import RecordsMessages
from . import tables
from .repositories import (
    AssistantRepository,
    ConversationRepository,
    RefusalRepository,
    RequestRepository,
)

# The topics intake's outbox publishes on, which its Kafka credentials may write: a message
# for another one would never leave the outbox, so it is refused before it is written.
PUBLISHED_TOPICS = frozenset(
    {
        TICKET_COMMANDS.name,
        INTAKE_REQUEST_OUTCOMES.name,
        INTAKE_CONVERSATIONS.name,
        INTAKE_ASSISTANTS.name,
    }
)


class UnitOfWork(SqlUnitOfWork):
    """Also publishes, with the commit, every message the loaded assistants, conversations
    and requests recorded."""

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
        recorders: list[RecordsMessages] = [
            *self.assistants.seen,
            *self.conversations.seen,
            *self.requests.seen,
        ]
        messages = [message for recorder in recorders for message in recorder.pending_messages]
        if unknown := {topic for topic, _ in messages} - PUBLISHED_TOPICS:
            raise ValueError(f"intake does not publish on {sorted(unknown)}")
        for recorder in recorders:
            recorder.pending_messages.clear()
        return messages
