"""Widget request → ticket `created`, beside raw aiokafka produce → consume of the same number
of messages of the same size, on the same broker in the same run.

What runs, in one process: intake's service layer takes the request (request row,
conversation snapshot, command in its outbox), its relay publishes the command, ticket-core's
consumer creates the linked ticket and its answer (one transaction), ticket-core's relay
publishes the answer, intake's consumer marks the request `created`. Latency: from the
request to `created` committed. SQLite for both services (the embedded default).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID, uuid4

import services.intake.handlers as intake_handlers
from services.intake.bootstrap import MIGRATIONS_DIR as INTAKE_MIGRATIONS
from services.intake.bootstrap import bootstrap as bootstrap_intake
from services.intake.settings import IntakeSettings
from services.intake.store.unit_of_work import UnitOfWork
from services.ticket_core import handlers as core_handlers
from services.ticket_core.bootstrap import MIGRATIONS_DIR as TICKET_CORE_MIGRATIONS
from services.ticket_core.bootstrap import bootstrap as bootstrap_ticket_core
from services.ticket_core.domain.permissions import capabilities_of
from services.ticket_core.settings import TicketCoreSettings
from shared.broker import stop_broker
from shared.contracts.api import Role
from shared.contracts.envelope import EventEnvelope
from shared.contracts.widget import AssistantTicketSettings, WidgetTicketRequest
from shared.kafka_admin import ensure_topics
from shared.migrations import upgrade_to_head
from tests.benchmarks.pipeline import pace, raw_kafka
from tests.benchmarks.stats import HEADER, Figures, progress, ratio_line
from tests.support.kafka_reader import start_service_groups_at_end


async def run(*, requests: int, concurrency: int, paced_rate: float) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    await ensure_topics(bootstrap)
    runs = (("burst", None, requests), (f"{paced_rate:g}/s", paced_rate, requests // 2))
    for mode, rate, count in runs:
        print(f"widget → created, {mode}: {count} requests", flush=True)
        figures, size = await _widget(bootstrap, mode, count, concurrency, rate)
        print(f"raw aiokafka, {mode}: {count} messages of {size} bytes", flush=True)
        baseline = await raw_kafka(bootstrap, mode, count, size, concurrency, rate)
        print(f"\n{HEADER}\n{figures.row()}\n{baseline.row()}\n{ratio_line(figures, baseline)}\n")


async def _widget(
    bootstrap: str, mode: str, count: int, concurrency: int, rate: float | None
) -> tuple[Figures, int]:
    with tempfile.TemporaryDirectory() as tmp:
        intake_url, core_url = f"sqlite+aiosqlite:///{tmp}/i.db", f"sqlite+aiosqlite:///{tmp}/t.db"
        await upgrade_to_head(INTAKE_MIGRATIONS, intake_url)
        await upgrade_to_head(TICKET_CORE_MIGRATIONS, core_url)
        group = f"bench-{uuid4().hex[:8]}"
        await start_service_groups_at_end(bootstrap, group)
        core = bootstrap_ticket_core(
            TicketCoreSettings(
                database_url=core_url, kafka_bootstrap_servers=bootstrap, consumer_group=group
            )
        )
        intake = bootstrap_intake(
            IntakeSettings(
                database_url=intake_url,
                kafka_bootstrap_servers=bootstrap,
                consumer_group=group,
                rate_limit_per_assistant=10**9,
            )
        )
        team = await core_handlers.create_workspace(core.unit_of_work(), "Bench", "b@bench.io")
        await intake_handlers.put_settings(
            intake.unit_of_work(),
            team.workspace.id,
            team.owner.id,
            capabilities_of(Role.OWNER),
            "asst-bench",
            AssistantTicketSettings(ticket_creation_enabled=True, require_contact_info=False),
        )
        # The widget sends its assistant's key, as every widget call does.
        settings, _ = await intake_handlers.get_settings(
            intake.reader(), team.workspace.id, capabilities_of(Role.OWNER), "asst-bench"
        )
        widget_key = settings.widget_key
        started: dict[str, float] = {}
        created: dict[str, float] = {}
        done = asyncio.Event()
        record = intake_handlers.record_command_results

        async def timed(uow: UnitOfWork, messages: Sequence[EventEnvelope]) -> None:
            await record(uow, messages)
            recorded = time.perf_counter()
            for message in messages:
                key = str(message.correlation_id)
                if key in started and key not in created:
                    created[key] = recorded
                    progress(f"{mode} created", len(created), count)
            if len(created) == count:
                done.set()

        intake_handlers.record_command_results = timed
        for service in (core, intake):
            await service.broker.start()
            service.relay.start()
        try:
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(count):
                queue.put_nowait(i)

            async def widget() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    await pace(begin, i, rate)
                    request = _request(i)
                    started[request.request_id] = time.perf_counter()
                    await intake_handlers.receive_request(
                        intake.unit_of_work(), request, intake.limits, intake.guard, widget_key
                    )

            begin = time.perf_counter()
            await asyncio.gather(*(widget() for _ in range(concurrency)))
            await asyncio.wait_for(done.wait(), timeout=600)
            elapsed = time.perf_counter() - begin
        finally:
            intake_handlers.record_command_results = record
            for service in (intake, core):
                await service.relay.stop()
                await stop_broker(service.broker)
                await service.engine.dispose()
    latencies = [(created[k] - started[k]) * 1000 for k in started]
    size = len(_request(0).model_dump_json())
    return Figures(f"widget → created ({mode})", count, elapsed, latencies), size


def _request(i: int) -> WidgetTicketRequest:
    return WidgetTicketRequest.model_validate(
        {
            "request_id": f"bench-{i}-{UUID(int=i)}",
            "assistant_id": "asst-bench",
            "conversation": {
                "id": f"conv-{i}",
                "messages": [
                    {
                        "role": "visitor",
                        "text": "The checkout fails with an error after I enter my card.",
                        "sent_at": datetime.now(UTC).isoformat(),
                    }
                ],
            },
            "contact": {"name": "Bench Visitor", "email": "visitor@example.com"},
        }
    )
