"""Commands to ticket-core on `ticket.commands.v1`, and its replies on
`ticket.command-results.v1`. Both travel in the standard envelope: a command's envelope `id`
is the command id (ticket-core runs a command id once), its `subject` the conversation id;
a reply's `subject` is the command id it answers, and its `causation_id` too."""

from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from .conversation_ids import BoundedConversationId
from .envelope import TYPE_MAX_LENGTH
from .tickets import DESCRIPTION_MAX_LENGTH, SUBJECT_MAX_LENGTH, TicketPriority

REASON_MAX_LENGTH = 100
DETAIL_MAX_LENGTH = 2_000


class CommandType(StrEnum):
    CREATE_FROM_CONVERSATION = "ticket.create_from_conversation"


class CommandResultType(StrEnum):
    RESULT = "ticket.command_result"


class CreateFromConversation(BaseModel):
    """`data` of `ticket.create_from_conversation`: the ticket is linked to the conversation."""

    model_config = ConfigDict(extra="ignore")

    conversation_id: BoundedConversationId = Field(examples=["conv_8f2a1c"])
    subject: str = Field(min_length=1, max_length=SUBJECT_MAX_LENGTH)
    description: str = Field(default="", max_length=DESCRIPTION_MAX_LENGTH)
    priority: TicketPriority | None = None


class CommandOutcome(StrEnum):
    CREATED = "created"
    ALREADY_LINKED = "already_linked"  # the conversation has a ticket: that one is the answer
    REJECTED = "rejected"


class CommandResult(BaseModel):
    """`data` of `ticket.command_result`."""

    command_id: UUID
    command_type: str = Field(min_length=1, max_length=TYPE_MAX_LENGTH)
    outcome: CommandOutcome
    ticket_id: UUID | None = None
    ticket_number: int | None = Field(default=None, ge=1, le=2**63 - 1)
    reason: str | None = Field(
        default=None, max_length=REASON_MAX_LENGTH, description="Stable code when rejected."
    )
    detail: str | None = Field(default=None, max_length=DETAIL_MAX_LENGTH)
