"""Tickets, their notes, conversation links and history: owned by ticket-core, the history by
activity-log."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request

from shared.contracts.api import (
    IDEMPOTENCY_KEY_MAX_LENGTH,
    ActivityPage,
    ConversationLink,
    Note,
    NoteCreate,
    Ticket,
    TicketCounts,
    TicketCreate,
    TicketPage,
    TicketPatch,
)
from shared.contracts.formats import IF_MATCH_MAX_LENGTH, ConversationIdText, IfMatchText
from shared.contracts.queries import ActivityQuery, TicketFilters, TicketQuery
from shared.problems import problem_responses

from ..auth import CurrentCaller
from ..forwarding import (
    AUTHENTICATED,
    CHANGE_REFUSALS,
    PRINTABLE_ASCII,
    ForwardTo,
    forward,
    forwarding_router,
    operation_id,
)

TICKET = {"ticket_id": UUID}
to_ticket_core = ForwardTo(
    "ticket_core",
    path_params={**TICKET, "conversation_id": ConversationIdText},
    versioned=Ticket,
)
to_activity_log = ForwardTo("activity_log", path_params=TICKET)

IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=IDEMPOTENCY_KEY_MAX_LENGTH,
        pattern=PRINTABLE_ASCII,
        description="Retrying with the same key creates nothing more.",
    ),
]
IfMatch = Annotated[
    IfMatchText | None,
    Header(
        max_length=IF_MATCH_MAX_LENGTH,
        description="The ETag you read; 412 if the ticket changed since.",
    ),
]


def _next(name: str, method: str, path: str, description: str) -> dict[str, Any]:
    """A link from a ticket in an answer to a route of that ticket."""
    return {
        "operationId": operation_id(name, method, path),
        "parameters": {"ticket_id": "$response.body#/id"},
        "description": description,
    }


CREATED_TICKET_LINKS = {
    "GetTicket": _next("get_ticket", "GET", "/tickets/{ticket_id}", "Read the new ticket."),
    "UpdateTicket": _next("update_ticket", "PATCH", "/tickets/{ticket_id}", "Change it."),
    "AddNote": _next("add_note", "POST", "/tickets/{ticket_id}/notes", "Add a note to it."),
    "LinkConversation": _next(
        "link_conversation", "POST", "/tickets/{ticket_id}/conversations", "Link a conversation."
    ),
    "TicketActivity": _next(
        "ticket_activity", "GET", "/tickets/{ticket_id}/activity", "Read its history."
    ),
    "DeleteTicket": _next("delete_ticket", "DELETE", "/tickets/{ticket_id}", "Delete it."),
}

LINKED_CONVERSATION_LINKS = {
    "GetConversation": {
        "operationId": operation_id("get_conversation", "GET", "/conversations/{conversation_id}"),
        "parameters": {"conversation_id": "$request.body#/conversation_id"},
        "description": "Read the conversation just linked.",
    },
    "UnlinkConversation": {
        "operationId": operation_id(
            "unlink_conversation", "DELETE", "/tickets/{ticket_id}/conversations/{conversation_id}"
        ),
        "parameters": {
            "ticket_id": "$response.body#/id",
            "conversation_id": "$request.body#/conversation_id",
        },
        "description": "Unlink it again.",
    },
}
DELETED_TICKET_LINKS = {
    "DeletedTicketActivity": {
        "operationId": operation_id(
            "deleted_ticket_activity", "GET", "/deleted-tickets/{ticket_id}/activity"
        ),
        "parameters": {"ticket_id": "$request.path.ticket_id"},
        "description": "Read the deleted ticket's history.",
    }
}

TICKET_ROUTES = [
    to_ticket_core.post(
        "/tickets",
        "create_ticket",
        summary="Create a ticket",
        status_code=201,
        response_model=Ticket,
        refusals=(403, 409),
        body=TicketCreate,
        body_dump={"mode": "json", "exclude_none": True},
        headers={"idempotency_key": IdempotencyKey},
        location=True,
        links=CREATED_TICKET_LINKS,
    ),
    to_ticket_core.get(
        "/tickets",
        "list_tickets",
        summary="List and search tickets",
        description="Without `status`, closed and spam tickets are hidden; `hidden_matches` "
        "says how many tickets matching the other filters the status filter hid.",
        response_model=TicketPage,
        query=TicketQuery,
    ),
    to_ticket_core.get(
        "/ticket-counts",
        "count_tickets",
        summary="Tickets per status, for the dashboard's tabs",
        description="Counts every status, closed and spam included, of the tickets matching "
        "the other filters.",
        response_model=TicketCounts,
        query=TicketFilters,
    ),
    to_ticket_core.get(
        "/tickets/{ticket_id}",
        "get_ticket",
        summary="One ticket",
        response_model=Ticket,
        refusals=(404,),
    ),
    to_ticket_core.patch(
        "/tickets/{ticket_id}",
        "update_ticket",
        summary="Change subject, description, priority, status or assignee",
        response_model=Ticket,
        refusals=(*CHANGE_REFUSALS, 412),
        body=TicketPatch,
        body_dump={"mode": "json", "exclude_unset": True},
        headers={"if_match": IfMatch},
    ),
    to_ticket_core.post(
        "/tickets/{ticket_id}/notes",
        "add_note",
        summary="Add an internal note",
        status_code=201,
        response_model=Note,
        refusals=CHANGE_REFUSALS,
        body=NoteCreate,
    ),
    to_ticket_core.post(
        "/tickets/{ticket_id}/conversations",
        "link_conversation",
        summary="Link a chat conversation",
        response_model=Ticket,
        refusals=CHANGE_REFUSALS,
        body=ConversationLink,
        links=LINKED_CONVERSATION_LINKS,
    ),
    to_ticket_core.delete(
        "/tickets/{ticket_id}/conversations/{conversation_id}",
        "unlink_conversation",
        summary="Unlink a chat conversation",
        response_model=Ticket,
        refusals=CHANGE_REFUSALS,
    ),
    to_ticket_core.delete(
        "/tickets/{ticket_id}",
        "delete_ticket",
        summary="Delete (owner/admin)",
        description="Its history stays, at `/deleted-tickets/{ticket_id}/activity`.",
        status_code=204,
        refusals=CHANGE_REFUSALS,
        links=DELETED_TICKET_LINKS,
    ),
    to_activity_log.get(
        "/deleted-tickets/{ticket_id}/activity",
        "deleted_ticket_activity",
        summary="A deleted ticket's history, oldest first",
        description="For roles that may read deleted history (owners and admins); 404 while "
        "the ticket is not deleted.",
        response_model=ActivityPage,
        refusals=(403, 404),
        query=ActivityQuery,
    ),
]


def ticket_routes() -> APIRouter:
    router = forwarding_router(TICKET_ROUTES, tag="tickets")

    @router.get(
        "/tickets/{ticket_id}/activity",
        response_model=ActivityPage,
        summary="A ticket's history, oldest first",
        description="Every role reads it, notes included. Once the ticket is deleted, its "
        "history is at `/deleted-tickets/{ticket_id}/activity`.",
        responses={**AUTHENTICATED, **problem_responses(404, 422)},
    )
    async def ticket_activity(
        ticket_id: UUID,
        caller: CurrentCaller,
        request: Request,
        query: Annotated[ActivityQuery, Query()],
    ) -> ActivityPage:
        # ticket-core owns which tickets exist in the workspace (activity-log may not have
        # heard of a ticket created a moment ago); activity-log owns the history.
        await forward(request.app.state.ticket_core, caller, "GET", f"/tickets/{ticket_id}")
        return ActivityPage.model_validate(
            await forward(
                request.app.state.activity_log,
                caller,
                "GET",
                f"/tickets/{ticket_id}/activity",
                params=query.model_dump(mode="json", exclude_none=True),
            )
        )

    return router
