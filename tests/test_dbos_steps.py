"""Each model call and tool call of a run on DBOS is a DBOS step named by its journal key, and a
resumed run takes the calls' outputs from those steps.

The first test needs no database: it checks the dbos internals `supervisor/_dbos_steps.py`
relies on, so that a dbos release that changes them fails here, loudly, rather than in a run.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import re
import signal
from collections import Counter
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from supervisor._dbos_steps import BASE
from supervisor._postgres import PostgresStore
from supervisor.dbos import DBOSBackend
from tests.test_dbos import APP, Workers, _lines, _recorded_as_not_run, _wait_for_effects
from workers import ModelResponse, ToolRecord


def test_the_dbos_internals_the_keyed_steps_use_are_there() -> None:
    """dbos 3.4: a context variable holding a DBOSContext whose `function_id` a copy of it
    carries, and `reserve_step` drawing the next id from the context it finds (the copy)."""
    from dbos import DBOS
    from dbos._context import DBOSContext, _dbos_context_var, get_local_dbos_context
    from dbos._dbos import StepReservation

    assert version("dbos").startswith("3.4."), "supervisor/_dbos_steps.py was checked against dbos 3.4"
    assert isinstance(_dbos_context_var, contextvars.ContextVar)
    workflow = DBOSContext()
    workflow.workflow_id, workflow.function_id = "wf", 5
    at = copy.copy(workflow)
    at.function_id = BASE + 6
    token = _dbos_context_var.set(at)
    try:
        assert get_local_dbos_context() is at and at.is_workflow()
        reservation = DBOS.reserve_step()
    finally:
        _dbos_context_var.reset(token)
    assert isinstance(reservation, StepReservation)
    assert reservation.step_id == BASE + 7 and workflow.function_id == 5  # the workflow's own is untouched
    assert callable(reservation.run_async)


@pytest.fixture
def workers(postgres_url: str, tmp_path: Path) -> Iterator[Workers]:
    running = Workers(postgres_url, tmp_path / "effects.txt")
    yield running
    running.stop_all()


async def _outputs(url: str, run_id: str) -> dict[str, str]:
    """The calls the store journaled as made, by key: model responses and tools that ran."""
    store = PostgresStore(url)
    try:
        keys = {}
        for record in await store.calls(run_id):
            value = record.value
            if isinstance(value, ModelResponse):
                keys[record.key] = "model"
            elif isinstance(value, ToolRecord) and value.state == "finished" and value.status != "denied":
                keys[record.key] = "tool"
        return keys
    finally:
        await store.aclose()


async def test_every_model_call_and_tool_call_of_a_run_is_one_dbos_step_named_by_its_key(
    workers: Workers, postgres_url: str
) -> None:
    workers.start("w1")
    backend = DBOSBackend(postgres_url, APP)
    try:
        ids = [await backend.submit(f"steps-{i}", run_id=f"steps-{i}") for i in range(3)]
        records = [await backend.result(run_id, timeout_s=60) for run_id in ids]
        steps = {run_id: await backend._dbos_client().list_workflow_steps_async(run_id) for run_id in ids}
    finally:
        await backend.aclose()
    assert [r.status for r in records] == ["succeeded"] * 3
    for run_id in ids:
        keys = await _outputs(postgres_url, run_id)
        # plan, 3 desks x (tool call turn, its tool, answer turn), the final answer
        assert len(keys) == 1 + 3 * 3 + 1, keys
        named = [s["function_name"] for s in steps[run_id] if s["function_id"] >= BASE]
        assert sorted(named) == sorted(keys)  # one step per call, named by its key
        assert sorted(keys.values()) == ["model"] * 8 + ["tool"] * 3
        for step in steps[run_id]:
            if step["function_id"] >= BASE:  # each holds its call's record
                kind = keys[step["function_name"]]
                assert step["error"] is None and step["output"].startswith(f"{kind}:["), step


async def test_a_stopped_run_takes_its_calls_outputs_from_dbos_not_from_the_store(
    workers: Workers, postgres_url: str, tmp_path: Path
) -> None:
    """Stopped mid-run, then every model response and tool result the store journaled is
    deleted: the runs resume from DBOS's steps, so no tool caught finished is taken for one
    caught half-way (ToolInterrupted) and none runs twice."""
    effects = tmp_path / "effects.txt"
    workers.start("w1")
    backend = DBOSBackend(postgres_url, APP)
    try:
        ids = [await backend.submit(f"from-dbos-{i}", run_id=f"from-dbos-{i}") for i in range(4)]
        await _wait_for_effects(effects, 3, timeout_s=60)
        process = workers.processes.pop("w1")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0
        ran = set(_lines(effects))
        deleted = await _delete_outputs(postgres_url, ids)
        assert deleted >= len(ran), (deleted, ran)
        workers.start("w1")
        records = [await backend.result(run_id, timeout_s=60) for run_id in ids]
        not_run = await _recorded_as_not_run(postgres_url, ids)
        journaled = [await _outputs(postgres_url, run_id) for run_id in ids]
    finally:
        await backend.aclose()
    assert [r.status for r in records] == ["succeeded"] * 4, [(r.status, r.error) for r in records]
    lines = _lines(effects)
    assert [key for key, n in Counter(lines).items() if n > 1] == []
    every = {f"from-dbos-{i}/desk{d}" for i in range(4) for d in range(3)}
    assert sorted(lines) == sorted(every - not_run), (lines, not_run)
    # The store has every call again, for trace and export: those DBOS alone held were copied back.
    assert [sorted(keys.values()) for keys in journaled] == [["model"] * 8 + ["tool"] * 3] * 4


async def _delete_outputs(url: str, run_ids: list[str]) -> int:
    """Delete the store's records of model responses and finished tool calls of these runs."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(
            "DELETE FROM foreman.calls WHERE run_id = ANY(%s) AND "
            "(kind = 'model' OR (kind = 'tool' AND body::jsonb ->> 2 = 'finished'))",
            (run_ids,),
        )
        return cursor.rowcount


async def test_a_resumed_run_takes_outputs_from_its_steps_and_the_rest_from_the_store() -> None:
    """The merge, without a database: DBOS's outputs replace the store's records of the same
    calls; approvals, starts, denials and failures stay the store's; a failed call's output
    (None) and DBOS's own steps (ids below BASE) are skipped; new calls go above every id."""
    from dbos._context import DBOSContext, _dbos_context_var

    from supervisor._calls import CallRecord, FailedAttempt, call_json
    from supervisor._dbos_steps import DBOSSteps
    from workers import TextPart, ToolResultPart, Usage

    def answer(text: str) -> ModelResponse:
        return ModelResponse((TextPart(text),), "end_turn", Usage(1, 1))

    def tool(state: str, starts: int, result: str | None = None, status: str | None = None) -> ToolRecord:
        part = ToolResultPart("c1", "pay", result, False) if result is not None else None
        return ToolRecord("pay", state, starts, '{"amount":5}', part, status, 0.1)  # type: ignore[arg-type]

    def step(fid: int, name: str, value: object, error: Exception | None = None) -> dict[str, object]:
        if isinstance(value, (ModelResponse, ToolRecord)):
            kind, body = call_json(value)
            value = f"{kind}:{body}"
        return {"function_id": fid, "function_name": name, "output": value, "error": error}

    steps = [
        step(1, "DBOS.sleep", None),
        step(BASE, "s/W/1", answer("from DBOS")),
        step(BASE + 1, "s/W/1/0", tool("finished", 1, "paid", "ok")),
        step(BASE + 2, "s/W/2", None),  # the call failed: made again when asked again
        step(BASE + 3, "s/W/2", answer("second try")),
        step(BASE + 4, "s/W/3", None, RuntimeError("not ours")),
    ]

    class Client:
        async def list_workflow_steps_async(self, workflow_id: str) -> list[dict[str, object]]:
            assert workflow_id == "r"
            return steps

    class Backend:
        url = url_shown = "postgresql://u@h/db"

        def _dbos_client(self) -> Client:
            return Client()

    stored = [
        CallRecord("s/W/1", answer("stale: the store's")),
        CallRecord("s/W/1/0", tool("started", 2)),  # started twice, its end only in DBOS
        CallRecord("s/W/1/1", tool("finished", 0, "A person denied this call", "denied")),
        CallRecord("s.1", FailedAttempt("ProviderError", "down")),
    ]
    engine = DBOSSteps(Backend())  # type: ignore[arg-type]
    workflow = DBOSContext()
    workflow.workflow_id = "r"
    token = _dbos_context_var.set(workflow)
    try:
        calls, keyed, missing = await engine.take_up("r", stored, resumed=True)
    finally:
        _dbos_context_var.reset(token)
    by_key = {r.key: r.value for r in calls}
    assert [r.key for r in calls] == ["s/W/1/1", "s.1", "s/W/1", "s/W/1/0", "s/W/2"]
    assert by_key["s/W/1/0"] == tool("finished", 2, "paid", "ok")  # DBOS's, with the store's starts
    assert isinstance(by_key["s/W/2"], ModelResponse) and by_key["s/W/2"].text == "second try"
    assert by_key["s/W/1/1"] == stored[2].value and by_key["s.1"] == stored[3].value
    assert [r.key for r in missing] == ["s/W/1/0", "s/W/2"]  # for the store: trace and export
    assert keyed is not None and keyed.next == BASE + 5  # type: ignore[attr-defined]
    assert await engine.take_up("r", stored, resumed=True) == (stored, None, [])  # outside the workflow


class _Backend:
    url = url_shown = "postgresql://db/runs"


async def test_a_database_that_does_not_answer_is_a_transient_store_error_not_a_hang(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DBOS retries a lost connection for ever: a step whose output it could not record held the
    run, and a stop, until the database came back. Its look-up and its record are bounded."""
    from supervisor import _dbos_steps
    from supervisor._dbos_steps import KeyedSteps, _Phase
    from tools.errors import StoreError

    monkeypatch.setattr(_dbos_steps, "DB_WAIT_S", 0.2)
    steps = KeyedSteps(_Backend(), "r")  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    for began, ended in ((False, False), (True, True)):  # stuck looking up; stuck recording
        stuck: asyncio.Future[str | None] = loop.create_future()
        phase = _Phase()
        if began:
            phase.begin()
        if ended:
            phase.end()
        started = loop.time()
        with pytest.raises(StoreError, match="did not look up or record") as caught:
            await steps._awaited(stuck, phase)
        assert caught.value.transient and loop.time() - started < 2 and stuck.cancelled()
    running: asyncio.Future[str | None] = loop.create_future()  # the call itself: its own bounds
    phase = _Phase()
    phase.begin()
    waiting = asyncio.ensure_future(steps._awaited(running, phase))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    phase.end()
    running.set_result("model:[]")
    assert await waiting == "model:[]"


async def test_a_step_output_that_is_not_a_readable_record_is_a_store_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An output recorded under a call's id by another process that is not that call's record
    (a foreign or damaged one) raised a bare TypeError or a decode error in the run."""
    from supervisor._dbos_steps import KeyedSteps
    from tools.errors import StoreError
    from workers import ToolCallPart

    steps = KeyedSteps(_Backend(), "r")  # type: ignore[arg-type]
    call = ToolCallPart("c1", "lookup", "{}", {})

    async def never() -> Any:
        raise AssertionError("DBOS had the output: the call is not made")

    held: list[str | None] = [None]

    async def kept(self: KeyedSteps, key: str, func: Any, phase: Any) -> str | None:
        return held[0]  # as DBOS hands back an output recorded under this id

    monkeypatch.setattr(KeyedSteps, "_step", kept)
    for output, asked, problem in [
        ("model:not json", "model", "a DBOS step holds a model record that cannot be read"),
        ("tool:[1]", "tool", "a DBOS step holds a tool record that cannot be read"),
        ("someone else's", "model", "step 's/W/1' of run 'r' holds no model response"),
        (None, "tool", "step 's/W/1' of run 'r' holds no finished tool call"),
    ]:
        held[0] = output
        with pytest.raises(StoreError, match=re.escape(problem)) as caught:
            if asked == "model":
                await steps.model("s/W/1", never)
            else:
                await steps.tool("s/W/1", call, "{}", never)
        assert not caught.value.transient
