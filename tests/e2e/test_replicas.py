"""Two processes of every service, as `helpdesk run --replicas 2` starts them, on PostgreSQL and
the real Kafka broker:

- each service's consumer groups have both replicas as members, which share the partitions;
- the ticket-core replica that holds the outbox relay's lock (caught holding it, then killed
  with SIGKILL): the other publishes what waited, and every ticket's events reach Kafka in the
  order its outbox wrote them;
- a live-stream client whose gateway dies reconnects to the other gateway with
  `Last-Event-ID` and misses nothing;
- creates in flight in a ticket-core replica killed mid-transaction, retried with the same
  `Idempotency-Key` (now reaching the other replica): exactly one ticket each.

A test kills a process and leaves it down; a later test that needs it starts it again
(`running`), so each test also passes alone and the file starts a process again only once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from sqlalchemy.engine import make_url

from services.local_run import RunningSystem
from shared.contracts.topics import (
    INTAKE_CONVERSATIONS,
    TICKET_COMMAND_RESULTS,
    TICKET_COMMANDS,
    TICKET_EVENTS,
    WIDGET_TICKET_REQUESTS,
    Topic,
)
from shared.kafka_security import aiokafka_security
from shared.settings import SystemSettings
from tests.e2e.conftest import (
    SERVICES_WITH_DATABASES,
    System,
    Workspace,
    database_urls,
    history,
    migrate,
    plan_on_free_ports,
)
from tests.support.credentials import strong_secrets
from tests.support.kafka_reader import body, start_group_at_end, start_service_groups_at_end
from tests.support.sse import ServerSentEvent, open_stream
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

Json = dict[str, Any]


@pytest.fixture(scope="module")
def two_of_each(
    kafka: str, postgres_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    tmp = tmp_path_factory.mktemp("replicas")
    urls = asyncio.run(database_urls("postgres", tmp, postgres_server))
    prefix = f"e2e-replicas-{uuid4().hex[:8]}"
    groups = {name: f"{prefix}-{name.lower()}" for name in SERVICES_WITH_DATABASES}
    # Only what is published from now on, not the backlog earlier tests left.
    asyncio.run(start_group_at_end(kafka, groups["ACTIVITY_LOG"], TICKET_EVENTS))
    for name in ("TICKET_CORE", "INTAKE"):
        asyncio.run(start_service_groups_at_end(kafka, groups[name]))
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        **strong_secrets(),
        "HELPDESK_ENV": "production",
        **{f"{name}_CONSUMER_GROUP": group for name, group in groups.items()},
        "GATEWAY_STREAM_HEARTBEAT_SECONDS": "1",
        **{f"{name}_DATABASE_URL": url for name, url in urls.items()},
    }
    plan = plan_on_free_ports(urls, env, replicas=2)
    migrate(env)
    with RunningSystem(plan, tmp / "logs").start() as running:
        yield System(kind="postgres", running=running, env=env, kafka=kafka)


@pytest.fixture(scope="module")
def team(two_of_each: System) -> Workspace:
    """One workspace for the file: `helpdesk create-workspace` is a process of its own."""
    return two_of_each.create_workspace()


async def running(system: System, *names: str) -> None:
    """Start again those of `names` an earlier test killed, and wait until they are ready."""
    for name in names:
        if system.running.processes[name].poll() is not None:
            await asyncio.to_thread(system.running.start_service, name)


def gateway_of(system: System, replica: int) -> str:
    return f"http://127.0.0.1:{system.running.plan.replicas[replica - 1].gateway}"


@asynccontextmanager
async def gateways(system: System) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with (
        httpx.AsyncClient(base_url=gateway_of(system, 1), timeout=15.0) as first,
        httpx.AsyncClient(base_url=gateway_of(system, 2), timeout=15.0) as second,
    ):
        yield first, second


def kill(system: System, name: str) -> None:
    process = system.running.processes[name]
    process.send_signal(signal.SIGKILL)
    process.wait()


def ticket_core_dsn(system: System) -> str:
    url = make_url(system.env["TICKET_CORE_DATABASE_URL"]).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


# --- the consumer groups share the partitions -------------------------------------------------

# Each service's consumer groups (`<group>.<topic>` per subscriber; activity-log one group).
SUBSCRIPTIONS: dict[str, tuple[Topic, ...]] = {
    "TICKET_CORE": (TICKET_COMMANDS, INTAKE_CONVERSATIONS),
    "INTAKE": (WIDGET_TICKET_REQUESTS, TICKET_COMMAND_RESULTS),
}


async def partitions_by_member(admin: AIOKafkaAdminClient, group: str) -> dict[str, set[int]]:
    """What the group coordinator says each member of `group` was assigned (partitions)."""
    [response] = await admin.describe_consumer_groups([group])
    [(_error, _group, _state, _type, _protocol, members, *_)] = response.groups
    return {
        member_id: {
            partition
            for _topic, partitions in ConsumerProtocolMemberAssignment.decode(assignment).assignment
            for partition in partitions
        }
        if assignment
        else set()
        for member_id, _client, _host, _metadata, assignment in members
    }


async def test_the_replicas_of_each_service_share_its_consumer_groups_partitions(
    two_of_each: System,
) -> None:
    env = two_of_each.env
    groups: dict[str, Topic] = {env["ACTIVITY_LOG_CONSUMER_GROUP"]: TICKET_EVENTS}
    for service, topics in SUBSCRIPTIONS.items():
        for topic in topics:
            groups[f"{env[f'{service}_CONSUMER_GROUP']}.{topic.name}"] = topic
    admin = AIOKafkaAdminClient(
        bootstrap_servers=two_of_each.kafka, **aiokafka_security(SystemSettings())
    )
    await admin.start()
    try:

        async def settled() -> dict[str, list[set[int]]] | None:
            assigned = {
                group: list((await partitions_by_member(admin, group)).values()) for group in groups
            }
            # A rebalance in progress shows members without an assignment yet.
            balanced = all(len(m) == 2 and all(m) for m in assigned.values())
            return assigned if balanced else None

        assigned = await eventually(settled, timeout=60, what="two members in every group")
    finally:
        await admin.close()

    for group, topic in groups.items():
        first, second = assigned[group]
        assert first.isdisjoint(second), group
        assert first | second == set(range(topic.partitions)), group
        print(f"{group}: {sorted(first)} and {sorted(second)}")


# --- the relay's lock changes hands ------------------------------------------------------------


def socket_owner(local_port: int, candidates: dict[int, str]) -> str | None:
    """Which of `candidates` (pid → name) has a TCP socket bound to 127.0.0.1:`local_port`:
    PostgreSQL names a backend's client by its port, /proc says whose socket that is."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == local_port:
                    inodes.add(f"socket:[{fields[9]}]")
    for pid, name in candidates.items():
        with suppress(OSError):  # a process that has ended has no descriptors
            descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
            for descriptor in descriptors:
                with suppress(OSError):
                    if os.readlink(descriptor) in inodes:
                        return name
    return None


LOCK_HOLDER = """
    SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


async def relay_lock_holder(database: asyncpg.Connection, system: System) -> str | None:
    """The ticket-core replica whose outbox relay holds the lock now (its only advisory lock)."""
    port = await database.fetchval(LOCK_HOLDER)
    if port is None:
        return None
    replicas = {
        system.running.processes[name].pid: name for name in system.running.names_of("ticket-core")
    }
    return socket_owner(port, replicas)


async def catch_holding_the_lock(database: asyncpg.Connection, system: System) -> str:
    """Stop (SIGSTOP) the replica seen holding the relay's lock, and keep it stopped once the
    lock is seen still held by it: frozen in the middle of a batch."""
    while True:
        holder = await relay_lock_holder(database, system)
        if holder is None:
            await asyncio.sleep(0.002)
            continue
        process = system.running.processes[holder]
        process.send_signal(signal.SIGSTOP)
        if await relay_lock_holder(database, system) == holder:
            return holder
        process.send_signal(signal.SIGCONT)  # its batch ended meanwhile: try again


async def keep_creating(gateway: httpx.AsyncClient, team: Workspace) -> None:
    """Tickets, one after another: work for the relays, so that one of them holds the lock."""
    while True:
        await gateway.post("/api/v1/tickets", json={"subject": "Load"}, headers=team.auth)


async def outbox_after(database: asyncpg.Connection, position: int) -> list[Json]:
    """ticket.events.v1 rows of ticket-core's outbox after `position`, in outbox order."""
    rows = await database.fetch(
        "SELECT payload, published_at FROM outbox WHERE topic = $1 AND position > $2 "
        "ORDER BY position",
        TICKET_EVENTS.name,
        position,
    )
    return [{**json.loads(row["payload"]), "published": row["published_at"]} for row in rows]


async def read_events(
    kafka: str, since: dict[TopicPartition, int], event_ids: set[str]
) -> list[Json]:
    """ticket.events.v1 from `since`, in each partition's order, until every one of
    `event_ids` has been read (a relay cut short may have sent some twice)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka, enable_auto_commit=False, **aiokafka_security(SystemSettings())
    )
    await consumer.start()
    read: list[Json] = []
    try:
        consumer.assign(list(since))
        for partition, offset in since.items():
            consumer.seek(partition, offset)

        async def all_read() -> bool:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                read.extend(body(record) for record in records)
            return event_ids <= {event["id"] for event in read}

        await eventually(all_read, what="every event of the outbox on the topic")
    finally:
        await consumer.stop()
    return read


async def topic_ends(kafka: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, **aiokafka_security(SystemSettings()))
    await consumer.start()
    try:
        partitions = [
            TopicPartition(TICKET_EVENTS.name, p) for p in range(TICKET_EVENTS.partitions)
        ]
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def test_when_the_relay_lock_holder_dies_the_other_replica_publishes_in_order(
    two_of_each: System, team: Workspace
) -> None:
    await running(two_of_each, *two_of_each.running.names_of("ticket-core"), "gateway-1")
    since = await topic_ends(two_of_each.kafka)
    database = await asyncpg.connect(ticket_core_dsn(two_of_each))
    async with gateways(two_of_each) as (first, second):
        try:
            start = await database.fetchval("SELECT coalesce(max(position), 0) FROM outbox")
            ticket = (
                await second.post("/api/v1/tickets", json={"subject": "Kept"}, headers=team.auth)
            ).json()
            await history(second, ticket["id"], team.auth, 1)  # its first event is out
            load = [asyncio.create_task(keep_creating(each, team)) for each in (first, second)]
            try:
                holder = await catch_holding_the_lock(database, two_of_each)
            finally:
                for task in load:
                    task.cancel()
                await asyncio.gather(*load, return_exceptions=True)
            survivor = "ticket-core-2" if holder == "ticket-core-1" else "ticket-core-1"
            # The gateway that asks the survivor first (the stopped one takes connections).
            other_gateway = second if survivor == "ticket-core-2" else first

            # The stopped replica holds the lock: what is written now waits in the outbox.
            for priority in ("high", "low", "critical"):
                await patch_priority(other_gateway, team, ticket["id"], priority)
            waiting = [e for e in await outbox_after(database, start) if not e["published"]]
            assert [e["sequence"] for e in waiting if e["subject"] == ticket["id"]] == [2, 3, 4]

            killed_at = time.monotonic()
            kill(two_of_each, holder)

            async def published() -> list[Json] | None:
                rows = await outbox_after(database, start)
                return rows if all(row["published"] for row in rows) else None

            outbox = await eventually(published, what="the other replica to publish the outbox")
            print(
                f"{holder} killed holding the relay's lock; {survivor} published the outbox "
                f"{time.monotonic() - killed_at:.2f} s later"
            )
            on_topic = await read_events(
                two_of_each.kafka, since, {event["id"] for event in outbox}
            )
            entries = await history(other_gateway, ticket["id"], team.auth, 4)
        finally:
            await database.close()

    # Every subject's events reached the topic in the outbox's order (repeats dropped, as
    # subscribers do by event id), so every ticket's sequence goes on with no gap.
    written: dict[str, list[int]] = {}
    for event in outbox:
        written.setdefault(event["subject"], []).append(event["sequence"])
    outbox_ids = {event["id"] for event in outbox}
    first_seen: dict[str, list[int]] = {}
    seen_ids: set[str] = set()
    for event in on_topic:
        if event["id"] in outbox_ids and event["id"] not in seen_ids:
            seen_ids.add(event["id"])
            first_seen.setdefault(event["subject"], []).append(event["sequence"])
    assert first_seen == written
    assert written[ticket["id"]] == [1, 2, 3, 4]
    assert all(sequences == list(range(1, len(sequences) + 1)) for sequences in written.values())
    assert [entry["sequence"] for entry in entries] == [1, 2, 3, 4]
    repeats = sum(1 for event in on_topic if event["id"] in outbox_ids) - len(seen_ids)
    print(f"{len(outbox)} events of {len(written)} tickets; {repeats} published twice")


# --- the live stream moves to the other gateway ------------------------------------------------


async def test_a_stream_resumed_on_the_other_gateway_with_last_event_id_misses_nothing(
    two_of_each: System, team: Workspace
) -> None:
    await running(two_of_each, "gateway-1", "gateway-2")
    async with gateways(two_of_each) as (first, second):
        received: list[ServerSentEvent] = []
        async with open_stream(first, headers=team.auth) as stream:
            created = await second.post(
                "/api/v1/tickets", json={"subject": "Live"}, headers=team.auth
            )
            ticket = created.json()
            received.append(await stream.next_matching("ticket.created"))
            # Changes go on through the other gateway; gateway-1 dies with the stream open.
            for priority in ("high", "low"):
                await patch_priority(second, team, ticket["id"], priority)
            kill(two_of_each, "gateway-1")
            received += await stream.until_cut()
        await patch_priority(second, team, ticket["id"], "critical")
        other = await second.post(
            "/api/v1/tickets", json={"subject": "Made while away"}, headers=team.auth
        )
        last_id = received[-1].id
        assert last_id is not None
        async with open_stream(second, headers={**team.auth, "Last-Event-ID": last_id}) as resumed:
            expected = 5  # the ticket's created and three changes, and the other's created
            while len(received) < expected:
                received.append(await resumed.next())
            assert await resumed.nothing_more(within=1.5)

    by_subject: dict[str, list[int]] = {}
    for frame in received:
        by_subject.setdefault(frame.json["subject"], []).append(frame.json["sequence"])
    assert by_subject == {ticket["id"]: [1, 2, 3, 4], other.json()["id"]: [1]}


async def patch_priority(
    gateway: httpx.AsyncClient, team: Workspace, ticket_id: str, priority: str
) -> None:
    answer = await gateway.patch(
        f"/api/v1/tickets/{ticket_id}", json={"priority": priority}, headers=team.auth
    )
    assert answer.status_code == 200, answer.text


# --- a create retried after its replica died ---------------------------------------------------

WAITING_ON_A_LOCK = """
    SELECT client_port FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock'
"""


async def waiting_in(database: asyncpg.Connection, system: System, name: str) -> int:
    """How many of `name`'s database sessions wait for a lock."""
    pid = system.running.processes[name].pid
    ports = [row["client_port"] for row in await database.fetch(WAITING_ON_A_LOCK)]
    return sum(1 for port in ports if socket_owner(port, {pid: name}) == name)


async def test_creates_cut_off_by_a_killed_replica_and_retried_make_one_ticket_each(
    two_of_each: System, team: Workspace
) -> None:
    await running(two_of_each, "ticket-core-1", "ticket-core-2", "gateway-2")
    keys = [f"retry-{uuid4().hex[:12]}" for _ in range(3)]
    database = await asyncpg.connect(ticket_core_dsn(two_of_each))
    async with httpx.AsyncClient(base_url=gateway_of(two_of_each, 2), timeout=15.0) as gateway:
        # The member's role is looked up (and cached) first, so the creates go straight on.
        assert (await gateway.get("/api/v1/tickets", headers=team.auth)).status_code == 200

        async def create(key: str) -> httpx.Response:
            return await gateway.post(
                "/api/v1/tickets",
                json={"subject": f"Retried {key}"},
                headers={**team.auth, "Idempotency-Key": key},
            )

        try:
            # The workspace's numbering row, held: every create waits inside ticket-core-2
            # (gateway-2's own replica), in the middle of its transaction.
            holding = database.transaction()
            await holding.start()
            await database.execute(
                "SELECT 1 FROM workspaces WHERE id = $1 FOR UPDATE", UUID(team.workspace_id)
            )
            in_flight = [asyncio.create_task(create(key)) for key in keys]

            async def waiting() -> int:
                return await waiting_in(database, two_of_each, "ticket-core-2")

            # At least one create is in ticket-core-2's transaction when it dies; one that
            # gateway-2 had not passed on yet goes to ticket-core-1 instead (and waits too).
            cut_in_transaction = await eventually(waiting, what="a create in ticket-core-2")
            kill(two_of_each, "ticket-core-2")
            await holding.rollback()
            cut_off = await asyncio.gather(*in_flight)

            # The same gateway: ticket-core-2 refuses the connection, ticket-core-1 answers.
            retried = [await create(key) for key in keys]
            again = [await create(key) for key in keys]
            tickets = await database.fetch(
                "SELECT id FROM tickets WHERE workspace_id = $1 AND subject = ANY($2::text[])",
                UUID(team.workspace_id),
                [f"Retried {key}" for key in keys],
            )
        finally:
            await database.close()

    lost = [a.json()["code"] for a in cut_off if a.status_code != 201]
    assert lost == ["upstream_unavailable"] * len(lost)
    assert all(a.headers["Retry-After"] == "2" for a in cut_off if a.status_code != 201)
    assert len(lost) >= cut_in_transaction
    assert [answer.status_code for answer in retried] == [201] * len(keys)
    first_answers = [a.json()["id"] if a.status_code == 201 else None for a in cut_off]
    retried_ids = [a.json()["id"] for a in retried]
    # A create answered before the kill is the ticket its retry finds.
    assert [
        first or retried_id for first, retried_id in zip(first_answers, retried_ids, strict=True)
    ] == retried_ids
    assert [a.json()["id"] for a in again] == retried_ids
    assert sorted(str(row["id"]) for row in tickets) == sorted(retried_ids)
    print(f"{len(lost)} of {len(keys)} creates cut off by the kill; one ticket each after retries")
