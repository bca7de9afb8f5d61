"""Topic names and their partition counts, versioned by name.

The project creates these itself (`helpdesk topics`; auto-create is off on the broker, and no
service's subscriber creates one: `shared.broker.existing_topic`) so partition counts are
explicit: `ticket.*` topics are keyed by ticket id, so more partitions means more parallel
consumers without losing one ticket's order.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    partitions: int
    description: str

    @property
    def dead_letter(self) -> str:
        """Where a message of this topic goes when it can never be processed."""
        return f"{self.name}.dlq"


TICKET_COMMANDS = Topic(
    "ticket.commands.v1", 6, "Commands for ticket-core, keyed by the conversation or ticket id."
)
TICKET_EVENTS = Topic(
    "ticket.events.v1", 6, "Every change of a ticket, keyed by ticket id (public contract)."
)
TICKET_COMMAND_RESULTS = Topic(
    "ticket.command-results.v1", 6, "ticket-core's answer to each command, keyed by command id."
)
WIDGET_TICKET_REQUESTS = Topic(
    "widget.ticket-requests.v1", 6, "Widget requests to turn a conversation into a ticket."
)
INTAKE_REQUEST_OUTCOMES = Topic(
    "intake.request-outcomes.v1", 3, "Outcome of each widget ticket request."
)
INTAKE_ASSISTANTS = Topic(
    "intake.assistants.v1", 3, "Changes of assistants' ticket settings, keyed by assistant id."
)
INTAKE_CONVERSATIONS = Topic(
    "intake.conversations.v1", 6, "What happens on widget conversations, keyed by conversation id."
)

ALL_TOPICS: tuple[Topic, ...] = (
    TICKET_COMMANDS,
    TICKET_EVENTS,
    TICKET_COMMAND_RESULTS,
    WIDGET_TICKET_REQUESTS,
    INTAKE_REQUEST_OUTCOMES,
    INTAKE_ASSISTANTS,
    INTAKE_CONVERSATIONS,
)


def topic_names_with_dead_letters() -> list[tuple[str, int]]:
    """Every topic the project creates, with its partition count; dead-letter topics get one."""
    names: list[tuple[str, int]] = []
    for topic in ALL_TOPICS:
        names.append((topic.name, topic.partitions))
        names.append((topic.dead_letter, 1))
    return names
