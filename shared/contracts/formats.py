"""Text inputs with a format of their own, for every service and for the OpenAPI document.

A `TextFormat` states its pattern in the JSON schema and checks values with the same expression
(Python's `re`, so the service, the document and a client generating values from it agree on
every character), and refuses a value with the format's own problem code (`invalid_cursor`,
...) instead of a generic validation error: the gateway, which checks first, answers exactly
what the owning service would. shared/problems.py turns the refusal into the problem.
"""

import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BeforeValidator, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from .conversation_ids import CONVERSATION_ID_PATTERN, CONVERSATION_ID_RULE

# The refusal's context names its problem code under this key (see shared/problems.py).
PROBLEM_CODE = "problem_code"


@dataclass(frozen=True)
class TextFormat:
    """`Annotated[str, TextFormat(...)]`: a string that must match `pattern` (anywhere, as in
    JSON Schema; anchor it to match the whole value)."""

    pattern: str
    code: str
    rule: str  # completes "… is not …": says what a good value looks like
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A final `$` ends the value as in JSON Schema; Python's would also allow a "\n" there.
        python = self.pattern[:-1] + r"\Z" if self.pattern.endswith("$") else self.pattern
        object.__setattr__(self, "compiled", re.compile(python))

    def matches(self, value: str) -> bool:
        return self.compiled.search(value) is not None

    def check(self, value: str) -> str:
        if not self.matches(value):
            # The message is formatted here; braces in the value stay as they are.
            raise PydanticCustomError(
                self.code, f"{value[:140]!r} is not {self.rule}.", {PROBLEM_CODE: self.code}
            )
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = self.pattern
        return json_schema


UUID_TEXT = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


# Whitespace as Python's str.isspace and str.strip know it, written out: `\s` means this in
# Python's `re` but not in the ECMAScript regexes of an OpenAPI document (which leaves out
# U+001C to U+001F and U+0085, and adds U+FEFF), so the document would promise what the API
# refuses.
PYTHON_WHITESPACE = (
    r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
)


def not_blank(code: str, what: str) -> TextFormat:
    """Some text besides whitespace (PYTHON_WHITESPACE), and no NUL, which no text of this API
    may hold."""
    return TextFormat(
        rf"^[^\x00]*[^\x00{PYTHON_WHITESPACE}][^\x00]*$", code, f"{what} with some text in it"
    )


AssigneeFilterText = Annotated[
    str,
    TextFormat(
        rf"^(me|none|{UUID_TEXT})?$",
        "invalid_assignee_filter",
        "an assignee filter: use a member id, `me` or `none`",
    ),
]
# A position in the ticket list, whatever its sort order: the last ticket's updated_at and
# created_at (microseconds since 1970), its priority rank and its id. Every value of this
# format is a position, so a cursor is refused only for its form.
TICKET_CURSOR = TextFormat(
    r"^[0-9]{1,16}\.[0-9]{1,16}\.[0-9]\.[0-9a-f]{32}$",
    "invalid_cursor",
    "a cursor this API gave out (a `next_cursor`); start again without it",
)
TicketCursorText = Annotated[str, TICKET_CURSOR]
CONVERSATION_ID_FORMAT = TextFormat(
    CONVERSATION_ID_PATTERN, "invalid_conversation_id", f"a conversation id: {CONVERSATION_ID_RULE}"
)
ConversationIdText = Annotated[str, CONVERSATION_ID_FORMAT]
# A ticket's ETag: its version, quoted (`"12"`).
ETAG_PATTERN = '^"[0-9]+"$'


def etag(version: int) -> str:
    return f'"{version}"'


# An ETag of this API (`"12"`), weak or not; the bare number is taken too.
IF_MATCH_MAX_LENGTH = 200  # what an `If-Match` header may carry at all
IfMatchText = Annotated[
    str,
    TextFormat(
        r'^(W/)?("[0-9]{1,18}"|[0-9]{1,18})$',
        "invalid_if_match",
        'an ETag of this API: send the ETag you received, e.g. "3"',
    ),
]


def version_in(if_match: str) -> int:
    """The version an `If-Match` of the `IfMatchText` form names."""
    return int(if_match.removeprefix("W/").strip('"'))


# A workspace member's email address: a dot-atom local part of at most 64 characters (one
# atom, or two or three joined by dots), `@`, and a domain of two or more hostname labels. ASCII
# only, nothing around it: every value of the pattern is an email by RFC 5321's rules too.
_ATOM = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LOCAL = (
    rf"({_ATOM}{{1,64}}|{_ATOM}{{1,40}}\.{_ATOM}{{1,23}}|{_ATOM}{{1,30}}(\.{_ATOM}{{1,16}}){{2}})"
)
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL = TextFormat(rf"^({_LOCAL})@{_LABEL}(\.{_LABEL})+$", "invalid_email", "a valid email address")
EmailText = Annotated[str, EMAIL]

# A web origin, `scheme://host[:port]`: http or https in any case, a host name (or `[::1]`),
# a port from 0 to 65535, and at most a `/` after it.
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
ORIGIN = TextFormat(
    rf"^[hH][tT][tT][pP][sS]?://({_LABEL}(\.{_LABEL})*|\[::1\])(:{_PORT})?/?$",
    "invalid_origin",
    "an origin: scheme://host[:port], http or https, without path, query or user",
)


def _json_integer(value: object) -> object:
    """An integer as JSON Schema has it: a number without a fraction (`7`, `7.0`), never `"7"`
    or `true`, which pydantic's lax mode would take."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]
