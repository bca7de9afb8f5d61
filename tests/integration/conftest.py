"""Integration tests: one service's store and messaging against the real infrastructure.

Real: the database (SQLite file and PostgreSQL, each test runs on both), the Kafka broker.
Not running: the other services; where a test needs their messages it publishes them itself.
"""

from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer

from services.activity_log.bootstrap import MIGRATIONS_DIR as ACTIVITY_LOG_MIGRATIONS
from services.intake.bootstrap import MIGRATIONS_DIR as INTAKE_MIGRATIONS
from services.intake.bootstrap import Intake
from services.intake.bootstrap import bootstrap as bootstrap_intake
from services.intake.settings import IntakeSettings
from services.ticket_core.bootstrap import MIGRATIONS_DIR as TICKET_CORE_MIGRATIONS
from services.ticket_core.bootstrap import TicketCore
from services.ticket_core.bootstrap import bootstrap as bootstrap_ticket_core
from services.ticket_core.settings import TicketCoreSettings
from shared.broker import stop_broker
from shared.migrations import upgrade_to_head
from tests.conftest import NewDatabase
from tests.support.kafka_reader import start_service_groups_at_end


@pytest.fixture
async def producer(kafka: str) -> AsyncIterator[AIOKafkaProducer]:
    """A plain producer, as another system publishing to the service's topics."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
async def unstarted_ticket_core(
    kafka: str, ticket_core_url: str, fresh_group: str
) -> AsyncIterator[TicketCore]:
    """ticket-core on a consumer group of its own, not started yet (a test may publish a
    backlog first, for one poll to return it all); stopped after the test."""
    core = bootstrap_ticket_core(
        TicketCoreSettings(
            database_url=ticket_core_url, kafka_bootstrap_servers=kafka, consumer_group=fresh_group
        )
    )
    yield core
    await core.relay.stop()
    await stop_broker(core.broker)
    await core.engine.dispose()


@pytest.fixture
async def ticket_core_url(new_database: NewDatabase) -> str:
    url = await new_database("ticket-core")
    await upgrade_to_head(TICKET_CORE_MIGRATIONS, url)
    return url


@pytest.fixture
async def activity_log_url(new_database: NewDatabase) -> str:
    url = await new_database("activity-log")
    await upgrade_to_head(ACTIVITY_LOG_MIGRATIONS, url)
    return url


@pytest.fixture
async def fresh_group(kafka: str) -> str:
    """A consumer group name whose per-topic groups (`<group>.<topic>`) start at the end of
    every topic, so a service started with it sees only what the test publishes, not the
    backlog of earlier tests."""
    group = f"test-{uuid4()}"
    await start_service_groups_at_end(kafka, group)
    return group


@pytest.fixture
async def intake_url(new_database: NewDatabase) -> str:
    url = await new_database("intake")
    await upgrade_to_head(INTAKE_MIGRATIONS, url)
    return url


@pytest.fixture
async def intake(intake_url: str) -> AsyncIterator[Intake]:
    """intake's parts on a fresh, migrated database; its broker is not started."""
    service = bootstrap_intake(
        IntakeSettings(database_url=intake_url, rate_limit_per_conversation=5)
    )
    yield service
    await service.engine.dispose()
    await service.read_engine.dispose()


@pytest.fixture
async def ticket_core(ticket_core_url: str) -> AsyncIterator[TicketCore]:
    """ticket-core's parts on a fresh, migrated database; its broker is not started."""
    core = bootstrap_ticket_core(TicketCoreSettings(database_url=ticket_core_url))
    yield core
    await core.engine.dispose()
    await core.read_engine.dispose()
