"""intake's internal API (`/internal/v1`: assistants' settings, diagnostics, conversations),
for the gateway only. It is served on the internal listener (`INTAKE_INTERNAL_HOST`/`_PORT`,
loopback by default), never on the widget's address. Every route takes its caller from the
verified internal credential (audience `intake`), never from a header; intake owns no members,
so it decides with the role the credential names."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request

from shared.contracts.api import Role
from shared.contracts.widget import (
    AssistantSettingsChange,
    AssistantTicketSettings,
    AssistantTicketSettingsOut,
    ConversationOut,
    RequestStatus,
    TicketRequestRecord,
)
from shared.internal_auth import Caller
from shared.problems import PROBLEM_RESPONSES

from .. import handlers
from ..bootstrap import Intake


def _service(request: Request) -> Intake:
    service: Intake = request.app.state.service
    return service


async def _workspace_of(caller: Caller) -> UUID:
    # Every route acts for a member: a credential that names none is refused here too.
    caller.require_member()
    return caller.workspace_id


async def _member_of(caller: Caller) -> UUID:
    return caller.require_member()[0]


async def _role_of(caller: Caller) -> Role:
    return caller.require_member()[1]


# All three come from the one verified credential of the call (FastAPI verifies it once).
WorkspaceId = Annotated[UUID, Depends(_workspace_of)]
MemberId = Annotated[UUID, Depends(_member_of)]
CallerRole = Annotated[Role, Depends(_role_of)]
AssistantId = Annotated[str, Path(min_length=1, max_length=100)]


def internal_routes() -> APIRouter:
    router = APIRouter(tags=["assistants"], responses=PROBLEM_RESPONSES)

    @router.get(
        "/assistants/{assistant_id}/ticket-settings", response_model=AssistantTicketSettingsOut
    )
    async def get_settings(
        assistant_id: AssistantId, workspace_id: WorkspaceId, role: CallerRole, request: Request
    ) -> AssistantTicketSettingsOut:
        settings, history = await handlers.get_settings(
            _service(request).reader(), workspace_id, role, assistant_id
        )
        return AssistantTicketSettingsOut(
            assistant_id=assistant_id,
            ticket_creation_enabled=settings.ticket_creation_enabled,
            require_contact_info=settings.require_contact_info,
            history=[AssistantSettingsChange.model_validate(dict(row)) for row in history],
        )

    @router.put(
        "/assistants/{assistant_id}/ticket-settings", response_model=AssistantTicketSettingsOut
    )
    async def put_settings(
        assistant_id: AssistantId,
        body: AssistantTicketSettings,
        workspace_id: WorkspaceId,
        member_id: MemberId,
        role: CallerRole,
        request: Request,
    ) -> AssistantTicketSettingsOut:
        service = _service(request)
        await handlers.put_settings(
            service.unit_of_work(), workspace_id, member_id, role, assistant_id, body
        )
        return await get_settings(assistant_id, workspace_id, role, request)

    @router.get(
        "/assistants/{assistant_id}/ticket-requests", response_model=list[TicketRequestRecord]
    )
    async def list_requests(
        assistant_id: AssistantId,
        workspace_id: WorkspaceId,
        role: CallerRole,
        request: Request,
        outcome: Annotated[RequestStatus | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[TicketRequestRecord]:
        return await handlers.list_requests(
            _service(request).reader(), workspace_id, role, assistant_id, outcome, limit
        )

    @router.get(
        "/conversations/{conversation_id}", response_model=ConversationOut, tags=["conversations"]
    )
    async def get_conversation(
        conversation_id: Annotated[str, Path(max_length=128)],
        workspace_id: WorkspaceId,
        request: Request,
    ) -> ConversationOut:
        return await handlers.get_conversation(
            _service(request).reader(), workspace_id, conversation_id
        )

    return router
