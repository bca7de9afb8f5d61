"""Settings common to every service, read from the environment (pydantic-settings).

Each service subclasses `ServiceSettings` with its own env prefix (e.g. `TICKET_CORE_`),
so one shell can configure all four without clashes; the broker address, its security and the
secrets are the same for the whole system and have no prefix.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Literal, NoReturn, TypeVar

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.internal_auth import DEVELOPMENT_INTERNAL_SECRET, MIN_SECRET_BYTES, parse_secrets

# Public (it is in this file), so only ever acceptable in development mode.
DEVELOPMENT_JWT_SECRET = "change-me-in-production-please-32b"
# sysexits.h EX_CONFIG: the process was configured wrongly; restarting it unchanged won't help.
EXIT_CONFIGURATION_ERROR = 78
MAKE_A_SECRET = "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]


class SystemSettings(BaseSettings):
    """What the whole system shares."""

    # A validation error must never quote its input: it may be a secret.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    environment: Environment = Field(
        default=Environment.PRODUCTION,
        validation_alias="HELPDESK_ENV",
        description="`production` (the default) refuses to start with the built-in or short "
        "secrets; `development` (what `make run` sets) accepts them.",
    )
    kafka_bootstrap_servers: str = Field(
        default="localhost:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        default="PLAINTEXT",
        validation_alias="KAFKA_SECURITY_PROTOCOL",
        description="How every Kafka client of this process connects: PLAINTEXT, SSL (TLS), "
        "SASL_PLAINTEXT (a user and password, unencrypted) or SASL_SSL (both).",
    )
    kafka_sasl_mechanism: KafkaSaslMechanism = Field(
        default="SCRAM-SHA-512", validation_alias="KAFKA_SASL_MECHANISM"
    )
    kafka_sasl_username: str | None = Field(default=None, validation_alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(
        default=None, validation_alias="KAFKA_SASL_PASSWORD"
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None,
        validation_alias="KAFKA_SSL_CAFILE",
        description="CA bundle (PEM) that signed the brokers' certificates; default: the "
        "system's trusted CAs.",
    )
    kafka_ssl_certfile: Path | None = Field(
        default=None,
        validation_alias="KAFKA_SSL_CERTFILE",
        description="This client's certificate (PEM), for brokers that require TLS client "
        "authentication.",
    )
    kafka_ssl_keyfile: Path | None = Field(
        default=None, validation_alias="KAFKA_SSL_KEYFILE", description="Its private key (PEM)."
    )
    jwt_secret: str = Field(
        default=DEVELOPMENT_JWT_SECRET,
        validation_alias="HELPDESK_JWT_SECRET",
        description="HS256 secret for dashboard tokens (at least 32 bytes).",
    )
    internal_secrets: str = Field(
        default=DEVELOPMENT_INTERNAL_SECRET,
        validation_alias="HELPDESK_INTERNAL_SECRETS",
        description="Secrets of internal calls' credentials, comma-separated; the first signs, "
        "all verify (see shared/internal_auth.py for rotation).",
    )
    kafka_max_message_bytes: int = Field(
        default=1_048_576,
        ge=65_536,
        le=100 * 1_048_576,
        validation_alias="KAFKA_MAX_MESSAGE_BYTES",
        description="The largest Kafka message of the system, in bytes: the producers' "
        "max_request_size, the broker's message.max.bytes and every topic's max.message.bytes; "
        "an outbox refuses a larger event before it is committed.",
    )
    log_level: str = Field(default="INFO", validation_alias="HELPDESK_LOG_LEVEL")
    log_format: str = Field(
        default="json", validation_alias="HELPDESK_LOG_FORMAT", pattern="^(json|console)$"
    )

    @property
    def internal_secret_list(self) -> list[str]:
        return parse_secrets(self.internal_secrets)

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> SystemSettings:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (this service's Kafka user)"
            )
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError(
                "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together: set both or neither"
            )
        for name, path in (
            ("KAFKA_SSL_CAFILE", self.kafka_ssl_cafile),
            ("KAFKA_SSL_CERTFILE", self.kafka_ssl_certfile),
            ("KAFKA_SSL_KEYFILE", self.kafka_ssl_keyfile),
        ):
            if path is not None and not path.is_file():
                raise ValueError(f"{name}={path} is not a readable file")
        return self


class ServiceSettings(SystemSettings):
    """A service's own settings: its database, its HTTP port, its consumer group."""

    database_url: str = "sqlite+aiosqlite:///./var/service.db"
    http_host: str = Field(
        default="127.0.0.1",
        description="Address the service's internal API listens on: loopback by default; set "
        "an internal network's address only, never a public one (`<PREFIX>_HTTP_HOST`).",
    )
    http_port: int = 8000
    max_body_bytes: int = Field(
        default=1_048_576,
        gt=0,
        description="Larger request bodies get 413 `body_too_large` before anything reads "
        "them (`<PREFIX>_MAX_BODY_BYTES`).",
    )
    outbox_poll_interval_seconds: float = 0.2
    inbox_retention_hours: float = Field(
        default=14 * 24,
        gt=0,
        description="How long the inbox remembers a consumed message's id, and so drops a "
        "redelivery of it (`<PREFIX>_INBOX_RETENTION_HOURS`); keep it above the topics' "
        "retention (Kafka's `log.retention.hours`, 7 days by default). See shared/inbox.py.",
    )
    outbox_retention_seconds: float = Field(
        default=3600.0,
        ge=0,
        le=30 * 86400,
        description="How long a published outbox row is kept (for an operator to see what went "
        "out) before the relay deletes it (`<PREFIX>_OUTBOX_RETENTION_SECONDS`). Rows not yet "
        "published and rows set aside are never deleted. Consumers de-duplicate by their own "
        "inbox, so this horizon does not affect de-duplication.",
    )


def secret_problems(settings: SystemSettings) -> list[str]:
    """What makes this configuration's secrets unsafe outside development; empty if none."""
    problems = []
    jwt_secret = settings.jwt_secret
    if jwt_secret == DEVELOPMENT_JWT_SECRET:
        problems.append(
            "HELPDESK_JWT_SECRET is the built-in development value, which is public: anyone "
            "could sign dashboard tokens for any member"
        )
    elif len(jwt_secret.encode()) < MIN_SECRET_BYTES:
        problems.append(
            f"HELPDESK_JWT_SECRET is {len(jwt_secret.encode())} bytes; it must be at least "
            f"{MIN_SECRET_BYTES}"
        )
    internal = settings.internal_secret_list
    if not internal:
        problems.append("HELPDESK_INTERNAL_SECRETS lists no secret")
    for position, secret in enumerate(internal, start=1):
        which = f"secret {position} of HELPDESK_INTERNAL_SECRETS"
        if secret == DEVELOPMENT_INTERNAL_SECRET:
            problems.append(
                f"{which} is the built-in development value, which is public: anyone could "
                "call the internal APIs as any member"
            )
        elif len(secret.encode()) < MIN_SECRET_BYTES:
            problems.append(
                f"{which} is {len(secret.encode())} bytes; it must be at least {MIN_SECRET_BYTES}"
            )
        elif secret == jwt_secret:
            problems.append(
                f"{which} equals HELPDESK_JWT_SECRET; internal credentials need a key of their "
                "own, so that a dashboard token can never pass as an internal one"
            )
    return problems


Settings = TypeVar("Settings", bound=SystemSettings)


def settings_to_start(service: str, settings_type: type[Settings]) -> Settings:
    """The settings of a service process about to start. Exits with EXIT_CONFIGURATION_ERROR
    and a message that says what to fix when they are invalid or, unless HELPDESK_ENV is
    `development`, when a secret is the built-in one or too short."""
    try:
        settings = settings_type()
    except ValidationError as error:
        _refuse(
            service,
            "its configuration is invalid",
            # Never the input: it may be a secret.
            [
                f"{'.'.join(str(part) for part in item['loc']) or 'settings'}: {item['msg']}"
                for item in error.errors(include_input=False, include_url=False)
            ],
            "Fix the environment variables named above (see the configuration table in README.md).",
        )
    problems = secret_problems(settings)
    if problems and settings.environment is Environment.PRODUCTION:
        _refuse(
            service,
            "its secrets are not safe (HELPDESK_ENV=production, the default)",
            problems,
            "Give each secret its own random value of at least "
            f"{MIN_SECRET_BYTES} bytes, the same on every service, e.g.\n"
            f'  export HELPDESK_JWT_SECRET="$({MAKE_A_SECRET})"\n'
            f'  export HELPDESK_INTERNAL_SECRETS="$({MAKE_A_SECRET})"\n'
            "or, on a developer's machine only, set HELPDESK_ENV=development "
            "(`make run` does).",
        )
    if problems:
        print(
            f"{service}: HELPDESK_ENV=development: starting with development secrets "
            f"({'; '.join(problems)}). Never expose this process.",
            file=sys.stderr,
            flush=True,
        )
    return settings


def _refuse(service: str, what: str, problems: list[str], fix: str) -> NoReturn:
    lines = [f"{service}: refusing to start: {what}:", *(f"  - {p}" for p in problems), fix]
    print("\n".join(lines), file=sys.stderr, flush=True)
    raise SystemExit(EXIT_CONFIGURATION_ERROR)
