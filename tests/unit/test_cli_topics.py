"""`helpdesk topics --replication-factor N` creates the topics with N copies (a managed Kafka
refuses or under-replicates 1); without it, 1, for the single local broker."""

from typing import Any

import pytest
from typer.testing import CliRunner

from services import cli


@pytest.mark.parametrize(("arguments", "expected"), [([], 1), (["--replication-factor", "3"], 3)])
def test_topics_passes_the_replication_factor(
    monkeypatch: pytest.MonkeyPatch, arguments: list[str], expected: int
) -> None:
    calls: list[dict[str, Any]] = []

    async def ensure_topics(bootstrap_servers: str, **options: Any) -> list[str]:
        calls.append({"bootstrap_servers": bootstrap_servers, **options})
        return ["ticket.events.v1"]

    monkeypatch.setattr(cli, "ensure_topics", ensure_topics)
    result = CliRunner().invoke(cli.app, ["topics", *arguments])
    assert result.exit_code == 0, result.output
    assert calls[0]["replication_factor"] == expected
    assert "topics created: ticket.events.v1" in result.output


def test_topics_refuses_a_replication_factor_below_one() -> None:
    result = CliRunner().invoke(cli.app, ["topics", "--replication-factor", "0"])
    assert result.exit_code != 0
