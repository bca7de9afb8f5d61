from datetime import timedelta
from uuid import uuid4

import pytest

from shared.auth import InvalidToken, issue_token, read_token

SECRET = "s" * 32


def test_a_token_names_the_member_and_the_workspace() -> None:
    member_id, workspace_id = uuid4(), uuid4()
    claims = read_token(issue_token(member_id, workspace_id, SECRET), SECRET)
    assert (claims.member_id, claims.workspace_id) == (member_id, workspace_id)


def test_an_expired_token_is_refused_and_says_so() -> None:
    token = issue_token(uuid4(), uuid4(), SECRET, timedelta(seconds=-1))
    with pytest.raises(InvalidToken, match="expired"):
        read_token(token, SECRET)


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        issue_token(uuid4(), uuid4(), "another-secret-of-thirty-two-bytes!"),
        "",
    ],
)
def test_malformed_or_foreign_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        read_token(token, SECRET)
