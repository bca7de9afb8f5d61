"""Which status may follow which, and which permission each move needs: one table.

`TRANSITIONS[from][to]` is the action (see permissions.py) a member needs for that move; a
move missing from the table is refused for everyone. The system (auto-close, a customer's
reply) moves tickets only along `SYSTEM_TRANSITIONS`.
"""

from shared.contracts.tickets import TicketStatus as S

from .permissions import Action

ACTIVE = (S.NEW, S.OPEN, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER)
WORKING = (S.OPEN, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER)


def _build() -> dict[S, dict[S, Action]]:
    table: dict[S, dict[S, Action]] = {status: {} for status in S}
    for source in ACTIVE:
        for target in WORKING:
            if target != source:
                table[source][target] = Action.CHANGE_STATUS
        table[source][S.RESOLVED] = Action.CHANGE_STATUS
    table[S.RESOLVED][S.OPEN] = Action.CHANGE_STATUS  # the customer came back
    table[S.RESOLVED][S.IN_PROGRESS] = Action.CHANGE_STATUS
    for source in (*ACTIVE, S.RESOLVED):
        table[source][S.CLOSED] = Action.CLOSE
    table[S.CLOSED][S.OPEN] = Action.CLOSE  # reopening a closed ticket
    for source in (*ACTIVE, S.RESOLVED, S.CLOSED):
        table[source][S.SPAM] = Action.MARK_SPAM
    table[S.SPAM][S.NEW] = Action.MARK_SPAM  # "not spam": back to review
    return table


TRANSITIONS: dict[S, dict[S, Action]] = _build()

SYSTEM_TRANSITIONS: frozenset[tuple[S, S]] = frozenset(
    {
        (S.RESOLVED, S.CLOSED),  # auto-close after N days without activity
        (S.WAITING_ON_CUSTOMER, S.OPEN),  # the customer replied
    }
)


def transition_table_markdown() -> str:
    """The table as Markdown, for the README (a unit test keeps the two equal)."""
    statuses = list(S)
    lines = [
        "| from \\ to | " + " | ".join(f"`{s}`" for s in statuses) + " |",
        "|---" * (len(statuses) + 1) + "|",
    ]
    short = {Action.CHANGE_STATUS: "work", Action.CLOSE: "admin", Action.MARK_SPAM: "admin"}
    for source in statuses:
        cells = [
            short[TRANSITIONS[source][t]] if t in TRANSITIONS[source] else "" for t in statuses
        ]
        lines.append(f"| `{source}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)
