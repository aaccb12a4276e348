"""Runs on DBOS over a real PostgreSQL: worker processes share a queue, and a worker killed
mid-run loses nothing.

Each test starts worker processes (`python -m supervisor worker`) on a fresh database of the
session's throwaway cluster (tests/pg.py), submits runs of tests/dbos_app.py through
`DBOSBackend.submit`, kills one worker with SIGKILL while it holds runs, and brings its runs back
either by starting it again under the same executor id or by another worker taking them over
(`--recover`). Every run must end once, as its store record says, and no tool side effect (a line
in a file) may happen twice.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from supervisor.dbos import DBOSBackend
from tests.dbos_app import ROOT, start_worker, worker_env

APP = "tests.dbos_app:make_supervisor"
RUNS = 20


class Workers:
    """Worker processes of one test; every one is stopped when the test ends."""

    def __init__(self, url: str, effects: Path) -> None:
        self.url = url
        self.logs = effects.parent
        self.env = worker_env(effects, 0.3)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, executor: str, *extra: str, app: str = APP) -> None:
        """Start a worker and wait (bounded) until it takes runs; its output goes to a log file."""
        log = self.logs / f"{executor}-{len(self.processes)}-{time.monotonic_ns()}.log"
        args = extra or ("--concurrency", "4")
        self.processes[executor] = start_worker(self.url, app, executor, args, self.env, log)

    def kill(self, executor: str) -> None:
        process = self.processes.pop(executor)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.processes.clear()


@pytest.fixture
def workers(postgres_url: str, tmp_path: Path) -> Iterator[Workers]:
    running = Workers(postgres_url, tmp_path / "effects.txt")
    yield running
    running.stop_all()


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def _wait_for_effects(path: Path, count: int, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if len(_lines(path)) >= count:
                return
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("comeback", ["restart", "takeover"])
async def test_runs_on_three_workers_end_once_when_one_is_killed_mid_run(
    workers: Workers, postgres_url: str, tmp_path: Path, comeback: str
) -> None:
    effects = tmp_path / "effects.txt"
    for executor in ("w1", "w2", "w3"):
        workers.start(executor)
    backend = DBOSBackend(postgres_url, APP)
    try:
        ids = [await backend.submit(f"goal-{i}", run_id=f"run-{i}") for i in range(RUNS)]
        await _wait_for_effects(effects, 6, timeout_s=60)  # runs are in flight on every worker
        held = await backend._dbos_client().list_workflows_async(
            status="PENDING", executor_id="w1", load_input=False, load_output=False
        )
        assert held, "w1 holds no run: killing it would prove nothing"
        workers.kill("w1")
        if comeback == "restart":
            workers.start("w1")
        else:
            workers.start("w4", "--concurrency", "4", "--recover", "w1")
        records = [await backend.result(run_id, timeout_s=120) for run_id in ids]
        statuses = [await backend.status(run_id) for run_id in ids]
        if comeback == "takeover":  # past its first check of its lock: it crashed there
            from supervisor._dbos_lock import LOCK_CHECK_S as _LOCK_CHECK_S

            await asyncio.sleep(_LOCK_CHECK_S + 1)
            assert workers.processes["w4"].poll() is None, "the worker that took over died"
    finally:
        await backend.aclose()
    _ended_once(effects, records, statuses, len(held))


def _ended_once(effects: Path, records: list[Any], statuses: list[str], held: int) -> None:
    """No side effect twice; every run ended once, and only a run the killed worker held failed
    (caught between a tool's start and its recorded end: never run again, said clearly)."""
    lines = effects.read_text().splitlines()
    repeated = [key for key, n in Counter(lines).items() if n > 1]
    assert repeated == [], f"side effects repeated: {repeated}"
    for record in records:
        done = {f"{record.goal}/desk{d}" for d in range(3)}
        if record.status == "succeeded":
            assert done <= set(lines)
        else:
            assert record.status == "failed" and "did not finish" in (record.error or ""), record
    assert sum(r.status == "succeeded" for r in records) >= len(records) - held
    assert statuses == ["SUCCESS"] * len(records), statuses  # each run's workflow ended, once


async def test_workers_that_keep_calls_out_of_dbos_steps_share_the_queue_and_lose_nothing(
    workers: Workers, postgres_url: str, tmp_path: Path
) -> None:
    # `--no-call-steps` trades a DBOS step per call for the journal alone. A killed worker's
    # runs go back on the queue (DBOS re-queues them when it starts again), and whichever worker
    # takes them, with steps or without, takes them up from what the other kept.
    effects = tmp_path / "effects.txt"
    workers.start("w1", "--concurrency", "4", "--no-call-steps")
    workers.start("w2", "--concurrency", "4")
    backend = DBOSBackend(postgres_url, APP)
    client = backend._dbos_client()

    async def calls_as_steps(run_id: str) -> int:  # steps named by journal key: "scope/worker/turn"
        return sum("/" in step["function_name"] for step in await client.list_workflow_steps_async(run_id))

    try:
        ids = [await backend.submit(f"goal-{i}", run_id=f"run-{i}") for i in range(12)]
        await _wait_for_effects(effects, 4, timeout_s=60)
        held = await client.list_workflows_async(
            status="PENDING", executor_id="w1", load_input=False, load_output=False
        )
        assert held, "w1 holds no run: killing it would prove nothing"
        workers.kill("w1")
        workers.start("w1", "--concurrency", "4", "--no-call-steps")
        records = [await backend.result(run_id, timeout_s=120) for run_id in ids]
        statuses = [await backend.status(run_id) for run_id in ids]
        with_steps = [await calls_as_steps(run_id) for run_id in ids]
        workers.kill("w2")  # idle: every run ended; now only w1 takes runs
        alone = [await backend.submit(f"alone-{i}", run_id=f"alone-{i}") for i in range(2)]
        alone_records = [await backend.result(run_id, timeout_s=120) for run_id in alone]
        alone_steps = [await calls_as_steps(run_id) for run_id in alone]
    finally:
        await backend.aclose()
    _ended_once(effects, records, statuses, len(held))
    assert any(with_steps), "w2 made no call a step: the count below would prove nothing"
    assert [r.status for r in alone_records] == ["succeeded"] * 2
    assert alone_steps == [0, 0]  # w1 ran them, and kept no call as a DBOS step


async def test_the_queue_holds_its_limits_per_worker_and_across_workers(
    workers: Workers, postgres_url: str, tmp_path: Path
) -> None:
    """Two workers of at most 2 runs each, at most 3 in all: sampled while 10 runs go through."""
    for executor in ("w1", "w2"):
        workers.start(executor, "--concurrency", "2", "--global-concurrency", "3")
    backend = DBOSBackend(postgres_url, APP)
    client = backend._dbos_client()
    peaks: dict[str, int] = {}
    try:
        ids = [await backend.submit(f"limits-{i}") for i in range(10)]
        async with asyncio.timeout(120):
            while True:
                pending = await client.list_workflows_async(
                    status="PENDING", workflow_ids=ids, load_input=False, load_output=False
                )
                held = Counter(w.executor_id for w in pending)
                peaks = {e: max(peaks.get(e, 0), n) for e, n in {**peaks, **held}.items()}
                peaks["all"] = max(peaks.get("all", 0), len(pending))
                if all([await backend.status(run_id) == "SUCCESS" for run_id in ids]):
                    break
                await asyncio.sleep(0.05)
    finally:
        await backend.aclose()
    assert peaks.get("all") == 3 and peaks.get("w1", 0) <= 2 and peaks.get("w2", 0) <= 2, peaks


def _cut_connections(url: str) -> int:
    """End every other connection to the database, as a server restart does."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


async def test_connections_cut_mid_run_and_while_idle_lose_no_run_and_no_executor_lock(
    workers: Workers, postgres_url: str, tmp_path: Path
) -> None:
    """A database restart mid-run left runs marked running for ever (their workflows recorded
    as ended with 'failed: StoreError'); after one while idle, the next runs failed on stale
    connections, and the executor id's lock was gone, so a second w1 was let in."""
    from supervisor._dbos_lock import LOCK_CHECK_S as _LOCK_CHECK_S

    effects = tmp_path / "effects.txt"
    workers.start("w1")
    backend = DBOSBackend(postgres_url, APP)
    try:
        ids = [await backend.submit(f"cut-{i}", run_id=f"cut-{i}") for i in range(4)]
        await _wait_for_effects(effects, 2, timeout_s=60)  # in flight
    finally:
        await backend.aclose()
    assert await asyncio.to_thread(_cut_connections, postgres_url) > 0
    backend = DBOSBackend(postgres_url, APP)  # the submitter's own connections were cut too
    try:
        records = [await backend.result(run_id, timeout_s=120) for run_id in ids]
        assert await asyncio.to_thread(_cut_connections, postgres_url) > 0  # now idle
    finally:
        await backend.aclose()
    for record in records:  # ended: done, or stopped by a tool caught half-way, as a kill would
        assert record.status == "succeeded" or "did not finish" in (record.error or ""), record
    await asyncio.sleep(_LOCK_CHECK_S + 2)  # the worker notices, and takes its lock again
    backend = DBOSBackend(postgres_url, APP)
    try:
        later = [await backend.submit(f"after-{i}", run_id=f"after-{i}") for i in range(3)]
        assert [(await backend.result(r, timeout_s=60)).status for r in later] == ["succeeded"] * 3
    finally:
        await backend.aclose()
    lines = effects.read_text().splitlines()
    assert [key for key, n in Counter(lines).items() if n > 1] == []
    command = [sys.executable, "-m", "supervisor", "worker", "--store", workers.url, "--app", APP]
    twin = await asyncio.to_thread(
        subprocess.run,
        [*command, "--executor", "w1"],
        cwd=ROOT,
        env=workers.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert twin.returncode == 1 and "in use by a live worker" in twin.stderr, twin.stderr


def test_a_live_executor_id_cannot_be_started_twice_or_taken_over_and_limits_belong_to_the_queue(
    workers: Workers,
) -> None:
    """Two live processes under one id would both run its runs (each tool twice); a worker asking
    for other limits than the queue holds would silently change them for everyone."""
    workers.start("w1")
    command = [sys.executable, "-m", "supervisor", "worker", "--store", workers.url, "--app", APP]
    for extra, refusal in [
        (["--executor", "w1"], "in use by a live worker"),
        (["--executor", "w2", "--concurrency", "4", "--recover", "w1"], "it is alive and keeps its runs"),
        (["--executor", "w3", "--concurrency", "9"], "The limits belong to the queue"),
        (["--executor", "w4", "--app", "tests.dbos_app:no_such_factory"], "cannot import it"),
    ]:
        done = subprocess.run(
            [*command, *extra], cwd=ROOT, env=workers.env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 1 and refusal in done.stderr, (extra, done.stdout, done.stderr)
        assert "takes runs" not in done.stdout


PAYER = "tests.dbos_app:make_payer_supervisor"


async def _pending(url: str, count: int) -> list[Any]:
    from supervisor._store import open_store

    store = open_store(url)
    try:
        async with asyncio.timeout(60):
            while True:
                pending = await store.pending_approvals()
                if len(pending) >= count:
                    break
                await asyncio.sleep(0.1)
    finally:
        await store.aclose()
    return pending


def _decide_at_terminal(url: str, run_id: str, key: str, said: str, *dialog: tuple[str, str]) -> None:
    """Answer the run's approval with `key` in `python -m supervisor approve`, then each
    (prompt, reply) of `dialog`; the command must say `said` and end."""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "supervisor", "approve", "--store", url, "--run", run_id],
        cwd=str(ROOT),
        encoding="utf-8",
        timeout=30,
    )
    try:
        child.expect("Payer wants to call pay")
        child.expect(r"\[s\]kip\? ")
        child.sendline(key)
        for prompt, reply_text in dialog:
            child.expect(prompt)
            child.sendline(reply_text)
        child.expect(said)
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def _approve_at_terminal(url: str, run_id: str) -> None:
    _decide_at_terminal(url, run_id, "a", "approved")


async def test_an_approval_through_dbos_wakes_the_run_and_survives_its_worker_dying(
    workers: Workers, postgres_url: str, tmp_path: Path
) -> None:
    """Run A is approved at the terminal while its worker lives: the decision message wakes it.
    Run B's worker is killed while B waits; B is approved while no worker runs, and the
    restarted worker finishes it. Each payment happens once, and only after its approval."""
    effects = tmp_path / "effects.txt"
    workers.start("w1", app=PAYER)
    backend = DBOSBackend(postgres_url, PAYER)
    try:
        a = await backend.submit("pay 5", run_id="run-a")
        await _pending(postgres_url, 1)
        assert _lines(effects) == []  # nothing paid before a person says so
        started = time.monotonic()
        await asyncio.to_thread(_approve_at_terminal, postgres_url, a)
        record_a = await backend.result(a, timeout_s=30)
        assert record_a.status == "succeeded" and time.monotonic() - started < 10
        waits = await backend._dbos_client().list_workflows_async(workflow_id_prefix="approval-")
        assert [(w.status, w.output) for w in waits] == [("SUCCESS", "approved")]  # woken by the message

        b = await backend.submit("pay 7", run_id="run-b")
        await _pending(postgres_url, 1)
        workers.kill("w1")
        await asyncio.to_thread(_approve_at_terminal, postgres_url, b)
        workers.start("w1", app=PAYER)
        record_b = await backend.result(b, timeout_s=60)
    finally:
        await backend.aclose()
    assert record_b.status == "succeeded", record_b.error
    assert _lines(effects) == ["paid 5", "paid 7"]


async def test_a_worker_stopped_with_sigterm_records_its_runs_and_they_go_on_when_it_starts_again(
    workers: Workers, postgres_url: str, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.txt"
    workers.start("w1")
    backend = DBOSBackend(postgres_url, APP)
    try:
        ids = [await backend.submit(f"stop-{i}", run_id=f"stop-{i}") for i in range(4)]
        await _wait_for_effects(effects, 2, timeout_s=60)
        process = workers.processes.pop("w1")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0  # a clean stop, bounded
        stopped = [(await backend._record(run_id)).status for run_id in ids]
        assert "running" not in stopped, stopped  # each run in flight recorded where it stopped
        workers.start("w1")
        records = [await backend.result(run_id, timeout_s=60) for run_id in ids]
        not_run = await _recorded_as_not_run(postgres_url, ids)
    finally:
        await backend.aclose()
    assert [r.status for r in records] == ["succeeded"] * 4, [(r.status, r.error) for r in records]
    # Every call ran once, or was stopped while its start was being written, never ran, and is
    # journaled so (the model was told; a stop can land there, in the same group commit for all).
    lines = _lines(effects)
    every = {f"stop-{i}/desk{d}" for i in range(4) for d in range(3)}
    assert sorted(lines) == sorted(every - not_run) and not_run <= every, (lines, not_run)


async def _recorded_as_not_run(url: str, run_ids: list[str]) -> set[str]:
    """The `key` arguments of the calls these runs journaled as stopped before they started."""
    from supervisor._postgres import PostgresStore
    from workers import ToolRecord

    store = PostgresStore(url)
    try:
        keys = set()
        for run_id in run_ids:
            for record in await store.calls(run_id):
                tool = record.value
                if isinstance(tool, ToolRecord) and tool.result is not None:
                    if tool.result.content.startswith("Not run: the run stopped before it started"):
                        keys.add(json.loads(tool.arguments_json)["key"])
        return keys
    finally:
        await store.aclose()


def test_bad_input_to_the_dbos_side_gets_typed_errors_without_a_password(postgres_url: str) -> None:
    from supervisor import ConfigurationError, StoreError

    with pytest.raises(ConfigurationError) as caught:
        DBOSBackend("postgresql+psycopg://user:S3CRET@127.0.0.1/db", APP)
    assert "S3CRET" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="the goal must be a non-empty string"):  # it was enqueued
        asyncio.run(DBOSBackend(postgres_url, APP).submit("   "))
    never = subprocess.run(
        [
            sys.executable,
            "-m",
            "supervisor",
            "submit",
            "g",
            "--store",
            postgres_url,
            "--wait",
            "--timeout",
            "nan",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert never.returncode == 2 and "'nan' is not a number of seconds" in never.stderr  # it waited for ever
    with pytest.raises(ConfigurationError, match="call_steps is True or False, got 'no'"):
        DBOSBackend(postgres_url, APP, call_steps="no")  # type: ignore[arg-type]
    closed = "postgresql://postgres:S3CRET@127.0.0.1:1/nothing"  # a port nothing listens on

    async def queued_at(url: str) -> Any:
        backend = DBOSBackend(url, APP)
        try:
            return await backend.queued()
        finally:
            await backend.aclose()

    with pytest.raises(StoreError) as unreachable:  # what `runs` asks of a PostgreSQL store
        asyncio.run(queued_at(closed))
    assert "S3CRET" not in str(unreachable.value) and unreachable.value.transient
    for command in (["worker", "--executor", "w9", "--app", APP], ["submit", "a goal"]):
        refused = subprocess.run(  # the worker's lock connection was a psycopg traceback
            [sys.executable, "-m", "supervisor", *command, "--store", closed],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=90,  # the submitter retried for ever
        )
        assert refused.returncode == 1 and refused.stderr.startswith("error: "), refused.stderr
        assert "Traceback" not in refused.stderr and "S3CRET" not in refused.stderr + refused.stdout
    secret = postgres_url.replace("postgres@", "postgres:S3CRET@")  # trust auth: any password works
    # No worker ever set the database up: submitting says so, as a store error, in one line.
    done = subprocess.run(
        [sys.executable, "-m", "supervisor", "submit", "a goal", "--store", secret],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert "S3CRET" not in done.stderr and "S3CRET" not in done.stdout
    exported = subprocess.run(
        [sys.executable, "-m", "supervisor", "export", "r", "--store", secret, "--to", "x.db"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert exported.returncode == 1 and "no run 'r' in postgresql://postgres@" in exported.stderr
    assert "S3CRET" not in exported.stderr and not (ROOT / "x.db").exists()


async def test_an_id_never_submitted_is_run_not_found(workers: Workers, postgres_url: str) -> None:
    from supervisor import RunNotFound

    workers.start("w1")  # the database is set up; the id is simply unknown
    backend = DBOSBackend(postgres_url, APP)
    try:
        for ask in (backend.result, backend.status):
            with pytest.raises(RunNotFound) as caught:
                await ask("no-such-run")
            assert caught.value.run_id == "no-such-run"
    finally:
        await backend.aclose()


async def test_runs_lists_a_run_no_worker_has_taken_with_the_version_it_waits_for(
    workers: Workers, postgres_url: str
) -> None:
    # A run pinned to a version no worker serves has no store record yet: `runs` showed nothing
    # of it, and its submitter could not tell why it never started.
    workers.start("w1")  # version 1 sets the database up
    backend = DBOSBackend(postgres_url, APP, app_version="9")
    try:
        waiting = await backend.submit("a goal for version nine")
        queued = await backend.queued()
    finally:
        await backend.aclose()
    assert [(q.run_id, q.goal, q.app_version) for q in queued] == [(waiting, "a goal for version nine", "9")]
    listing = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "supervisor", "runs", "--store", postgres_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    line = next(line for line in listing.stdout.splitlines() if line.startswith(waiting))
    assert " queued " in line and "a goal for version nine" in line
    assert line.endswith("[waits for a worker of version 9]")
