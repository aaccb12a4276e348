"""Progress while a run runs, for people and for code.

Promises: `Progress` prints steps starting and finishing, the workers at work, tokens and cost so
far and the approvals waiting (plain lines in a pipe, a live status line on a terminal); code
gets the same events from a callable or from `Supervisor.stream`, whose early exit cancels the
run and leaves no task behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import Callable
from typing import Any

import pytest

from supervisor import Progress, Supervisor
from tools import tool
from workers import Decision, Event, Price, RunEvent, Worker
from workers.testing import FunctionModel, ScriptedModel, reply

Check = Callable[[Any], Any]
PRICE = Price(input=1.0, output=5.0)


@tool(risky=True)
def pay(amount: int) -> str:
    """Pays money out."""
    return f"paid {amount}"


class Payer(Worker):
    """Pays."""

    model = "openai:gpt-4o"
    tools = [pay]


def _plan() -> Any:
    step = {"id": "p", "worker": "Payer", "input": "pay 5", "depends_on": [], "reason": "it pays"}
    return reply.output({"reasoning": "one payment", "steps": [step]})


def _supervisor(checked: Check, approver: Any, events: Any) -> Supervisor:
    planner = checked(ScriptedModel([_plan(), reply.text("paid")], price=PRICE))
    payer = checked(ScriptedModel([reply.tool_call("pay", amount=5), reply.text("done")], price=PRICE))
    return Supervisor([Payer(model=payer)], model=planner, approver=approver, events=events)


async def test_progress_tells_steps_workers_cost_so_far_and_waiting_approvals(checked: Check) -> None:
    out = io.StringIO()
    progress = Progress(out)
    seen: list[str] = []

    def approver(request: Any) -> Decision:
        seen.append(progress.status())  # what a person would see while asked
        return Decision.approve(by="al")

    result = await _supervisor(checked, approver, progress).run("pay")
    text = out.getvalue()
    assert "plan: one payment\n  p: Payer - it pays\n" in text
    assert "step p [Payer] started\n" in text and "step p [Payer] finished (1/1 steps)\n" in text
    assert "  Payer waits for approval of pay\n" in text and "  approval of pay: approve by al\n" in text
    assert seen[0].startswith("[0/1 steps] working: Payer | ") and seen[0].endswith(
        "| 1 waiting for approval"
    )
    tokens = result.usage.input_tokens + result.usage.output_tokens
    assert text.endswith(
        f"run succeeded ([1/1 steps] working: - | {tokens} tokens, ${result.usage.cost_usd:.4f})\n"
    )
    assert "\x1b[" not in text  # not a terminal: plain lines only


async def test_on_a_terminal_progress_keeps_one_live_status_line(checked: Check) -> None:
    out = io.StringIO()
    await _supervisor(checked, lambda r: True, Progress(out, live=True)).run("pay")
    text = out.getvalue()
    assert "\r\x1b[2K[0/1 steps] working: Payer" in text  # redrawn in place
    assert "\r\x1b[2Kstep p [Payer] finished (1/1 steps)\n" in text  # what happened, above it
    assert text.endswith("\n") and text.count("run succeeded") == 1


async def test_a_callable_gets_every_event(checked: Check) -> None:
    events: list[Event] = []
    await _supervisor(checked, lambda r: True, events.append).run("pay")
    kinds = [e.kind for e in events]
    assert (
        kinds[0] == "run" and kinds[-1] == "run" and {"plan", "step", "model_call", "tool_call"} <= set(kinds)
    )


async def test_stream_yields_the_events_as_they_happen_then_the_result(checked: Check) -> None:
    sup = _supervisor(checked, lambda r: True, None)
    items = [item async for item in sup.stream("pay")]
    assert isinstance(items[0], RunEvent) and items[0].status == "started"
    assert isinstance(items[-2], RunEvent) and items[-2].status == "succeeded"
    assert items[-1].output == "paid"  # the RunResult comes last


async def test_leaving_a_stream_early_cancels_the_run_and_leaves_no_task() -> None:
    started = asyncio.Event()

    async def slow(request: Any) -> Any:
        started.set()
        await asyncio.sleep(30)

    step = {"id": "p", "worker": "Payer", "input": "pay 5", "depends_on": [], "reason": "it pays"}
    planner = ScriptedModel([reply.output({"reasoning": "r", "steps": [step]})])
    sup = Supervisor([Payer(model=FunctionModel(slow))], model=planner)
    before = len(asyncio.all_tasks())
    async with contextlib.aclosing(sup.stream("pay")) as run:
        async for item in run:
            if getattr(item, "kind", "") == "step":
                await asyncio.wait_for(started.wait(), 10)
                break
    assert len(asyncio.all_tasks()) == before
    (record,) = await sup.runs()
    assert record.status == "aborted"


async def test_a_failed_run_raises_from_its_stream(checked: Check) -> None:
    planner = checked(ScriptedModel([reply.error(400, "bad request")]))
    sup = Supervisor([Payer(model=ScriptedModel([]))], model=planner)
    kinds = []
    with pytest.raises(Exception, match="bad request"):
        async for item in sup.stream("pay"):
            kinds.append(item.kind)  # type: ignore[union-attr]
    assert kinds[0] == "run" and kinds[-1] == "run"


async def test_a_sink_that_raises_at_the_end_does_not_leave_the_run_recorded_as_running(
    checked: Check, tmp_path: Any
) -> None:
    def fragile(event: Event) -> None:
        if isinstance(event, RunEvent) and event.status == "succeeded":
            raise BrokenPipeError("the progress pipe closed")

    path = tmp_path / "runs.db"
    sup = _supervisor(checked, lambda r: True, fragile)
    sup_with_store = Supervisor(
        list(sup.workers.values()), model=sup.model, approver=lambda r: True, events=fragile, store=path
    )
    with pytest.raises(BrokenPipeError):
        await sup_with_store.run("pay", run_id="r")
    (record,) = await sup_with_store.runs()
    assert record.status == "succeeded"  # the run's end was recorded all the same
    await sup_with_store.aclose()
