"""Creates the project's topics with explicit partition counts (the broker never auto-creates)."""

import asyncio
from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.contracts.topics import topic_names_with_dead_letters


async def ensure_topics(
    bootstrap_servers: str,
    *,
    replication_factor: int = 1,
    security: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create every missing topic; returns the names it created. `security`: the client's
    `shared.kafka_security.aiokafka_security` arguments (a user allowed to create topics)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **(security or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=partitions, replication_factor=replication_factor)
            for name, partitions in topic_names_with_dead_letters()
            if name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
        return [topic.name for topic in missing]
    finally:
        await admin.close()


def main() -> None:
    from shared.kafka_security import aiokafka_security
    from shared.settings import SystemSettings

    settings = SystemSettings()
    created = asyncio.run(
        ensure_topics(settings.kafka_bootstrap_servers, security=aiokafka_security(settings))
    )
    print(f"topics created: {', '.join(created) if created else 'none (all present)'}")


if __name__ == "__main__":
    main()
