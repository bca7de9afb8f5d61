"""The broker SIGKILLed and started again under load (2,000 dashboard creates and 500 widget
requests), on a broker of the test's own: the clients are answered throughout (the services
keep writes in their outboxes and catch up), no service exits, and once it settles every
accepted ticket and event is stored once and in order."""

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.scenario import Figures, Load, the_broker_killed

# A scenario's whole run (its system's start, the load, settling) is longer than a test's.
pytestmark = pytest.mark.timeout(600)

# The load on PostgreSQL, the production database; a quarter of it on SQLite, to
# keep the suite within minutes (`make bench SUITE=faults` runs 10,000 on both).
LOADS = {"postgres": Load(tickets=2000, widget_requests=500), "sqlite": Load(500, 125)}


async def test_the_broker_killed_under_load(
    db_kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    show_figures: Callable[[Figures], None],
) -> None:
    admin_url = request.getfixturevalue("postgres_server") if db_kind == "postgres" else None
    figures = await the_broker_killed(db_kind, tmp_path, admin_url, LOADS[db_kind])
    show_figures(figures)
    assert figures.problems == []
