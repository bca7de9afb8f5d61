"""What a conversation id is, for every service: the widget sends it, intake keeps it,
ticket-core links it to tickets, the gateway takes it in paths. One rule, so that an id one
service accepts is never refused later by another."""

import re
from typing import Annotated

from pydantic import Field

CONVERSATION_ID_MAX_LENGTH = 128
# Starts with a letter or digit: no `-x` (an option to some tools), `.x` (a hidden or relative
# name) or `_x`; then letters, digits, `.`, `_`, `:`, `-`.
CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
CONVERSATION_ID_RULE = (
    "1 to 128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"
)
CONVERSATION_ID = re.compile(CONVERSATION_ID_PATTERN)


# A conversation id as every contract bounds its length (the pattern allows no other length
# either); a contract adds after it the check of the form it answers with.
BoundedConversationId = Annotated[str, Field(min_length=1, max_length=CONVERSATION_ID_MAX_LENGTH)]


def is_conversation_id(value: str) -> bool:
    return CONVERSATION_ID.fullmatch(value) is not None
