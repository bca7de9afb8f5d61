"""What the log lines of every process must never contain: secrets held in local variables of
a failing frame, tokens, visitors' text and emails."""

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pydantic import BaseModel, EmailStr

from shared.logging import REDACTED, configure_logging

SECRET = "canary-secret-5b0c1e9a"
VISITOR_TEXT = "canary visitor text 7f3d"
VISITOR_EMAIL = "canary.visitor.91ab@example.com"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJlY2FuYXJ5"


@pytest.fixture
def log_lines() -> Iterator[Any]:
    configure_logging("test")
    written = io.StringIO()
    [handler] = logging.getLogger().handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(written)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in written.getvalue().splitlines()]

    yield lines
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def fail_with_a_secret_in_a_local() -> None:
    signing_key = SECRET  # what a frame's locals would show
    raise RuntimeError(f"could not sign with a key of {len(signing_key)} bytes")


class Contact(BaseModel):
    email: EmailStr
    text: str


def test_a_traceback_has_frames_but_no_local_variables(log_lines: Any) -> None:
    try:
        fail_with_a_secret_in_a_local()
    except RuntimeError:
        structlog.get_logger("t").exception("signing_failed")

    [line] = log_lines()
    assert SECRET not in json.dumps(line)
    [stack] = line["exception"]
    assert stack["exc_type"] == "RuntimeError"
    assert "fail_with_a_secret_in_a_local" in [frame["name"] for frame in stack["frames"]]
    assert all("locals" not in frame for frame in stack["frames"])


def test_a_standard_library_traceback_has_no_local_variables_either(log_lines: Any) -> None:
    try:
        fail_with_a_secret_in_a_local()
    except RuntimeError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")

    [line] = log_lines()
    assert SECRET not in json.dumps(line)
    assert line["exception"][0]["exc_type"] == "RuntimeError"


def test_a_validation_error_is_logged_without_the_input_it_quotes(log_lines: Any) -> None:
    try:
        Contact.model_validate({"email": VISITOR_TEXT, "text": 12})
    except ValueError as error:
        # As a library (FastStream) logs a failing handler: the message is the error itself.
        logging.getLogger("a.library").exception(f"{type(error).__name__}: {error}")

    [line] = log_lines()
    rendered = json.dumps(line)
    assert VISITOR_TEXT not in rendered
    assert "email: value is not a valid email address" in line["event"]
    assert "text: Input should be a valid string" in line["exception"][0]["exc_value"]


def test_sensitive_keys_are_blanked_and_tokens_and_emails_masked_anywhere(
    log_lines: Any,
) -> None:
    structlog.get_logger("t").warning(
        f"call from {VISITOR_EMAIL} with Bearer {TOKEN}",
        authorization=f"Bearer {TOKEN}",
        email=VISITOR_EMAIL,
        text=VISITOR_TEXT,
        identity_secret=SECRET,
        request={"headers": {"x": 1}, "contact": {"email": VISITOR_EMAIL}, "note": TOKEN},
        error=f"refused {VISITOR_EMAIL}: token {TOKEN}",
        ticket_id="t-1",
        count=3,
    )

    [line] = log_lines()
    rendered = json.dumps(line)
    for canary in (VISITOR_EMAIL, VISITOR_TEXT, SECRET, TOKEN):
        assert canary not in rendered
    assert line["authorization"] == line["email"] == line["text"] == REDACTED
    assert line["identity_secret"] == REDACTED
    assert line["request"] == {"headers": REDACTED, "contact": REDACTED, "note": REDACTED}
    assert line["event"] == "call from [email] with Bearer [token]"
    assert line["error"] == "refused [email]: token [token]"
    assert (line["ticket_id"], line["count"]) == ("t-1", 3)
