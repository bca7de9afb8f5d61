"""The gateway's OpenAPI document against the running gateway.

1. schemathesis reads the document the gateway serves, generates requests for every operation
   from it (valid ones, and deliberately invalid ones), sends them to the real process and
   checks every answer: never a server error, and always what the document promised (a
   documented status, a documented content type, a body matching the schema, the documented
   headers). The requests carry the token of a workspace made for the run, and some of them
   are pointed at its real tickets and member, so they get further than "not found".
2. The document itself: every authenticated operation documents 401 and the gateway's 503,
   every operation that takes input documents 422 (and 400/413 when it takes a body), every
   error is a problem+json document and every answer carries `X-Request-Id`, so that a route
   added later cannot forget them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard
from uuid import UUID, uuid4

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.e2e.conftest import System, Workspace

pytestmark = pytest.mark.e2e

Json = dict[str, Any]
PROBLEM_JSON = "application/problem+json"
PROBLEM_SCHEMA = {"$ref": "#/components/schemas/Problem"}
TICKET_SCHEMA = {"$ref": "#/components/schemas/Ticket"}
# Generated examples per operation, in the fuzzing phase (the examples and coverage phases
# add their own, a few dozen at most per operation).
MAX_EXAMPLES = 30
# The stateful phase: how many scenarios that follow the document's links (a created ticket to
# its reads and changes), per operation it starts from.
STATEFUL_SCENARIOS = 15
# What shows it explored at all. Not STATEFUL_SCENARIOS: schemathesis ends a run early when its
# randomly seeded search finds no new path to follow (13 of 15 was seen on an unchanged API).
EXPLORED_AT_LEAST = 5
# CI repeats the same inputs every run (Hypothesis' derandomized mode, and a fixed seed for
# the stateful CLI run), so a red build means a change broke something, not that the dice
# rolled differently; HELPDESK_FUZZ=explore draws new inputs each run.
EXPLORING = os.environ.get("HELPDESK_FUZZ") == "explore"
STATEFUL_SEED = "20261206"
# schemathesis' own list for a schema-valid request, and 412 (see load_gateway_schema).
POSITIVE_DATA_ANSWERS = ["2xx", "3xx", "401", "403", "404", "409", "412", "429", "5xx"]
# Anyone may call these without a token.
PUBLIC = {"GET /healthz", "GET /readyz", "GET /api/v1/asyncapi.json"}


@dataclass(frozen=True)
class FuzzTargets:
    """A workspace of the fuzz run's own, and a few of its real resources."""

    team: Workspace
    ticket_ids: tuple[str, ...]
    member_id: str


@dataclass
class Tally:
    """What the fuzz run sent, for the summary line at the end of the module."""

    kind: str
    answers: Counter[int] = field(default_factory=Counter)
    operations: set[str] = field(default_factory=set)
    first: float | None = None
    last: float = 0.0

    def count(self, label: str, status: int) -> None:
        now = time.monotonic()
        self.first = now if self.first is None else self.first
        self.last = now
        self.operations.add(label)
        self.answers[status] += 1

    def summary(self) -> str:
        seconds = self.last - (self.first or self.last)
        statuses = ", ".join(f"{status}: {n}" for status, n in sorted(self.answers.items()))
        return (
            f"openapi fuzz [{self.kind}]: {sum(self.answers.values())} requests to "
            f"{len(self.operations)} operations in {seconds:.1f} s ({statuses})"
        )


@pytest.fixture(scope="module")
def fuzz_targets(system: System) -> FuzzTargets:
    team = system.create_workspace("Fuzz")
    with httpx.Client(base_url=system.gateway, headers=team.auth, timeout=15.0) as client:
        tickets = []
        for n in range(3):
            created = client.post("/api/v1/tickets", json={"subject": f"Fuzz target {n}"})
            assert created.status_code == 201, created.text
            tickets.append(created.json()["id"])
        added = client.post(
            "/api/v1/members",
            json={"email": f"fuzz-{uuid4().hex[:8]}@acme.io", "role": "member"},
        )
        assert added.status_code == 201, added.text
    return FuzzTargets(team=team, ticket_ids=tuple(tickets), member_id=added.json()["id"])


@pytest.fixture(scope="module")
def fuzz_tally(system: System, request: pytest.FixtureRequest) -> Iterator[Tally]:
    tally = Tally(system.kind)
    yield tally
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None and tally.answers:
        with capture.global_and_fixture_disabled():
            reporter.write_line(tally.summary())


def load_gateway_schema(system: System, fuzz_targets: FuzzTargets) -> Any:
    config = schemathesis.Config.from_dict(
        {
            # As the document's security scheme, so that `ignored_auth` can take it away.
            "auth": {"openapi": {"HTTPBearer": {"bearer": fuzz_targets.team.token}}},
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            # Every check. A schema-valid request may also be refused with 412: an `If-Match`
            # naming another version than the ticket's is well formed, and stale.
            "checks": {
                "positive_data_acceptance": {"expected-statuses": POSITIVE_DATA_ANSWERS},
            },
        }
    )
    return schemathesis.openapi.from_url(
        f"{system.gateway}/openapi.json", config=config, timeout=15
    )


@pytest.fixture
def gateway_schema(system: System, fuzz_targets: FuzzTargets) -> Any:
    return load_gateway_schema(system, fuzz_targets)


# The filter is set here: `from_fixture` replaces the filters of the schema the fixture returns.
schema = schemathesis.pytest.from_fixture("gateway_schema").exclude(
    # An endless text/event-stream: its answer never completes, so it cannot be called and
    # validated like the others (test_live_stream.py tests it).
    method="GET",
    path="/api/v1/stream",
)


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32.5's `from_fixture` reads and rewrites `node._nodeid` (to name each
    operation in its reports), which pytest 9.2 no longer has: it keeps the id behind
    `node.nodeid`. The attribute it expects is put back; pytest itself never reads it."""
    node = request.node
    if "_nodeid" not in vars(node):
        vars(node)["_nodeid"] = node.nodeid


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    derandomize=not EXPLORING,
)
def test_every_answer_is_what_the_document_promises(
    case: schemathesis.Case[Any], system: System, fuzz_targets: FuzzTargets, fuzz_tally: Tally
) -> None:
    _point_at_real_resources(case, fuzz_targets)
    # No `checks=`: every check the config enables (all of them), the `Allow` of a 405 included.
    response = case.call_and_validate(base_url=system.gateway, timeout=15)
    fuzz_tally.count(case.operation.label, response.status_code)


def test_following_the_links_every_answer_is_what_the_document_promises(
    system: System, fuzz_targets: FuzzTargets, tmp_path: Path
) -> None:
    """schemathesis' stateful phase, run the way its CLI runs it: it creates tickets, members
    and links and follows the document's links from each answer to the operations on it, with
    every check on every answer. (Its engine, not Hypothesis' own state-machine runner: that one
    replays a failing scenario against a server whose state has moved on, and reports its own
    FlakyStrategyDefinition instead of the failure.)"""
    config = tmp_path / "schemathesis.toml"
    statuses = ", ".join(f'"{status}"' for status in POSITIVE_DATA_ANSWERS)
    config.write_text(
        f'[auth.openapi.HTTPBearer]\nbearer = "{fuzz_targets.team.token}"\n\n'
        f"[checks.positive_data_acceptance]\nexpected-statuses = [{statuses}]\n"
    )
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(config),
        "run",
        f"{system.gateway}/openapi.json",
        "--phases",
        "stateful",
        "--checks",
        "all",
        "--max-examples",
        str(STATEFUL_SCENARIOS),
        "--exclude-path",
        "/api/v1/stream",
        "--generation-database",
        "none",
        "--no-color",
        *([] if EXPLORING else ["--seed", STATEFUL_SEED]),
    ]
    # In the test's own directory: the CLI keeps a cache (`.schemathesis/`) where it runs.
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-8000:]
    scenarios = re.search(r"Scenarios:\s+(\d+)", report)
    assert scenarios is not None, report[-8000:]
    assert int(scenarios.group(1)) >= EXPLORED_AT_LEAST, report[-8000:]


def _point_at_real_resources(case: schemathesis.Case[Any], targets: FuzzTargets) -> None:
    """About half of the well-formed generated ids are replaced by real ones: which, decided
    by the generated id itself, so that Hypothesis replays (and shrinks) a case the same way."""
    parameters = case.path_parameters
    ticket_id = parameters.get("ticket_id")
    if _is_uuid(ticket_id) and int(ticket_id[0], 16) % 2 == 0:
        parameters["ticket_id"] = targets.ticket_ids[int(ticket_id[1], 16) % 3]
    member_id = parameters.get("member_id")
    if _is_uuid(member_id) and int(member_id[0], 16) % 2 == 0:
        parameters["member_id"] = targets.member_id


def _is_uuid(value: object) -> TypeGuard[str]:
    if not isinstance(value, str):
        return False
    try:
        UUID(value)
    except ValueError:
        return False
    return True


# -- the document itself ------------------------------------------------------------------------


def _operations(document: Json) -> Iterator[tuple[str, Json]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def test_every_operation_documents_its_refusals(system: System) -> None:
    answer = httpx.get(f"{system.gateway}/openapi.json", timeout=15.0)
    assert answer.status_code == 200, answer.text
    document: Json = answer.json()
    gaps: list[str] = []

    def need(label: str, what: str, present: bool) -> None:
        if not present:
            gaps.append(f"{label}: {what}")

    operations = dict(_operations(document))
    assert operations.keys() >= PUBLIC
    for label, operation in operations.items():
        responses: Json = operation["responses"]
        public = label in PUBLIC
        need(label, "security: bearer token", public or bool(operation.get("security")))
        need(label, "no security (public)", not public or not operation.get("security"))
        if not public:
            need(label, "401", "401" in responses)
            need(
                label,
                "WWW-Authenticate on 401",
                responses.get("401", {})
                .get("headers", {})
                .get("WWW-Authenticate", {})
                .get("required")
                is True,
            )
            need(label, "503", "503" in responses)
        if operation.get("parameters") or operation.get("requestBody"):
            need(label, "422", "422" in responses)
        if operation.get("requestBody"):
            need(label, "400 (malformed JSON)", "400" in responses)
            need(label, "413 (body too large)", "413" in responses)
        for status, documented in responses.items():
            headers = documented.get("headers", {})
            need(
                label,
                f"X-Request-Id on {status}",
                headers.get("X-Request-Id", {}).get("required") is True,
            )
            content = documented.get("content", {})
            if status[0] in "45" and label != "GET /readyz":
                need(
                    label,
                    f"{status} as {PROBLEM_JSON} with the Problem schema",
                    list(content) == [PROBLEM_JSON]
                    and content[PROBLEM_JSON].get("schema") == PROBLEM_SCHEMA,
                )
            if status[0] == "2" and status != "204":
                need(label, f"a body schema for {status}", bool(content))
            if status[0] == "2" and content.get("application/json", {}).get("schema") == (
                TICKET_SCHEMA
            ):
                need(label, f"ETag on {status}", headers.get("ETag", {}).get("required") is True)
    created = document["paths"]["/api/v1/tickets"]["post"]["responses"]["201"]["headers"]
    location = created.get("Location", {})
    need("POST /api/v1/tickets", "Location on 201", location.get("required") is True)

    problem = document["components"]["schemas"]["Problem"]
    assert {"title", "status", "code", "detail"} <= set(problem["required"])
    assert not gaps, "\n".join(gaps)
