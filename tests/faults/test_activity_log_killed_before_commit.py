"""activity-log killed right after storing an event and before committing its offset (the
test-only fault point, activity_log_fault_point.py), under load: started again, it is
handed that event (and any other whose offset was not committed yet) once more and drops it,
so no activity entry is there twice and every ticket's history is still 1..n."""

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.scenario import Figures, Load, activity_log_killed_before_commit

# A scenario's whole run (its system's start, the load, settling) is longer than a test's.
pytestmark = pytest.mark.timeout(600)

LOAD = Load(tickets=300, widget_requests=75)


async def test_activity_log_killed_between_storing_and_committing(
    db_kind: str,
    request: pytest.FixtureRequest,
    kafka: str,
    tmp_path: Path,
    show_figures: Callable[[Figures], None],
) -> None:
    admin_url = request.getfixturevalue("postgres_server") if db_kind == "postgres" else None
    # The workspace's own events come first; this fires well inside the load.
    figures = await activity_log_killed_before_commit(
        db_kind, tmp_path, kafka, admin_url, LOAD, kill_after_stored_events=100
    )
    show_figures(figures)
    assert figures.problems == []
