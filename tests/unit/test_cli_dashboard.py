"""What the operator's command prints about the dashboard: the sign-in link and the URLs of
`make run`."""

from pathlib import Path

import pytest

from services.cli import _running_banner, login_url
from services.local_run import SystemPlan


def test_a_login_url_carries_the_token_in_the_fragment_of_the_dashboards_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GATEWAY_PUBLIC_URL", raising=False)
    assert login_url("a.b.c") == "http://127.0.0.1:8000/#token=a.b.c"
    monkeypatch.setenv("GATEWAY_PUBLIC_URL", "https://desk.acme.io/")
    assert login_url("a.b.c") == "https://desk.acme.io/#token=a.b.c"


def test_make_run_prints_the_dashboard_and_the_widget_demo() -> None:
    banner = _running_banner(SystemPlan(gateway_port=8010), "development", Path("var/log"))
    assert "dashboard      http://127.0.0.1:8010/" in banner
    assert "widget demo    http://127.0.0.1:8010/widget-demo" in banner
    assert "helpdesk login --workspace W --member M" in banner
