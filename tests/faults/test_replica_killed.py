"""One replica of each service SIGKILLed while two of each run (PostgreSQL only: on SQLite a
service's file takes one writer process), and not brought back: the other replica takes over
its partitions, its outbox relay and its clients (who move to the other gateway or widget
address when theirs stops answering), and once it settles every accepted ticket and event is
stored once and in order."""

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.scenario import Figures, Load, one_replica_of_each_killed

# A scenario's whole run (its system's start, the load, settling) is longer than a test's.
pytestmark = [pytest.mark.timeout(600), pytest.mark.postgres]

LOAD = Load(tickets=600, widget_requests=150)


async def test_one_replica_of_each_service_killed_under_load(
    postgres_server: str, kafka: str, tmp_path: Path, show_figures: Callable[[Figures], None]
) -> None:
    figures = await one_replica_of_each_killed(tmp_path, kafka, postgres_server, LOAD)
    show_figures(figures)
    assert figures.problems == []
