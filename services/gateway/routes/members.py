"""The workspace's settings and members: owned by ticket-core."""

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request

from shared.contracts.api import MemberCreate, MemberOut, MemberPatch, WorkspaceOut, WorkspacePatch

from ..auth import Caller, MembershipCache
from ..forwarding import CHANGE_REFUSALS, ForwardTo, forwarding_router

to_ticket_core = ForwardTo("ticket_core", path_params={"member_id": UUID})
to_ticket_core_workspace = ForwardTo("ticket_core", tags=("workspace",))


def _forget_member(request: Request, caller: Caller, values: dict[str, Any]) -> None:
    """This replica knows at once; the others when the member.* event reaches them."""
    memberships: MembershipCache = request.app.state.memberships
    memberships.forget(caller.workspace_id, values["member_id"])


MEMBER_ROUTES = [
    to_ticket_core_workspace.get(
        "/workspace", "get_workspace", summary="Settings", response_model=WorkspaceOut
    ),
    to_ticket_core_workspace.patch(
        "/workspace",
        "change_workspace",
        summary="Change settings (owner/admin)",
        response_model=WorkspaceOut,
        refusals=(403,),
        body=WorkspacePatch,
    ),
    to_ticket_core.get(
        "/members",
        "list_members",
        summary="The workspace's members",
        response_model=list[MemberOut],
    ),
    to_ticket_core.post(
        "/members",
        "add_member",
        summary="Add a member",
        status_code=201,
        response_model=MemberOut,
        refusals=(403, 409),
        body=MemberCreate,
    ),
    to_ticket_core.get(
        "/members/{member_id}",
        "get_member",
        summary="One member",
        response_model=MemberOut,
        refusals=(404,),
    ),
    to_ticket_core.patch(
        "/members/{member_id}",
        "change_role",
        summary="Change a role",
        response_model=MemberOut,
        refusals=CHANGE_REFUSALS,
        body=MemberPatch,
        after=_forget_member,
    ),
    to_ticket_core.delete(
        "/members/{member_id}",
        "remove_member",
        summary="Remove a member",
        status_code=204,
        refusals=CHANGE_REFUSALS,
        after=_forget_member,
    ),
]


def member_routes() -> APIRouter:
    return forwarding_router(MEMBER_ROUTES, tag="members")
