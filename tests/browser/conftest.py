"""Browser tests: Debian's Chromium, driven by Playwright, uses the dashboard and the widget
of a real system — the four services as processes, on the real Kafka broker, on SQLite (the
API's behaviour on PostgreSQL is the e2e tests' job). One system serves every browser test.

Nothing is faked: the pages talk to the gateway and to intake's widget address exactly as a
browser on a team's machine or on a visitor's does. The dashboard must be built
(`make test` builds it; `cd dashboard && npm ci && npm run build` by hand).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from services.local_run import RunningSystem
from shared.contracts.topics import TICKET_EVENTS
from tests.e2e.conftest import System, Workspace, free_port, migrate, plan_on_free_ports
from tests.support.credentials import strong_secrets
from tests.support.infrastructure import REPO_ROOT
from tests.support.kafka_reader import start_group_at_end, start_service_groups_at_end

pytestmark = pytest.mark.e2e

DIST = REPO_ROOT / "dashboard" / "dist"
AXE = REPO_ROOT / "dashboard" / "node_modules" / "axe-core" / "axe.min.js"


def chromium_path() -> str:
    """Debian's Chromium; installed here when missing (CI starts on a fresh machine)."""
    found = shutil.which("chromium")
    if found is None and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "chromium"], check=True, capture_output=True
        )
        found = shutil.which("chromium")
    assert found is not None, "Chromium is missing: apt-get install -y chromium (as root)"
    return found


@pytest.fixture(scope="package")
def system(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    assert (DIST / "index.html").is_file(), "build the dashboard first: make dashboard"
    tmp = tmp_path_factory.mktemp("browser-system")
    urls = {
        name: f"sqlite+aiosqlite:///{tmp / name.lower()}.db"
        for name in ("TICKET_CORE", "ACTIVITY_LOG", "INTAKE")
    }
    group = f"browser-{uuid4().hex[:8]}"
    asyncio.run(start_group_at_end(kafka, group, TICKET_EVENTS))
    asyncio.run(start_service_groups_at_end(kafka, group))
    gateway_port = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        **strong_secrets(),
        "HELPDESK_ENV": "production",
        "ACTIVITY_LOG_CONSUMER_GROUP": group,
        "TICKET_CORE_CONSUMER_GROUP": group,
        "INTAKE_CONSUMER_GROUP": group,
        "GATEWAY_STREAM_HEARTBEAT_SECONDS": "1",
        "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{gateway_port}",
        **{f"{name}_DATABASE_URL": url for name, url in urls.items()},
    }
    plan = plan_on_free_ports(urls, env, gateway_port=gateway_port)
    migrate(env)
    with RunningSystem(plan, tmp / "logs").start() as running:
        yield System(kind="sqlite", running=running, env=env, kafka=kafka)


@pytest.fixture(scope="package")
def playwright(system: System) -> Iterator[Playwright]:
    # After the system: Playwright's driver keeps an event loop running in this thread, and
    # the system's set-up runs its own (asyncio.run) before that.
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # bypass_csp: only so that the test can inject axe-core; the pages' own scripts keep to
    # the policy (a violation would show in the console check below).
    context = browser.new_context(bypass_csp=True)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == [], f"the page threw: {errors}"


class Api:
    """The dashboard API as a test's own client: arranging what a test then looks at."""

    def __init__(self, system: System, member: Workspace) -> None:
        self.client = httpx.Client(base_url=system.gateway, headers=member.auth, timeout=15.0)

    def post(self, path: str, body: dict[str, Any], **headers: str) -> dict[str, Any]:
        answer = self.client.post(path, json=body, headers=headers)
        assert answer.status_code in (200, 201), answer.text
        return dict(answer.json())

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.client.put(path, json=body)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def patch_ticket(self, ticket: dict[str, Any], **changes: Any) -> dict[str, Any]:
        answer = self.client.patch(f"/api/v1/tickets/{ticket['id']}", json=changes)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


@pytest.fixture(scope="module")
def owner(system: System, request: pytest.FixtureRequest) -> Workspace:
    """A workspace of each test module's own, and its founding owner."""
    return system.create_workspace(f"Team of {request.module.__name__.rsplit('.', 1)[-1]}")


@pytest.fixture(scope="module")
def api(system: System, owner: Workspace) -> Api:
    return Api(system, owner)


def login_url(system: System, member: Workspace) -> str:
    """What `helpdesk login` prints for this member."""
    printed = system.helpdesk(
        "login", "--workspace", member.workspace_id, "--member", member.member_id
    )
    assert printed.returncode == 0, printed.stderr
    line = printed.stdout.strip()
    assert line.startswith("login_url="), line
    return line.removeprefix("login_url=")


def hire(system: System, api: Api, boss: Workspace, role: str) -> Workspace:
    added = api.post(
        "/api/v1/members", {"email": f"{role}-{uuid4().hex[:8]}@acme.io", "role": role}
    )
    token = system.helpdesk("token", "--workspace", boss.workspace_id, "--member", added["id"])
    assert token.returncode == 0, token.stderr
    return Workspace(boss.workspace_id, added["id"], token.stdout.strip())


def sign_in(page: Page, system: System, member: Workspace) -> None:
    page.goto(login_url(system, member))
    page.get_by_role("button", name="Sign out").wait_for()


def check_accessibility(page: Page, what: str) -> None:
    """axe-core (from the npm registry, locked in package-lock.json): no serious or critical
    violation on the page as it is now."""
    assert AXE.is_file(), "axe-core is missing: cd dashboard && npm ci"
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => JSON.stringify(await axe.run(document))")
    violations = [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
        for v in json.loads(result)["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert violations == [], f"{what}: {violations}"


SCREENSHOTS = (
    Path(os.environ.get("HELPDESK_SCREENSHOTS", ""))
    if os.environ.get("HELPDESK_SCREENSHOTS")
    else None
)


def screenshot(page: Page, name: str) -> None:
    """With HELPDESK_SCREENSHOTS=docs/screenshots, keeps a picture of the page for the README."""
    if SCREENSHOTS is not None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
