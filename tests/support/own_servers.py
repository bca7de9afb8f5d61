"""A Kafka broker or a PostgreSQL cluster of one test's own, on a port chosen now and started
when the test says: for tests that start, stop, kill or restart it, which must never happen
to the broker and the cluster the other tests share."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.support.infrastructure import KAFKA_SCRIPT, POSTGRES_SCRIPT, free_port_pair


class OwnBroker:
    """A broker of `deploy/kafka/kafka.sh` on a free port, with its data in `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port_pair()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self._env = {
            **{k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"},
            "KAFKA_PORT": str(self.port),
            "KAFKA_DATA_DIR": str(data_dir),
        }

    def run(self, command: str) -> None:
        """`kafka.sh start` (waits until the broker answers), `stop`, ..."""
        done = subprocess.run(
            ["bash", str(KAFKA_SCRIPT), command],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=150,
        )
        assert done.returncode == 0, done.stderr

    def kill(self) -> None:
        """SIGKILL the broker's JVM, as the kernel's OOM killer would, and wait until it is
        gone; `run("start")` brings it back on the same data."""
        pid = int((self.data_dir / "kafka.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        # Not our child (kafka.sh starts it in a session of its own): gone when /proc says so
        # (a zombie waiting for its reaper has no command line left).
        while Path(f"/proc/{pid}/cmdline").exists() and Path(f"/proc/{pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline, f"the broker (pid {pid}) survived SIGKILL"
            time.sleep(0.1)


class OwnPostgres:
    """A PostgreSQL cluster of `deploy/postgres/pg.sh` on a free port; `durable`: with
    PostgreSQL's own durability settings, so that a commit survives a crash of the server
    (pg.sh turns them off for speed by default)."""

    def __init__(self, *, durable: bool = False) -> None:
        self.port = free_port_pair()
        self._env = {
            **os.environ,
            "PG_PORT": str(self.port),
            "PG_DURABLE": "yes" if durable else "no",
        }

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def run(self, *command: str) -> None:
        """`pg.sh start`, `stop --purge`, `createdb NAME`, `restart --immediate`, ..."""
        done = subprocess.run(
            ["bash", str(POSTGRES_SCRIPT), *command],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
