"""Assistants' ticket settings, widget credentials and diagnostics, and the conversations the
widget sent: owned by intake."""

from typing import Annotated

from fastapi import APIRouter, Path

from shared.contracts.conversation_ids import CONVERSATION_ID_PATTERN, CONVERSATION_ID_RULE
from shared.contracts.queries import RefusalQuery, TicketRequestQuery
from shared.contracts.widget import (
    AssistantTicketSettings,
    AssistantTicketSettingsOut,
    ConversationOut,
    IdentitySecretOut,
    RefusalCounts,
    TicketRequestRecord,
    WidgetKeyOut,
)

from ..forwarding import WITH_BODY, Forward, forwarding_router

ASSISTANT = {"assistant_id": Annotated[str, Path(min_length=1, max_length=100)]}
ConversationId = Annotated[
    str,
    Path(
        max_length=128,
        pattern=CONVERSATION_ID_PATTERN,
        description=f"The conversation's id: {CONVERSATION_ID_RULE}.",
    ),
]
# Every assistant route is the workspace's configuration: intake refuses it to others.
MANAGERS_ONLY = (403, 404, 422)

ASSISTANT_ROUTES = [
    Forward(
        name="get_ticket_settings",
        method="GET",
        path="/assistants/{assistant_id}/ticket-settings",
        upstream="intake",
        summary="An assistant's ticket settings and their history (owner/admin)",
        response_model=AssistantTicketSettingsOut,
        refusals=MANAGERS_ONLY,
        path_params=ASSISTANT,
    ),
    Forward(
        name="put_ticket_settings",
        method="PUT",
        path="/assistants/{assistant_id}/ticket-settings",
        upstream="intake",
        summary="Turn widget ticket creation on or off, require contact info, allow origins, "
        "verify visitors (owner/admin)",
        description="The answer carries the assistant's publishable `widget_key`. An "
        "assistant id another workspace configured is refused with 409 `assistant_taken`.",
        response_model=AssistantTicketSettingsOut,
        refusals=(403, 404, 409, *WITH_BODY),
        path_params=ASSISTANT,
        body=AssistantTicketSettings,
        body_dump={"exclude_none": True},
    ),
    Forward(
        name="list_ticket_requests",
        method="GET",
        path="/assistants/{assistant_id}/ticket-requests",
        upstream="intake",
        summary="Recent widget requests with outcome and reason (owner/admin)",
        response_model=list[TicketRequestRecord],
        refusals=MANAGERS_ONLY,
        path_params=ASSISTANT,
        query=TicketRequestQuery,
    ),
    Forward(
        name="replace_widget_key",
        method="POST",
        path="/assistants/{assistant_id}/widget-key",
        upstream="intake",
        summary="Replace the assistant's widget key; the old one is refused at once (owner/admin)",
        response_model=WidgetKeyOut,
        refusals=(403, 404, 409, 422),
        path_params=ASSISTANT,
    ),
    Forward(
        name="replace_identity_secret",
        method="POST",
        path="/assistants/{assistant_id}/identity-secret",
        upstream="intake",
        summary="Make a new identity secret, shown this once; the old one stops verifying "
        "(owner/admin)",
        description="With `identity_verification` on, the site's server sends "
        "`contact.signature` = lowercase hex HMAC-SHA256(identity_secret, email).",
        response_model=IdentitySecretOut,
        refusals=(403, 404, 409, 422),
        path_params=ASSISTANT,
    ),
    Forward(
        name="ticket_request_refusals",
        method="GET",
        path="/assistants/{assistant_id}/ticket-request-refusals",
        upstream="intake",
        summary="How many widget calls were refused, per reason and minute (owner/admin)",
        response_model=RefusalCounts,
        refusals=MANAGERS_ONLY,
        path_params=ASSISTANT,
        query=RefusalQuery,
    ),
    Forward(
        name="get_conversation",
        method="GET",
        path="/conversations/{conversation_id}",
        upstream="intake",
        summary="A conversation's messages, as intake stored them",
        tags=("conversations",),
        response_model=ConversationOut,
        refusals=(404, 422),
        path_params={"conversation_id": ConversationId},
    ),
]


def assistant_routes() -> APIRouter:
    return forwarding_router(ASSISTANT_ROUTES, tag="assistants")
