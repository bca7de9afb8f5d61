""" "Owner or admin" is defined once, in the contract, and every service answers from it."""

import pytest

from services.activity_log.domain.entries import may_read_history
from services.intake.domain.requests import NotAllowed, ensure_manages_settings
from services.ticket_core.domain.permissions import MATRIX, Action, Scope
from shared.contracts.api import MANAGER_ROLES, Role, is_manager


def test_owners_and_admins_are_the_managers() -> None:
    assert {Role.OWNER, Role.ADMIN} == MANAGER_ROLES
    assert [role for role in Role if is_manager(role)] == [Role.OWNER, Role.ADMIN]
    assert [
        value for value in ("owner", "admin", "member", "guest", "Owner") if is_manager(value)
    ] == [
        "owner",
        "admin",
    ]


@pytest.mark.parametrize("role", list(Role))
def test_every_service_asks_the_same_definition(role: Role) -> None:
    manager = role in MANAGER_ROLES

    ticket_core_configures = MATRIX[Action.CONFIGURE][role] is Scope.ANY
    try:
        ensure_manages_settings(role)
        intake_configures = True
    except NotAllowed:
        intake_configures = False
    activity_log_shows_deleted = may_read_history(role.value, deleted=True)

    assert ticket_core_configures == intake_configures == activity_log_shows_deleted == manager
