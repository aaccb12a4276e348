"""Resume after stops that are not crashes: failures, aborts, approvals half-given, stops mid-write.

Promises: a failed run goes on in the attempt that broke, never an earlier one; step ids may hold
any character; a run a person aborted asks again when taken up; an approval given before a stop
is not asked again; a stop while a tool's start is written records it as not run; every event
loop's wait for a commit is bounded on its own.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from supervisor import Budget, Decision, MemoryStore, Plan, Step, Supervisor
from supervisor._approvals import StoreGate
from supervisor._ending import _finish
from supervisor._sqlite import SQLiteStore
from tools import tool
from tools.errors import (
    AgentError,
    BudgetExceeded,
    ConfigurationError,
    RunAborted,
    RunTakenOver,
    StepFailed,
    StoreError,
)
from workers import ApprovalRequest, ModelRequest, Worker
from workers.testing import FunctionModel, reply

Check = Callable[[Any], Any]


def _has_results(request: ModelRequest) -> bool:
    return any(p.kind == "tool_result" for m in request.messages for p in m.parts)


def _clerk(effects: list[str]) -> type[Worker]:
    @tool
    def record(entry: str) -> str:
        """Writes an entry (not safe to repeat)."""
        effects.append(entry)
        return "ok"

    return type(
        "Clerk", (Worker,), {"__doc__": "Keeps the books.", "model": "openai:gpt-4o", "tools": [record]}
    )


def _books(request: ModelRequest) -> Any:
    return reply.text("done") if _has_results(request) else reply.tool_call("record", entry="x")


async def test_a_failed_run_goes_on_in_the_attempt_that_broke_not_an_earlier_one() -> None:
    effects: list[str] = []
    clerk = _clerk(effects)
    calls = 0

    async def first(request: ModelRequest) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            return reply.error(400, "a bad request, once")  # attempt 1 fails
        if not _has_results(request):
            return reply.tool_call("record", entry="x")  # attempt 2 records
        await asyncio.sleep(10)  # and runs out of time

    store, plan = MemoryStore(), Plan(steps=[Step("s", "Clerk", "go")])
    sup = Supervisor([clerk(model=FunctionModel(first))], model=FunctionModel(_books), store=store)
    sup.budget = Budget(deadline_s=0.5)
    with pytest.raises(BudgetExceeded):
        await sup.run_plan(plan, run_id="r")
    again = Supervisor([clerk(model=FunctionModel(_books))], model=FunctionModel(_books), store=store)
    result = await again.run_plan(plan, run_id="r")
    assert result.output == "done" and result.steps["s"].attempts == 2 and effects == ["x"]


@pytest.mark.parametrize("step_id", ["write/v2", "write.v2", "a.1"])
async def test_a_failed_step_resumes_whatever_its_id_holds(step_id: str) -> None:
    effects: list[str] = []
    clerk = _clerk(effects)
    failing = FunctionModel(lambda r: reply.error(400, "no") if _has_results(r) else _books(r))
    store, plan = MemoryStore(), Plan(steps=[Step(step_id, "Clerk", "go")])
    sup = Supervisor([clerk(model=failing)], model=FunctionModel(_books), store=store, step_retries=0)
    with pytest.raises(StepFailed):
        await sup.run_plan(plan, run_id="r")
    again = Supervisor([clerk(model=FunctionModel(_books))], model=FunctionModel(_books), store=store)
    assert (await again.run_plan(plan, run_id="r")).output == "done" and effects == ["x"]


@tool(risky=True)
def pay(amount: int) -> str:
    """Pays money out."""
    return f"paid {amount}"


class Payer(Worker):
    """Pays."""

    model = "openai:gpt-4o"
    tools = [pay]


def _payer_model(request: ModelRequest) -> Any:
    return reply.text("done") if _has_results(request) else reply.tool_call("pay", amount=5)


async def _decided_in_the_queue(store: MemoryStore, decision: Decision) -> Any:
    sup = Supervisor(
        [Payer(model=FunctionModel(_payer_model))], model=FunctionModel(_payer_model), store=store
    )
    task = asyncio.create_task(sup.run_plan(Plan(steps=[Step("p", "Payer", "pay")]), run_id="r"))
    for _ in range(200):
        pending = await sup.pending_approvals("r")
        if pending:
            break
        await asyncio.sleep(0.02)
    assert len(pending) == 1, "the person was not asked"
    await sup.decide(pending[0].approval_id, decision)
    return await task


async def test_a_run_a_person_aborted_asks_again_when_taken_up() -> None:
    store = MemoryStore()
    with pytest.raises(RunAborted, match="wait for Monday"):
        await _decided_in_the_queue(store, Decision.abort("wait for Monday", by="alice"))
    result = await _decided_in_the_queue(store, Decision.approve(by="alice"))
    assert result.output == "done"


def test_a_decision_says_how_long_it_waited_only_as_a_number_of_seconds() -> None:
    assert Decision.approve().waited_s is None
    assert Decision("approve", waited_s=2.5).waited_s == 2.5
    for wrong in (-1.0, float("nan"), float("inf"), "3", True):
        with pytest.raises(ConfigurationError, match="waited_s"):
            Decision("approve", waited_s=wrong)  # type: ignore[arg-type]


async def test_an_approval_given_before_a_stop_is_not_asked_again() -> None:
    paid: list[int] = []
    asked: list[int] = []

    @tool(risky=True)
    def pay_out(amount: int) -> str:
        """Pays money out."""
        paid.append(amount)
        return "paid"

    payer = type("Payer", (Worker,), {"__doc__": "Pays.", "model": "openai:gpt-4o", "tools": [pay_out]})

    def model(request: ModelRequest) -> Any:
        if _has_results(request):
            return reply.text("done")
        return reply.tool_calls([("pay_out", {"amount": 5}), ("pay_out", {"amount": 6})])

    store, plan = MemoryStore(), Plan(steps=[Step("p", "Payer", "pay")])
    stop = asyncio.Event()

    async def approver(request: Any) -> bool:
        asked.append(request.arguments["amount"])
        if len(asked) == 2:  # stopped while asked about the second payment
            stop.set()
            await asyncio.sleep(30)
        return True

    sup = Supervisor(
        [payer(model=FunctionModel(model))], model=FunctionModel(model), store=store, approver=approver
    )
    task = asyncio.create_task(sup.run_plan(plan, run_id="r"))
    await asyncio.wait_for(stop.wait(), 10)
    sup.abort("r", "Ctrl-C")
    with pytest.raises(RunAborted):
        await task
    again = Supervisor(
        [payer(model=FunctionModel(model))], model=FunctionModel(model), store=store, approver=approver
    )
    assert (await again.run_plan(plan, run_id="r")).output == "done"
    assert asked == [5, 6, 6] and sorted(paid) == [5, 6]


async def test_a_stop_while_a_start_is_written_records_the_call_as_not_run(tmp_path: Path) -> None:
    effects: list[str] = []
    clerk = _clerk(effects)
    path = tmp_path / "r.db"
    holder: list[sqlite3.Connection] = []

    def model(request: ModelRequest) -> Any:
        if not _has_results(request) and not holder:  # another process holds the file from now on
            holder.append(sqlite3.connect(path, isolation_level=None))
            holder[0].execute("BEGIN IMMEDIATE")
        return _books(request)

    plan = Plan(steps=[Step("s", "Clerk", "go")])
    sup = Supervisor([clerk(model=FunctionModel(model))], model=FunctionModel(model), store=path)
    task = asyncio.create_task(sup.run_plan(plan, run_id="r"))
    for _ in range(200):
        if holder:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # the tool's start is now waiting for its commit
    sup.abort("r", "stop")
    await asyncio.sleep(0.1)
    holder[0].execute("COMMIT")
    with pytest.raises(AgentError):
        await task
    await sup.aclose()
    again = Supervisor([clerk(model=FunctionModel(_books))], model=FunctionModel(_books), store=path)
    assert (await again.run_plan(plan, run_id="r")).output == "done"  # no ToolInterrupted
    await again.aclose()
    assert effects == []  # it never ran, and the model was told so (and answered "done")


async def test_a_run_stopped_while_a_plain_functions_thread_runs_keeps_its_result(tmp_path: Path) -> None:
    """A thread cannot be stopped, so its effect happens: the stop waits for it and keeps its
    result, and the run taken up afterwards goes on without running it again (no ToolInterrupted)."""
    effects: list[str] = []
    entered, release = threading.Event(), threading.Event()

    @tool
    def record(entry: str) -> str:
        """Writes an entry (not safe to repeat)."""
        entered.set()
        release.wait(5)
        effects.append(entry)
        return "written"

    attributes = {"__doc__": "Keeps the books.", "model": "openai:gpt-4o", "tools": [record]}
    clerk = type("Clerk", (Worker,), attributes)
    path = tmp_path / "r.db"
    plan = Plan(steps=[Step("s", "Clerk", "go")])
    sup = Supervisor([clerk(model=FunctionModel(_books))], model=FunctionModel(_books), store=path)
    task = asyncio.create_task(sup.run_plan(plan, run_id="r"))
    assert await asyncio.to_thread(entered.wait, 5)
    task.cancel()  # the run stops while the thread writes
    await asyncio.sleep(0.1)
    assert not task.done()  # it waits for the thread...
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    await sup.aclose()
    assert effects == ["x"]  # ...whose effect happened once
    seen: list[str] = []

    def books(request: ModelRequest) -> Any:
        seen.extend(p.content for m in request.messages for p in m.parts if p.kind == "tool_result")
        return _books(request)

    again = Supervisor([clerk(model=FunctionModel(books))], model=FunctionModel(books), store=path)
    assert (await again.run_plan(plan, run_id="r")).output == "done"
    await again.aclose()
    assert effects == ["x"] and seen == ["written"]  # the kept result, not a second run


def test_each_event_loop_gets_its_own_bound_on_commits(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    store = SQLiteStore(path, commit_timeout_s=0.5)
    asyncio.run(store.commit_calls())  # the file and the writer thread exist
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    took: dict[str, float] = {}
    start = time.monotonic()

    def wait_in_a_loop(name: str, delay: float) -> None:
        async def main() -> None:
            await asyncio.sleep(delay)
            with pytest.raises(StoreError):
                await store.commit_calls()
            took[name] = time.monotonic() - start

        asyncio.run(main())

    threads = [threading.Thread(target=wait_in_a_loop, args=(n, d)) for n, d in (("a", 0.0), ("b", 0.2))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    holder.execute("ROLLBACK")
    holder.close()
    assert took["a"] < 1.5 and took["b"] < 1.5  # neither waits for the file to be let go


async def test_a_taken_up_run_gets_what_its_deadline_has_left_not_a_new_deadline(tmp_path: Path) -> None:
    """deadline_s bounds a run's running time summed over every process that ran it: a run
    stopped after 0.6 s of a 1.2 s deadline has 0.6 s left when taken up (the time no process
    ran it does not count)."""

    async def hang(request: ModelRequest) -> Any:
        await asyncio.sleep(30)

    class Slow(Worker):
        """Never answers in time."""

    store = tmp_path / "runs.db"
    sup = Supervisor([Slow(model=FunctionModel(hang))], model=FunctionModel(hang), store=store)
    sup.budget = Budget(deadline_s=1.2)
    plan = Plan(steps=[Step("s", "Slow", "x")])
    run = asyncio.create_task(sup.run_plan(plan, run_id="late"))
    await asyncio.sleep(0.6)
    sup.abort("late")
    with pytest.raises(RunAborted):
        await run
    reader = SQLiteStore(store)
    record = await reader.load("late")
    await reader.aclose()
    assert record is not None and 0.5 <= record.usage["active_s"] <= 1.0
    await asyncio.sleep(1.0)  # stopped time: not counted
    started = time.monotonic()
    with pytest.raises(BudgetExceeded) as caught:
        await sup.run_plan(plan, run_id="late")
    took = time.monotonic() - started
    assert caught.value.limit == "deadline_s" and 0.3 <= took <= 0.95, took
    await sup.aclose()


async def test_a_run_taken_over_by_another_process_leaves_no_state_that_changes_a_later_take_up() -> None:
    store = MemoryStore()
    gate = StoreGate(store, timeout_s=60)
    request = ApprovalRequest("r1", "Payer", "pay", {"amount": 5}, key="k1")
    gate.taken_up("r1", after_abort=True)  # taken up by hand after a person's abort ended it...
    await _finish(store, gate, "r1", RunTakenOver("r1", "elsewhere"), "failed", {}, True)  # ...and lost
    filed = await gate._filed(request)  # later: asked again, its process died, a person aborts
    assert await store.decide(filed.approval_id, "aborted", "not now", None, "alice")
    gate.taken_up("r1", after_abort=False)  # this process recovers the run
    again = await gate._filed(request)
    assert (again.approval_id, again.status) == (filed.approval_id, "aborted")  # the abort applies
