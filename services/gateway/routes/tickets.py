"""Tickets, their notes, conversation links and history: owned by ticket-core, the history by
activity-log."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request

from shared.contracts.api import (
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
from shared.contracts.formats import ConversationIdText, IfMatchText
from shared.contracts.queries import ActivityQuery, TicketFilters, TicketQuery
from shared.problems import problem_responses

from ..auth import CurrentCaller
from ..forwarding import (
    AUTHENTICATED,
    PRINTABLE_ASCII,
    WITH_BODY,
    Forward,
    forward,
    forwarding_router,
    operation_id,
)

TICKET = {"ticket_id": UUID}

IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=200,
        pattern=PRINTABLE_ASCII,
        description="Retrying with the same key creates nothing more.",
    ),
]
IfMatch = Annotated[
    IfMatchText | None,
    Header(
        max_length=200,
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
    Forward(
        name="create_ticket",
        method="POST",
        path="/tickets",
        upstream="ticket_core",
        summary="Create a ticket",
        status_code=201,
        response_model=Ticket,
        refusals=(403, 409, *WITH_BODY),
        body=TicketCreate,
        body_dump={"mode": "json", "exclude_none": True},
        headers={"idempotency_key": IdempotencyKey},
        etag=True,
        location=True,
        links=CREATED_TICKET_LINKS,
    ),
    Forward(
        name="list_tickets",
        method="GET",
        path="/tickets",
        upstream="ticket_core",
        summary="List and search tickets",
        description="Without `status`, closed and spam tickets are hidden; `hidden_matches` "
        "says how many tickets matching the other filters the status filter hid.",
        response_model=TicketPage,
        refusals=(422,),
        query=TicketQuery,
    ),
    Forward(
        name="count_tickets",
        method="GET",
        path="/ticket-counts",
        upstream="ticket_core",
        summary="Tickets per status, for the dashboard's tabs",
        description="Counts every status, closed and spam included, of the tickets matching "
        "the other filters.",
        response_model=TicketCounts,
        refusals=(422,),
        query=TicketFilters,
    ),
    Forward(
        name="get_ticket",
        method="GET",
        path="/tickets/{ticket_id}",
        upstream="ticket_core",
        summary="One ticket",
        response_model=Ticket,
        refusals=(404, 422),
        path_params=TICKET,
        etag=True,
    ),
    Forward(
        name="update_ticket",
        method="PATCH",
        path="/tickets/{ticket_id}",
        upstream="ticket_core",
        summary="Change subject, description, priority, status or assignee",
        response_model=Ticket,
        refusals=(403, 404, 409, 412, *WITH_BODY),
        path_params=TICKET,
        body=TicketPatch,
        body_dump={"mode": "json", "exclude_unset": True},
        headers={"if_match": IfMatch},
        etag=True,
    ),
    Forward(
        name="add_note",
        method="POST",
        path="/tickets/{ticket_id}/notes",
        upstream="ticket_core",
        summary="Add an internal note",
        status_code=201,
        response_model=Note,
        refusals=(403, 404, 409, *WITH_BODY),
        path_params=TICKET,
        body=NoteCreate,
    ),
    Forward(
        name="link_conversation",
        method="POST",
        path="/tickets/{ticket_id}/conversations",
        upstream="ticket_core",
        summary="Link a chat conversation",
        response_model=Ticket,
        refusals=(403, 404, 409, *WITH_BODY),
        path_params=TICKET,
        body=ConversationLink,
        etag=True,
        links=LINKED_CONVERSATION_LINKS,
    ),
    Forward(
        name="unlink_conversation",
        method="DELETE",
        path="/tickets/{ticket_id}/conversations/{conversation_id}",
        upstream="ticket_core",
        summary="Unlink a chat conversation",
        response_model=Ticket,
        refusals=(403, 404, 409, 422),
        path_params={**TICKET, "conversation_id": ConversationIdText},
        etag=True,
    ),
    Forward(
        name="delete_ticket",
        method="DELETE",
        path="/tickets/{ticket_id}",
        upstream="ticket_core",
        summary="Delete (owner/admin)",
        description="Its history stays, at `/deleted-tickets/{ticket_id}/activity`.",
        status_code=204,
        refusals=(403, 404, 409, 422),
        path_params=TICKET,
        links=DELETED_TICKET_LINKS,
    ),
    Forward(
        name="deleted_ticket_activity",
        method="GET",
        path="/deleted-tickets/{ticket_id}/activity",
        upstream="activity_log",
        summary="A deleted ticket's history, oldest first",
        description="For roles that may read deleted history (owners and admins); 404 while "
        "the ticket is not deleted.",
        response_model=ActivityPage,
        refusals=(403, 404, 422),
        path_params=TICKET,
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
