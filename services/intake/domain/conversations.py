"""A widget conversation as intake keeps it: every message received, each once, in order, and
the ticket it became. New words of the visitor on a conversation that has a ticket are
announced, since ticket-core may reopen the ticket for them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from shared.contracts.conversations import ConversationEventType
from shared.contracts.envelope import Actor, EventEnvelope
from shared.contracts.topics import INTAKE_CONVERSATIONS
from shared.contracts.widget import ConversationMessage, ConversationOut, MessageRole

from .events import SOURCE, RecordsMessages
from .requests import check_conversation_growth


def visitor_actor(assistant_id: str, conversation_id: str) -> Actor:
    """The visitor of a conversation: widgets know no visitor id, the conversation is one."""
    return Actor(type="visitor", id=f"{assistant_id}/{conversation_id}")


def _same_message(message: ConversationMessage) -> tuple[str, str, str]:
    return message.role.value, message.text, message.sent_at.isoformat()


@dataclass(slots=True)
class Conversation(RecordsMessages):
    assistant_id: str
    conversation_id: str
    workspace_id: UUID
    ticket_id: UUID | None = None
    messages: list[ConversationMessage] = field(default_factory=list)
    unsaved_messages: list[ConversationMessage] = field(default_factory=list)

    def take(self, messages: list[ConversationMessage]) -> int:
        """The conversation as the widget sends it (again): keep the messages not kept yet;
        returns how many were new."""
        known = {_same_message(m) for m in self.messages}
        new = [m for m in messages if _same_message(m) not in known]
        self.messages.extend(new)
        self.unsaved_messages.extend(new)
        visitor_wrote = [m.sent_at for m in new if m.role is MessageRole.VISITOR]
        if self.ticket_id is not None and visitor_wrote:
            self._announce_reply(max(visitor_wrote))
        return len(new)

    def add_later(self, messages: list[ConversationMessage]) -> int:
        """Later messages of the conversation, within the most it keeps (`Refused` past it)."""
        check_conversation_growth(len(self.messages), len(messages))
        return self.take(messages)

    def out(self) -> ConversationOut:
        return ConversationOut(
            id=self.conversation_id,
            assistant_id=self.assistant_id,
            messages=self.messages,
            ticket_id=self.ticket_id,
        )

    def _announce_reply(self, sent_at: datetime) -> None:
        self._send(
            INTAKE_CONVERSATIONS,
            EventEnvelope(
                type=ConversationEventType.VISITOR_REPLIED,
                source=SOURCE,
                workspace_id=self.workspace_id,
                subject=self.conversation_id,
                sequence=self._next_sequence(),
                actor=visitor_actor(self.assistant_id, self.conversation_id),
                data={"conversation_id": self.conversation_id, "sent_at": sent_at.isoformat()},
            ),
        )
