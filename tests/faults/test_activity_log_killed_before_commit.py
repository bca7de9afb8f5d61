"""activity-log killed right after storing an event and before committing its offset (the
test-only fault point, activity_log_fault_point.py), under load: started again, it is
handed that event (and any other whose offset was not committed yet) once more and drops it,
so no activity entry is there twice and every ticket's history is still 1..n."""

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.scenario import (
    Figures,
    Load,
    activity_log_killed_at_fault_point,
    create_team,
    prepare,
    run_scenario,
    system_with_fault_point,
)

LOAD = Load(tickets=400, widget_requests=100)


async def test_activity_log_killed_between_storing_and_committing(
    db_kind: str,
    request: pytest.FixtureRequest,
    kafka: str,
    tmp_path: Path,
    show_figures: Callable[[Figures], None],
) -> None:
    admin_url = request.getfixturevalue("postgres_server") if db_kind == "postgres" else None
    setup = await prepare(db_kind, tmp_path, kafka, admin_url)
    marker = tmp_path / "fault-point-fired"
    # Workspace and member events come first; the fault fires well inside the load.
    with system_with_fault_point(setup, kill_after_stored_events=150, marker=marker) as running:
        team, assistant = await create_team(setup)
        figures = await run_scenario(
            "activity-log killed after storing, before committing",
            setup,
            team,
            assistant,
            LOAD,
            activity_log_killed_at_fault_point(running, marker),
        )
    show_figures(figures)
    assert figures.problems == []
