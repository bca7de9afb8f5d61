"""Dashboard creates through the gateway, with the four services running as real processes
(`python -m services.<name>`, as `make run` starts them; SQLite, production mode), beside a
bare FastAPI endpoint doing one INSERT + COMMIT per request into the same SQLite database
(`tests/benchmarks/bare_insert.py`, its own uvicorn process), driven by the same client in
the same run.

Each target gets a burst (`requests` POSTs, `concurrency` in flight: its saturation rate),
then a paced run at half of that rate (the latency of one request under load). Latency is
from sending the request to its answer. Each process's CPU time per request over the
faster burst is printed (the figure the machine's load moves least), and the services'
resident memory (RSS) after the runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import aiohttp
import httpx

from services.local_run import RunningSystem
from shared.contracts.topics import TICKET_EVENTS
from shared.kafka_admin import ensure_topics
from tests.benchmarks.pipeline import pace
from tests.benchmarks.stats import HEADER, Figures, ratio_line
from tests.e2e.conftest import free_port, migrate, plan_on_free_ports
from tests.support.credentials import strong_secrets
from tests.support.kafka_reader import start_group_at_end, start_service_groups_at_end

# (status, problem code or None) of one request.
Send = Callable[[aiohttp.ClientSession, int], Awaitable[tuple[int, str | None]]]


async def run(*, requests: int, concurrency: int) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        urls = {
            name: f"sqlite+aiosqlite:///{tmp / name.lower()}.db"
            for name in ("TICKET_CORE", "ACTIVITY_LOG", "INTAKE")
        }
        # The suite may run alone on a fresh broker: the services' topics come first.
        await ensure_topics(bootstrap)
        group = f"bench-gw-{uuid4().hex[:8]}"
        await start_group_at_end(bootstrap, group, TICKET_EVENTS)
        await start_service_groups_at_end(bootstrap, group)
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            **strong_secrets(),
            "HELPDESK_ENV": "production",
            "ACTIVITY_LOG_CONSUMER_GROUP": group,
            "TICKET_CORE_CONSUMER_GROUP": group,
            "INTAKE_CONSUMER_GROUP": group,
            **{f"{name}_DATABASE_URL": url for name, url in urls.items()},
        }
        migrate(env)
        plan = plan_on_free_ports(urls, env)
        print(f"gateway: starting the four services (logs in {tmp / 'logs'})", flush=True)
        with RunningSystem(plan, tmp / "logs").start() as running:
            bare_port = free_port()
            bare = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "uvicorn", "tests.benchmarks.bare_insert:app"),
                *("--port", str(bare_port), "--log-level", "warning", "--loop", "asyncio"),
                env={**os.environ, "BENCH_BARE_DATABASE_URL": urls["TICKET_CORE"]},
            )
            try:
                await _until_up(f"http://127.0.0.1:{bare_port}/healthz")
                owner = json.loads(
                    _helpdesk(
                        env, "create-workspace", "Bench", "--owner-email", "o@bench.io", "--json"
                    )
                )
                auth = {"Authorization": f"Bearer {owner['token']}"}

                async def create(client: aiohttp.ClientSession, i: int) -> tuple[int, str | None]:
                    return await _post(
                        client,
                        "/api/v1/tickets",
                        {"subject": f"Bench {i}", "description": "The checkout answers 500."},
                        auth,
                    )

                async def insert(client: aiohttp.ClientSession, i: int) -> tuple[int, str | None]:
                    return await _post(
                        client,
                        "/rows",
                        {"subject": f"Bench {i}", "description": "The checkout 500s."},
                    )

                runs = await _alternating(
                    [
                        Target(
                            "gateway POST /api/v1/tickets",
                            f"http://127.0.0.1:{plan.gateway_port}",
                            create,
                            {name: process.pid for name, process in running.processes.items()},
                        ),
                        Target(
                            "bare INSERT endpoint",
                            f"http://127.0.0.1:{bare_port}",
                            insert,
                            {"bare endpoint": bare.pid},
                        ),
                    ],
                    requests,
                    concurrency,
                )
                rss = {name: _rss_mb(process.pid) for name, process in running.processes.items()}
            finally:
                bare.terminate()
                await bare.wait()

    print(f"\n{HEADER}")
    (service_burst, service_cpu), (bare_burst, bare_cpu), service_paced, bare_paced = runs
    for figures in (service_burst, bare_burst, service_paced, bare_paced):
        print(figures.row())
    print(ratio_line(service_burst, bare_burst))
    print(ratio_line(service_paced, bare_paced))
    # The cost of one request wherever it is spent, which the load of the moment moves far
    # less than the rates: each process's CPU time over the faster burst, including what the
    # outbox relay and activity-log do for it in the two seconds after.
    print("\n| process | CPU per request |\n|---|---|")
    for name, milliseconds in [*service_cpu.items(), *bare_cpu.items()]:
        print(f"| {name} | {milliseconds:.2f} ms |")
    print(
        f"| all of the gateway's path | {sum(service_cpu.values()):.2f} ms |"
        f"\n| the bare endpoint | {sum(bare_cpu.values()):.2f} ms |"
    )
    print("\n| service process | RSS |\n|---|---|")
    for name, megabytes in rss.items():
        print(f"| {name} | {megabytes:.0f} MB |")
    print()


@dataclass(frozen=True)
class Target:
    name: str
    base_url: str
    send: Send
    pids: dict[str, int]  # the processes that serve it, by name


Burst = tuple[Figures, dict[str, float]]  # and each process's CPU milliseconds per request


async def _alternating(
    targets: list[Target], requests: int, concurrency: int
) -> tuple[Burst, Burst, Figures, Figures]:
    """Bursts of each target in turn, twice (each one's faster kept), then each one paced at
    half its burst rate: on a shared machine the load drifts, and alternating gives both the
    same conditions. (first burst, second burst, first paced, second paced)."""
    # aiohttp, as the gateway itself: httpx spent ten times its CPU per request, on the same
    # two cores as the services measured.
    clients = [
        aiohttp.ClientSession(
            target.base_url,
            connector=aiohttp.TCPConnector(limit=concurrency * 4),
            timeout=aiohttp.ClientTimeout(total=60.0),
        )
        for target in targets
    ]
    try:
        bursts: list[Burst | None] = [None for _ in targets]
        for client, target in zip(clients, targets, strict=True):
            await _drive(client, target.send, 20, concurrency, None)  # connections open, warm
        for _round in range(2):
            for index, (client, target) in enumerate(zip(clients, targets, strict=True)):
                print(f"{target.name}, burst: {requests}, {concurrency} in flight", flush=True)
                cpu_before = {name: _cpu_seconds(pid) for name, pid in target.pids.items()}
                burst = Figures(
                    f"{target.name} (burst, {concurrency} in flight)",
                    requests,
                    *await _drive(client, target.send, requests, concurrency, None),
                )
                await asyncio.sleep(2)  # the relay's and activity-log's share of the burst
                cpu = {
                    name: (_cpu_seconds(pid) - cpu_before[name]) * 1000 / requests
                    for name, pid in target.pids.items()
                }
                best = bursts[index]
                if best is None or burst.per_second > best[0].per_second:
                    bursts[index] = (burst, cpu)
        paced_runs = []
        for best, client, target in zip(bursts, clients, targets, strict=True):
            assert best is not None
            rate = best[0].per_second / 2
            print(f"{target.name}, paced at {rate:.0f}/s: {requests // 2}", flush=True)
            paced_runs.append(
                Figures(
                    f"{target.name} (paced {rate:.0f}/s, half its burst rate)",
                    requests // 2,
                    *await _drive(client, target.send, requests // 2, concurrency * 4, rate),
                )
            )
    finally:
        for client in clients:
            await client.close()
    first, second = (burst for burst in bursts if burst is not None)
    return first, second, paced_runs[0], paced_runs[1]


async def _drive(
    client: aiohttp.ClientSession, send: Send, count: int, in_flight: int, rate: float | None
) -> tuple[float, list[float]]:
    """(seconds, latencies in ms) of `count` requests, at most `in_flight` at once. A request
    that is not answered 2xx is counted and printed, not timed."""
    next_index = iter(range(count))
    latencies: list[float] = []
    failures: dict[str, int] = {}

    async def worker() -> None:
        for i in next_index:
            await pace(begin, i, rate)
            sent = time.perf_counter()
            try:
                status, code = await send(client, i)
                failure = None if status < 300 else f"{status} {code or ''}"
            except (aiohttp.ClientError, TimeoutError) as error:
                failure = type(error).__name__
            if failure:
                failures[failure] = failures.get(failure, 0) + 1
            else:
                latencies.append((time.perf_counter() - sent) * 1000)

    begin = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    if failures:
        print(f"  NOT ANSWERED 2xx: {failures}", flush=True)
    return time.perf_counter() - begin, latencies


async def _post(
    client: aiohttp.ClientSession,
    path: str,
    body: dict[str, str],
    headers: dict[str, str] | None = None,
) -> tuple[int, str | None]:
    async with client.post(path, json=body, headers=headers) as answer:
        content = await answer.read()
        if answer.status < 300:
            return answer.status, None
        problem = json.loads(content) if content else {}
        return answer.status, problem.get("code") if isinstance(problem, dict) else None


def _helpdesk(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "services", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"helpdesk {args[0]} failed: {done.stderr}")
    return done.stdout


async def _until_up(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def _cpu_seconds(pid: int) -> float:
    """The process's user and system CPU time so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    """The process's resident set size, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
