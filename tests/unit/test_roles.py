""" "Owner or admin" is defined once, in ticket-core's permission matrix; the other services
decide from the capabilities ticket-core derives from it."""

import pytest

from services.activity_log.domain.entries import may_read_history
from services.intake.domain.requests import NotAllowed, ensure_manages_settings
from services.ticket_core.domain.permissions import (
    MANAGER_ROLES,
    MATRIX,
    Action,
    Scope,
    capabilities_of,
)
from shared.contracts.api import Capability, Role


def test_owners_and_admins_are_the_managers() -> None:
    assert {Role.OWNER, Role.ADMIN} == MANAGER_ROLES
    assert [role for role in Role if Capability.CONFIGURE_SETTINGS in capabilities_of(role)] == [
        Role.OWNER,
        Role.ADMIN,
    ]


@pytest.mark.parametrize("role", list(Role))
def test_every_service_asks_the_same_definition(role: Role) -> None:
    manager = role in MANAGER_ROLES
    capabilities = capabilities_of(role)

    ticket_core_configures = MATRIX[Action.CONFIGURE][role] is Scope.ANY
    try:
        ensure_manages_settings(capabilities)
        intake_configures = True
    except NotAllowed:
        intake_configures = False
    activity_log_shows_deleted = may_read_history(capabilities, deleted=True)

    assert ticket_core_configures == intake_configures == activity_log_shows_deleted == manager
    assert may_read_history(capabilities, deleted=False)


@pytest.mark.parametrize("role", list(Role))
def test_a_capability_is_an_action_the_role_may_do_on_any_ticket(role: Role) -> None:
    expected = {
        Capability.VIEW_TICKETS: Action.VIEW,
        Capability.CREATE_TICKETS: Action.CREATE,
        Capability.EDIT_TICKETS: Action.EDIT,
        Capability.ADD_NOTES: Action.ADD_NOTE,
        Capability.LINK_CONVERSATIONS: Action.LINK_CONVERSATION,
        Capability.CHANGE_STATUS: Action.CHANGE_STATUS,
        Capability.ASSIGN_TICKETS: Action.ASSIGN,
        Capability.CLOSE_TICKETS: Action.CLOSE,
        Capability.MARK_SPAM: Action.MARK_SPAM,
        Capability.DELETE_TICKETS: Action.DELETE,
        Capability.READ_DELETED_HISTORY: Action.DELETE,
        Capability.CONFIGURE_SETTINGS: Action.CONFIGURE,
        Capability.MANAGE_MEMBERS: Action.MANAGE_MEMBERS,
    }
    assert set(expected) == set(Capability)
    assert set(capabilities_of(role)) == {
        capability for capability, action in expected.items() if MATRIX[action][role] is Scope.ANY
    }
