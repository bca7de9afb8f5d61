"""Conversation events from intake on `intake.conversations.v1`, keyed by conversation id."""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from .conversation_ids import BoundedConversationId


class ConversationEventType(StrEnum):
    VISITOR_REPLIED = "conversation.visitor_replied"


class VisitorReplied(BaseModel):
    """`data` of `conversation.visitor_replied`: the visitor wrote on this conversation again."""

    model_config = ConfigDict(extra="ignore")

    conversation_id: BoundedConversationId
    sent_at: datetime
