"""The call journal and the run's owner, in one process: what resume relies on.

Promises: a journaled response comes back exactly as it was; a run another live process (or
another supervisor of this one) is running cannot be taken up; only one of two claims wins; a
failed run resumed goes on where it broke and counts what every process spent; a store that
cannot record a tool's result stops the run rather than retry the tool; a decided approval is
found again by its call key instead of being asked twice.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from supervisor import MemoryStore, Plan, ResumeError, Step, StepFailed, Supervisor
from supervisor._approvals import StoreGate
from supervisor._calls import CallRecord, call_from_json, call_json
from supervisor._sqlite import SQLiteStore
from supervisor._store import RunRecord, open_store
from tools import tool
from tools.errors import StoreError
from workers import (
    ApprovalRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolRecord,
    ToolResultPart,
    Usage,
    Worker,
)
from workers.testing import FunctionModel, ScriptedModel, reply

Check = Callable[[Any], Any]


class Writer(Worker):
    """Writes."""

    model = "openai:gpt-4o"


PLAN = Plan(steps=[Step("w", "Writer", "write it")])


def test_a_journaled_response_and_tool_call_come_back_as_they_were() -> None:
    response = ModelResponse(
        (
            TextPart("Let me look."),
            ToolCallPart("toolu_1", "lookup", '{"id": 42}', {"id": 42}),
            ToolCallPart("toolu_2", "note", '{"text": "cut', None, truncated=True),
            ToolCallPart("toolu_3", "odd", "[1, 2]", None),
        ),
        "max_tokens",
        Usage(120, 30, 100, 5, 1, 2, 0.0031, 0),
        "anthropic",
        "claude-sonnet-4-5",
        "req_1",
        1.25,
        0.4,
        None,
        "max_tokens",
    )
    assert call_from_json(*call_json(response)) == response
    tool_call = ToolRecord(
        "refund", "finished", 2, '{"amount":5}', ToolResultPart("toolu_9", "refund", "ok", False), "ok", 0.5
    )
    assert call_from_json(*call_json(tool_call)) == tool_call
    started = ToolRecord("refund", "started", 1, '{"amount":5}')
    assert call_from_json(*call_json(started)) == started


async def _marked_running(store: Any, owner: str, updated_at: float | None = None) -> None:
    record = RunRecord("r", None, "running", None, ("Writer",), owner=owner)
    if updated_at is not None:
        record = RunRecord("r", None, "running", None, ("Writer",), updated_at=updated_at, owner=owner)
    assert await store.start(record)


async def test_a_run_a_live_process_is_running_is_not_taken_up_by_another(
    checked: Check, tmp_path: Path
) -> None:
    path = tmp_path / "r.db"
    store = SQLiteStore(path)
    await _marked_running(store, f"{socket.gethostname()}:{os.getppid()}")  # alive: our parent
    await store.aclose()
    sup = Supervisor([Writer(model=checked(ScriptedModel([])))], model=ScriptedModel([]), store=path)
    with pytest.raises(ResumeError, match=r"running in another process \(.*:\d+\)"):
        await sup.run_plan(PLAN, run_id="r")
    await sup.aclose()


async def test_a_run_whose_process_died_is_taken_up(checked: Check, tmp_path: Path) -> None:
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await child.wait()  # its pid now names no process
    path = tmp_path / "r.db"
    store = SQLiteStore(path)
    await _marked_running(store, f"{socket.gethostname()}:{child.pid}")
    await store.aclose()
    model = checked(ScriptedModel([reply.text("written")]))
    async with Supervisor([Writer(model=model)], model=ScriptedModel([]), store=path) as sup:
        assert (await sup.run_plan(PLAN, run_id="r")).output == "written"
        (run,) = await sup.runs()
    assert (run.owner or "").startswith(f"{socket.gethostname()}:{os.getpid()}:")


async def test_a_run_marked_by_another_machine_waits_out_its_lease(checked: Check) -> None:
    store = MemoryStore()
    await _marked_running(store, "elsewhere:12")  # just now
    sup = Supervisor([Writer(model=checked(ScriptedModel([])))], model=ScriptedModel([]), store=store)
    with pytest.raises(ResumeError, match="elsewhere:12"):
        await sup.run_plan(PLAN, run_id="r")
    stale = MemoryStore()
    await _marked_running(stale, "elsewhere:12", updated_at=time.time() - 2 * 3600)
    model = checked(ScriptedModel([reply.text("taken over")]))
    sup = Supervisor([Writer(model=model)], model=ScriptedModel([]), store=stale)
    assert (await sup.run_plan(PLAN, run_id="r")).output == "taken over"


@pytest.mark.parametrize("kind", ["sqlite", "memory", "postgres"])
async def test_of_two_claims_on_one_loaded_run_only_the_first_wins(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    stores = {"sqlite": lambda: SQLiteStore(tmp_path / "r.db"), "memory": MemoryStore}
    stores["postgres"] = lambda: open_store(request.getfixturevalue("postgres_url"))
    store: Any = stores[kind]()
    assert await store.start(RunRecord("r", None, "failed", None, ("Writer",), owner="h:1"))
    assert not await store.start(RunRecord("r", None, "running", None, ("Writer",), owner="h:2"))  # exists
    loaded = await store.load("r")
    assert await store.start(RunRecord("r", None, "running", None, ("Writer",), owner="h:3"), loaded)
    assert not await store.start(RunRecord("r", None, "running", None, ("Writer",), owner="h:4"), loaded)
    assert (await store.load("r")).owner == "h:3"
    await store.aclose()


async def test_a_failed_run_resumed_goes_on_where_its_last_attempt_broke(
    checked: Check, tmp_path: Path
) -> None:
    calls = []

    @tool
    def note(text: str) -> str:
        """Notes something."""
        calls.append(text)
        return "noted"

    class Noter(Worker):
        """Notes."""

        model = "openai:gpt-4o"
        tools = [note]

    path = tmp_path / "r.db"
    plan = Plan(steps=[Step("n", "Noter", "note it")])
    failing = checked(ScriptedModel([reply.tool_call("note", text="a"), reply.error(400, "bad request")]))
    async with Supervisor([Noter(model=failing)], model=ScriptedModel([]), store=path, step_retries=0) as sup:
        with pytest.raises(StepFailed, match="bad request"):
            await sup.run_plan(plan, run_id="e")
    # The provider answers now: the note already taken is given back, not taken again.
    fresh = checked(ScriptedModel([reply.text("done")]))
    async with Supervisor([Noter(model=fresh)], model=ScriptedModel([]), store=path, step_retries=0) as sup:
        result = await sup.run_plan(plan, run_id="e")
        (run,) = await sup.runs()
    assert result.output == "done" and calls == ["a"] and run.status == "succeeded"
    assert len(fresh.requests[0].messages) == 3  # the task, the recorded call, its recorded result
    assert result.usage.requests == 2 and result.usage_by_worker["Noter"].requests == 2


async def test_a_second_supervisor_in_the_process_cannot_take_up_a_run_the_first_is_running(
    tmp_path: Path,
) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(request: Any) -> Any:
        started.set()
        await release.wait()
        return reply.text("written")

    path = tmp_path / "r.db"
    first = Supervisor([Writer(model=FunctionModel(slow))], model=ScriptedModel([]), store=path)
    second = Supervisor([Writer(model=ScriptedModel([]))], model=ScriptedModel([]), store=path)
    running = asyncio.create_task(first.run_plan(PLAN, run_id="r"))
    await asyncio.wait_for(started.wait(), 10)
    with pytest.raises(ResumeError, match="running in another process"):
        await second.run_plan(PLAN, run_id="r")
    release.set()
    assert (await running).output == "written"
    await first.aclose()
    await second.aclose()


async def test_a_store_that_cannot_record_a_tool_result_fails_the_run_instead_of_retrying(
    checked: Check,
) -> None:
    effects = []

    @tool
    def record(entry: str) -> str:
        """Writes an entry (not safe to repeat)."""
        effects.append(entry)
        return "ok"

    class Clerk(Worker):
        """Keeps the books."""

        model = "openai:gpt-4o"
        tools = [record]

    class Failing(MemoryStore):
        async def save_call(self, run_id: str, record: CallRecord) -> None:
            if isinstance(record.value, ToolRecord) and record.value.state == "finished":
                raise StoreError("x.db", "no commit within 60 s")
            await super().save_call(run_id, record)

    model = checked(ScriptedModel([reply.tool_call("record", entry="x")]))
    sup = Supervisor([Clerk(model=model)], model=ScriptedModel([]), store=Failing(), step_retries=2)
    with pytest.raises(StoreError, match="no commit"):
        await sup.run_plan(Plan(steps=[Step("s", "Clerk", "go")]), run_id="s")
    assert effects == ["x"]  # not retried: the journal could not say it ran


async def test_a_supervisor_plans_each_run_afresh(checked: Check) -> None:
    step = {"id": "w", "worker": "Writer", "input": "x", "depends_on": [], "reason": "writes"}
    plan = reply.output({"reasoning": "r", "steps": [step]})
    boss = checked(ScriptedModel([plan, reply.text("one"), plan, reply.text("two")]))
    writer = checked(ScriptedModel([reply.text("w1"), reply.text("w2")]))
    sup = Supervisor([Writer(model=writer)], model=boss)
    assert (await sup.run("first")).output == "one"
    assert (await sup.run("second")).output == "two"  # the first run's finished steps are not its


async def test_a_memory_store_forgets_the_calls_of_a_run_that_succeeded(checked: Check) -> None:
    store = MemoryStore()
    sup = Supervisor(
        [Writer(model=checked(ScriptedModel([reply.text("w")])))], model=ScriptedModel([]), store=store
    )
    await sup.run_plan(PLAN, run_id="m")
    assert await store.calls("m") == []


async def test_a_decided_approval_is_found_again_by_its_call_key(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "r.db")
    request = ApprovalRequest(
        "r", "Payer", "refund", {"amount": 5}, "c1", "why", {}, key="0.1/p.1/0/Payer/1/0"
    )
    gate = StoreGate(store, timeout_s=60, poll_s=0.01)
    waiting = asyncio.create_task(gate.review(request))
    for _ in range(1000):
        pending = await store.pending_approvals()
        if pending:
            break
        await asyncio.sleep(0.01)
    assert await store.decide(pending[0].approval_id, "denied", "not today", None, "bob")
    assert (await waiting).kind == "deny"
    again = await StoreGate(store, timeout_s=60).review(request)  # a resumed run asks again
    assert (again.kind, again.reason, again.by) == ("deny", "not today", "bob")
    assert len(await store.pending_approvals()) == 0
    assert (await store.approval_for("r", request.key)).approval_id == pending[0].approval_id
    other = await store.approval_for("r", request.key + "@1")
    assert other is None
    await store.aclose()


def test_call_records_are_keyed_by_run_and_key(tmp_path: Path) -> None:
    async def main() -> list[str]:
        store = SQLiteStore(tmp_path / "r.db")
        store.put_call("a", CallRecord("k1", ToolRecord("t", "started", 1, "{}")))
        await store.save_call("a", CallRecord("k1", ToolRecord("t", "finished", 1, "{}", None, "ok")))
        await store.save_call("b", CallRecord("k1", ToolRecord("t", "started", 1, "{}")))
        records = await store.calls("a")
        await store.aclose()
        return [f"{r.key}:{r.value.state}" for r in records]  # type: ignore[union-attr]

    assert asyncio.run(main()) == ["k1:finished"]  # replaced, not added; run b's is its own


def test_the_cost_of_a_summary_is_booked_to_the_worker_that_asked_for_it() -> None:
    from supervisor._calls import spent

    response = ModelResponse((TextPart("s"),), "end", Usage(10, 5, 0, 0, 1, 0, 0.001, 0))
    records = [
        CallRecord("1/a.1/0/Reader/7", response),
        CallRecord("1/a.1/0/Reader/7/summary1", response),
        CallRecord("1/b.1/0/Writer/0/summary1", response),
        CallRecord("plan1/Planner/1", response),
    ]
    total, by_worker = spent(records)
    assert total is not None and total.requests == 4
    assert {k: v.requests for k, v in by_worker.items()} == {"Reader": 2, "Writer": 1, "Planner": 1}


async def test_a_journal_record_of_another_tool_than_the_call_is_refused_not_replayed() -> None:
    @tool
    def send(to: str) -> str:
        """Sends a note."""
        raise AssertionError("must not run: the journal does not describe this run")

    class Sender(Worker):
        """Sends."""

        model = "openai:gpt-4o"
        tools = [send]

    store = MemoryStore()
    plan = {
        "version": 1,
        "reasoning": "",
        "steps": [{"id": "s", "worker": "Sender", "input": "x", "depends_on": [], "reason": ""}],
    }
    await store.start(RunRecord("r", None, "running", plan, ("Sender",)))
    call = ToolCallPart("c1", "send", '{"to":"bob"}', {"to": "bob"})
    store.put_call("r", CallRecord("1/s.1/0/Sender/1", ModelResponse((call,), "tool_use")))
    store.put_call("r", CallRecord("1/s.1/0/Sender/1/0", ToolRecord("delete", "started", 1, "{}")))
    sup = Supervisor([Sender(model=ScriptedModel([]))], model=ScriptedModel([]), store=store)
    with pytest.raises(
        ResumeError,
        match="its journal has a call of 'delete' at 1/s.1/0/Sender/1/0, where the run now calls 'send'",
    ):
        await sup.run_plan(Plan(steps=[Step("s", "Sender", "x")]), run_id="r")
