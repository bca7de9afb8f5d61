"""The ACLs `deploy/kafka/kafka.sh` gives each service's user (KAFKA_SASL=scram) are the ones
its code needs: every topic it subscribes to and its consumer groups, the dead-letter topics
of those, and every topic it writes through its outbox; and they name only real topics."""

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from faststream.kafka import KafkaBroker

from services.activity_log.bootstrap import bootstrap as bootstrap_activity_log
from services.activity_log.settings import ActivityLogSettings
from services.gateway.live import EventFeed
from services.gateway.settings import GatewaySettings
from services.intake.bootstrap import bootstrap as bootstrap_intake
from services.intake.settings import IntakeSettings
from services.ticket_core.bootstrap import bootstrap as bootstrap_ticket_core
from services.ticket_core.settings import TicketCoreSettings
from shared.broker import DEAD_LETTER_SUFFIX, create_watching_broker
from shared.contracts import topics
from shared.contracts.topics import topic_names_with_dead_letters
from tests.support.infrastructure import KAFKA_SCRIPT, REPO_ROOT

MEMORY = "sqlite+aiosqlite:///:memory:"


@dataclass(frozen=True)
class Acl:
    user: str
    operation: str
    resource: str
    pattern: str
    name: str

    def covers(self, user: str, operation: str, resource: str, name: str) -> bool:
        matches = self.name == name if self.pattern == "literal" else name.startswith(self.name)
        return (self.user, self.operation, self.resource) == (user, operation, resource) and (
            matches
        )


def acls() -> list[Acl]:
    line = re.compile(r"^allow\s+(\S+)\s+(\S+)\s+(\S+)\s+(literal|prefixed)\s+(\S+)\s*$")
    found = [Acl(*m.groups()) for m in map(line.match, KAFKA_SCRIPT.read_text().splitlines()) if m]
    assert found, f"no ACL table in {KAFKA_SCRIPT}"
    return found


def allowed(user: str, operation: str, resource: str, name: str) -> bool:
    return any(acl.covers(user, operation, resource, name) for acl in acls())


def service_broker(service: str) -> KafkaBroker:
    """The service's broker, with every subscriber it declares."""
    if service == "ticket-core":
        return bootstrap_ticket_core(TicketCoreSettings(database_url=MEMORY)).broker
    if service == "intake":
        return bootstrap_intake(IntakeSettings(database_url=MEMORY)).broker
    if service == "activity-log":
        return bootstrap_activity_log(ActivityLogSettings(database_url=MEMORY)).broker
    broker = create_watching_broker(GatewaySettings(), client_id="gateway")
    EventFeed("unused:9092").register(broker)
    return broker


def subscriptions(service: str) -> list[tuple[str, str | None]]:
    """(topic, consumer group) of every subscriber the service's broker has."""
    return [
        (name, getattr(subscriber, "group_id", None))
        for subscriber in service_broker(service).subscribers
        for name in subscriber.topic_names  # type: ignore[attr-defined]
    ]


def written_topics(service: str) -> set[str]:
    """The topics a service's handlers and unit of work hand to its outbox."""
    directory = REPO_ROOT / "services" / service.replace("-", "_")
    sources = [directory / "handlers.py", directory / "store" / "unit_of_work.py"]
    code = "\n".join(path.read_text() for path in sources if Path(path).exists())
    names = re.findall(r"\b([A-Z_]+)\.name\b", code)
    return {getattr(topics, name).name for name in names}


@pytest.mark.parametrize("service", ["ticket-core", "intake", "activity-log", "gateway"])
def test_each_service_may_read_what_it_subscribes_to(service: str) -> None:
    subscribed = subscriptions(service)
    assert subscribed

    for topic, group in subscribed:
        assert allowed(service, "Read", "Topic", topic), (service, topic)
        if group is not None:
            assert allowed(service, "Read", "Group", group), (service, group)
            # What it can never process goes to the topic's dead-letter topic.
            assert allowed(service, "Write", "Topic", topic + DEAD_LETTER_SUFFIX), topic


@pytest.mark.parametrize("service", ["ticket-core", "intake", "activity-log", "gateway"])
def test_no_service_creates_a_topic(service: str) -> None:
    """Topics are `helpdesk topics`' to create, each with its partition count. FastStream
    creates a missing topic with one partition when a subscriber starts, unless told not to;
    a service up before `helpdesk topics` then left a topic with one partition for good."""
    subscribers = service_broker(service).subscribers
    assert subscribers
    for subscriber in subscribers:
        assert subscriber.topics_to_create == [], (service, subscriber)  # type: ignore[attr-defined]
    assert not any(
        allowed(service, "Create", "Topic", name) for name, _ in topic_names_with_dead_letters()
    )


@pytest.mark.parametrize("service", ["ticket-core", "intake"])
def test_each_service_may_write_what_its_outbox_publishes(service: str) -> None:
    written = written_topics(service)
    assert written

    for topic in written:
        assert allowed(service, "Write", "Topic", topic), (service, topic)
    assert allowed(service, "IdempotentWrite", "Cluster", "kafka-cluster")


def test_the_acls_name_real_topics_and_give_the_gateway_nothing_to_write() -> None:
    real = {name for name, _ in topic_names_with_dead_letters()}

    for acl in acls():
        if acl.resource == "Topic":
            assert acl.name in real, acl
    assert [acl for acl in acls() if acl.user == "gateway"] == [
        Acl("gateway", "Read", "Topic", "literal", "ticket.events.v1")
    ]
