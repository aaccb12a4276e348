"""DBOS takes up again the runs of a worker that died, except those a person aborted.

A worker can die after the store recorded how a run ended and before DBOS recorded its workflow
as ended; DBOS then recovers the workflow. A run a person aborted (at an approval, or by run id)
stays aborted: the recovered workflow ends at once with the recorded outcome, asks nobody and
calls no model or tool. A run "aborted" because its own worker was stopping (SIGTERM) resumes
and completes. Both on a real PostgreSQL: the workflow function alone, and worker processes.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor import RunAborted, Supervisor
from supervisor._postgres import PostgresStore
from supervisor.dbos import DBOSBackend
from tests.test_dbos import PAYER, Workers, _approve_at_terminal, _decide_at_terminal, _lines, _pending
from workers import ModelRequest, Worker
from workers.testing import FunctionModel, ScriptedModel, reply

DYING = "tests.dbos_app:make_payer_dying_after_an_abort"
GOAL = "write it up"
PLAN = reply.output(
    {
        "reasoning": "one writer",
        "steps": [{"id": "w", "worker": "Writer", "input": "write", "depends_on": [], "reason": "it writes"}],
    }
)


class Writer(Worker):
    """Writes."""


@pytest.fixture
def workers(postgres_url: str, tmp_path: Path) -> Iterator[Workers]:
    running = Workers(postgres_url, tmp_path / "effects.txt")
    yield running
    running.stop_all()


async def _everything(url: str, run_id: str) -> tuple[Any, ...]:
    """What the store holds of a run: its record, approvals, journal and trace."""
    store = PostgresStore(url)
    try:
        approvals = await store._reader.read(
            "SELECT approval_id, status, decided_by FROM foreman.approvals WHERE run_id = %s "
            "ORDER BY created_at",
            (run_id,),
        )
        calls = [record.key for record in await store.calls(run_id)]
        return await store.load(run_id), approvals, calls, await store.events(run_id)
    finally:
        await store.aclose()


@pytest.mark.parametrize("how", ["abort by run id", "stop"])
async def test_the_recovered_workflow_leaves_a_run_a_person_aborted_and_resumes_a_stopped_one(
    postgres_url: str, how: str
) -> None:
    started = asyncio.Event()

    async def hang(request: ModelRequest) -> Any:
        started.set()
        await asyncio.sleep(30)

    first = Supervisor([Writer(model=FunctionModel(hang))], model=ScriptedModel([PLAN]), store=postgres_url)
    run = asyncio.create_task(first.run(GOAL, run_id="r"))
    await asyncio.wait_for(started.wait(), 10)
    if how == "stop":  # what a stopping worker does to its runs (supervisor._dbos_runtime.stop_runs)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
    else:
        assert first.abort("r", "customer called back")
        with pytest.raises(RunAborted):
            await run
    await first.aclose()
    before = await _everything(postgres_url, "r")

    # DBOS recovers the run's workflow (its function, called as DBOS calls it, in another worker).
    stays = how != "stop"  # a run a person aborted stays aborted: its replies are never asked for
    writer = ScriptedModel([reply.text("written")], allow_unused=stays)
    answer = ScriptedModel([reply.text("the answer")], allow_unused=stays)
    second = Supervisor([Writer(model=writer)], model=answer, store=postgres_url)
    try:
        ended = await asyncio.wait_for(DBOSBackend(postgres_url, second)._workflow()(GOAL, "r"), 30)
    finally:
        await second.aclose()
    after = await _everything(postgres_url, "r")
    if how == "stop":
        assert (before[0].status, before[0].aborted_by) == ("aborted", None)
        assert ended == "succeeded" and after[0].status == "succeeded"
        assert after[0].output_json == "the answer" and writer.unused == [] and answer.unused == []
    else:
        assert (before[0].status, before[0].aborted_by) == ("aborted", "abort")
        assert ended == f"aborted: {before[0].error}" and "customer called back" in ended
        assert after == before  # nothing ran, nothing was written
        assert writer.requests == [] and answer.requests == []


def _abort_at_terminal(url: str, run_id: str) -> None:
    _decide_at_terminal(url, run_id, "b", "aborted", ("Reason: ", "wrong customer"))


async def test_a_run_a_person_aborted_stays_aborted_when_its_worker_died_before_dbos_saw_the_end(
    workers: Workers, postgres_url: str, tmp_path: Path
) -> None:
    workers.start("w1", app=DYING)
    backend = DBOSBackend(postgres_url, PAYER)
    try:
        run_id = await backend.submit("pay 5", run_id="run-x")
        await _pending(postgres_url, 1)
        await asyncio.to_thread(_abort_at_terminal, postgres_url, run_id)
        died = workers.processes.pop("w1")
        assert await asyncio.to_thread(died.wait, 30) == 3  # right after the store recorded the abort
        before = await _everything(postgres_url, run_id)
        assert await backend.status(run_id) == "PENDING"  # DBOS did not see the end: it recovers it

        workers.start("w1", app=PAYER)  # the same executor id: DBOS recovers the workflow at launch
        await backend.result(run_id, timeout_s=60)
        assert await backend.status(run_id) == "SUCCESS"
        after = await _everything(postgres_url, run_id)
    finally:
        await backend.aclose()
    record, approvals = before[0], before[1]
    assert record.status == "aborted" and "wrong customer" in (record.error or "")
    assert [status for _, status, _ in approvals] == ["aborted"]
    assert record.aborted_by == approvals[0][2] and record.aborted_by.startswith("terminal:")
    assert after == before  # asked nobody again, journaled and traced nothing: nothing ran
    assert _lines(tmp_path / "effects.txt") == []


async def test_a_run_stopped_with_its_worker_while_it_waits_for_a_person_resumes_and_completes(
    workers: Workers, postgres_url: str, tmp_path: Path
) -> None:
    workers.start("w1", app=DYING)  # it would die if the stop were taken for a person's abort
    backend = DBOSBackend(postgres_url, PAYER)
    try:
        run_id = await backend.submit("pay 7", run_id="run-y")
        await _pending(postgres_url, 1)
        stopping = workers.processes.pop("w1")
        stopping.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(stopping.wait, 30) == 0  # a clean stop
        stopped = await backend._record(run_id)
        assert (stopped.status, stopped.aborted_by) == ("aborted", None)
        assert await backend.status(run_id) == "PENDING"

        workers.start("w1", app=PAYER)
        await _pending(postgres_url, 1)  # the resumed run asks again: the stop closed the request
        await asyncio.to_thread(_approve_at_terminal, postgres_url, run_id)
        record = await backend.result(run_id, timeout_s=60)
    finally:
        await backend.aclose()
    assert record.status == "succeeded", record.error
    assert _lines(tmp_path / "effects.txt") == ["paid 7"]


async def test_an_abort_decided_while_the_worker_was_dead_ends_the_recovered_run_without_asking_again(
    workers: Workers, postgres_url: str, tmp_path: Path
) -> None:
    workers.start("w1", app=PAYER)
    backend = DBOSBackend(postgres_url, PAYER)
    try:
        run_id = await backend.submit("pay 9", run_id="run-z")
        await _pending(postgres_url, 1)
        workers.kill("w1")  # SIGKILL: the run stays "running", its request pending
        await asyncio.to_thread(_abort_at_terminal, postgres_url, run_id)

        workers.start("w1", app=PAYER)  # DBOS recovers the workflow at launch
        await backend.result(run_id, timeout_s=60)
        record, approvals, _, _ = await _everything(postgres_url, run_id)
    finally:
        await backend.aclose()
    assert record.status == "aborted" and "wrong customer" in (record.error or "")
    assert [status for _, status, _ in approvals] == ["aborted"]  # the person was not asked again
    assert record.aborted_by == approvals[0][2] and record.aborted_by.startswith("terminal:")
    assert _lines(tmp_path / "effects.txt") == []
