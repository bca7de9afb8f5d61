"""Internal APIs are internal (issue 11, item 1), through the real processes.

Every internal route of every service is taken from that listener's own `/openapi.json`, so a
route added later is covered without editing this file. Each is called with its path filled
with real ids of a real workspace (a ticket with a note and a linked conversation, a member,
an assistant with saved settings) and a body that would change something, and with each way
of not being the gateway: no credential, forged bare identity headers, a credential signed
with the dashboard's secret, a dashboard token, a credential for another service, an expired
one. Each is refused with 401 `invalid_internal_credential`, nothing in any service's database
changes, and the next good call through the gateway works. The widget's address (intake's
public port) serves none of these paths, and its own OpenAPI document lists none of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID, uuid4

import httpx
from sqlalchemy import inspect, text

from shared.contracts.api import Role
from shared.db import create_engine
from shared.internal_auth import InternalTokenSigner
from tests.e2e.conftest import System, Workspace, configure_assistant, free_port, hire
from tests.support.infrastructure import REPO_ROOT
from tests.support.internal_credentials import internal_credential, internal_headers
from tests.support.waiting import eventually

Json = dict[str, Any]
AUDIENCES = ("ticket-core", "activity-log", "intake")
METHODS = ("get", "put", "post", "patch", "delete")
HEALTH = {"/healthz", "/readyz"}
FORGED_IDENTITY = {"X-Member-Role": "owner"}  # with the real workspace and member ids added
MIB = 1_048_576
INTERNAL_SECRETS = "HELPDESK_INTERNAL_SECRETS"
# Rows a background task of some service may still change while nothing is asked of it
# (intake times out old pending widget requests): counted, not compared row by row.
COUNTED_ONLY = {("INTAKE", "ticket_requests")}


class Scene:
    """A real workspace, and what its internal routes' paths and bodies name."""

    def __init__(
        self,
        owner: Workspace,
        member: Workspace,
        ticket_id: str,
        conversation_id: str,
        assistant_id: str,
    ) -> None:
        self.owner = owner
        self.member = member
        self.ticket_id = ticket_id
        self.conversation_id = conversation_id
        self.assistant_id = assistant_id

    def path(self, template: str) -> str:
        """The template with every parameter replaced by a real id; an unknown parameter
        fails the test, so that a new route gets a real value here."""
        values = {
            "ticket_id": self.ticket_id,
            "target_id": self.member.member_id,
            "member_id": self.member.member_id,
            "conversation_id": self.conversation_id,
            "assistant_id": self.assistant_id,
        }
        path = template
        for name, value in values.items():
            path = path.replace("{" + name + "}", value)
        assert "{" not in path, f"{template}: give its path parameter a real value in Scene.path"
        return path

    def body(self, method: str, template: str) -> Json | None:
        """A body that would change something if the call were accepted."""
        bodies: dict[tuple[str, str], Json] = {
            ("post", "/internal/v1/tickets"): {"subject": "Forged", "description": "forged"},
            ("patch", "/internal/v1/tickets/{ticket_id}"): {"status": "spam", "subject": "x"},
            ("post", "/internal/v1/tickets/{ticket_id}/notes"): {"body": "forged note"},
            ("post", "/internal/v1/tickets/{ticket_id}/conversations"): {
                "conversation_id": "conv-forged"
            },
            ("patch", "/internal/v1/workspace"): {"auto_close_after_days": 1},
            ("post", "/internal/v1/members"): {"email": "forged@evil.io", "role": "owner"},
            ("patch", "/internal/v1/members/{target_id}"): {"role": "owner"},
            ("put", "/internal/v1/assistants/{assistant_id}/ticket-settings"): {
                "ticket_creation_enabled": False,
                "require_contact_info": True,
            },
        }
        if (method, template) in bodies:
            return bodies[(method, template)]
        return {} if method in ("post", "put", "patch") else None


async def internal_routes(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    """(method, path template) of every route in a listener's own OpenAPI document; every
    path is internal or health."""
    document = (await client.get("/openapi.json")).json()
    routes: list[tuple[str, str]] = []
    for template, item in document["paths"].items():
        assert template.startswith("/internal/v1/") or template in HEALTH, template
        if template in HEALTH:
            continue
        routes.extend((method, template) for method in METHODS if method in item)
    assert routes, "a listener with no internal route"
    return routes


def refusals(system: System, scene: Scene, audience: str) -> dict[str, dict[str, str]]:
    """Every way of calling `audience` without being the gateway, by name."""
    owner = scene.owner
    forged = {
        "X-Workspace-Id": owner.workspace_id,
        "X-Member-Id": owner.member_id,
        **FORGED_IDENTITY,
    }
    dashboard_signed = InternalTokenSigner(
        [system.env["HELPDESK_JWT_SECRET"]], issuer="gateway"
    ).sign(audience, UUID(owner.workspace_id), UUID(owner.member_id), Role.OWNER)
    other = next(each for each in AUDIENCES if each != audience)
    return {
        "no credential": {},
        "forged identity headers": forged,
        "signed with HELPDESK_JWT_SECRET": {
            "Authorization": f"Bearer {dashboard_signed}",
            **forged,
        },
        "owner's dashboard token": {"Authorization": f"Bearer {owner.token}", **forged},
        # `hire` minted it with `helpdesk token`.
        "dashboard token from helpdesk token": {
            "Authorization": f"Bearer {scene.member.token}",
            **forged,
        },
        f"credential for {other}": internal_headers(
            other, owner.workspace_id, owner.member_id, "owner", secrets=system.secrets
        ),
        "expired credential": internal_headers(
            audience,
            owner.workspace_id,
            owner.member_id,
            "owner",
            secrets=system.secrets,
            lifetime_seconds=-60,
        ),
    }


async def database_state(system: System) -> dict[str, str]:
    """Per table of every service's database: a digest of all its rows (their count only
    where background work may change them)."""
    state: dict[str, str] = {}
    for service in ("TICKET_CORE", "ACTIVITY_LOG", "INTAKE"):
        engine = create_engine(system.env[f"{service}_DATABASE_URL"])
        try:
            async with engine.connect() as connection:
                names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
                for name in sorted(names):
                    rows = (await connection.execute(text(f'SELECT * FROM "{name}"'))).all()
                    if (service, name) in COUNTED_ONLY:
                        state[f"{service}.{name}"] = f"{len(rows)} rows"
                        continue
                    digest = hashlib.sha256()
                    for line in sorted(repr(tuple(row)) for row in rows):
                        digest.update(line.encode())
                    state[f"{service}.{name}"] = f"{len(rows)} rows {digest.hexdigest()[:16]}"
        finally:
            await engine.dispose()
    return state


async def settled_state(system: System) -> dict[str, str]:
    """The databases once the consumers and relays are done with what came before."""
    previous: dict[str, str] = {}

    async def unchanged() -> dict[str, str] | None:
        nonlocal previous
        current = await database_state(system)
        stable = current == previous
        previous = current
        if not stable:
            await asyncio.sleep(0.5)
        return current if stable else None

    return await eventually(unchanged, timeout=60.0, what="the databases to settle")


async def make_scene(system: System, gateway: httpx.AsyncClient) -> Scene:
    owner = system.create_workspace("Internal APIs")
    member = await hire(system, gateway, owner, "member")
    created = await gateway.post(
        "/api/v1/tickets",
        json={"subject": "Printer on fire", "description": "Really."},
        headers=owner.auth,
    )
    assert created.status_code == 201, created.text
    ticket_id = created.json()["id"]
    note = await gateway.post(
        f"/api/v1/tickets/{ticket_id}/notes", json={"body": "Called them"}, headers=owner.auth
    )
    assert note.status_code == 201, note.text
    conversation_id = f"conv-{uuid4().hex[:10]}"
    linked = await gateway.post(
        f"/api/v1/tickets/{ticket_id}/conversations",
        json={"conversation_id": conversation_id},
        headers=owner.auth,
    )
    assert linked.status_code == 200, linked.text
    assistant_id = (await configure_assistant(gateway, owner)).id

    async def history() -> bool:
        answer = await gateway.get(f"/api/v1/tickets/{ticket_id}/activity", headers=owner.auth)
        return answer.status_code == 200 and len(answer.json()["items"]) >= 3

    await eventually(history, what="the ticket's history in activity-log")
    return Scene(owner, member, ticket_id, conversation_id, assistant_id)


async def test_every_internal_route_refuses_every_caller_but_the_gateway(
    system: System, gateway: httpx.AsyncClient
) -> None:
    scene = await make_scene(system, gateway)
    before = await settled_state(system)
    refused = 0
    covered: dict[str, int] = {}
    for audience, address in system.internal_apis.items():
        async with httpx.AsyncClient(base_url=address, timeout=15.0) as service:
            routes = await internal_routes(service)
            covered[audience] = len(routes)
            ways = refusals(system, scene, audience)
            for method, template in routes:
                path, body = scene.path(template), scene.body(method, template)
                for why, headers in ways.items():
                    answer = await service.request(method, path, json=body, headers=headers)
                    where = f"{audience} {method.upper()} {template} with {why}"
                    assert answer.status_code == 401, f"{where}: {answer.status_code} {answer.text}"
                    assert answer.headers["content-type"].startswith("application/problem+json")
                    problem = answer.json()
                    assert problem["code"] == "invalid_internal_credential", where
                    assert "Internal call refused" in problem["detail"], where
                    assert answer.headers["www-authenticate"] == "Bearer", where
                    refused += 1
    print(
        f"\n[{system.kind}] internal routes: {covered} = {sum(covered.values())} routes, "
        f"{refused} refusals (401 invalid_internal_credential)"
    )
    assert set(covered) == set(AUDIENCES)

    assert await database_state(system) == before, "a refused internal call changed something"
    # The next good call through the gateway works, and reaches every service.
    owner = scene.owner
    changed = await gateway.patch(
        f"/api/v1/tickets/{scene.ticket_id}", json={"priority": "high"}, headers=owner.auth
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["priority"] == "high"
    settings = await gateway.get(
        f"/api/v1/assistants/{scene.assistant_id}/ticket-settings", headers=owner.auth
    )
    assert settings.status_code == 200, settings.text
    assert settings.json()["ticket_creation_enabled"] is True

    async def priority_in_history() -> bool:
        answer = await gateway.get(
            f"/api/v1/tickets/{scene.ticket_id}/activity", headers=owner.auth
        )
        types = [entry["type"] for entry in answer.json()["items"]]
        return answer.status_code == 200 and "ticket.priority_changed" in types

    await eventually(priority_in_history, what="the good change in the ticket's history")


async def test_a_valid_credential_is_what_the_services_accept(
    system: System, gateway: httpx.AsyncClient
) -> None:
    """The counterpart of the refusals: the same routes answer a credential for their own
    audience, and act for the member it names with the capabilities it names (activity-log,
    intake) or with the role ticket-core stores."""
    scene = await make_scene(system, gateway)
    owner, member = scene.owner, scene.member
    calls = {
        "ticket-core": f"/internal/v1/tickets/{scene.ticket_id}",
        "activity-log": f"/internal/v1/tickets/{scene.ticket_id}/activity",
        "intake": f"/internal/v1/assistants/{scene.assistant_id}/ticket-settings",
    }
    for audience, path in calls.items():
        async with httpx.AsyncClient(base_url=system.internal_apis[audience]) as service:
            headers = internal_headers(
                audience, owner.workspace_id, owner.member_id, "owner", secrets=system.secrets
            )
            answer = await service.get(path, headers=headers)
            assert answer.status_code == 200, f"{audience}: {answer.text}"

    # ticket-core decides with its own stored role: a member's credential claiming `owner`
    # still cannot do what only owners and admins may.
    async with httpx.AsyncClient(base_url=system.internal_apis["ticket-core"]) as ticket_core:
        claims_owner = internal_headers(
            "ticket-core", member.workspace_id, member.member_id, "owner", secrets=system.secrets
        )
        answer = await ticket_core.delete(
            f"/internal/v1/tickets/{scene.ticket_id}", headers=claims_owner
        )
        assert answer.status_code == 403, answer.text
        # The gateway's membership lookup: the member asks for themself, no role named.
        itself = internal_headers(
            "ticket-core", member.workspace_id, member.member_id, secrets=system.secrets
        )
        answer = await ticket_core.get(f"/internal/v1/members/{member.member_id}", headers=itself)
        assert answer.status_code == 200, answer.text
        assert answer.json()["role"] == "member"
        # A credential that names no member acts for nobody.
        nobody = internal_headers("ticket-core", owner.workspace_id, secrets=system.secrets)
        answer = await ticket_core.get(f"/internal/v1/members/{owner.member_id}", headers=nobody)
        assert answer.status_code == 401
        assert answer.json()["code"] == "invalid_internal_credential"
        # Someone who is not a member of the workspace learns nothing of its members.
        stranger = internal_headers(
            "ticket-core", owner.workspace_id, str(uuid4()), secrets=system.secrets
        )
        answer = await ticket_core.get(f"/internal/v1/members/{owner.member_id}", headers=stranger)
        assert answer.status_code == 401, answer.text

    # activity-log and intake decide with the capabilities the credential names.
    async with httpx.AsyncClient(base_url=system.internal_apis["intake"]) as intake:
        as_member = internal_headers(
            "intake", member.workspace_id, member.member_id, "member", secrets=system.secrets
        )
        answer = await intake.put(
            calls["intake"],
            json={"ticket_creation_enabled": False, "require_contact_info": False},
            headers=as_member,
        )
        assert answer.status_code == 403, answer.text
        no_role = internal_headers(
            "intake", member.workspace_id, member.member_id, secrets=system.secrets
        )
        answer = await intake.get(calls["intake"], headers=no_role)
        assert answer.status_code == 401, answer.text
        assert answer.json()["code"] == "invalid_internal_credential"


async def test_the_widget_address_serves_no_internal_route(
    system: System, gateway: httpx.AsyncClient
) -> None:
    scene = await make_scene(system, gateway)
    owner = scene.owner
    before = await settled_state(system)
    asked = 0
    async with httpx.AsyncClient(base_url=system.widget, timeout=15.0) as widget:
        # Its own document: the widget API and health only.
        document = (await widget.get("/openapi.json")).json()
        paths = set(document["paths"])
        assert paths, "the widget's address has no OpenAPI document"
        outside = {p for p in paths if not p.startswith("/widget/v1/") and p not in HEALTH}
        assert not outside, f"the widget's address documents {sorted(outside)}"
        assert (await widget.get("/docs")).status_code == 200

        for audience, address in system.internal_apis.items():
            async with httpx.AsyncClient(base_url=address) as service:
                routes = await internal_routes(service)
            # Even with a valid credential and forged headers: the path does not exist here.
            headers = {
                **internal_headers(
                    audience, owner.workspace_id, owner.member_id, "owner", secrets=system.secrets
                ),
                "X-Workspace-Id": owner.workspace_id,
                "X-Member-Id": owner.member_id,
                **FORGED_IDENTITY,
            }
            for method, template in routes:
                path = scene.path(template)
                answer = await widget.request(
                    method, path, json=scene.body(method, template), headers=headers
                )
                assert answer.status_code == 404, f"widget {method.upper()} {path}: {answer.text}"
                asked += 1
        # Nor anything else that is not the widget API: the dashboard's, odd spellings.
        for path in (
            "/internal/v1",
            "/internal",
            "/INTERNAL/v1/workspace",
            "//internal/v1/workspace",
            "/internal/v1/health/held-events",
            "/api/v1/tickets",
            "/",
        ):
            answer = await widget.get(path, headers=headers)
            assert answer.status_code == 404, f"widget GET {path}: {answer.status_code}"
            asked += 1
        for path in HEALTH:
            assert (await widget.get(path)).status_code == 200

    # intake's internal listener in turn serves no widget route.
    async with httpx.AsyncClient(base_url=system.internal_apis["intake"]) as internal:
        document = (await internal.get("/openapi.json")).json()
        assert not [p for p in document["paths"] if p.startswith("/widget/")]
        answer = await internal.post("/widget/v1/ticket-requests", json={})
        assert answer.status_code == 404

    print(f"\n[{system.kind}] widget address: {asked} internal or foreign paths, all 404")
    assert await database_state(system) == before, "a call on the widget's address changed data"
    settings = await gateway.get(
        f"/api/v1/assistants/{scene.assistant_id}/ticket-settings", headers=owner.auth
    )
    assert settings.status_code == 200, settings.text


async def test_every_listener_refuses_a_body_over_its_limit_before_anything_else(
    system: System, gateway: httpx.AsyncClient
) -> None:
    """Bodies over the limit (1 MiB by default on internal listeners) get 413 before the
    credential is even looked at: a refusal costs less than what it refuses."""
    scene = await make_scene(system, gateway)
    before = await settled_state(system)
    too_large = b'{"subject": "' + b"x" * (MIB + 1) + b'"}'
    targets = {
        "ticket-core": ("post", "/internal/v1/tickets"),
        "activity-log": ("post", f"/internal/v1/tickets/{scene.ticket_id}/activity"),
        "intake": ("put", f"/internal/v1/assistants/{scene.assistant_id}/ticket-settings"),
        "widget": ("post", "/widget/v1/ticket-requests"),
        "gateway": ("post", "/api/v1/tickets"),
    }
    addresses = {**system.internal_apis, "widget": system.widget, "gateway": system.gateway}
    for name, (method, path) in targets.items():
        async with httpx.AsyncClient(base_url=addresses[name], timeout=30.0) as client:
            headers = {"Content-Type": "application/json", **scene.owner.auth}
            if name in AUDIENCES:
                headers.update(
                    internal_headers(
                        name,
                        scene.owner.workspace_id,
                        scene.owner.member_id,
                        "owner",
                        secrets=system.secrets,
                    )
                )
            answer = await client.request(method, path, content=too_large, headers=headers)
            assert answer.status_code == 413, f"{name}: {answer.status_code} {answer.text[:200]}"
            assert answer.json()["code"] == "body_too_large", name
    assert await database_state(system) == before
    assert (
        await gateway.get(f"/api/v1/tickets/{scene.ticket_id}", headers=scene.owner.auth)
    ).status_code == 200


@contextmanager
def serve_alone(system: System, service: str, env: dict[str, str]) -> Iterator[str]:
    """One more process of `service` (`ticket_core`, `gateway`) beside the system, on its
    databases, with `env` added: its HTTP API only (lifespan off: no consumers, so it takes no
    part in the system's Kafka traffic); its address."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            f"services.{service}.entrypoints.http_api:create_app",
            "--factory",
            "--lifespan",
            "off",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env={**os.environ, **system.env, **env},
        cwd=REPO_ROOT,
    )
    try:
        address = f"http://127.0.0.1:{port}"
        for _ in range(300):
            if process.poll() is not None:
                raise AssertionError(f"{service} exited with {process.returncode}")
            try:
                if httpx.get(f"{address}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=15)


async def test_a_gateway_with_another_internal_secret_is_refused_and_says_it_is_not_you(
    system: System, gateway: httpx.AsyncClient
) -> None:
    """A gateway whose HELPDESK_INTERNAL_SECRETS the services do not list: every call is
    refused by the service, and the dashboard user is told it is the operator's to fix (502),
    not asked to sign in again (401)."""
    scene = await make_scene(system, gateway)
    before = await settled_state(system)
    plan = system.running.plan
    env = {
        "HELPDESK_INTERNAL_SECRETS": "not-the-systems-internal-secret-" + "z" * 32,
        "GATEWAY_TICKET_CORE_URL": f"http://127.0.0.1:{plan.ticket_core_port}",
        "GATEWAY_ACTIVITY_LOG_URL": f"http://127.0.0.1:{plan.activity_log_port}",
        "GATEWAY_INTAKE_URL": f"http://127.0.0.1:{plan.intake_internal_port}",
    }
    with serve_alone(system, "gateway", env) as address:
        async with httpx.AsyncClient(base_url=address, timeout=15.0) as stranger:
            for method, path, body in (
                ("get", "/api/v1/tickets", None),
                ("post", "/api/v1/tickets", {"subject": "Forged", "description": "x"}),
                ("delete", f"/api/v1/tickets/{scene.ticket_id}", None),
            ):
                answer = await stranger.request(method, path, json=body, headers=scene.owner.auth)
                assert answer.status_code == 502, answer.text
                assert answer.json()["code"] == "internal_credential_refused"
                assert "HELPDESK_INTERNAL_SECRETS" in answer.json()["detail"]
    assert await database_state(system) == before
    answer = await gateway.get(f"/api/v1/tickets/{scene.ticket_id}", headers=scene.owner.auth)
    assert answer.status_code == 200, answer.text


async def test_rotation_old_secret_accepted_while_listed_refused_once_removed(
    system: System, gateway: httpx.AsyncClient
) -> None:
    """Rotation as an operator does it: the new secret listed first and the old one kept,
    then the old one removed. A ticket-core started with each list in turn."""
    scene = await make_scene(system, gateway)
    owner = scene.owner
    old, new = system.secrets, "rotated-internal-secret-" + "n" * 32
    path = f"/internal/v1/tickets/{scene.ticket_id}"

    def signed_with(secrets: str) -> dict[str, str]:
        token = internal_credential(
            "ticket-core", owner.workspace_id, owner.member_id, "owner", secrets=secrets
        )
        return {"Authorization": f"Bearer {token}"}

    with serve_alone(system, "ticket_core", {INTERNAL_SECRETS: f"{new},{old}"}) as address:
        async with httpx.AsyncClient(base_url=address) as ticket_core:
            for secrets in (old, new):
                answer = await ticket_core.get(path, headers=signed_with(secrets))
                assert answer.status_code == 200, answer.text
    with serve_alone(system, "ticket_core", {INTERNAL_SECRETS: new}) as address:
        async with httpx.AsyncClient(base_url=address) as ticket_core:
            answer = await ticket_core.get(path, headers=signed_with(old))
            assert answer.status_code == 401, answer.text
            assert answer.json()["code"] == "invalid_internal_credential"
            assert "not signed with a known internal secret" in answer.json()["detail"]
            answer = await ticket_core.get(path, headers=signed_with(new))
            assert answer.status_code == 200, answer.text
