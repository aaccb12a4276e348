"""The trace: a stored run as a tree that says why it went where it went and what it cost.

Promises: every step shows the plan's reason for its worker and every handoff its reason, so the
tree answers "why did this end at worker F"; model calls, tool calls, refused calls, approvals,
failed attempts and retries sit where they happened; the JSON lines read back into the same
tree; the command line explains an unknown run id with a non-zero exit and no traceback, and
writes no colour into a pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import Field

from supervisor import Supervisor
from supervisor._sqlite import SQLiteStore
from supervisor._trace import build_trace, from_jsonl, render, to_jsonl
from tools import tool
from workers import Decision, Price, RetryPolicy, Worker
from workers.testing import ScriptedModel, reply

Check = Callable[[Any], Any]
ROOT = Path(__file__).resolve().parent.parent
PRICE = Price(input=1.0, output=5.0)


@tool
def lookup(invoice_id: str) -> dict[str, object]:
    """Fetch an invoice."""
    return {"invoice_id": invoice_id, "charges": 2}


@tool(risky=True)
def refund(invoice_id: str, amount: Annotated[float, Field(gt=0)]) -> str:
    """Refund part of an invoice."""
    return f"refunded {amount:g} on {invoice_id}"


class Billing(Worker):
    """Settles invoices."""

    model = "openai:gpt-4o"
    tools = [lookup, refund]


class Triage(Worker):
    """Sends each request to the right desk."""

    model = "openai:gpt-4o"
    handoffs = [Billing]


def _step(sid: str, worker: str, reason: str) -> dict[str, Any]:
    return {
        "id": sid,
        "worker": worker,
        "input": "Refund the duplicate on invoice 42",
        "depends_on": [],
        "reason": reason,
    }


async def _traced_run(checked: Check, path: Path) -> Any:
    planner = checked(
        ScriptedModel(
            [
                reply.output(
                    {"reasoning": "triage first", "steps": [_step("s1", "Triage", "it routes requests")]}
                ),
                reply.error(529, "overloaded"),
                reply.text("Refunded 30 on invoice 42; the second refund was refused."),
            ],
            price=PRICE,
        )
    )
    hand_over = reply.tool_call(
        "transfer_to_Billing", input="refund invoice 42", reason="it is about an invoice"
    )
    triage = checked(ScriptedModel([hand_over, hand_over], price=PRICE))
    billing = checked(
        ScriptedModel(
            [
                reply.error(400, "bad request"),  # attempt 1 fails here
                reply.tool_call("lookup", invoice_id="42"),
                reply.tool_call("refund", invoice_id="42", amount=-5),  # invalid: goes back
                reply.tool_calls(
                    [
                        ("refund", {"invoice_id": "42", "amount": 30}),
                        ("refund", {"invoice_id": "42", "amount": 60}),
                    ]
                ),
                reply.text("Refunded 30."),
            ],
            price=PRICE,
        )
    )

    def approver(request: Any) -> Decision:
        if request.arguments["amount"] > 50:
            return Decision.deny("more than was charged", by="alice")
        return Decision.approve(by="alice")

    async with Supervisor(
        [Triage(model=triage), Billing(model=billing)],
        model=planner,
        store=path,
        approver=approver,
        retry=RetryPolicy(base_delay_s=0.001, max_delay_s=0.001),
    ) as sup:
        return await sup.run("Refund the duplicate charge on invoice 42", run_id="t")


async def _tree(path: Path) -> Any:
    store = SQLiteStore(path)
    record = await store.load("t")
    assert record is not None
    tree = build_trace(record, await store.calls("t"), await store.events("t"))
    await store.aclose()
    return tree


SNAPSHOT = """\
run t: Refund the duplicate charge on invoice 42  succeeded  [_]
|- plan v1 (planned): triage first  [_]
|  `- model Planner turn 1 (scripted) -> final_result  tool_use  [_]
|- step s1 -> Triage (the plan: it routes requests), ended at Billing  succeeded  [_]
|  |- attempt 1  failed: test:scripted: bad request (status 400)  [_]
|  |  |- model Triage turn 1 (scripted) -> transfer_to_Billing  tool_use  [_]
|  |  `- handoff Triage -> Billing: it is about an invoice
|  `- attempt 2  [_]
|     |- model Triage turn 1 (scripted) -> transfer_to_Billing  tool_use  [_]
|     |- handoff Triage -> Billing: it is about an invoice
|     |- model Billing turn 1 (scripted) -> lookup  tool_use  [_]
|     |  `- tool lookup {"invoice_id":"42"} -> {"charges": 2, "invoice_id": "42"}  ok  [_]
|     |- model Billing turn 2 (scripted) -> refund  tool_use  [_]
|     |  `- tool refund invalid: $.amount: -5 is less than or equal to the minimum of 0
|     |- model Billing turn 3 (scripted) -> refund, refund  tool_use  [_]
|     |  |- approval of refund: approve by alice after _ s
|     |  |- approval of refund: deny by alice after _ s: more than was charged
|     |  |- tool refund {"amount":30,"invoice_id":"42"} -> refunded 30 on 42  ok  [_]
|     |  `- tool refund {"amount":60,"invoice_id":"42"} -> A person denied this call: more than was charged.  denied  [_]
|     `- model Billing turn 4 (scripted): Refunded 30.  end  [_]
|- answer  [_]
|  `- model Synthesizer turn 1 (scripted): Refunded 30 on invoice 42; the second refund was refused.  end  [_]
`- model_retry: model=test:scripted, attempt=1, delay_s=_, error=test:scripted: overloaded (status 529), status_code=529
"""


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)


def _normalised(text: str) -> str:
    text = re.sub(r"  \[[^\]]*\]", "  [_]", text)
    text = re.sub(r"after [\d.]+ s", "after _ s", text)
    return re.sub(r"delay_s=[\d.e-]+", "delay_s=_", text)


async def test_the_trace_shows_why_each_step_went_where_it_did_and_every_call_in_place(
    checked: Check, tmp_path: Path
) -> None:
    result = await _traced_run(checked, tmp_path / "runs.db")
    assert result.output.startswith("Refunded 30")
    tree = await _tree(tmp_path / "runs.db")
    assert _normalised(render(tree)) == SNAPSHOT
    assert "\x1b[" not in render(tree) and "\x1b[32msucceeded\x1b[0m" in render(tree, colour=True)
    # What it cost, counted once: 8 answered calls, one of them sent twice (the 529).
    assert tree.usage == result.usage and (tree.usage.requests, tree.usage.retries) == (9, 1)


async def test_the_json_lines_read_back_into_the_same_tree(checked: Check, tmp_path: Path) -> None:
    await _traced_run(checked, tmp_path / "runs.db")
    tree = await _tree(tmp_path / "runs.db")
    lines = list(to_jsonl(tree))
    assert all(json.loads(line)["path"].startswith("0") for line in lines)
    assert render(from_jsonl(lines)) == render(tree)


async def test_the_trace_command_prints_a_run_and_refuses_an_unknown_id(
    checked: Check, tmp_path: Path
) -> None:
    path = tmp_path / "runs.db"
    await _traced_run(checked, path)
    command = [sys.executable, "-m", "supervisor", "trace", "t", "--store", str(path)]
    shown = await asyncio.to_thread(_run, command)
    assert shown.returncode == 0 and shown.stdout.startswith("run t: Refund") and "\x1b[" not in shown.stdout
    as_json = await asyncio.to_thread(_run, [*command, "--json"])
    assert [json.loads(line)["kind"] for line in as_json.stdout.splitlines()][:3] == ["run", "plan", "model"]
    unknown = await asyncio.to_thread(_run, [*command[:4], "nope", *command[5:]])
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr == f"error: no run 'nope' in {path}\n"


async def test_a_redact_hook_rewrites_what_events_and_the_trace_show_not_what_resume_needs(
    checked: Check, tmp_path: Path
) -> None:
    from supervisor import Plan as PlanOf
    from supervisor import Progress, Step

    @tool
    def card(holder: str) -> str:
        """The holder's card."""
        return f"{holder}: 4111 1111 1111 1111"

    class Cards(Worker):
        """Looks cards up."""

        model = "openai:gpt-4o"
        tools = [card]

    def redact(tool_name: str, field: str, text: str) -> str:
        return re.sub(r"\d{4}", "####", text).replace("Ada", "<name>")

    model = checked(ScriptedModel([reply.tool_call("card", holder="Ada"), reply.text("found it")]))
    shown = io.StringIO()
    path = tmp_path / "runs.db"
    async with Supervisor(
        [Cards(model=model)], model=ScriptedModel([]), store=path, redact=redact, events=Progress(shown)
    ) as sup:
        await sup.run_plan(PlanOf(steps=[Step("c", "Cards", "find Ada's card")]), run_id="t")
    assert model.requests[1].tool_results[0].content == "Ada: 4111 1111 1111 1111"  # the model needs it
    assert '{"holder":"<name>"}' in shown.getvalue() and "4111 1111" not in shown.getvalue()
    store = SQLiteStore(path)
    record = await store.load("t")
    calls = await store.calls("t")
    events = await store.events("t")
    await store.aclose()
    assert record is not None
    text = render(build_trace(record, calls, events))
    assert 'tool card {"holder":"<name>"} -> <name>: #### #### #### ####' in text
    assert "4111 1111" not in text and "Ada" not in text.split("step c")[1]
    assert "4111 1111" not in json.dumps([body for _, _, body in events])
    tool_record = next(c.value for c in calls if c.key.endswith("/0"))
    assert tool_record.result.content == "Ada: 4111 1111 1111 1111"  # type: ignore[union-attr]


@pytest.mark.parametrize("failure", ["invalid arguments", "loop", "turns"])
async def test_a_redact_hook_holds_for_errors_that_quote_tool_arguments(failure: str, tmp_path: Path) -> None:
    """A step failing with an error that quotes the arguments (ToolArgumentsError, LoopDetected,
    MaxTurnsExceeded) showed them in step and run events, progress lines and the trace."""
    from supervisor import AgentError, Progress, Step
    from supervisor import Plan as PlanOf
    from tests.recorders import Events

    @tool
    def charge(card: int) -> str:
        """Charge a card."""
        return "charged"

    @tool
    def lookup(card: str) -> str:
        """Look a card up."""
        return "nothing"

    class Till(Worker):
        """Charges cards."""

        model = "openai:gpt-4o"
        tools = [charge, lookup]
        max_turns = 3
        argument_repairs = 1

    secret = "4111-1111-1111-1111"
    replies = {
        "invalid arguments": [reply.tool_call("charge", card=secret)] * 2,
        "loop": [reply.tool_call("lookup", card=secret)] * 3,
        "turns": [reply.tool_call("lookup", card=f"{secret}{i}") for i in range(3)],
    }[failure]
    events = Events()
    progress = io.StringIO()
    lines = Progress(progress)
    path = tmp_path / "runs.db"
    sup = Supervisor(
        [Till(model=ScriptedModel(replies))],
        model=ScriptedModel([]),
        store=path,
        step_retries=0,
        redact=lambda tool_name, field, text: re.sub(r"\d{4}", "####", text),
        events=lambda event: (events.emit(event), lines.emit(event)),
    )
    with pytest.raises(AgentError) as caught:
        await sup.run_plan(PlanOf(steps=[Step("c", "Till", "charge it")]), run_id="t")
    await sup.aclose()
    assert secret in str(caught.value)  # the caller's own error keeps the values, to debug with
    # The card as written: "4111" alone turns up in the digits of a duration now and then.
    assert "####" in repr(events.seen) and "4111-1111" not in repr(events.seen)
    assert "4111-1111" not in progress.getvalue()
    store = SQLiteStore(path)
    record = await store.load("t")
    trace = render(build_trace(record, await store.calls("t"), await store.events("t")))  # type: ignore[arg-type]
    runs = await store.runs()
    await store.aclose()
    assert "####" in trace and "4111-1111" not in trace and "4111-1111" not in (runs[0].error or "")


async def test_a_compaction_shows_in_the_trace_under_the_attempt_it_happened_in(
    checked: Check, tmp_path: Path
) -> None:
    from supervisor import Budget, Step
    from supervisor import Plan as PlanOf

    @tool
    def page(number: int) -> str:
        """One page of a long report."""
        return f"page {number}: " + "text " * 600

    class Reader(Worker):
        """Reads long reports."""

        model = "openai:gpt-4o"
        tools = [page]
        context_window = 6_000
        max_tokens = 400
        max_turns = 30

    def read(request: Any) -> Any:
        if request.system.startswith("You compress"):
            return reply.text("Summary: the pages so far say nothing new.")
        done = [r for m in request.messages for r in getattr(m, "tool_results", ())]
        last = int(done[-1].content.split(":")[0].split()[1]) if done else 0
        return reply.tool_call("page", number=last + 1) if last < 12 else reply.text("read 12 pages")

    from workers.testing import FunctionModel

    path = tmp_path / "runs.db"
    async with Supervisor(
        [Reader(model=checked(FunctionModel(read)))],
        model=ScriptedModel([]),
        store=path,
        budget=Budget(max_tokens=200_000),
    ) as sup:
        await sup.run_plan(PlanOf(steps=[Step("r", "Reader", "read the report")]), run_id="t")
    text = render(await _tree(path))
    attempt = text.split("attempt 1")[1]
    assert "compaction of Reader's conversation (trim, threshold): " in attempt
    assert re.search(r"\|  +\|- compaction of Reader", text) or re.search(
        r"   +\|- compaction of Reader", text
    )


async def test_budget_and_breaker_decisions_show_in_the_trace(checked: Check, tmp_path: Path) -> None:
    from supervisor import BreakerSettings, Budget, CircuitBreakers, Step
    from supervisor import Plan as PlanOf

    class Writer(Worker):
        """Writes."""

        model = "openai:gpt-4o"

    failing = checked(ScriptedModel([reply.error(529, "overloaded"), reply.error(529, "overloaded")]))
    path = tmp_path / "runs.db"
    async with Supervisor(
        [Writer(model=failing)],
        model=ScriptedModel([]),
        store=path,
        budget=Budget(max_tokens=3_000),  # less than the worker's max_tokens: the first call is lowered
        breakers=CircuitBreakers(BreakerSettings(failures=2, cooldown_s=60)),
        retry=RetryPolicy(base_delay_s=0.001, max_delay_s=0.001),
    ) as sup:
        with pytest.raises(Exception, match="circuit"):
            await sup.run_plan(PlanOf(steps=[Step("w", "Writer", "write")]), run_id="t")
    text = render(await _tree(path))
    assert "budget: worker=Writer, model=test:scripted, action=lowered, detail=max_tokens 4096 -> " in text
    assert "breaker: model=test:scripted, state=open, failures=2" in text
    assert text.startswith("run t: (a plan given in code)  failed")


def test_a_call_caught_half_way_shows_redacted_in_the_trace() -> None:
    from supervisor._calls import CallRecord
    from supervisor._store import RunRecord
    from workers import ModelResponse, ToolCallPart, ToolRecord

    plan = {
        "version": 1,
        "reasoning": "r",
        "steps": [{"id": "c", "worker": "Cards", "input": "x", "depends_on": [], "reason": "cards"}],
    }
    record = RunRecord("t", None, "running", plan, ("Cards",))
    call = ToolCallPart("c1", "card", '{"holder":"Ada"}', {"holder": "Ada"})
    calls = [
        CallRecord("1/c.1/0/Cards/1", ModelResponse((call,), "tool_use")),
        CallRecord(
            "1/c.1/0/Cards/1/0",
            ToolRecord("card", "started", 1, '{"holder":"Ada"}', shown=('{"holder":"<name>"}', "")),
        ),
    ]
    text = render(build_trace(record, calls, []))
    assert 'tool card {"holder":"<name>"}  started' in text and "Ada" not in text


def test_every_error_that_quotes_tool_arguments_can_show_them_redacted() -> None:
    from tools.errors import (
        HandoffError,
        LoopDetected,
        MaxTurnsExceeded,
        StepFailed,
        ToolArgumentsError,
        ToolInterrupted,
        shown,
    )

    def hide(tool_name: str, field: str, text: str) -> str:
        return f"<{tool_name} {field}>"

    quoting = [
        HandoffError("Till", "pay", "payload rejected", value={"card": "4111"}),  # via transfer_to_pay
        ToolInterrupted("pay", '{"card":"4111"}', "1/a.1/0/P/0/0"),
        ToolArgumentsError("pay", [("$.card", "4111", "'4111' is not of type 'integer'")], attempts=2),
        LoopDetected("Till", "pay", '{"card":"4111"}', 3),
        MaxTurnsExceeded("Till", 3, [("pay", '{"card":"4111"}')]),
    ]
    for error in [*quoting, StepFailed("a", "Till", 1, quoting[3])]:
        assert "4111" in str(error) and "4111" not in shown(error, hide)
        assert "<pay arguments>" in shown(error, hide) or "<transfer_to_pay arguments>" in shown(error, hide)
        assert shown(error, None) == str(error)


async def test_an_approval_still_waiting_shows_in_the_trace(checked: Check, tmp_path: Path) -> None:
    """Only decisions were shown: a run waiting on a person, or stopped while it waited, showed
    the turn that asked and nothing of the request."""
    from supervisor import Plan, Step

    path = tmp_path / "runs.db"
    model = checked(ScriptedModel([reply.tool_call("refund", invoice_id="42", amount=30)], allow_unused=True))
    async with Supervisor([Billing(model=model)], model=ScriptedModel([]), store=path) as sup:
        run = asyncio.create_task(sup.run_plan(Plan(steps=[Step("b", "Billing", "refund 42")]), run_id="w"))
        for _ in range(200):  # bounded: 10 s
            if await sup.pending_approvals():
                break
            await asyncio.sleep(0.05)
        store = SQLiteStore(path)
        record = await store.load("w")
        assert record is not None
        text = render(build_trace(record, await store.calls("w"), await store.events("w")))
        await store.aclose()
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
    assert "approval of refund: asked, no decision recorded" in text


def test_the_runs_error_is_shown_whole_in_the_trace_and_its_json() -> None:
    """It was cut at about 100 characters, and no field held the rest."""
    from supervisor._store import RunRecord

    error = "step 'a' (Billing) failed after 2 attempts: " + "a long reason " * 20 + "THE END"
    record = RunRecord("r", "goal", "failed", None, ("Billing",), error=error)
    tree = build_trace(record, [], [])
    assert error in render(tree)
    assert any(json.loads(line)["label"] == f"error: {error}" for line in to_jsonl(tree))


async def test_why_arguments_were_refused_is_redacted_as_the_arguments() -> None:
    """The refusal quotes the bad value; it went to the hook as a result, so a hook hiding the
    arguments only let it through to events and progress."""
    from tests.recorders import Events
    from workers import ToolCallEvent

    @tool
    def charge(card: int) -> str:
        """Charge a card."""
        return "charged"

    class Till(Worker):
        """Charges cards."""

        model = "openai:gpt-4o"
        tools = [charge]

    def hide_arguments(tool_name: str, field: str, text: str) -> str:
        return "[hidden]" if field == "arguments" else text

    events = Events()
    model = ScriptedModel([reply.tool_call("charge", card="4111-SECRET"), reply.text("gave up")])
    from workers import RunContext

    await Till(model=model).run("charge it", context=RunContext(redact=hide_arguments), events=events)
    (refused,) = [e for e in events.of(ToolCallEvent) if e.status == "invalid"]
    assert "SECRET" not in refused.detail and "SECRET" not in refused.arguments
