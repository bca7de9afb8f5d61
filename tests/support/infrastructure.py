"""Finds or starts the real infrastructure the integration and e2e tests use.

Kafka, in this order: `KAFKA_BOOTSTRAP_SERVERS` if set; a Kafka container when a Docker
engine answers and testcontainers is installed; otherwise the project's own local broker
(`deploy/kafka/kafka.sh`), which is what runs on machines without Docker.

PostgreSQL: `HELPDESK_TEST_POSTGRES_URL` if set; otherwise a throwaway cluster started from
the Debian binaries by `deploy/postgres/pg.sh`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = REPO_ROOT / "deploy" / "kafka" / "kafka.sh"
POSTGRES_SCRIPT = REPO_ROOT / "deploy" / "postgres" / "pg.sh"
# Tests use their own ports so they never touch a broker or database of `make run`.
TEST_KAFKA_PORT = os.environ.get("HELPDESK_TEST_KAFKA_PORT", "39092")
TEST_POSTGRES_PORT = os.environ.get("HELPDESK_TEST_POSTGRES_PORT", "55432")


def free_port_pair() -> int:
    """A port whose next one is free too (the broker's controller listener takes it)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port < 65535:
            with socket.socket() as after:
                try:
                    after.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no two consecutive free ports")


def _last_line(output: str) -> str:
    return output.strip().splitlines()[-1].strip()


def _docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)
    return probe.returncode == 0


@contextmanager
def kafka_bootstrap_servers() -> Iterator[str]:
    if configured := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield configured
        return
    if _docker_engine_answers():
        try:
            from testcontainers.kafka import KafkaContainer  # type: ignore[import-not-found]
        except ImportError:
            pass
        else:
            with KafkaContainer().with_kraft() as container:
                yield container.get_bootstrap_server()
            return
    env = {**os.environ, "KAFKA_PORT": TEST_KAFKA_PORT}
    started = subprocess.run(
        ["bash", str(KAFKA_SCRIPT), "start"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if started.returncode != 0:
        raise RuntimeError(f"could not start the local Kafka (see output above): {started.stdout}")
    # The script prints KAFKA_BOOTSTRAP_SERVERS=host:port last.
    yield _last_line(started.stdout).split("=", 1)[1]
    # The broker is left running on purpose: the next test run reuses it (it is on a test
    # port); `deploy/kafka/kafka.sh stop` with KAFKA_PORT set stops it.


@contextmanager
def postgres_url() -> Iterator[str]:
    if configured := os.environ.get("HELPDESK_TEST_POSTGRES_URL"):
        yield configured
        return
    env = {**os.environ, "PG_PORT": TEST_POSTGRES_PORT}
    started = subprocess.run(
        ["bash", str(POSTGRES_SCRIPT), "start"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if started.returncode != 0:
        raise RuntimeError("could not start the throwaway PostgreSQL (see output above)")
    yield _last_line(started.stdout)
