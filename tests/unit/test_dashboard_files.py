"""The gateway's dashboard files: a fallback that never shadows the API, never leaves the
built directory, and keeps to its content security policy; the dashboard's copy of the
transition table equals ticket-core's."""

import json
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.gateway.dashboard import serve_dashboard
from services.ticket_core.domain.permissions import Action
from services.ticket_core.domain.statuses import TRANSITIONS
from shared.problems import install_problem_handlers
from tests.support.infrastructure import REPO_ROOT


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text('<!doctype html><html lang="en"><body>app</body></html>')
    (dist / "assets" / "index-abc.js").write_text("console.log(1)")
    (dist / "widget.js").write_text("(function(){})()")
    (tmp_path / "secret.txt").write_text("outside")
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/api/v1/thing")
    async def thing() -> dict[str, bool]:
        return {"api": True}

    serve_dashboard(app, dist, "http://127.0.0.1:8103")
    return TestClient(app)


def test_the_dashboard_is_served_at_the_root_and_on_its_own_paths(client: TestClient) -> None:
    for path in ("/", "/tickets/0b5a4c8e-7f2e-4e0a-9a57-1d8a9c0f3b11", "/admin/members"):
        answer = client.get(path)
        assert answer.status_code == 200
        assert "app" in answer.text
        assert 'data-widget-api="http://127.0.0.1:8103"' in answer.text
        assert "script-src 'self'" in answer.headers["content-security-policy"]


def test_built_files_are_served_and_hashed_assets_cached(client: TestClient) -> None:
    asset = client.get("/assets/index-abc.js")
    assert asset.status_code == 200
    assert "immutable" in asset.headers["cache-control"]
    assert client.get("/widget.js").headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing", "/api/v1/", "/docs/x", "/openapi.json/x", "/healthz/x"]
)
def test_the_api_prefixes_keep_their_own_404(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert client.get("/api/v1/thing").json() == {"api": True}


def test_only_get_and_head_reach_the_files(client: TestClient) -> None:
    assert client.post("/anything").status_code == 404
    assert client.head("/").status_code == 200


def test_no_path_leaves_the_built_directory(client: TestClient) -> None:
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/assets/../../secret.txt"):
        assert "outside" not in client.get(path).text


def test_the_demo_page_embeds_the_widget_only_for_well_formed_ids(client: TestClient) -> None:
    page = client.get("/widget-demo", params={"assistant_id": "asst-1", "widget_key": "wk_abc"})
    assert "data-assistant-id='asst-1'" in page.text
    assert "connect-src http://127.0.0.1:8103" in page.headers["content-security-policy"]
    hostile = client.get(
        "/widget-demo", params={"assistant_id": "'><script>alert(1)</script>", "widget_key": "k"}
    )
    assert "<script>alert" not in hostile.text
    assert "/widget.js" not in hostile.text
    assert "role='alert'" in hostile.text


def test_a_missing_build_says_how_to_make_it(tmp_path: Path) -> None:
    app = FastAPI()
    serve_dashboard(app, tmp_path / "nothing", "http://127.0.0.1:8103")
    answer = TestClient(app).get("/")
    assert answer.status_code == 503
    assert "make run" in answer.text


def test_the_dashboards_transition_table_is_ticket_cores() -> None:
    copied = json.loads((REPO_ROOT / "dashboard" / "src" / "transitions.json").read_text())
    short = {Action.CHANGE_STATUS: "work", Action.CLOSE: "admin", Action.MARK_SPAM: "admin"}
    expected = {
        str(source): {str(target): short[action] for target, action in targets.items()}
        for source, targets in TRANSITIONS.items()
    }
    assert copied == expected


@pytest.mark.parametrize("path", ["/a%00b", "/assets/%00", "/" + "a" * 600])
def test_a_path_no_file_can_have_is_not_found_rather_than_an_error(
    client: TestClient, path: str
) -> None:
    """NUL cannot be in a file name, and no built file has so long a path: such a request is
    answered 404 like any unknown path of the API, never 500."""
    answer = client.get(path)
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/problem+json")
