"""intake's internal API (`/internal/v1`: assistants' settings, diagnostics, conversations),
for the gateway only. It is served on the internal listener (`INTAKE_INTERNAL_HOST`/`_PORT`,
loopback by default), never on the widget's address. Every route takes its caller from the
verified internal credential (audience `intake`), never from a header; intake owns no members,
so it decides with the capabilities (from ticket-core's permission matrix) the credential
names."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request

from shared.contracts.api import Capability
from shared.contracts.conversation_ids import CONVERSATION_ID_MAX_LENGTH
from shared.contracts.widget import (
    ASSISTANT_ID_MAX_LENGTH,
    AssistantSettingsChange,
    AssistantSummary,
    AssistantTicketSettings,
    AssistantTicketSettingsOut,
    ConversationOut,
    IdentitySecretOut,
    RefusalCounts,
    RequestStatus,
    TicketRequestRecord,
    WidgetKeyOut,
)
from shared.internal_auth import Caller
from shared.problems import PROBLEM_RESPONSES, answer_as_problem

from .. import handlers
from ..bootstrap import Intake
from ..domain.assistants import Credential
from ..domain.requests import AssistantSettings

on_assistant_taken = answer_as_problem(409, "assistant_taken", "Assistant taken")
on_invalid_settings = answer_as_problem(422, "invalid_settings", "Invalid ticket settings")


def settings_out(settings: AssistantSettings, history: list[Any]) -> AssistantTicketSettingsOut:
    assert settings.widget_key is not None
    return AssistantTicketSettingsOut(
        assistant_id=settings.assistant_id,
        ticket_creation_enabled=settings.ticket_creation_enabled,
        require_contact_info=settings.require_contact_info,
        allowed_origins=list(settings.allowed_origins),
        identity_verification=settings.identity_verification,
        widget_key=settings.widget_key,
        identity_secret_set=settings.identity_secret is not None,
        history=[AssistantSettingsChange.model_validate(dict(row)) for row in history],
    )


def _service(request: Request) -> Intake:
    service: Intake = request.app.state.service
    return service


async def _workspace_of(caller: Caller) -> UUID:
    # Every route acts for a member: a credential that names none is refused here too.
    caller.require_member()
    return caller.workspace_id


async def _member_of(caller: Caller) -> UUID:
    return caller.require_member()[0]


async def _capabilities_of(caller: Caller) -> frozenset[Capability]:
    caller.require_member()
    return caller.capabilities


# All three come from the one verified credential of the call (FastAPI verifies it once).
WorkspaceId = Annotated[UUID, Depends(_workspace_of)]
MemberId = Annotated[UUID, Depends(_member_of)]
CallerCapabilities = Annotated[frozenset[Capability], Depends(_capabilities_of)]
AssistantId = Annotated[str, Path(min_length=1, max_length=ASSISTANT_ID_MAX_LENGTH)]


def internal_routes() -> APIRouter:
    router = APIRouter(tags=["assistants"], responses=PROBLEM_RESPONSES)
    router.add_api_route("/assistants", list_assistants, response_model=list[AssistantSummary])
    settings = "/assistants/{assistant_id}/ticket-settings"
    router.add_api_route(settings, get_settings, response_model=AssistantTicketSettingsOut)
    router.add_api_route(
        settings, put_settings, methods=["PUT"], response_model=AssistantTicketSettingsOut
    )
    router.add_api_route(
        "/assistants/{assistant_id}/ticket-requests",
        list_requests,
        response_model=list[TicketRequestRecord],
    )
    credentials: tuple[tuple[str, type[WidgetKeyOut | IdentitySecretOut], Credential], ...] = (
        ("widget-key", WidgetKeyOut, "widget_key"),
        ("identity-secret", IdentitySecretOut, "identity_secret"),
    )
    for path, answer, what in credentials:
        router.add_api_route(
            f"/assistants/{{assistant_id}}/{path}",
            _replacing(what, answer),
            methods=["POST"],
            response_model=answer,
            name=f"replace_{what}",
        )
    router.add_api_route(
        "/assistants/{assistant_id}/ticket-request-refusals",
        refusal_counts,
        response_model=RefusalCounts,
    )
    router.add_api_route(
        "/conversations/{conversation_id}",
        get_conversation,
        response_model=ConversationOut,
        tags=["conversations"],
    )
    return router


async def list_assistants(
    workspace_id: WorkspaceId, capabilities: CallerCapabilities, request: Request
) -> list[AssistantSummary]:
    listed = await handlers.list_assistants(_service(request).reader(), workspace_id, capabilities)
    return [
        AssistantSummary(
            assistant_id=settings.assistant_id,
            ticket_creation_enabled=settings.ticket_creation_enabled,
            require_contact_info=settings.require_contact_info,
            identity_verification=settings.identity_verification,
            allowed_origins=list(settings.allowed_origins),
        )
        for settings in listed
    ]


async def get_settings(
    assistant_id: AssistantId,
    workspace_id: WorkspaceId,
    capabilities: CallerCapabilities,
    request: Request,
) -> AssistantTicketSettingsOut:
    settings, history = await handlers.get_settings(
        _service(request).reader(), workspace_id, capabilities, assistant_id
    )
    return settings_out(settings, history)


async def put_settings(
    assistant_id: AssistantId,
    body: AssistantTicketSettings,
    workspace_id: WorkspaceId,
    member_id: MemberId,
    capabilities: CallerCapabilities,
    request: Request,
) -> AssistantTicketSettingsOut:
    await handlers.put_settings(
        _service(request).unit_of_work(), workspace_id, member_id, capabilities, assistant_id, body
    )
    return await get_settings(assistant_id, workspace_id, capabilities, request)


async def list_requests(
    assistant_id: AssistantId,
    workspace_id: WorkspaceId,
    capabilities: CallerCapabilities,
    request: Request,
    outcome: Annotated[RequestStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[TicketRequestRecord]:
    return await handlers.list_requests(
        _service(request).reader(), workspace_id, capabilities, assistant_id, outcome, limit
    )


def _replacing(
    what: Credential, answer: type[WidgetKeyOut | IdentitySecretOut]
) -> Callable[..., Awaitable[Any]]:
    """The route that makes a new widget key or identity secret (`what`, also the field of its
    answer) and shows it, this once."""

    async def replace_credential(
        assistant_id: AssistantId,
        workspace_id: WorkspaceId,
        member_id: MemberId,
        capabilities: CallerCapabilities,
        request: Request,
    ) -> Any:
        value = await handlers.replace_credential(
            _service(request).unit_of_work(),
            workspace_id,
            member_id,
            capabilities,
            assistant_id,
            what,
        )
        return answer.model_validate({"assistant_id": assistant_id, what: value})

    return replace_credential


async def refusal_counts(
    assistant_id: AssistantId,
    workspace_id: WorkspaceId,
    capabilities: CallerCapabilities,
    request: Request,
    minutes: Annotated[int, Query(ge=1, le=1440)] = 60,
) -> RefusalCounts:
    return await handlers.refusal_counts(
        _service(request).reader(), workspace_id, capabilities, assistant_id, minutes
    )


async def get_conversation(
    conversation_id: Annotated[str, Path(max_length=CONVERSATION_ID_MAX_LENGTH)],
    workspace_id: WorkspaceId,
    request: Request,
) -> ConversationOut:
    return await handlers.get_conversation(
        _service(request).reader(), workspace_id, conversation_id
    )
