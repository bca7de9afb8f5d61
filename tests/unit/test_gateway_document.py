"""The gateway's OpenAPI document, built in process from its route table: its links lead to
operations it has, and an unsupported method is answered with every method the path takes."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from services.gateway.entrypoints.http_api import create_app
from shared.contracts.api import TicketPatch


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app().openapi()


def test_every_link_leads_to_an_operation_of_the_document(document: dict[str, Any]) -> None:
    operation_ids = {
        operation["operationId"]
        for item in document["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    created = document["paths"]["/api/v1/tickets"]["post"]["responses"]["201"]
    links = created["links"]

    assert {link["operationId"] for link in links.values()} <= operation_ids
    assert {name for name in links} == {
        "GetTicket",
        "UpdateTicket",
        "AddNote",
        "LinkConversation",
        "TicketActivity",
        "DeleteTicket",
    }


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/v1/tickets", "GET, POST"),
        ("/api/v1/tickets/6f1c0e7e-1111-4222-8333-944455556666", "DELETE, GET, PATCH"),
        ("/api/v1/members/6f1c0e7e-1111-4222-8333-944455556666", "DELETE, GET, PATCH"),
        ("/api/v1/assistants/a1/ticket-settings", "GET, PUT"),
        ("/api/v1/workspace", "GET, PATCH"),
    ],
)
def test_an_unsupported_method_is_told_every_method_of_the_path(path: str, allowed: str) -> None:
    answer = TestClient(create_app()).options(path)

    assert answer.status_code == 405
    assert answer.headers["Allow"] == allowed


def test_the_document_states_what_the_api_refuses(document: dict[str, Any]) -> None:
    patch = document["components"]["schemas"]["TicketPatch"]["properties"]

    assert "null" not in str(patch["priority"])
    with pytest.raises(ValidationError, match="priority"):
        TicketPatch.model_validate({"priority": None})
