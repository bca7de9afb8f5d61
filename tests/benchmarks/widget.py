"""Widget request → ticket `created` through `widget.ticket-requests.v1`, beside raw aiokafka
produce → consume of the same number of messages of the same size, on the same broker in the
same run, sent the same way.

What runs (SQLite for both services, the embedded default; the rate limits raised out of
the way; intake in this process, ticket-core in one of its own, as deployed): the bodies are
published to `widget.ticket-requests.v1` with the assistant's key in the `X-Widget-Key`
header, as a widget's backend sends them; intake's consumer takes them (request rows,
conversation snapshots, commands in its outbox), its relay publishes the commands,
ticket-core's consumer creates the linked tickets and its answers, ticket-core's relay
publishes the answers, intake's consumer marks the requests `created`.
Latency: from the publish to `created` committed; `pending` (intake's consumer committed the
request) is printed too, since ticket-core's part is measured on its own elsewhere. A burst,
then a run paced at half the burst's rate; then the service layer the HTTP endpoint calls,
as the earlier row of this benchmark measured it (one transaction per request), and with the
group commit the endpoint now uses (`RequestGroups`). RSS: the peak of this process (intake, the
producer and the timings) and of ticket-core's.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from aiokafka import AIOKafkaProducer

import services.intake.handlers as intake_handlers
from services.intake.bootstrap import MIGRATIONS_DIR as INTAKE_MIGRATIONS
from services.intake.bootstrap import Intake
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
from shared.contracts.topics import WIDGET_TICKET_REQUESTS
from shared.contracts.widget import (
    WIDGET_KEY_HEADER,
    AssistantTicketSettings,
    RequestStatus,
    WidgetRequestAnswer,
    WidgetTicketRequest,
)
from shared.kafka_admin import ensure_topics
from shared.migrations import upgrade_to_head
from tests.benchmarks.activity import RssPeak
from tests.benchmarks.pipeline import pace, raw_kafka
from tests.benchmarks.stats import HEADER, Figures, progress, ratio_line
from tests.support.kafka_reader import start_service_groups_at_end

ASSISTANT = "asst-bench"
# Out of the way: the benchmark measures the path, not the limits.
UNLIMITED = 10**9

Sent = list[tuple[bytes, bytes, list[tuple[str, bytes]]]]


async def run(
    *, requests: int, service_layer_requests: int, concurrency: int, paced_rate: float | None
) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    await ensure_topics(bootstrap)
    size = len(_request(0).model_dump_json())
    rows: list[str] = []
    ratios: list[str] = []
    burst_rate = 0.0
    for mode, rate, count in (("burst", None, requests), ("paced", paced_rate, requests // 2)):
        if mode == "paced":
            rate = rate or burst_rate / 2
            mode = f"{rate:,.0f}/s"
        print(f"widget topic → created, {mode}: {count} requests of {size} bytes", flush=True)
        async with RssPeak() as rss:
            pending, created, core_rss = await _topic_path(bootstrap, mode, count, rate)
        burst_rate = burst_rate or created.per_second
        print(f"raw aiokafka, {mode}: {count} messages of {size} bytes", flush=True)
        baseline = await _raw(bootstrap, mode, count, size, rate)
        memory = f" RSS peak: intake + producer {rss.peak:.0f} MB, ticket-core {core_rss:.0f} MB"
        rows += [pending.row(), created.row() + memory, baseline.row()]
        ratios.append(ratio_line(created, baseline))
    for grouped in (False, True):
        print(f"service layer → created, burst: {service_layer_requests} requests", flush=True)
        pending, created = await _service_layer(
            bootstrap, service_layer_requests, concurrency, grouped
        )
        rows += [pending.row(), created.row()]
    print("\n".join(["", HEADER, *rows, *ratios, ""]), flush=True)


class TicketCoreProcess:
    """ticket-core's consumers and relay in a process of their own, as deployed (they would
    otherwise share this process's one core with intake and the producer)."""

    def __init__(self, database_url: str, bootstrap: str, group: str) -> None:
        spawn = multiprocessing.get_context("spawn")
        self._ready, self._stop = spawn.Event(), spawn.Event()
        self._process = spawn.Process(
            target=_serve_ticket_core,
            args=(database_url, bootstrap, group, self._ready, self._stop),
            daemon=True,
        )
        self.rss_peak_mb = 0.0
        self._sampler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._process.start()
        while not await asyncio.to_thread(self._ready.wait, 0.5):
            if not self._process.is_alive():
                raise RuntimeError("ticket-core's process ended before it started (above)")
        self._sampler = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        while self._process.pid is not None:
            self.rss_peak_mb = max(self.rss_peak_mb, _rss_mb(self._process.pid))
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
        self._stop.set()
        await asyncio.to_thread(self._process.join, 60)


def _rss_mb(pid: int) -> float:
    # A file of the kernel's: reading it never waits.
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1_000_000


def _serve_ticket_core(
    database_url: str, bootstrap: str, group: str, ready: Any, stop: Any
) -> None:
    async def serve() -> None:
        core = bootstrap_ticket_core(
            TicketCoreSettings(
                database_url=database_url, kafka_bootstrap_servers=bootstrap, consumer_group=group
            )
        )
        await core.broker.start()
        core.relay.start()
        ready.set()
        await asyncio.to_thread(stop.wait)
        await core.relay.stop()
        await stop_broker(core.broker)
        await core.engine.dispose()

    asyncio.run(serve())


@dataclass
class _Running:
    intake: Intake
    ticket_core: TicketCoreProcess
    widget_key: str
    started: dict[str, float]
    pending: dict[str, float]
    created: dict[str, float]
    done: asyncio.Event


@asynccontextmanager
async def _services(bootstrap: str, mode: str, count: int) -> AsyncIterator[_Running]:
    """intake and ticket-core started on fresh databases, the times each request became
    `pending` and `created` noted as their transactions commit."""
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
                rate_limit_per_assistant=UNLIMITED,
                rate_limit_per_conversation=UNLIMITED,
            )
        )
        team = await core_handlers.create_workspace(core.unit_of_work(), "Bench", "b@bench.io")
        await core.engine.dispose()
        await intake_handlers.put_settings(
            intake.unit_of_work(),
            team.workspace.id,
            team.owner.id,
            capabilities_of(Role.OWNER),
            ASSISTANT,
            AssistantTicketSettings(ticket_creation_enabled=True, require_contact_info=False),
        )
        settings, _ = await intake_handlers.get_settings(
            intake.reader(), team.workspace.id, capabilities_of(Role.OWNER), ASSISTANT
        )
        assert settings.widget_key is not None
        core_process = TicketCoreProcess(core_url, bootstrap, group)
        running = _Running(intake, core_process, settings.widget_key, {}, {}, {}, asyncio.Event())
        receive, record = intake_handlers.receive_requests, intake_handlers.record_command_results

        async def timed_receive(
            uow: UnitOfWork, calls: Sequence[tuple[WidgetTicketRequest, str | None]], *args: Any
        ) -> list[WidgetRequestAnswer]:
            answers = await receive(uow, calls, *args)
            committed = time.perf_counter()
            for answer in answers:
                if answer.status is RequestStatus.PENDING:
                    running.pending.setdefault(answer.request_id, committed)
            return answers

        async def timed_record(uow: UnitOfWork, messages: Sequence[EventEnvelope]) -> None:
            await record(uow, messages)
            committed = time.perf_counter()
            for message in messages:
                key = str(message.correlation_id)
                # Every request is timed once its send time is known (after the run).
                if key not in running.created:
                    running.created[key] = committed
                    progress(f"{mode} created", len(running.created), count)
            if len(running.created) == count:
                running.done.set()

        intake_handlers.receive_requests = timed_receive  # type: ignore[assignment]
        intake_handlers.record_command_results = timed_record
        await core_process.start()
        await intake.broker.start()
        intake.relay.start()
        try:
            yield running
        finally:
            intake_handlers.receive_requests = receive
            intake_handlers.record_command_results = record
            await intake.relay.stop()
            await stop_broker(intake.broker)
            await intake.engine.dispose()
            await core_process.stop()


async def _topic_path(
    bootstrap: str, mode: str, count: int, rate: float | None
) -> tuple[Figures, Figures, float]:
    async with _services(bootstrap, mode, count) as running:
        header = [(WIDGET_KEY_HEADER, running.widget_key.encode())]
        records: Sent = []
        for i in range(count):
            request = _request(i)
            records.append(
                (request.conversation.id.encode(), request.model_dump_json().encode(), header)
            )
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, enable_idempotence=True, acks="all"
        )
        await producer.start()
        try:
            begin = time.perf_counter()
            sent = await _send(producer, WIDGET_TICKET_REQUESTS.name, records, rate)
            running.started.update({f"bench-{i}-{UUID(int=i)}": t for i, t in enumerate(sent)})
            await asyncio.wait_for(running.done.wait(), timeout=600)
            elapsed = time.perf_counter() - begin
        finally:
            await producer.stop()
        pending_elapsed = max(running.pending.values()) - begin
    started, pending, created = running.started, running.pending, running.created
    core_rss = running.ticket_core.rss_peak_mb
    return (
        _row(f"widget topic → pending ({mode})", started, pending, pending_elapsed),
        _row(f"widget topic → created ({mode})", started, created, elapsed),
        core_rss,
    )


def _row(
    label: str, started: dict[str, float], reached: dict[str, float], elapsed: float
) -> Figures:
    """Each started request's latency until it `reached` the state, over the run's seconds."""
    return Figures(
        label, len(started), elapsed, [(reached[key] - at) * 1000 for key, at in started.items()]
    )


async def _send(
    producer: AIOKafkaProducer, topic: str, records: Sent, rate: float | None
) -> list[float]:
    """Hand each record to the producer (at `rate`, or as fast as it takes them), then wait
    for every acknowledgement; the time each was handed over, in order."""
    begin = time.perf_counter()
    sent: list[float] = []
    acknowledgements = []
    for i, (key, value, headers) in enumerate(records):
        await pace(begin, i, rate)
        sent.append(time.perf_counter())
        acknowledgements.append(await producer.send(topic, value, key=key, headers=headers))
    await asyncio.gather(*acknowledgements)
    return sent


async def _raw(bootstrap: str, mode: str, count: int, size: int, rate: float | None) -> Figures:
    """The same records sent the same way (`_send`) to a topic of as many partitions."""
    records: Sent = [(f"{i}".encode(), b"x" * size, []) for i in range(count)]

    async def send_all(producer: AIOKafkaProducer, topic: str) -> dict[bytes, float]:
        sent = await _send(producer, topic, records, rate)
        return {f"{i}".encode(): at for i, at in enumerate(sent)}

    return await raw_kafka(bootstrap, mode, count, WIDGET_TICKET_REQUESTS.partitions, send_all)


async def _service_layer(
    bootstrap: str, count: int, concurrency: int, grouped: bool
) -> tuple[Figures, Figures]:
    """`count` requests through the handler the HTTP endpoint calls, `concurrency` at once:
    one transaction each (`receive_request`) or decided together (`RequestGroups`)."""
    async with _services(bootstrap, "service layer", count) as running:
        intake = running.intake
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(count):
            queue.put_nowait(i)

        async def widget() -> None:
            while not queue.empty():
                request = _request(queue.get_nowait())
                running.started[request.request_id] = time.perf_counter()
                if grouped:
                    await intake.request_groups.receive(request, running.widget_key)
                    continue
                await intake_handlers.receive_request(
                    intake.unit_of_work(), request, intake.limits, intake.guard, running.widget_key
                )

        begin = time.perf_counter()
        await asyncio.gather(*(widget() for _ in range(concurrency)))
        await asyncio.wait_for(running.done.wait(), timeout=600)
        elapsed = time.perf_counter() - begin
    started, pending, created = running.started, running.pending, running.created
    how = "group commit" if grouped else "one transaction each"
    pending_elapsed = max(pending.values()) - begin
    return (
        _row(f"service layer, {how} → pending (burst)", started, pending, pending_elapsed),
        _row(f"service layer, {how} → created (burst)", started, created, elapsed),
    )


def _request(i: int) -> WidgetTicketRequest:
    return WidgetTicketRequest.model_validate(
        {
            "request_id": f"bench-{i}-{UUID(int=i)}",
            "assistant_id": ASSISTANT,
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
