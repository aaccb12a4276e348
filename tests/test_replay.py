"""Record and replay: a stored run runs again offline as a regression test.

Promises: replaying a recorded run gives the same result with no model called, no tool run and
no person asked; a run that now takes another path fails loudly (`ReplayMismatch`); one run can
be exported into a file of its own and replayed from there; a recorded failure replays as the
same failure.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from supervisor import Plan, ReplayMismatch, Step, StepFailed, Supervisor
from supervisor.testing import ReplayStore, replay
from tools import tool
from workers import Decision, Worker
from workers.testing import ScriptedModel, reply

Check = Callable[[Any], Any]
ROOT = Path(__file__).resolve().parent.parent
EFFECTS: list[str] = []


@tool
def record(entry: str) -> str:
    """Writes an entry in the books."""
    EFFECTS.append(f"record {entry}")
    return f"recorded {entry}"


@tool(risky=True)
def pay(amount: int) -> str:
    """Pays money out."""
    EFFECTS.append(f"pay {amount}")
    return f"paid {amount}"


class Clerk(Worker):
    """Keeps the books."""

    model = "openai:gpt-4o"
    tools = [record, pay]


class Summary(BaseModel):
    entries: int


# The same worker after a code change: it must now answer with a count.
StrictClerk = type("Clerk", (Clerk,), {"__doc__": "Keeps the books.", "output": Summary})


def _plan() -> Any:
    steps = [
        {"id": "a", "worker": "Clerk", "input": "book a", "depends_on": [], "reason": "books"},
        {"id": "b", "worker": "Clerk", "input": "book b", "depends_on": ["a"], "reason": "books too"},
    ]
    return reply.output({"reasoning": "two entries", "steps": steps})


async def _record(checked: Check, path: Path) -> Any:
    planner = checked(ScriptedModel([_plan(), reply.text("both booked")]))
    clerk = checked(
        ScriptedModel(
            [
                reply.tool_call("record", entry="a"),
                reply.text("a booked"),
                reply.tool_calls(
                    [("record", {"entry": "b"}), ("pay", {"amount": 5}), ("pay", {"amount": 900})]
                ),
                reply.text("b booked, 5 paid"),
            ]
        )
    )

    def approver(request: Any) -> Decision:
        return Decision.approve(by="al") if request.arguments["amount"] < 100 else Decision.deny("too much")

    async with Supervisor([Clerk(model=clerk)], model=planner, store=path, approver=approver) as sup:
        return await sup.run("Book a and b", run_id="r1")


def _offline(worker: type[Worker] = Clerk) -> Callable[[ReplayStore], Supervisor]:
    def refuse(request: Any) -> bool:
        raise AssertionError("a replay must not ask anyone")

    def make(store: ReplayStore) -> Supervisor:
        # Empty scripts: any model call would fail the test (the recording must answer them all).
        return Supervisor(
            [worker(model=ScriptedModel([]))], model=ScriptedModel([]), store=store, approver=refuse
        )

    return make


async def test_a_recorded_run_replays_offline_to_the_same_result(checked: Check, tmp_path: Path) -> None:
    EFFECTS.clear()
    original = await _record(checked, tmp_path / "runs.db")
    assert EFFECTS == ["record a", "record b", "pay 5"]
    EFFECTS.clear()
    again = await replay(tmp_path / "runs.db", "r1", _offline())
    assert EFFECTS == []  # no tool ran
    assert again.output == original.output == "both booked"
    assert {k: s.output for k, s in again.steps.items()} == {"a": "a booked", "b": "b booked, 5 paid"}
    assert again.usage == original.usage


async def test_a_replay_that_takes_another_path_fails_loudly(checked: Check, tmp_path: Path) -> None:
    await _record(checked, tmp_path / "runs.db")
    # The clerk now must answer with a Summary: the recorded text no longer fits, and the
    # answer the repair asks for was never recorded.
    with pytest.raises(ReplayMismatch, match=r"a model answer at 1/a\.1/0/Clerk/3 is not in the recording"):
        await replay(tmp_path / "runs.db", "r1", _offline(StrictClerk))


async def test_a_recorded_failure_replays_as_the_same_failure(checked: Check, tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    clerk = checked(ScriptedModel([reply.error(400, "bad request"), reply.error(400, "bad request")]))
    plan = Plan(steps=[Step("a", "Clerk", "book a")])
    async with Supervisor([Clerk(model=clerk)], model=ScriptedModel([]), store=path) as sup:
        with pytest.raises(StepFailed, match="bad request"):
            await sup.run_plan(plan, run_id="f")
    with pytest.raises(StepFailed, match="bad request"):
        await replay(path, "f", _offline())


async def test_one_run_exported_to_a_file_of_its_own_replays_from_there(
    checked: Check, tmp_path: Path
) -> None:
    await _record(checked, tmp_path / "prod.db")
    command = [sys.executable, "-m", "supervisor", "export", "r1", "--store", str(tmp_path / "prod.db")]
    target = tmp_path / "tests" / "r1.db"
    target.parent.mkdir()

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT)

    done = await asyncio.to_thread(run, [*command, "--to", str(target)])
    assert done.returncode == 0, done.stderr
    again = await asyncio.to_thread(run, [*command, "--to", str(target)])
    assert (
        again.returncode == 1 and "already has run 'r1'" in again.stderr and "Traceback" not in again.stderr
    )
    unknown = await asyncio.to_thread(run, [*command[:4], "nope", *command[5:], "--to", str(target)])
    assert unknown.returncode == 1 and "no run 'nope'" in unknown.stderr
    elsewhere = tmp_path / "nope.db"  # a wrong id made an empty store there
    unknown = await asyncio.to_thread(run, [*command[:4], "nope", *command[5:], "--to", str(elsewhere)])
    assert unknown.returncode == 1 and not elsewhere.exists()
    EFFECTS.clear()
    assert (await replay(target, "r1", _offline())).output == "both booked"
    assert EFFECTS == []


async def test_a_misspelt_recording_is_a_store_error_and_no_file_is_made(tmp_path: Path) -> None:
    from supervisor import StoreError

    missing = tmp_path / "tests" / "refund-24.db"  # the folder exists in a real suite; not here
    typo = tmp_path / "refnud-42.db"
    for path in (missing, typo):
        with pytest.raises(StoreError, match="no such file"):
            await replay(path, "r1", _offline())
    assert not typo.exists()  # it was made, empty, before RunNotFound
