"""Every listener has a body limit, and internal listeners bind loopback unless told otherwise."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic_settings import BaseSettings

from services.activity_log.settings import ActivityLogSettings
from services.gateway.settings import GatewaySettings
from services.intake.settings import IntakeSettings
from services.ticket_core.settings import TicketCoreSettings
from shared.http import create_service_app
from shared.settings import ServiceSettings

LOOPBACK = "127.0.0.1"


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults, whatever this shell sets."""
    import os

    for name in list(os.environ):
        if name.startswith(("TICKET_CORE_", "ACTIVITY_LOG_", "INTAKE_", "GATEWAY_")):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize(
    ("settings", "field"),
    [
        (TicketCoreSettings, "http_host"),
        (ActivityLogSettings, "http_host"),
        (IntakeSettings, "internal_host"),
        (IntakeSettings, "http_host"),  # the widget's address too, until it is opened on purpose
        (GatewaySettings, "http_host"),
    ],
)
def test_listeners_bind_loopback_by_default(settings: type[BaseSettings], field: str) -> None:
    assert getattr(settings(), field) == LOOPBACK
    if settings is not GatewaySettings:
        description = settings.model_fields[field].description or ""
        assert "loopback by default" in description


@pytest.mark.usefixtures("clean_environment")
def test_the_gateway_calls_intake_on_its_internal_listener_not_the_widget_address() -> None:
    intake = IntakeSettings()
    assert GatewaySettings().intake_url == f"http://{LOOPBACK}:{intake.internal_port}"
    assert intake.internal_port != intake.http_port


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize("settings", [TicketCoreSettings, ActivityLogSettings, IntakeSettings])
def test_internal_listeners_have_a_one_mib_body_limit_by_default(
    settings: type[ServiceSettings],
) -> None:
    assert settings().max_body_bytes == 1_048_576


@asynccontextmanager
async def _no_lifespan(_app: FastAPI) -> AsyncIterator[None]:
    yield


def _app(max_body_bytes: int) -> FastAPI:
    app = create_service_app(
        title="t", description="d", lifespan=_no_lifespan, max_body_bytes=max_body_bytes
    )

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    return app


def test_a_service_app_cannot_be_made_without_a_body_limit() -> None:
    make: Any = create_service_app
    with pytest.raises(TypeError, match="max_body_bytes"):
        make(title="t", description="d", lifespan=_no_lifespan)


async def test_a_service_app_refuses_a_body_over_its_limit_with_413() -> None:
    transport = httpx.ASGITransport(app=_app(max_body_bytes=10))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        refused = await client.post("/echo", content=b"x" * 11)
        assert refused.status_code == 413
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "body_too_large"
        assert "10 bytes" in refused.json()["detail"]
        assert refused.headers["x-request-id"]

        # A body sent in chunks without a declared length is cut off as it arrives.
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield b"xxxx"

        streamed = await client.post("/echo", content=chunks())
        assert streamed.status_code == 413

        accepted = await client.post("/echo", content=b"x" * 10)
        assert accepted.status_code == 200
        assert accepted.json() == {"received": 10}
