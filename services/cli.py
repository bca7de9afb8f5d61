"""`helpdesk`: the operator's command line.

It is a composition root, not a service: it may call several services' code (each through its
own bootstrap and handlers), the way an operator with access to every database would.
"""

import asyncio
import json
import os
import signal
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar
from uuid import UUID

import typer
from sqlalchemy.engine import make_url

from shared.auth import issue_token
from shared.contracts.asyncapi import specification_json
from shared.dead_letters import (
    NoSuchDeadLetter,
    dead_letter_topic,
    list_dead_letters,
    replay_dead_letters,
)
from shared.kafka_admin import ensure_topics
from shared.kafka_security import aiokafka_security
from shared.migrations import upgrade_to_head
from shared.settings import Environment, ServiceSettings, SystemSettings

from .activity_log.bootstrap import MIGRATIONS_DIR as ACTIVITY_LOG_MIGRATIONS
from .activity_log.entrypoints.rebuild import NotEmpty, RebuildReport, rebuild
from .activity_log.settings import ActivityLogSettings
from .gateway.settings import GatewaySettings
from .intake.bootstrap import MIGRATIONS_DIR as INTAKE_MIGRATIONS
from .intake.settings import IntakeSettings
from .local_run import REPLICA_PORT_STEP, RunningSystem, SystemPlan
from .ticket_core import handlers as ticket_core_handlers
from .ticket_core.bootstrap import MIGRATIONS_DIR as TICKET_CORE_MIGRATIONS
from .ticket_core.bootstrap import bootstrap as bootstrap_ticket_core
from .ticket_core.domain.errors import DomainError
from .ticket_core.settings import TicketCoreSettings

app = typer.Typer(help="Operate the help desk: migrations, topics, workspaces, tokens.")

T = TypeVar("T")

MIGRATIONS: dict[str, tuple[Path, type[ServiceSettings]]] = {
    "ticket-core": (TICKET_CORE_MIGRATIONS, TicketCoreSettings),
    "activity-log": (ACTIVITY_LOG_MIGRATIONS, ActivityLogSettings),
    "intake": (INTAKE_MIGRATIONS, IntakeSettings),
}

TokenTtlHours = Annotated[float, typer.Option(help="How long the token is valid, in hours.")]
WorkspaceId = Annotated[UUID, typer.Option("--workspace", help="Workspace id.")]
MemberId = Annotated[UUID, typer.Option("--member", help="Member id.")]


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def _fail(message: str) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


@app.command()
def migrate(
    services: Annotated[
        list[str] | None, typer.Argument(help="Services to migrate (default: all).")
    ] = None,
) -> None:
    """Bring each service's database to its newest schema."""
    for name in services or list(MIGRATIONS):
        if name not in MIGRATIONS:
            raise _fail(f"Unknown service {name!r}; choose from: {', '.join(MIGRATIONS)}.")
        migrations_dir, settings_type = MIGRATIONS[name]
        url = settings_type().database_url
        typer.echo(f"migrating {name} ({_redact(url)})")
        _run(upgrade_to_head(migrations_dir, url))


@app.command()
def topics(
    replication_factor: Annotated[
        int,
        typer.Option(
            min=1,
            help="Copies of each new topic's partitions: 1 for a single broker, 3 on a managed "
            "Kafka (topics that exist already are left as they are).",
        ),
    ] = 1,
) -> None:
    """Create the project's Kafka topics that do not exist yet."""
    settings = SystemSettings()
    created = _run(
        ensure_topics(
            settings.kafka_bootstrap_servers,
            replication_factor=replication_factor,
            security=aiokafka_security(settings),
        )
    )
    typer.echo(f"topics created: {', '.join(created) if created else 'none (all present)'}")


@app.command("create-workspace")
def create_workspace(
    name: Annotated[str, typer.Argument(help="The team's name.")],
    owner_email: Annotated[str, typer.Option("--owner-email", help="The first owner's email.")],
    ttl_hours: TokenTtlHours = 12.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Create a workspace and its owner; print their ids and a dashboard token."""

    async def create() -> ticket_core_handlers.NewWorkspace:
        core = bootstrap_ticket_core()
        try:
            return await ticket_core_handlers.create_workspace(
                core.unit_of_work(), name, owner_email
            )
        finally:
            await core.engine.dispose()

    try:
        created = _run(create())
    except DomainError as error:
        raise _fail(f"Refused: {error.detail}") from error
    token = issue_token(
        created.owner.id,
        created.workspace.id,
        SystemSettings().jwt_secret,
        timedelta(hours=ttl_hours),
    )
    _print(
        {
            "workspace_id": str(created.workspace.id),
            "member_id": str(created.owner.id),
            "token": token,
            "login_url": login_url(token),
        },
        as_json,
    )


def login_url(token: str) -> str:
    """A sign-in link: the dashboard reads the token from the fragment, which browsers never
    send to a server, keeps it in the tab's session storage and takes it off the address bar."""
    return f"{GatewaySettings().public_url.rstrip('/')}/#token={token}"


def _member_token(workspace: UUID, member: UUID, ttl_hours: float) -> str:
    """A token for an existing member; refused (exit 2) when there is no such member."""

    async def find() -> None:
        core = bootstrap_ticket_core()
        try:
            await ticket_core_handlers.get_member(core.unit_of_work(), workspace, member)
        finally:
            await core.engine.dispose()

    try:
        _run(find())
    except DomainError as error:
        raise _fail(
            f"No member {member} in workspace {workspace}; "
            "check the ids printed by `helpdesk create-workspace`."
        ) from error
    return issue_token(member, workspace, SystemSettings().jwt_secret, timedelta(hours=ttl_hours))


@app.command()
def token(workspace: WorkspaceId, member: MemberId, ttl_hours: TokenTtlHours = 12.0) -> None:
    """Print a dashboard token for an existing member."""
    typer.echo(_member_token(workspace, member, ttl_hours))


@app.command()
def login(workspace: WorkspaceId, member: MemberId, ttl_hours: TokenTtlHours = 12.0) -> None:
    """Print `login_url=<url>`: a link that opens the dashboard signed in as that member."""
    typer.echo(f"login_url={login_url(_member_token(workspace, member, ttl_hours))}")


# How long `helpdesk run` waits for every service to be ready before it shows the banner.
READY_WAIT_SECONDS = 60.0


@app.command()
def run(
    gateway_port: Annotated[int, typer.Option(help="The dashboard API's port.")] = 8000,
    ticket_core_port: Annotated[int, typer.Option(help="ticket-core's internal API.")] = 8101,
    activity_log_port: Annotated[int, typer.Option(help="activity-log's internal API.")] = 8102,
    intake_port: Annotated[int, typer.Option(help="The widget API's (public) port.")] = 8103,
    intake_internal_port: Annotated[int, typer.Option(help="intake's internal API.")] = 8113,
    log_dir: Annotated[Path, typer.Option(help="Where each service's log goes.")] = Path("var/log"),
    replicas: Annotated[
        int,
        typer.Option(
            min=1,
            help="Processes of every service (PostgreSQL only when more than 1). Replica k "
            f"listens on each port + {REPLICA_PORT_STEP} x (k - 1).",
        ),
    ] = 1,
) -> None:
    """Start the four services as separate processes and restart any that exits (with
    backoff, 1 s doubling to 30 s); Ctrl-C or SIGTERM stops them all."""
    # A developer's machine unless told otherwise: the built-in secrets are accepted.
    environment = os.environ.setdefault("HELPDESK_ENV", Environment.DEVELOPMENT.value)
    if replicas > 1 and (on_sqlite := _services_on_sqlite()):
        raise _fail(_replicas_need_postgresql(replicas, on_sqlite))
    try:
        plan = SystemPlan(
            gateway_port=gateway_port,
            ticket_core_port=ticket_core_port,
            activity_log_port=activity_log_port,
            intake_port=intake_port,
            intake_internal_port=intake_internal_port,
        ).with_replicas(replicas)
    except ValueError as error:
        raise _fail(f"Cannot run {replicas} replica(s) on these ports: {error}.") from error
    os.environ.setdefault("GATEWAY_PUBLIC_URL", f"http://127.0.0.1:{gateway_port}")
    system = RunningSystem(plan, log_dir)
    # SIGTERM (a process manager, `make run`'s script) stops the system as Ctrl-C does. And
    # Ctrl-C does even when started from a script's background job, which inherits SIGINT
    # ignored (Python then leaves it so): the supervisor would never stop, and its services
    # would outlive it.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        typer.echo(f"starting {_processes(plan)} ...")
        try:
            # Alive is enough to go on: a service waits for its broker and database by itself.
            system.start(until="/healthz")
        except RuntimeError as error:
            raise _fail(f"Could not start the system: {error}") from error
        for name, why in system.not_ready_after(READY_WAIT_SECONDS).items():
            typer.secho(f"{name} is not ready yet ({why}); it keeps trying", err=True)
        typer.echo(_running_banner(plan, environment, log_dir))
        system.supervise(announce=lambda line: typer.echo(line))
    except KeyboardInterrupt:
        typer.echo("stopping ...")
    finally:
        # A second Ctrl-C must not cut the shutdown short and leave services running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        system.stop()
    typer.echo("all services stopped")


def _services_on_sqlite() -> dict[str, str]:
    """The services whose database (as their settings read it) is a SQLite file: name → URL."""
    urls = {name: settings_type().database_url for name, (_, settings_type) in MIGRATIONS.items()}
    return {name: url for name, url in urls.items() if make_url(url).get_backend_name() == "sqlite"}


def _replicas_need_postgresql(replicas: int, on_sqlite: dict[str, str]) -> str:
    variables = _listed([f"{name.upper().replace('-', '_')}_DATABASE_URL" for name in on_sqlite])
    verb = "uses" if len(on_sqlite) == 1 else "use"
    return (
        f"--replicas {replicas} needs PostgreSQL, and {_listed(list(on_sqlite))} {verb} SQLite "
        f"({', '.join(_redact(url) for url in on_sqlite.values())}). A SQLite file takes one "
        "writer process: a second process of the same service would queue on the file's write "
        "lock, and only PostgreSQL has the lock that lets one outbox relay publish at a time. "
        f"Set {variables} to postgresql+asyncpg://USER:PASSWORD@HOST/DATABASE (a database per "
        "service) and run `helpdesk migrate`, or run one replica (--replicas 1)."
    )


def _listed(names: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return " and ".join(filter(None, [", ".join(names[:-1]), names[-1]]))


def _processes(plan: SystemPlan) -> str:
    count = len(plan.replicas)
    names = "ticket-core, activity-log, intake and gateway"
    return names if count == 1 else f"{count} processes each of {names}"


def _running_banner(plan: SystemPlan, environment: str, log_dir: Path) -> str:
    gateway = f"http://127.0.0.1:{plan.gateway_port}"
    widget = f"http://127.0.0.1:{plan.intake_port}"
    replicas = ""
    if len(plan.replicas) > 1:
        gateways = ", ".join(f"http://127.0.0.1:{ports.gateway}" for ports in plan.replicas)
        widgets = ", ".join(f"http://127.0.0.1:{ports.intake}" for ports in plan.replicas)
        replicas = f"""
  replicas       {len(plan.replicas)} processes of each service (logs ticket-core-1.log, ...)
                 dashboard API on {gateways}
                 widget API on {widgets}"""
    mode = (
        "HELPDESK_ENV=development: the built-in development secrets are accepted; never expose "
        "these ports. Production (the default) needs HELPDESK_JWT_SECRET and "
        "HELPDESK_INTERNAL_SECRETS."
        if environment == Environment.DEVELOPMENT.value
        else f"HELPDESK_ENV={environment}."
    )
    return f"""
Help desk is running (logs in {log_dir}/; a service that exits is restarted).
  {mode}
  dashboard      {gateway}/   (sign in: .venv/bin/helpdesk login --workspace W --member M)
  widget demo    {gateway}/widget-demo   (embeds {gateway}/widget.js for an assistant)
  dashboard API  {gateway}/api/v1/tickets
  API docs       {gateway}/docs
  widget API     {widget}/widget/v1/ticket-requests  (public: the widget's address)
  widget docs    {widget}/docs
  get started    .venv/bin/helpdesk create-workspace "My team" --owner-email you@example.com
                 (prints a token and login_url=..., the dashboard signed in as the owner)
  try it         curl -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
                      -d '{{"subject": "Hello"}}' {gateway}/api/v1/tickets{replicas}
Press Ctrl-C to stop.
"""


@app.command()
def contract(
    output: Annotated[
        Path | None, typer.Option(help="Write here instead of printing (docs/asyncapi.json).")
    ] = None,
) -> None:
    """Print (or write) the AsyncAPI document of the Kafka contract, generated from the code."""
    document = specification_json()
    if output is None:
        typer.echo(document, nl=False)
        return
    output.write_text(document)
    typer.echo(f"wrote {output}")


activity = typer.Typer(help="The activity log.")
app.add_typer(activity, name="activity")


@activity.command("rebuild")
def rebuild_activity(
    into: Annotated[
        str, typer.Option("--into", help="URL of a new, empty database for the rebuilt log.")
    ],
) -> None:
    """Replay ticket.events.v1 from its first offset into a fresh activity store."""

    def show(report: RebuildReport, total: int) -> None:
        typer.echo(f"  {report.read}/{total} events read, {report.applied} applied", err=True)

    try:
        settings = SystemSettings()
        report = _run(
            rebuild(
                settings.kafka_bootstrap_servers,
                into,
                show,
                security=aiokafka_security(settings),
            )
        )
    except NotEmpty as error:
        raise _fail(str(error)) from error
    typer.echo(
        f"rebuilt: {report.applied} entries from {report.read} events "
        f"({report.skipped_invalid} invalid skipped) into {_redact(into)}"
    )


def _print(values: dict[str, str], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(values))
        return
    for key, value in values.items():
        typer.echo(f"{key}={value}")


def _redact(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    app()


dlq = typer.Typer(help="Dead letters: messages a consumer could not process, with the reason.")
app.add_typer(dlq, name="dlq")

DlqTopic = Annotated[
    str, typer.Argument(help="The original topic (ticket.events.v1) or its .dlq topic.")
]


@dlq.command("list")
def dlq_list(
    topic: DlqTopic,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show each dead letter: its offset, event id, type, where it came from, why, when."""
    settings = SystemSettings()
    try:
        letters = _run(
            list_dead_letters(
                settings.kafka_bootstrap_servers, topic, security=aiokafka_security(settings)
            )
        )
    except NoSuchDeadLetter as error:
        raise _fail(str(error)) from error
    for letter in letters:
        if as_json:
            typer.echo(json.dumps(letter.as_dict()))
            continue
        typer.echo(
            f"offset={letter.offset} event_id={letter.event_id or '-'} type={letter.type or '-'} "
            f"from={letter.original_topic}[{letter.original_partition}]@{letter.original_offset} "
            f"time={letter.dead_lettered_at} kind={letter.kind} reason={letter.reason}"
        )
    typer.echo(f"{len(letters)} dead letter(s) in {dead_letter_topic(topic)}", err=True)


@dlq.command("replay")
def dlq_replay(
    topic: DlqTopic,
    event_id: Annotated[
        str | None, typer.Option("--id", help="Replay only the dead letters of this event id.")
    ] = None,
) -> None:
    """Publish dead letters back to their original topic (consumers drop what they have)."""
    settings = SystemSettings()
    try:
        replayed = _run(
            replay_dead_letters(
                settings.kafka_bootstrap_servers,
                topic,
                event_id=event_id,
                max_message_bytes=settings.kafka_max_message_bytes,
                security=aiokafka_security(settings),
            )
        )
    except NoSuchDeadLetter as error:
        raise _fail(str(error)) from error
    for item in replayed:
        typer.echo(
            f"replayed offset={item.letter.offset} event_id={item.letter.event_id} "
            f"to {item.letter.original_topic}[{item.partition}]@{item.offset}"
        )
    typer.echo(f"{len(replayed)} dead letter(s) replayed from {dead_letter_topic(topic)}")
