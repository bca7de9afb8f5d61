"""`make bench SUITE=faults`: the fault suite's scenarios (tests/faults/scenario.py), longer.

The same systems, load, faults and checks as the tests, with more tickets (10,000 dashboard
creates and 2,500 widget requests by default) and, for the broker and PostgreSQL, the fault
repeated every `kill_every_seconds` for as long as the load runs. Each scenario prints what
the clients saw (accepted, the answers they retried by status, the time until the system
settled) and what the system held after it; a broken invariant is printed as a PROBLEM.
On SQLite and, when `HELPDESK_TEST_POSTGRES_URL` is set (`make bench` sets it), PostgreSQL.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tests.faults.scenario import (
    Figures,
    Load,
    activity_log_killed_before_commit,
    each_service_killed,
    one_replica_of_each_killed,
    postgres_restarted_under_load,
    the_broker_killed,
)


async def run(*, tickets: int, widget_requests: int, kill_every_seconds: float) -> None:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    admin_url = os.environ.get("HELPDESK_TEST_POSTGRES_URL")
    load = Load(tickets=tickets, widget_requests=widget_requests)
    kinds = {"sqlite": None, **({"postgres": admin_url} if admin_url else {})}
    every = kill_every_seconds
    results: list[Figures] = []

    def show(figures: Figures) -> None:
        results.append(figures)
        print("\n".join(figures.lines()), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for kind, admin in kinds.items():
            print(f"faults on {kind}: {tickets} creates, {widget_requests} widget requests")
            print(f"  the broker SIGKILLed every {every:g} s ...", flush=True)
            show(
                await the_broker_killed(
                    kind, folder / f"broker-{kind}", admin, load, every_seconds=every
                )
            )
            print("  each service SIGKILLed once ...", flush=True)
            show(await each_service_killed(kind, folder / f"services-{kind}", kafka, admin, load))
            print("  activity-log killed between storing and committing ...", flush=True)
            show(
                await activity_log_killed_before_commit(
                    kind,
                    folder / f"fault-point-{kind}",
                    kafka,
                    admin,
                    load,
                    kill_after_stored_events=tickets // 4,
                )
            )
        if admin_url:
            print(f"  PostgreSQL restarted -m immediate every {every:g} s ...", flush=True)
            show(
                await postgres_restarted_under_load(
                    folder / "postgres-restarted", kafka, load, every_seconds=every
                )
            )
            print("  one replica of each service killed while two run ...", flush=True)
            show(await one_replica_of_each_killed(folder / "replicas", kafka, admin_url, load))
    print()
    print(f"{sum(len(f.problems) for f in results)} problems in {len(results)} scenarios")
