"""intake's widget listener on SQLite and PostgreSQL, through its real ASGI app: the CORS
preflight rule (a preflight carries no key), the listener's body limit, and the order of
the checks (a caller without the key learns nothing about the body)."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.intake.entrypoints.http_api import create_app
from services.intake.settings import IntakeSettings
from shared.contracts.widget import AssistantTicketSettings
from tests.integration.support import configure_assistant

SHOP = "https://shop.example"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "x-widget-key",
}


@pytest.fixture
async def widget_app(intake_url: str) -> AsyncIterator[FastAPI]:
    listeners = create_app(IntakeSettings(database_url=intake_url, widget_max_body_bytes=65_536))
    app = listeners[0].app
    yield app
    service = app.state.service
    await service.engine.dispose()
    await service.read_engine.dispose()


@pytest.fixture
async def client(widget_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=widget_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://widget") as client:
        yield client


async def configure(app: FastAPI, assistant: str, **settings: Any) -> str:
    _, key = await configure_assistant(
        app.state.service,
        assistant,
        AssistantTicketSettings(
            ticket_creation_enabled=True, require_contact_info=False, **settings
        ),
    )
    return key


async def test_a_preflight_from_an_origin_no_assistant_accepts_is_refused(
    widget_app: FastAPI, client: httpx.AsyncClient
) -> None:
    await configure(widget_app, "asst-listed", allowed_origins=[SHOP])

    evil = await client.options(
        "/widget/v1/ticket-requests", headers={"Origin": "https://evil.example", **PREFLIGHT}
    )
    shop = await client.options("/widget/v1/ticket-requests", headers={"Origin": SHOP, **PREFLIGHT})

    assert evil.status_code == 403, evil.text
    assert evil.json()["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in evil.headers
    assert shop.status_code == 204
    assert shop.headers["access-control-allow-origin"] == SHOP
    assert "X-Widget-Key" in shop.headers["access-control-allow-headers"]

    # An assistant that lists no origins accepts pages of any origin: its widget's preflight
    # must pass, and the call that follows is checked against its own assistant's list.
    await configure(widget_app, "asst-open")
    anywhere = await client.options(
        "/widget/v1/ticket-requests", headers={"Origin": "https://evil.example", **PREFLIGHT}
    )
    assert anywhere.status_code == 204


async def test_the_widget_listener_refuses_a_large_body_before_anything_else(
    widget_app: FastAPI, client: httpx.AsyncClient
) -> None:
    key = await configure(widget_app, "asst-1")

    too_large = await client.post(
        "/widget/v1/ticket-requests",
        content=b'{"request_id": "' + b"x" * 70_000 + b'"}',
        headers={"Content-Type": "application/json", "X-Widget-Key": key},
    )
    without_key = await client.post(
        "/widget/v1/ticket-requests", json={"request_id": "r" * 1000, "assistant_id": 5}
    )

    assert too_large.status_code == 413
    assert too_large.json()["code"] == "body_too_large"
    # No key: refused before the body's fields are looked at.
    assert without_key.status_code == 401
    assert without_key.json()["code"] == "invalid_widget_key"
    assert "errors" not in without_key.json()


async def test_the_widget_listener_serves_no_internal_route(
    widget_app: FastAPI, client: httpx.AsyncClient
) -> None:
    await configure(widget_app, "asst-1")
    for path in ("/internal/v1/assistants/asst-1/ticket-settings", "/api/v1/assistants/asst-1"):
        assert (await client.get(path)).status_code == 404
