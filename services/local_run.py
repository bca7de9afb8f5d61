"""Runs the four services as separate local processes: `helpdesk run` and the e2e tests.

Each service is `python -m services.<name>` with its own port and database; this module only
starts them, waits until each answers /readyz, and stops every one it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx


@dataclass(frozen=True, slots=True)
class ServicePlan:
    name: str
    module: str
    port: int
    env: dict[str, str]


@dataclass(frozen=True, slots=True)
class SystemPlan:
    """Ports and databases for one running system."""

    gateway_port: int = 8000
    ticket_core_port: int = 8101
    activity_log_port: int = 8102
    intake_port: int = 8103  # the widget's address (public)
    intake_internal_port: int = 8113  # intake's internal API, for the gateway
    database_urls: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)

    def services(self) -> list[ServicePlan]:
        def url(name: str) -> dict[str, str]:
            return (
                {f"{name}_DATABASE_URL": self.database_urls[name]}
                if name in self.database_urls
                else {}
            )

        return [
            ServicePlan(
                "ticket-core",
                "services.ticket_core",
                self.ticket_core_port,
                {"TICKET_CORE_HTTP_PORT": str(self.ticket_core_port), **url("TICKET_CORE")},
            ),
            ServicePlan(
                "activity-log",
                "services.activity_log",
                self.activity_log_port,
                {"ACTIVITY_LOG_HTTP_PORT": str(self.activity_log_port), **url("ACTIVITY_LOG")},
            ),
            ServicePlan(
                "intake",
                "services.intake",
                self.intake_port,
                {
                    "INTAKE_HTTP_PORT": str(self.intake_port),
                    "INTAKE_INTERNAL_PORT": str(self.intake_internal_port),
                    **url("INTAKE"),
                },
            ),
            ServicePlan(
                "gateway",
                "services.gateway",
                self.gateway_port,
                {
                    "GATEWAY_HTTP_PORT": str(self.gateway_port),
                    "GATEWAY_TICKET_CORE_URL": f"http://127.0.0.1:{self.ticket_core_port}",
                    "GATEWAY_ACTIVITY_LOG_URL": f"http://127.0.0.1:{self.activity_log_port}",
                    "GATEWAY_INTAKE_URL": f"http://127.0.0.1:{self.intake_internal_port}",
                    "GATEWAY_WIDGET_API_URL": f"http://127.0.0.1:{self.intake_port}",
                },
            ),
        ]

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
        self._logs: list[IO[bytes]] = []

    def start(self, *, ready_timeout: float = 60.0) -> RunningSystem:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for service in self.plan.services():
                log = (self.log_dir / f"{service.name}.log").open("ab")
                self._logs.append(log)
                self.processes[service.name] = subprocess.Popen(
                    [sys.executable, "-m", service.module],
                    env={**os.environ, **self.plan.extra_env, **service.env},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            for service in self.plan.services():
                self._wait_ready(service, ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, service: ServicePlan, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{service.port}/readyz"
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

    def stop(self, name: str | None = None, timeout: float = 15.0) -> None:
        names = [name] if name else list(self.processes)
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
            for log in self._logs:
                log.close()

    def __enter__(self) -> RunningSystem:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
