"""How every Kafka client of the project connects: the `KAFKA_SECURITY_PROTOCOL`,
`KAFKA_SASL_*` and `KAFKA_SSL_*` settings, turned into FastStream's `security=` object (for
`KafkaBroker`) and into aiokafka's keyword arguments (for the raw clients: the topic admin,
the gateway's live reader, the activity rebuild, the tests' readers). Both come from one
`faststream.security` object, so the two kinds of client can never disagree.

| protocol         | what the client does                                         |
|------------------|--------------------------------------------------------------|
| `PLAINTEXT`      | nothing: a trusted network only (the default, `make run`)     |
| `SSL`            | TLS; a client certificate too if `KAFKA_SSL_CERTFILE` is set |
| `SASL_PLAINTEXT` | user and password (`KAFKA_SASL_MECHANISM`), unencrypted      |
| `SASL_SSL`       | user and password over TLS: what production should use       |
"""

from __future__ import annotations

import ssl
from typing import Any

from faststream.kafka.security import parse_security
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

from shared.settings import SystemSettings

_SASL = {"SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512, "PLAIN": SASLPlaintext}


def ssl_context(settings: SystemSettings) -> ssl.SSLContext:
    """TLS that verifies the brokers (against `KAFKA_SSL_CAFILE`, or the system's CAs) and
    presents this client's certificate when one is configured."""
    context = ssl.create_default_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    )
    if settings.kafka_ssl_certfile is not None:
        context.load_cert_chain(
            str(settings.kafka_ssl_certfile),
            str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
        )
    return context


def faststream_security(settings: SystemSettings) -> BaseSecurity | None:
    """The `security=` argument of a FastStream `KafkaBroker`; None for PLAINTEXT."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings) if protocol in ("SSL", "SASL_SSL") else None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    username, password = settings.kafka_sasl_username, settings.kafka_sasl_password
    if not username or password is None:  # SystemSettings' validator refuses this already
        raise ValueError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs a user and a password")
    return _SASL[settings.kafka_sasl_mechanism](
        username,
        password.get_secret_value(),
        ssl_context=context,
        use_ssl=context is not None,
    )


def aiokafka_security(settings: SystemSettings) -> dict[str, Any]:
    """Keyword arguments for `AIOKafkaConsumer`, `AIOKafkaProducer` and `AIOKafkaAdminClient`
    (empty for PLAINTEXT, so a plain client is unchanged)."""
    return parse_security(faststream_security(settings))
