"""`python -m bench dbos`: runs per second on DBOS over PostgreSQL with 1, 2 and 3 worker processes.

A throwaway PostgreSQL cluster (tests/pg.py), worker processes of tests/dbos_app.py (three desks,
one tool call each: 8 model calls a run, at `latency_s` each), `runs` runs submitted at once;
the time from the first submit to the last result, and the workers' CPU per model call (DBOS,
the journal and the framework together). Also the CPU that one committed journal write costs
the client on PostgreSQL, next to SQLite's (bench/memory_journal.py). The cluster flushes
every commit (fsync on), as a production server does.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bench.memory_journal import journal_write_ms
from supervisor.dbos import DBOSBackend
from tests.dbos_app import start_worker, worker_env
from tests.pg import cluster, fresh_database

APP = "tests.dbos_app:make_supervisor"

__all__ = ["dbos_rows"]


def _workers(
    url: str, count: int, concurrency: int, latency_s: float, effects: str, call_steps: bool = True
) -> list[subprocess.Popen[bytes]]:
    env = worker_env(effects, latency_s)
    log = Path(effects).parent
    args = ("--concurrency", str(concurrency)) + (() if call_steps else ("--no-call-steps",))
    return [start_worker(url, APP, f"w{i}", args, env, log / f"w{i}.log") for i in range(count)]


async def _throughput(url: str, runs: int) -> float:
    backend = DBOSBackend(url, APP)
    try:
        started = time.perf_counter()
        ids = await asyncio.gather(*(backend.submit(f"bench-{i}") for i in range(runs)))
        records = await asyncio.gather(*(backend.result(run_id, timeout_s=600) for run_id in ids))
        elapsed = time.perf_counter() - started
    finally:
        await backend.aclose()
    assert all(r.status == "succeeded" for r in records)
    return runs / elapsed


def _cpu_s(pid: int) -> float:
    """User and system CPU seconds of a process so far (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runs_per_second(
    server: str, processes: int, runs: int = 120, latency_s: float = 0.2, call_steps: bool = True
) -> tuple[float, float]:
    """Runs per second, and the workers' CPU per model call in ms (DBOS, journal and framework;
    a run of tests/dbos_app.py makes 8 model calls); `call_steps` False: `--no-call-steps`."""
    url = fresh_database(server)
    with tempfile.TemporaryDirectory() as folder:
        effects = os.path.join(folder, "effects.txt")
        workers = _workers(url, processes, 16, latency_s, effects, call_steps)
        try:
            before = sum(_cpu_s(w.pid) for w in workers)
            rate = asyncio.run(_throughput(url, runs))
            spent = sum(_cpu_s(w.pid) for w in workers) - before
            return rate, spent / (runs * 8) * 1000
        finally:
            for process in workers:
                process.send_signal(signal.SIGTERM)
            for process in workers:
                process.wait(timeout=30)


def postgres_journal_write_ms(server: str, writers: int) -> float:
    return journal_write_ms(writers, url=fresh_database(server))


def dbos_step_ms(server: str, steps: int = 50, rounds: int = 10) -> float:
    """The CPU of one plain DBOS step in this process (ms): an async workflow of `steps` steps
    against an empty one, `rounds` of each; what each model or tool call's checkpoint costs
    DBOS before any of ours (a run's calls are DBOS steps)."""
    from dbos import DBOS

    DBOS(config={"name": "bench-steps", "system_database_url": fresh_database(server)})

    @DBOS.step()
    async def step(i: int) -> str:
        return "x" * 600  # about a model response's record

    @DBOS.workflow()
    async def flow(n: int) -> int:
        for i in range(n):
            await step(i)
        return n

    async def spent(n: int) -> float:
        start = time.process_time()
        for _ in range(rounds):
            await flow(n)
        return time.process_time() - start

    async def measure() -> float:
        DBOS.launch()
        await flow(3)  # warm: connections, the first workflow's bookkeeping
        return (await spent(steps) - await spent(0)) / (rounds * steps) * 1000

    try:
        return asyncio.run(measure())
    finally:
        DBOS.destroy()


def dbos_rows() -> list[tuple[str, float | None, float]]:
    """The DBOS rows of the bench table: (measure, goal, value)."""
    with cluster(durable=True) as server:
        if server is None:
            raise SystemExit("no PostgreSQL here: install postgresql or set FOREMAN_PG_URL")
        rows: list[tuple[str, float | None, float]] = []
        for call_steps, how in ((True, ""), (False, ", --no-call-steps")):
            for n in (1, 2, 3):
                rate, cpu = runs_per_second(server, n, call_steps=call_steps)
                rows.append((f"DBOS: runs/s, {n} worker process(es), 0.2 s model latency{how}", None, rate))
                rows.append((f"  workers' CPU per model call, {n} process(es){how} (ms)", None, cpu))
        for writers in (1, 50):
            name = f"PostgreSQL journal: one committed write, {writers} writer(s) (ms CPU)"
            rows.append((name, None, postgres_journal_write_ms(server, writers)))
        rows.append(("DBOS: one step, alone, in the process (ms CPU)", None, dbos_step_ms(server)))
        rows.append(("SQLite journal: one committed write, alone (ms CPU)", 0.1, journal_write_ms(1)))
    return rows
