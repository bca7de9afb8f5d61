"""Each service SIGKILLed once under load, one after the other, and brought back by the
supervisor of `helpdesk run`: the clients retry what failed while it was away (with the same
`Idempotency-Key` or `request_id`), and once it settles every accepted ticket and event is
stored once and in order."""

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.scenario import Figures, Load, each_service_killed

# A scenario's whole run (its system's start, the load, settling) is longer than a test's.
pytestmark = pytest.mark.timeout(600)

LOAD = Load(tickets=600, widget_requests=150)


async def test_each_service_killed_under_load_is_restarted(
    db_kind: str,
    request: pytest.FixtureRequest,
    kafka: str,
    tmp_path: Path,
    show_figures: Callable[[Figures], None],
) -> None:
    admin_url = request.getfixturevalue("postgres_server") if db_kind == "postgres" else None
    figures = await each_service_killed(db_kind, tmp_path, kafka, admin_url, LOAD)
    show_figures(figures)
    assert figures.problems == []
