"""The broker connection can be secured: `deploy/kafka/kafka.sh` starts a broker of its own
(port, data dir) with a SASL_PLAINTEXT SCRAM-SHA-512 listener, ACLs and one user per
service; ticket-core publishes through it with its own user and activity-log, a real process
with its own user, consumes and stores the events. A client without credentials, one with a
wrong password and a service writing where its ACLs do not allow are refused, and nothing of
theirs reaches a topic."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy import select

from services.activity_log.store import tables as activity_tables
from services.ticket_core import handlers
from services.ticket_core.bootstrap import bootstrap as bootstrap_ticket_core
from services.ticket_core.settings import TicketCoreSettings
from shared.contracts.topics import TICKET_EVENTS
from shared.db import create_engine
from shared.kafka_admin import ensure_topics
from shared.kafka_security import aiokafka_security
from shared.settings import SystemSettings
from tests.support.credentials import strong_secrets
from tests.support.infrastructure import KAFKA_SCRIPT, REPO_ROOT, free_port_pair
from tests.support.waiting import eventually

SERVICES = ("ticket-core", "activity-log", "intake", "gateway")


def password_variable(user: str) -> str:
    return f"KAFKA_SASL_{user.upper().replace('-', '_')}_PASSWORD"


@dataclass(frozen=True)
class SaslBroker:
    bootstrap: str
    passwords: dict[str, str]  # user -> password; "admin" is the super user

    def environment(self, user: str, password: str | None = None) -> dict[str, str]:
        """What a process needs to connect as `user`."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": user,
            "KAFKA_SASL_PASSWORD": password or self.passwords[user],
        }

    def settings(self, user: str, password: str | None = None) -> SystemSettings:
        return SystemSettings(**self.environment(user, password))  # type: ignore[arg-type]

    def client(self, user: str, password: str | None = None) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.bootstrap,
            **aiokafka_security(self.settings(user, password)),
        }


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslBroker]:
    port = free_port_pair()
    passwords = {user: secrets.token_urlsafe(24) for user in ("admin", *SERVICES)}
    env = {
        # Not the test run's own broker: this script must start a new one.
        **{k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"},
        "KAFKA_SASL": "scram",
        "KAFKA_PORT": str(port),
        "KAFKA_DATA_DIR": str(tmp_path_factory.mktemp("kafka-sasl")),
        "KAFKA_SASL_ADMIN_PASSWORD": passwords["admin"],
        **{password_variable(user): passwords[user] for user in SERVICES},
    }

    def kafka_sh(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(KAFKA_SCRIPT), command],
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
            check=False,
        )

    started = kafka_sh("start")
    try:
        assert started.returncode == 0, started.stderr
        assert (
            started.stdout.strip().splitlines()[-1] == f"KAFKA_BOOTSTRAP_SERVERS=localhost:{port}"
        )
        assert "access applied: 4 SCRAM users" in started.stderr
        broker = SaslBroker(f"localhost:{port}", passwords)
        # The operator creates the topics, as the super user.
        asyncio.run(
            ensure_topics(broker.bootstrap, security=aiokafka_security(broker.settings("admin")))
        )
        yield broker
    finally:
        stopped = kafka_sh("stop")
        assert stopped.returncode == 0, stopped.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def activity_log_process(broker: SaslBroker, database_url: str) -> Iterator[None]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "services.activity_log"],
        env={
            **os.environ,
            **broker.environment("activity-log"),
            **strong_secrets(),
            "HELPDESK_ENV": "production",
            "ACTIVITY_LOG_DATABASE_URL": database_url,
            "ACTIVITY_LOG_HTTP_PORT": str(port),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                raise AssertionError(f"activity-log exited: {output[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("activity-log was not ready within 60 s")
            time.sleep(0.2)
        yield
    finally:
        process.terminate()
        process.wait(timeout=20)


async def end_offsets(broker: SaslBroker) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**broker.client("admin"))
    await consumer.start()
    try:
        partitions = [
            TopicPartition(TICKET_EVENTS.name, p) for p in range(TICKET_EVENTS.partitions)
        ]
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def test_services_work_through_the_sasl_broker_with_their_own_users(
    sasl_broker: SaslBroker, ticket_core_url: str, activity_log_url: str
) -> None:
    core = bootstrap_ticket_core(
        TicketCoreSettings(
            database_url=ticket_core_url,
            **sasl_broker.environment("ticket-core"),  # type: ignore[arg-type]
        )
    )
    with activity_log_process(sasl_broker, activity_log_url):
        # ticket-core's own consumers join their groups, its relay publishes the events.
        await core.broker.start()
        try:
            created = await handlers.create_workspace(core.unit_of_work(), "Acme", "o@acme.io")
            ticket = await handlers.create_ticket(
                core.unit_of_work(),
                handlers.CreateTicket(
                    workspace_id=created.workspace.id,
                    actor_id=created.owner.id,
                    subject="Through SASL",
                    description="-",
                ),
            )
            assert await core.relay.publish_pending() == 2  # member.added, ticket.created
        finally:
            await core.broker.stop()
            await core.engine.dispose()
            await core.read_engine.dispose()

        engine = create_engine(activity_log_url)
        try:

            async def stored() -> list[str] | None:
                async with engine.connect() as connection:
                    types = (
                        await connection.execute(
                            select(activity_tables.activity_entries.c.type).where(
                                activity_tables.activity_entries.c.ticket_id == str(ticket.id)
                            )
                        )
                    ).scalars()
                    return list(types) or None

            assert await eventually(stored, what="activity-log to store the event") == [
                "ticket.created"
            ]
        finally:
            await engine.dispose()


async def refused(client: AIOKafkaProducer) -> str:
    try:
        await client.start()
    except KafkaError as error:
        return f"{type(error).__name__}: {error}"
    finally:
        await client.stop()
    raise AssertionError("the broker accepted the client")


async def test_a_client_without_credentials_or_with_a_wrong_password_is_refused(
    sasl_broker: SaslBroker, caplog: pytest.LogCaptureFixture
) -> None:
    before = await end_offsets(sasl_broker)

    with caplog.at_level(logging.WARNING, logger="aiokafka"):
        anonymous = await refused(
            AIOKafkaProducer(bootstrap_servers=sasl_broker.bootstrap, request_timeout_ms=5000)
        )
    anonymous_why = caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="aiokafka"):
        wrong = await refused(
            AIOKafkaProducer(**sasl_broker.client("ticket-core", password="not-the-password-0000"))
        )
    wrong_why = caplog.text

    # aiokafka answers both with "Unable to bootstrap" and logs why: the broker closed the
    # connection that did not authenticate, and refused the password.
    assert "Unable to bootstrap" in anonymous
    assert "closed" in anonymous_why
    assert "SaslAuthenticationFailed" not in anonymous_why
    assert "Unable to bootstrap" in wrong
    assert "SaslAuthenticationFailed" in wrong_why
    assert "invalid credentials" in wrong_why
    assert await end_offsets(sasl_broker) == before
    # The right password still works.
    producer = AIOKafkaProducer(**sasl_broker.client("ticket-core"), acks="all")
    await producer.start()
    await producer.stop()


async def test_a_service_may_only_do_what_its_acls_allow(sasl_broker: SaslBroker) -> None:
    before = await end_offsets(sasl_broker)
    gateway = AIOKafkaProducer(**sasl_broker.client("gateway"), acks="all")
    await gateway.start()
    try:
        with pytest.raises(KafkaError) as error:
            await gateway.send_and_wait(TICKET_EVENTS.name, b"{}", key=b"forged")
    finally:
        await gateway.stop()

    assert "Authorization" in type(error.value).__name__, repr(error.value)
    assert await end_offsets(sasl_broker) == before
