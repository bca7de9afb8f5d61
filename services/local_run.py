"""Runs the four services as separate local processes: `helpdesk run` and the e2e tests.

Each service is `python -m services.<name>` with its own port and database; this module
starts them, waits until each answers /readyz, and stops every one it started. `helpdesk run`
also supervises them (`RunningSystem.supervise`): a service that exits is started again after
a capped exponential backoff (`RestartPolicy`) while the others keep serving. The e2e tests
do not supervise, and a service stopped on purpose (`stop(name)`) is never restarted.

Replicas: a plan may run N processes of every service (`SystemPlan.with_replicas`, or
`other_replicas`), each with ports of its own (`ReplicaPorts`). With one replica a process is
named as its service (`ticket-core`); with N they are `ticket-core-1` ... `ticket-core-N`, and
each has its own log file (`<name>.log`), restarts and `stop(name)`/`start_service(name)`.
Gateway k forwards to replica k of each internal service first and to the others when that
one refuses the connection (`GATEWAY_*_URL` lists, `services/gateway/upstream.py`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

import httpx


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How soon an exited service is started again: `first_delay_seconds`, doubled for each
    exit in a row, at most `max_delay_seconds`. A service that stayed up
    `stable_after_seconds` starts the count again, so one crash a day waits 1 s, not 30."""

    first_delay_seconds: float = 1.0
    max_delay_seconds: float = 30.0
    stable_after_seconds: float = 30.0

    def delay_seconds(self, exits_in_a_row: int) -> float:
        """The pause before restart number `exits_in_a_row` (1, 2, ...)."""
        return min(self.max_delay_seconds, self.first_delay_seconds * 2.0 ** (exits_in_a_row - 1))


@dataclass(slots=True)
class RestartRecord:
    """One supervised service's exits and restart, as times of `time.monotonic()`."""

    policy: RestartPolicy
    started_at: float = 0.0
    exits_in_a_row: int = 0
    restart_at: float | None = None
    awaiting_ready: bool = False

    def started(self, now: float) -> None:
        self.started_at = now
        self.restart_at = None

    def exited(self, now: float) -> float:
        """Record an exit noticed at `now`; the delay before the restart."""
        if now - self.started_at >= self.policy.stable_after_seconds:
            self.exits_in_a_row = 0
        self.exits_in_a_row += 1
        delay = self.policy.delay_seconds(self.exits_in_a_row)
        self.restart_at = now + delay
        return delay


def describe_exit(returncode: int) -> str:
    """`signal 9` for a process a signal ended (Popen reports -9), `code 1` otherwise."""
    return f"signal {-returncode}" if returncode < 0 else f"code {returncode}"


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """One process: replica `replica` of `service`, named `name` (its log file's name too)."""

    name: str
    module: str
    port: int
    env: dict[str, str]
    service: str = ""
    replica: int = 1

    def url(self, path: str) -> str:
        """`path` on the service's (first) listener."""
        return f"http://127.0.0.1:{self.port}{path}"


# `helpdesk run --replicas N`: replica k listens on each first port + (k - 1) * 100, so the
# hundreds say the replica (gateways on 8000, 8100, ...; ticket-core on 8101, 8201, ...).
REPLICA_PORT_STEP = 100


@dataclass(frozen=True, slots=True)
class ReplicaPorts:
    """The listeners of one replica of every service (the k-th process of each)."""

    gateway: int = 8000
    ticket_core: int = 8101
    activity_log: int = 8102
    intake: int = 8103  # the widget's address (public)
    intake_internal: int = 8113  # intake's internal API, for the gateway

    def shifted(self, by: int) -> ReplicaPorts:
        return ReplicaPorts(*(port + by for port in self.all()))

    def all(self) -> tuple[int, ...]:
        return (
            self.gateway,
            self.ticket_core,
            self.activity_log,
            self.intake,
            self.intake_internal,
        )


SERVICE_NAMES = ("ticket-core", "activity-log", "intake", "gateway")


@dataclass(frozen=True, slots=True)
class SystemPlan:
    """Ports and databases for one running system. The `*_port` fields are the first (or only)
    replica's; `other_replicas` the ports of replicas 2..N, which share the databases."""

    gateway_port: int = 8000
    ticket_core_port: int = 8101
    activity_log_port: int = 8102
    intake_port: int = 8103  # the widget's address (public)
    intake_internal_port: int = 8113  # intake's internal API, for the gateway
    database_urls: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    other_replicas: tuple[ReplicaPorts, ...] = ()

    def __post_init__(self) -> None:
        ports = [port for replica in self.replicas for port in replica.all()]
        twice = sorted({port for port in ports if ports.count(port) > 1})
        if twice:
            raise ValueError(
                f"port(s) {', '.join(map(str, twice))} given to more than one listener; "
                "every listener of every replica needs a port of its own"
            )

    @property
    def replicas(self) -> tuple[ReplicaPorts, ...]:
        """Every replica's ports, the first one's first."""
        first = ReplicaPorts(
            self.gateway_port,
            self.ticket_core_port,
            self.activity_log_port,
            self.intake_port,
            self.intake_internal_port,
        )
        return (first, *self.other_replicas)

    def with_replicas(self, count: int, port_step: int = REPLICA_PORT_STEP) -> SystemPlan:
        """This plan with `count` replicas of every service, replica k on the first's ports
        + (k - 1) * `port_step`."""
        first = self.replicas[0]
        others = tuple(first.shifted(port_step * k) for k in range(1, count))
        return replace(self, other_replicas=others)

    def process_names(self, service: str) -> list[str]:
        """The processes of `service` (`ticket-core`, ...): its name alone for one replica,
        `ticket-core-1` ... `ticket-core-N` for N."""
        if len(self.replicas) == 1:
            return [service]
        return [f"{service}-{k}" for k in range(1, len(self.replicas) + 1)]

    def services(self) -> list[ServicePlan]:
        """Every process: each replica's four services, the first replica's first."""

        def url(name: str) -> dict[str, str]:
            return (
                {f"{name}_DATABASE_URL": self.database_urls[name]}
                if name in self.database_urls
                else {}
            )

        def addresses(index: int, port: Callable[[ReplicaPorts], int]) -> str:
            # This gateway's own replica first, then the others: it fails over on a refused
            # connection, so a dead replica costs a connection attempt, not an error.
            ordered = self.replicas[index:] + self.replicas[:index]
            return ",".join(f"http://127.0.0.1:{port(ports)}" for ports in ordered)

        plans: list[ServicePlan] = []
        for index, ports in enumerate(self.replicas):
            environments = {
                "ticket-core": (
                    "services.ticket_core",
                    ports.ticket_core,
                    {"TICKET_CORE_HTTP_PORT": str(ports.ticket_core), **url("TICKET_CORE")},
                ),
                "activity-log": (
                    "services.activity_log",
                    ports.activity_log,
                    {"ACTIVITY_LOG_HTTP_PORT": str(ports.activity_log), **url("ACTIVITY_LOG")},
                ),
                "intake": (
                    "services.intake",
                    ports.intake,
                    {
                        "INTAKE_HTTP_PORT": str(ports.intake),
                        "INTAKE_INTERNAL_PORT": str(ports.intake_internal),
                        **url("INTAKE"),
                    },
                ),
                "gateway": (
                    "services.gateway",
                    ports.gateway,
                    {
                        "GATEWAY_HTTP_PORT": str(ports.gateway),
                        "GATEWAY_TICKET_CORE_URL": addresses(index, lambda p: p.ticket_core),
                        "GATEWAY_ACTIVITY_LOG_URL": addresses(index, lambda p: p.activity_log),
                        "GATEWAY_INTAKE_URL": addresses(index, lambda p: p.intake_internal),
                        "GATEWAY_WIDGET_API_URL": f"http://127.0.0.1:{ports.intake}",
                    },
                ),
            }
            for service in SERVICE_NAMES:
                module, port, env = environments[service]
                name = self.process_names(service)[index]
                plans.append(ServicePlan(name, module, port, env, service, index + 1))
        return plans

    def environment(self) -> dict[str, str]:
        """The variables that point a `helpdesk` command at this system's databases."""
        env = {**self.extra_env}
        for service in self.services():
            env.update({k: v for k, v in service.env.items() if k.endswith("DATABASE_URL")})
        return env


class RunningSystem:
    """The started processes; `stop()` (or leaving the `with` block) ends all of them."""

    def __init__(self, plan: SystemPlan, log_dir: Path) -> None:
        self.plan = plan
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._plans = {service.name: service for service in plan.services()}
        self._logs: dict[str, IO[bytes]] = {}
        # Services stopped on purpose (`stop`): supervision never brings them back.
        self._stopped_on_purpose: set[str] = set()
        self._restarts: dict[str, RestartRecord] = {}

    def names_of(self, service: str) -> list[str]:
        """The processes of `service`: `["ticket-core"]`, or `["ticket-core-1", ...]`."""
        return self.plan.process_names(service)

    def start(self, *, ready_timeout: float = 60.0, until: str = "/readyz") -> RunningSystem:
        """Start every service and wait until each answers 200 on `until`: `/readyz` (its
        database and broker answer) or `/healthz` (it serves, whatever it waits for)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for service in self.plan.services():
                self._spawn(service)
            for service in self.plan.services():
                self._wait_ready(service, ready_timeout, until)
        except BaseException:
            self.stop()
            raise
        return self

    def start_service(self, name: str, *, ready_timeout: float = 60.0) -> None:
        """Start one process again (after `stop(name)`, or after it was killed) and wait until
        it is ready; `name` as in `names_of`."""
        self._stopped_on_purpose.discard(name)
        self._spawn(self._plans[name])
        self._wait_ready(self._plans[name], ready_timeout)

    def _spawn(self, service: ServicePlan) -> None:
        if service.name not in self._logs:
            self._logs[service.name] = (self.log_dir / f"{service.name}.log").open("ab")
        self.processes[service.name] = subprocess.Popen(
            [sys.executable, "-m", service.module],
            env={**os.environ, **self.plan.extra_env, **service.env},
            stdout=self._logs[service.name],
            stderr=subprocess.STDOUT,
            # Its own process group: a Ctrl-C at the terminal reaches `helpdesk run` only,
            # which then stops every service in order (SIGTERM, then a bounded wait).
            start_new_session=True,
        )

    def supervise(
        self,
        announce: Callable[[str], None],
        policy: RestartPolicy | None = None,
        poll_interval_seconds: float = 0.2,
    ) -> None:
        """Restart exited services until interrupted (KeyboardInterrupt); `announce` gets one
        line per exit and one when a service becomes ready (again)."""
        policy = policy or RestartPolicy()
        now = time.monotonic()
        for name in self.processes:
            record = self._restarts.setdefault(name, RestartRecord(policy))
            record.started(now)
            record.awaiting_ready = not self._answers_ready(self._plans[name])
        while True:
            self.supervise_once(announce, time.monotonic())
            time.sleep(poll_interval_seconds)

    def supervise_once(self, announce: Callable[[str], None], now: float) -> None:
        for name, process in list(self.processes.items()):
            record = self._restarts.get(name)
            if record is None or name in self._stopped_on_purpose:
                continue
            returncode = process.poll()
            if returncode is None:
                if record.awaiting_ready and self._answers_ready(self._plans[name]):
                    record.awaiting_ready = False
                    announce(f"{name} is ready" + (" again" if record.exits_in_a_row else ""))
                continue
            if record.restart_at is None:
                delay = record.exited(now)
                announce(f"{name} exited ({describe_exit(returncode)}); restarting in {delay:g} s")
            elif now >= record.restart_at:
                self._spawn(self._plans[name])
                record.started(now)
                record.awaiting_ready = True

    @staticmethod
    def _answers_ready(service: ServicePlan) -> bool:
        try:
            return httpx.get(service.url("/readyz"), timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait_ready(self, service: ServicePlan, timeout: float, path: str = "/readyz") -> None:
        deadline = time.monotonic() + timeout
        url = service.url(path)
        while time.monotonic() < deadline:
            process = self.processes[service.name]
            if process.poll() is not None:
                raise RuntimeError(
                    f"{service.name} exited with {process.returncode}; "
                    f"see {self.log_dir / (service.name + '.log')}"
                )
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(
            f"{service.name} was not ready on {url} within {timeout}s; "
            f"see {self.log_dir / (service.name + '.log')}"
        )

    def not_ready_after(self, timeout: float) -> dict[str, str]:
        """Wait up to `timeout` seconds for every service to be ready; what each one that is
        not says it waits for (its `/readyz` checks)."""
        deadline = time.monotonic() + timeout
        while True:
            waiting: dict[str, str] = {}
            for name, service in self._plans.items():
                try:
                    answer = httpx.get(service.url("/readyz"), timeout=2.0)
                    if answer.status_code != 200:
                        checks = answer.json().get("checks", {})
                        waiting[name] = "; ".join(
                            f"{check}: {state}" for check, state in checks.items() if state != "ok"
                        )
                except (httpx.HTTPError, ValueError) as error:
                    waiting[name] = f"no answer ({type(error).__name__})"
            if not waiting or time.monotonic() >= deadline:
                return waiting
            time.sleep(0.5)

    def stop(self, name: str | None = None, timeout: float = 35.0) -> None:
        """Stop one process (not restarted by supervision until `start_service`) or all."""
        names = [name] if name else list(self.processes)
        self._stopped_on_purpose.update(names)
        for each in names:
            process = self.processes.get(each)
            if process and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for each in names:
            process = self.processes.get(each)
            if process is None:
                continue
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if name is None:
            for log in self._logs.values():
                log.close()
            self._logs.clear()

    def __enter__(self) -> RunningSystem:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
