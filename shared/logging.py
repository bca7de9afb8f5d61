"""One log format for every process: JSON lines (structlog), or console for humans.

What must never be in a log line: secrets, tokens, visitors' text and emails. Log calls name
ids and counts, never bodies; tracebacks carry no local variables (structlog's
`dict_tracebacks` would render every frame's locals, a secret held in one included); errors
whose message quotes input (pydantic's validation errors) are summarised without it; SQL errors
never quote parameters (`shared.db`). As a second line of defence, `redact_sensitive` blanks
the values of keys that name sensitive things and masks tokens and email addresses wherever
they appear in a line.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog
from pydantic import ValidationError
from structlog.tracebacks import ExceptionDictTransformer

REDACTED = "[redacted]"
FASTSTREAM_LOGGERS = ("faststream", "faststream.access.kafka")

# A key is sensitive when its lower-cased name contains one of these...
SENSITIVE_KEY_PARTS = (
    "authorization",
    "cookie",
    "credential",
    "email",
    "password",
    "secret",
    "signature",
    "token",
    "api_key",
)
# ... or is one of these: what visitors and members write.
SENSITIVE_KEYS = frozenset(
    {"body", "contact", "content", "description", "headers", "messages", "note", "subject", "text"}
)
_SENSITIVE_PATTERNS = (
    # A JWT (ours are always three base64url parts, the first a JSON header: "eyJ").
    (re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[token]"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [token]"),
    (re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"), "[email]"),
)


def is_sensitive_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in SENSITIVE_KEYS or any(part in lowered for part in SENSITIVE_KEY_PARTS)


def _scrub(value: Any, replacements: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        for unsafe, safe in replacements.items():
            value = value.replace(unsafe, safe)
        for pattern, mask in _SENSITIVE_PATTERNS:
            value = pattern.sub(mask, value)
        return value
    if isinstance(value, Mapping):
        return {
            key: REDACTED
            if isinstance(key, str) and is_sensitive_key(key)
            else _scrub(item, replacements)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(item, replacements) for item in value]
    return value


def redact_sensitive(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Blanks sensitive keys' values and masks tokens and emails in every string of the line."""
    replacements = event_dict.pop("_unsafe_messages", {})
    for key, value in list(event_dict.items()):
        if key != "event" and is_sensitive_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(value, replacements)
    return event_dict


def _exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1] if isinstance(exc_info[1], BaseException) else None
    if exc_info is True:
        return sys.exc_info()[1]
    return None


def exception_chain(error: BaseException) -> list[BaseException]:
    """`error` and every error behind it: causes, contexts and the members of exception groups
    (SQLAlchemy wraps the driver's error, drivers wrap OSError, TaskGroups wrap them all)."""
    seen: list[BaseException] = []
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if any(current is known for known in seen):
            continue
        seen.append(current)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
    return seen


def validation_problems(error: ValidationError, *, whole: str = "<input>") -> str:
    """Each field that failed and why (`loc: msg; ...`), never the input it was given: how a
    validation error is told in a log line and in a dead letter's reason."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or whole}: {item['msg']}"
        for item in error.errors(include_input=False, include_url=False, include_context=False)
    )


def _summary(error: ValidationError) -> str:
    return (
        f"{error.error_count()} validation error(s) for {error.title}: {validation_problems(error)}"
    )


class SafeExceptionRenderer:
    """structlog's `dict_tracebacks` without local variables, and without the input that a
    validation error's message quotes (a visitor's text, an email): the message is replaced by
    its locations and reasons wherever it appears in the line."""

    def __init__(self) -> None:
        self._render = structlog.processors.ExceptionRenderer(
            ExceptionDictTransformer(show_locals=False)
        )

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        error = _exception_of(event_dict.get("exc_info"))
        rendered = self._render(logger, method, event_dict)
        if error is not None:
            unsafe = {
                str(each): _summary(each)
                for each in exception_chain(error)
                if isinstance(each, ValidationError)
            }
            if unsafe:
                rendered["_unsafe_messages"] = unsafe
        return rendered


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        SafeExceptionRenderer(),
        redact_sensitive,
    ]
    structlog.configure(
        processors=[*shared_processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    # Route the standard library's loggers (uvicorn, aiokafka, FastStream) through the same
    # processors and renderer so every line of a process has one shape and one redaction.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # FastStream's records say which topic, group and message a line is about.
            foreign_pre_chain=[
                structlog.stdlib.ExtraAdder(allow=("topic", "group_id", "message_id")),
                *shared_processors,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # FastStream's loggers do not propagate and bring their own plain-text handlers, which
    # would bypass the redaction. Given ours first, FastStream adds none of its own (it adds
    # one only where no handler writes to stdout yet).
    for name in FASTSTREAM_LOGGERS:
        logging.getLogger(name).handlers[:] = [handler]
    structlog.contextvars.bind_contextvars(service=service)
    # aiokafka logs every coordinator hiccup at INFO; keep it to warnings.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
