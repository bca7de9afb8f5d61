"""PostgreSQL restarted (`pg_ctl restart -m immediate`: every connection cut, crash recovery)
while the clients write, on a cluster of the test's own: what they see is 503 with
`Retry-After`, never a 500, the services recover by themselves (none exits or is
restarted), and once it settles every accepted ticket and event is stored once and in
order."""

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.scenario import Figures, Load, postgres_restarted_under_load

# A scenario's whole run (its system's start, the load, settling) is longer than a test's.
pytestmark = pytest.mark.timeout(600)

LOAD = Load(tickets=600, widget_requests=150)


@pytest.mark.postgres
async def test_postgres_restarted_under_load(
    kafka: str, tmp_path: Path, show_figures: Callable[[Figures], None]
) -> None:
    figures = await postgres_restarted_under_load(tmp_path, kafka, LOAD)
    show_figures(figures)
    assert figures.problems == []
