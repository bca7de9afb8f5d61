"""The workspace's settings and members: owned by ticket-core."""

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request

from shared.contracts.api import MemberCreate, MemberOut, MemberPatch, WorkspaceOut, WorkspacePatch

from ..auth import Caller, MembershipCache
from ..forwarding import WITH_BODY, Forward, forwarding_router

MEMBER = {"member_id": UUID}


def _forget_member(request: Request, caller: Caller, values: dict[str, Any]) -> None:
    """This replica knows at once; the others when the member.* event reaches them."""
    memberships: MembershipCache = request.app.state.memberships
    memberships.forget(caller.workspace_id, values["member_id"])


MEMBER_ROUTES = [
    Forward(
        name="get_workspace",
        method="GET",
        path="/workspace",
        upstream="ticket_core",
        summary="Settings",
        tags=("workspace",),
        response_model=WorkspaceOut,
    ),
    Forward(
        name="change_workspace",
        method="PATCH",
        path="/workspace",
        upstream="ticket_core",
        summary="Change settings (owner/admin)",
        tags=("workspace",),
        response_model=WorkspaceOut,
        refusals=(403, *WITH_BODY),
        body=WorkspacePatch,
    ),
    Forward(
        name="list_members",
        method="GET",
        path="/members",
        upstream="ticket_core",
        summary="The workspace's members",
        response_model=list[MemberOut],
    ),
    Forward(
        name="add_member",
        method="POST",
        path="/members",
        upstream="ticket_core",
        summary="Add a member",
        status_code=201,
        response_model=MemberOut,
        refusals=(403, 409, *WITH_BODY),
        body=MemberCreate,
    ),
    Forward(
        name="get_member",
        method="GET",
        path="/members/{member_id}",
        upstream="ticket_core",
        summary="One member",
        response_model=MemberOut,
        refusals=(404, 422),
        path_params=MEMBER,
    ),
    Forward(
        name="change_role",
        method="PATCH",
        path="/members/{member_id}",
        upstream="ticket_core",
        summary="Change a role",
        response_model=MemberOut,
        refusals=(403, 404, 409, *WITH_BODY),
        path_params=MEMBER,
        body=MemberPatch,
        after=_forget_member,
    ),
    Forward(
        name="remove_member",
        method="DELETE",
        path="/members/{member_id}",
        upstream="ticket_core",
        summary="Remove a member",
        status_code=204,
        refusals=(403, 404, 409, 422),
        path_params=MEMBER,
        after=_forget_member,
    ),
]


def member_routes() -> APIRouter:
    return forwarding_router(MEMBER_ROUTES, tag="members")
