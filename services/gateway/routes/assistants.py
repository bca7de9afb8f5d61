"""Assistants' ticket settings, widget credentials and diagnostics, and the conversations the
widget sent: owned by intake."""

from typing import Annotated

from fastapi import APIRouter, Path

from shared.contracts.conversation_ids import (
    CONVERSATION_ID_MAX_LENGTH,
    CONVERSATION_ID_PATTERN,
    CONVERSATION_ID_RULE,
)
from shared.contracts.queries import RefusalQuery, TicketRequestQuery
from shared.contracts.widget import (
    ASSISTANT_ID_MAX_LENGTH,
    ASSISTANTS_LISTED_MAX,
    AssistantSummary,
    AssistantTicketSettings,
    AssistantTicketSettingsOut,
    ConversationOut,
    IdentitySecretOut,
    RefusalCounts,
    TicketRequestRecord,
    WidgetKeyOut,
)

from ..forwarding import CHANGE_REFUSALS, ForwardTo, forwarding_router

ConversationId = Annotated[
    str,
    Path(
        max_length=CONVERSATION_ID_MAX_LENGTH,
        pattern=CONVERSATION_ID_PATTERN,
        description=f"The conversation's id: {CONVERSATION_ID_RULE}.",
    ),
]
to_intake = ForwardTo(
    "intake",
    path_params={
        "assistant_id": Annotated[str, Path(min_length=1, max_length=ASSISTANT_ID_MAX_LENGTH)],
        "conversation_id": ConversationId,
    },
)
# Every assistant route is the workspace's configuration: intake refuses it to others.
MANAGERS_ONLY = (403, 404)

ASSISTANT_ROUTES = [
    to_intake.get(
        "/assistants",
        "list_assistants",
        summary="The workspace's assistants with ticket settings, by id (owner/admin)",
        description=f"At most {ASSISTANTS_LISTED_MAX}; an assistant is listed once its "
        "ticket settings are saved.",
        response_model=list[AssistantSummary],
        refusals=(403,),
    ),
    to_intake.get(
        "/assistants/{assistant_id}/ticket-settings",
        "get_ticket_settings",
        summary="An assistant's ticket settings and their history (owner/admin)",
        response_model=AssistantTicketSettingsOut,
        refusals=MANAGERS_ONLY,
    ),
    to_intake.put(
        "/assistants/{assistant_id}/ticket-settings",
        "put_ticket_settings",
        summary="Turn widget ticket creation on or off, require contact info, allow origins, "
        "verify visitors (owner/admin)",
        description="The answer carries the assistant's publishable `widget_key`. An "
        "assistant id another workspace configured is refused with 409 `assistant_taken`.",
        response_model=AssistantTicketSettingsOut,
        refusals=CHANGE_REFUSALS,
        body=AssistantTicketSettings,
        body_dump={"exclude_none": True},
    ),
    to_intake.get(
        "/assistants/{assistant_id}/ticket-requests",
        "list_ticket_requests",
        summary="Recent widget requests with outcome and reason (owner/admin)",
        response_model=list[TicketRequestRecord],
        refusals=MANAGERS_ONLY,
        query=TicketRequestQuery,
    ),
    to_intake.post(
        "/assistants/{assistant_id}/widget-key",
        "replace_widget_key",
        summary="Replace the assistant's widget key; the old one is refused at once (owner/admin)",
        response_model=WidgetKeyOut,
        refusals=CHANGE_REFUSALS,
    ),
    to_intake.post(
        "/assistants/{assistant_id}/identity-secret",
        "replace_identity_secret",
        summary="Make a new identity secret, shown this once; the old one stops verifying "
        "(owner/admin)",
        description="With `identity_verification` on, the site's server sends "
        "`contact.signature` = lowercase hex HMAC-SHA256(identity_secret, email).",
        response_model=IdentitySecretOut,
        refusals=CHANGE_REFUSALS,
    ),
    to_intake.get(
        "/assistants/{assistant_id}/ticket-request-refusals",
        "ticket_request_refusals",
        summary="How many widget calls were refused, per reason and minute (owner/admin)",
        response_model=RefusalCounts,
        refusals=MANAGERS_ONLY,
        query=RefusalQuery,
    ),
    to_intake.get(
        "/conversations/{conversation_id}",
        "get_conversation",
        summary="A conversation's messages, as intake stored them",
        tags=("conversations",),
        response_model=ConversationOut,
        refusals=(404,),
    ),
]


def assistant_routes() -> APIRouter:
    return forwarding_router(ASSISTANT_ROUTES, tag="assistants")
