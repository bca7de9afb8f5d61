""" "Owner or admin" is defined once, in ticket-core's permission matrix; the other services
decide from the capabilities ticket-core derives from it."""

import pytest

from services.activity_log.domain.entries import may_read_history
from services.intake.domain.requests import NotAllowed, ensure_manages_settings
from services.ticket_core.domain.permissions import (
    CAPABILITY_ACTIONS,
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


def test_every_capability_stands_for_one_action_of_the_matrix() -> None:
    # Every capability of the contract is derived, and every action can be granted as one.
    assert set(CAPABILITY_ACTIONS) == set(Capability)
    assert set(CAPABILITY_ACTIONS.values()) == set(MATRIX)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("capability", list(Capability))
def test_a_role_has_a_capability_when_the_matrix_lets_it_act_on_any_ticket(
    role: Role, capability: Capability
) -> None:
    may_on_any_ticket = MATRIX[CAPABILITY_ACTIONS[capability]][role] is Scope.ANY
    assert (capability in capabilities_of(role)) == may_on_any_ticket


@pytest.mark.parametrize("role", list(Role))
def test_capabilities_come_in_the_contracts_order(role: Role) -> None:
    granted = capabilities_of(role)
    assert granted == [capability for capability in Capability if capability in granted]
