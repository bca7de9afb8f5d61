"""Creates the project's topics with explicit partition counts (the broker never auto-creates)."""

import asyncio
from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.contracts.topics import topic_names_with_dead_letters
from shared.settings import SystemSettings


async def ensure_topics(
    bootstrap_servers: str,
    *,
    replication_factor: int = 1,
    security: Mapping[str, Any] | None = None,
    max_message_bytes: int | None = None,
) -> list[str]:
    """Create every missing topic; returns the names it created. `security`: the client's
    `shared.kafka_security.aiokafka_security` arguments (a user allowed to create topics).

    Each gets `max.message.bytes` = the system's maximum message size (`KAFKA_MAX_MESSAGE_BYTES`
    unless given), the same number as the producers' `max_request_size` and the broker's
    `message.max.bytes`. Topics that exist already are left as they are."""
    limit = max_message_bytes or SystemSettings().kafka_max_message_bytes
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **(security or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=replication_factor,
                topic_configs={"max.message.bytes": str(limit)},
            )
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

    settings = SystemSettings()
    created = asyncio.run(
        ensure_topics(settings.kafka_bootstrap_servers, security=aiokafka_security(settings))
    )
    print(f"topics created: {', '.join(created) if created else 'none (all present)'}")


if __name__ == "__main__":
    main()
