"""PATCH → its event on the dashboard's live stream, through the four real service processes.

A dashboard client holds `GET /api/v1/stream` open and PATCHes tickets through the gateway at a
paced rate; each latency is from sending the PATCH to reading its `ticket.priority_changed`
frame off the stream. What happens in between: gateway → ticket-core (ticket and event in one
transaction), ticket-core's outbox relay publishes to `ticket.events.v1`, the gateway's live
reader fans it out to the stream.

Beside it, from the same run: the PATCH's own round trip (the answer the client waits for
anyway), and raw aiokafka produce → consume of as many messages of the event's size at the
same rate on the same broker (the floor any Kafka-fed stream has).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from uuid import uuid4

import httpx

from services.local_run import RunningSystem, SystemPlan
from shared.contracts.topics import TICKET_EVENTS
from shared.kafka_admin import ensure_topics
from tests.benchmarks.pipeline import pace, raw_kafka, senders_waiting_each
from tests.benchmarks.stats import HEADER, Figures, progress, ratio_line
from tests.support.credentials import strong_secrets
from tests.support.kafka_reader import start_group_at_end, start_service_groups_at_end
from tests.support.sse import open_stream

PRIORITIES = ("high", "low")


async def run(*, patches: int, rate: float) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    await ensure_topics(bootstrap)
    print(f"PATCH → SSE: {patches} PATCHes at {rate:g}/s, 4 service processes on SQLite")
    to_stream, round_trip, size = await _patch_to_stream(bootstrap, patches, rate)
    print(f"raw aiokafka, {rate:g}/s: {patches} messages of {size} bytes", flush=True)
    baseline = await raw_kafka(
        bootstrap,
        f"{rate:g}/s",
        patches,
        TICKET_EVENTS.partitions,
        senders_waiting_each(patches, size, 1, rate),
    )
    print(f"\n{HEADER}\n{to_stream.row()}\n{round_trip.row()}\n{baseline.row()}")
    print(ratio_line(to_stream, baseline))
    print(ratio_line(to_stream, round_trip) + "\n")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _patch_to_stream(
    bootstrap: str, patches: int, rate: float
) -> tuple[Figures, Figures, int]:
    with tempfile.TemporaryDirectory() as tmp:
        urls = {
            name: f"sqlite+aiosqlite:///{tmp}/{name.lower()}.db"
            for name in ("TICKET_CORE", "ACTIVITY_LOG", "INTAKE")
        }
        group = f"bench-{uuid4().hex[:8]}"
        await start_service_groups_at_end(bootstrap, group)
        await start_group_at_end(bootstrap, group, TICKET_EVENTS)
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            **strong_secrets(),
            "HELPDESK_ENV": "production",
            "HELPDESK_LOG_LEVEL": "WARNING",
            "TICKET_CORE_CONSUMER_GROUP": group,
            "ACTIVITY_LOG_CONSUMER_GROUP": group,
            "INTAKE_CONSUMER_GROUP": group,
            **{f"{name}_DATABASE_URL": url for name, url in urls.items()},
        }
        token = await asyncio.to_thread(_migrate_and_found_workspace, env)
        plan = SystemPlan(
            gateway_port=_free_port(),
            ticket_core_port=_free_port(),
            activity_log_port=_free_port(),
            intake_port=_free_port(),
            intake_internal_port=_free_port(),
            database_urls=urls,
            extra_env=env,
        )
        print("  starting the four services ...", flush=True)
        with RunningSystem(plan, Path(tmp) / "logs").start():
            return await _measure(f"http://127.0.0.1:{plan.gateway_port}", token, patches, rate)


def _migrate_and_found_workspace(env: dict[str, str]) -> str:
    """As an operator would: `helpdesk migrate`, `helpdesk create-workspace`; the token."""
    helpdesk = [sys.executable, "-m", "services"]
    subprocess.run([*helpdesk, "migrate"], env={**os.environ, **env}, check=True)
    created = subprocess.run(
        [*helpdesk, "create-workspace", "Bench", "--owner-email", "owner@bench.io", "--json"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
    )
    token: str = json.loads(created.stdout)["token"]
    return token


async def _measure(
    gateway_url: str, token: str, patches: int, rate: float
) -> tuple[Figures, Figures, int]:
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=gateway_url, headers=auth, timeout=30.0) as client:
        created = await client.post("/api/v1/tickets", json={"subject": "Benchmarked"})
        created.raise_for_status()
        ticket_id = created.json()["id"]
        sent_at: dict[int, float] = {}  # the event's sequence -> when its PATCH was sent
        to_stream: list[float] = []
        round_trips: list[float] = []
        size = 0
        async with open_stream(client) as stream:
            await asyncio.sleep(0.5)  # let the stream settle before the clock starts

            async def read_events() -> None:
                nonlocal size
                while len(to_stream) < patches:
                    frame = await stream.next(timeout=30.0)
                    if frame.event != "ticket.priority_changed":
                        continue
                    received = time.perf_counter()
                    to_stream.append((received - sent_at[frame.json["sequence"]]) * 1000)
                    size = len(frame.data)
                    progress("events on the stream", len(to_stream), patches)

            reader = asyncio.create_task(read_events())
            begin = time.perf_counter()
            for i in range(patches):
                await pace(begin, i, rate)
                sent = time.perf_counter()
                # Sequence 1 is the creation; PATCH i makes event i + 2.
                sent_at[i + 2] = sent
                answer = await client.patch(
                    f"/api/v1/tickets/{ticket_id}", json={"priority": PRIORITIES[i % 2]}
                )
                answer.raise_for_status()
                round_trips.append((time.perf_counter() - sent) * 1000)
            await reader
            seconds = time.perf_counter() - begin
    return (
        Figures("PATCH → SSE frame", patches, seconds, to_stream),
        Figures("PATCH round trip", patches, seconds, round_trips),
        size,
    )
