"""The approval queue: risky calls wait in the store for a person, decided once, from anywhere."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pexpect
import pytest

from supervisor import ConfigurationError, Decision, Plan, RunAborted, Step, Supervisor, TerminalApprover
from supervisor._approvals import ApprovalRecord
from supervisor._sqlite import SQLiteStore
from supervisor._sqlite_schema import MIGRATIONS, SCHEMA_VERSION
from tools import tool
from workers import ApprovalRequest, Worker
from workers.testing import ScriptedModel, reply

Check = Callable[[Any], Any]
ROOT = Path(__file__).resolve().parent.parent


@tool(risky=True)
async def refund(invoice_id: str, amount: float) -> str:
    """Refund part of an invoice."""
    return f"refunded {amount} on {invoice_id}"


class Payer(Worker):
    """Issues refunds."""

    model = "openai:gpt-4o"
    tools = [refund]


PLAN = Plan(steps=[Step("pay", "Payer", "refund invoice 42")])


def payer_model(check: Check, *, allow_unused: bool = False) -> ScriptedModel:
    script = [reply.tool_call("refund", invoice_id="42", amount=30), reply.text("finished")]
    model = ScriptedModel(script, allow_unused=allow_unused)
    return check(model)  # type: ignore[no-any-return]


async def first_pending(sup: Supervisor) -> ApprovalRecord:
    for _ in range(200):  # bounded: 10 s at most
        pending = await sup.pending_approvals()
        if pending:
            return pending[0]
        await asyncio.sleep(0.05)
    raise AssertionError("no approval was filed")


async def test_a_risky_call_waits_in_the_store_and_another_process_approves_it(
    checked: Check, tmp_path: Path
) -> None:
    path = tmp_path / "runs.db"
    model = payer_model(checked)
    async with Supervisor([Payer(model=model)], model=checked(ScriptedModel([])), store=path) as sup:
        run = asyncio.create_task(sup.run_plan(PLAN, run_id="r1"))
        pending = await first_pending(sup)
        assert (pending.run_id, pending.worker, pending.tool, dict(pending.arguments)) == (
            "r1",
            "Payer",
            "refund",
            {"invoice_id": "42", "amount": 30},
        )
        assert pending.schema["properties"]["amount"] == {"type": "number"}
        other = SQLiteStore(path)  # as another process would open it
        assert await other.decide(pending.approval_id, "approved", None, None, "alice")
        await other.aclose()
        result = await run
    assert result.output == "finished"
    assert [r.content for r in model.requests[1].tool_results] == ["refunded 30.0 on 42"]


@pytest.mark.parametrize(
    ("decision", "told"),
    [
        (
            Decision.deny("duplicate already refunded", by="bob"),
            "A person denied this call: duplicate already refunded.",
        ),
        (Decision.edit({"invoice_id": "42", "amount": 15}, by="bob"), "refunded 15.0 on 42"),
    ],
)
async def test_deny_and_edit_decided_from_code(checked: Check, decision: Decision, told: str) -> None:
    model = payer_model(checked)
    sup = Supervisor([Payer(model=model)], model=checked(ScriptedModel([])))
    run = asyncio.create_task(sup.run_plan(PLAN))
    pending = await first_pending(sup)
    assert await sup.decide(pending.approval_id, decision)
    assert not await sup.decide(pending.approval_id, Decision.approve())  # decided once
    await run
    assert [r.content for r in model.requests[1].tool_results] == [told]


async def test_abort_stops_the_run_and_records_it(checked: Check, tmp_path: Path) -> None:
    sup = Supervisor(
        [Payer(model=payer_model(checked, allow_unused=True))],
        model=checked(ScriptedModel([])),
        store=tmp_path / "r.db",
    )
    run = asyncio.create_task(sup.run_plan(PLAN, run_id="ab"))
    pending = await first_pending(sup)
    await sup.decide(pending.approval_id, Decision.abort("wrong customer", by="carol"))
    with pytest.raises(RunAborted, match="wrong customer"):
        await run
    (record,) = await sup.runs()
    assert record.status == "aborted"
    await sup.aclose()


async def test_an_unanswered_approval_expires_and_the_call_is_denied(checked: Check, tmp_path: Path) -> None:
    model = payer_model(checked)
    async with Supervisor(
        [Payer(model=model)],
        model=checked(ScriptedModel([])),
        store=tmp_path / "r.db",
        approval_timeout_s=0.3,
    ) as sup:
        await sup.run_plan(PLAN, run_id="ex")
    assert [r.content for r in model.requests[1].tool_results] == [
        "This call was not approved in time, so it was not run: no answer within 0.3 s."
    ]
    store = SQLiteStore(tmp_path / "r.db")
    rows = await asyncio.to_thread(store._read, "SELECT status, decided_by FROM approvals", ())
    assert rows == [("expired", "timeout")]
    await store.aclose()


async def test_an_approval_given_after_it_expired_is_a_denial_and_is_no_longer_offered(
    checked: Check, tmp_path: Path
) -> None:
    """The asking process died, so nobody marked the request expired: a person approving it
    later was honoured when the run was taken up, and the call ran."""
    from supervisor.__main__ import _approve
    from supervisor._approvals import StoreGate

    path = tmp_path / "r.db"
    store = SQLiteStore(path)
    now = time.time()

    def expired(approval_id: str, run_id: str, key: str) -> ApprovalRecord:
        return ApprovalRecord(
            approval_id, run_id, "Payer", "refund", "c1", {"amount": 1}, {}, "", now - 10, now - 5, key=key
        )

    await store.add_approval(expired("ap1", "r1", "k1"))
    out = io.StringIO()
    await _approve(SQLiteStore(path), None, False, out)  # the command does not offer it
    assert out.getvalue() == "no pending approvals\n"
    async with Supervisor([Payer()], model="openai:gpt-4o", store=path) as sup:
        assert await sup.pending_approvals() == []
        assert not await sup.decide("ap1", Decision.approve(by="alice"))  # too late: refused...
        decided = await store.get_approval("ap1")
        assert decided is not None and (decided.status, decided.decided_by) == ("expired", "timeout")
    # ...and one recorded late all the same (by an older version, or a store written by hand)
    # is a denial when the run is taken up.
    await store.add_approval(
        ApprovalRecord(
            "ap2", "r2", "Payer", "refund", "c1", {"amount": 1}, {}, "", now - 10, now - 5, key="k2"
        )
    )
    assert await store.decide("ap2", "approved", None, None, "alice")
    decision = await StoreGate(store, 5).review(
        ApprovalRequest("r2", "Payer", "refund", {"amount": 1}, key="k2")
    )
    assert decision.kind == "deny" and decision.reason.startswith("no answer within 5 s: approved only after")
    await store.aclose()


async def test_two_approvers_racing_only_one_decision_counts(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    a, b = SQLiteStore(path), SQLiteStore(path)
    record = ApprovalRecord("ap1", "run", "Payer", "refund", "c1", {"amount": 1}, {}, "", 0.0, 1e12)
    await a.add_approval(record)
    results = await asyncio.gather(
        a.decide("ap1", "approved", None, None, "alice"), b.decide("ap1", "denied", "no", None, "bob")
    )
    assert sorted(results) == [False, True]
    decided = await a.get_approval("ap1")
    assert decided is not None and decided.status in ("approved", "denied")
    await a.aclose()
    await b.aclose()


async def test_terminal_approver_without_a_terminal_denies_rather_than_guess(
    caplog: pytest.LogCaptureFixture,
) -> None:
    decision = await TerminalApprover().review(ApprovalRequest("r", "W", "t", {}))
    assert decision.kind == "deny" and "no terminal" in decision.reason
    assert "W wants to call t: denied, no terminal to ask at" in caplog.text  # the person is told too


def test_the_note_on_a_call_asked_about_again_is_not_shown_as_the_models_words() -> None:
    from supervisor._terminal import ask
    from workers._hooks import RERUN_NOTE

    request = ApprovalRequest("r", "W", "pay", {"amount": 5}, reason=f"{RERUN_NOTE}\n\nPaying the invoice.")
    out = io.StringIO()
    ask(request, lambda prompt: "a", out, "alice")
    assert f"Note: {RERUN_NOTE}" in out.getvalue()
    assert "The model said: Paying the invoice." in out.getvalue()
    assert "The model said: This call" not in out.getvalue()


def test_a_version_1_store_is_migrated_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0])
        db.execute("INSERT INTO foreman_meta VALUES ('app', 'foreman'), ('schema_version', '1')")
        db.execute("INSERT INTO runs VALUES ('old', 'g', 'succeeded', NULL, '[]', '{}', NULL, NULL, 0, 0)")
    store = SQLiteStore(path)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM foreman_meta WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )
        assert db.execute("SELECT run_id, owner FROM runs").fetchall() == [("old", None)]
        assert db.execute("SELECT count(*) FROM approvals").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM calls").fetchone() == (0,)
    del store


def _drive(child: Any) -> None:
    child.expect("Payer wants to call refund")
    child.expect('"amount": 30')
    child.expect(r"\[s\]kip\? ")
    child.sendline("e")
    child.expect("New arguments as JSON: ")
    child.sendline('{"invoice_id": "42", "amount": "lots"}')  # fails the schema: asked again
    child.expect("do not fit the tool")
    child.expect(r"\[s\]kip\? ")
    child.sendline("e")
    child.expect("New arguments as JSON: ")
    child.sendline('{"invoice_id": "42", "amount": 20}')
    child.expect("edited")
    child.expect('"amount": 99')  # the next request, picked up by --watch
    child.expect(r"\[s\]kip\? ")
    child.sendline("n")
    child.expect("Reason")
    child.sendline("over the limit")
    child.expect("denied")


async def test_the_approve_command_in_a_real_terminal(checked: Check, tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    model = checked(
        ScriptedModel(
            [
                reply.tool_call("refund", invoice_id="42", amount=30),
                reply.tool_call("refund", invoice_id="43", amount=99),
                reply.text("finished"),
            ]
        )
    )
    async with Supervisor([Payer(model=model)], model=checked(ScriptedModel([])), store=path) as sup:
        run = asyncio.create_task(sup.run_plan(PLAN, run_id="tty"))
        await first_pending(sup)
        child = pexpect.spawn(
            sys.executable,
            ["-m", "supervisor", "approve", "--store", str(path), "--watch"],
            cwd=str(ROOT),
            encoding="utf-8",
            timeout=15,
        )
        try:
            # pexpect blocks: drive the terminal from a thread so the run keeps going meanwhile.
            await asyncio.to_thread(_drive, child)
        finally:
            child.sendintr()
            child.close(force=True)
        await asyncio.wait_for(run, 15)
    assert [r.content for r in model.requests[1].tool_results] == ["refunded 20.0 on 42"]
    assert [r.content for r in model.requests[2].tool_results] == [
        "A person denied this call: over the limit."
    ]


async def test_ctrl_c_at_the_approve_prompt_exits_at_once_and_decides_nothing(
    checked: Check, tmp_path: Path
) -> None:
    """The question's thread sat in input(): the process lived on until Enter, and the next
    line typed was swallowed."""
    path = tmp_path / "runs.db"
    async with Supervisor(
        [Payer(model=payer_model(checked, allow_unused=True))], model=checked(ScriptedModel([])), store=path
    ) as sup:
        run = asyncio.create_task(sup.run_plan(PLAN, run_id="tty"))
        asked = await first_pending(sup)
        child = pexpect.spawn(
            sys.executable,
            ["-m", "supervisor", "approve", "--store", str(path)],
            cwd=str(ROOT),
            encoding="utf-8",
            timeout=15,
        )

        def interrupt() -> str:
            child.expect(r"\[s\]kip\? ")
            child.sendintr()
            child.expect(pexpect.EOF, timeout=3)  # no Enter pressed
            return child.before  # type: ignore[no-any-return]

        try:
            shown = await asyncio.to_thread(interrupt)
        finally:
            child.close(force=True)
        assert "interrupted" in shown and child.exitstatus == 130
        still = await sup._store.get_approval(asked.approval_id)
        assert still is not None and still.status == "pending"
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run


async def test_two_questions_at_one_terminal_never_interleave(checked: Check) -> None:
    import io

    screen = io.StringIO()
    answered: list[str] = []

    def read(prompt: str) -> str:
        shown = screen.getvalue().rsplit("wants to call", 1)[1]  # the request on screen now
        answered.append("A" if '"invoice_id": "A"' in shown else "B")
        return "a" if len(answered) == 1 else "n"

    class PayerA(Payer):
        """A."""

    class PayerB(Payer):
        """B."""

    a = checked(ScriptedModel([reply.tool_call("refund", invoice_id="A", amount=1), reply.text("ok")]))
    b = checked(ScriptedModel([reply.tool_call("refund", invoice_id="B", amount=9999), reply.text("ok")]))
    approver = TerminalApprover(input=read, output=screen)
    sup = Supervisor([PayerA(model=a), PayerB(model=b)], model=checked(ScriptedModel([])), approver=approver)
    await sup.run_plan(Plan(steps=[Step("a", "PayerA", "x"), Step("b", "PayerB", "y")]))
    # each answer went to the request that was on the screen when it was typed
    first, second = answered[0], answered[-1]
    approved = a if first == "A" else b
    assert approved.requests[1].tool_results[0].is_error is False
    assert (b if first == "A" else a).requests[1].tool_results[0].is_error is True
    assert first != second


def test_model_text_cannot_redraw_the_approval_screen() -> None:
    import io

    from supervisor._terminal import ask

    screen = io.StringIO()
    fake = 'checking\x1b[2J\x1b[H\nrun r1: Payer wants to call refund\n{\n  "amount": 1\n}'
    request = ApprovalRequest("r1", "Payer", "refund", {"invoice_id": "42", "amount": 9999}, reason=fake)
    ask(request, lambda prompt: "n", screen, "test")
    text = screen.getvalue()
    assert "\x1b" not in text and "?[2J" in text
    assert text.rindex('"amount": 9999') > text.index("The model said")  # what runs is shown last


async def test_a_closed_terminal_is_a_denial_not_a_crash(checked: Check) -> None:
    def closed(prompt: str) -> str:
        raise EOFError

    model = payer_model(checked)
    sup = Supervisor(
        [Payer(model=model)], model=checked(ScriptedModel([])), approver=TerminalApprover(input=closed)
    )
    await sup.run_plan(PLAN)
    assert "the terminal closed" in model.requests[1].tool_results[0].content


async def test_resuming_a_run_supersedes_the_approvals_its_dead_process_left(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    store = SQLiteStore(path)
    from supervisor._store import RunRecord

    await store.start(RunRecord("dead", None, "running", None, ("Writer",)))
    stale = ApprovalRecord("old", "dead", "Writer", "refund", "c1", {}, {}, "", 0.0, 1e12)
    await store.add_approval(stale)
    await store.aclose()

    class Writer(Worker):
        """Writes."""

        model = "openai:gpt-4o"

    async with Supervisor(
        [Writer(model=ScriptedModel([reply.text("done")]))], model=ScriptedModel([]), store=path
    ) as sup:
        await sup.run_plan(Plan(steps=[Step("w", "Writer", "x")]), run_id="dead")
        assert await sup.pending_approvals() == []
    reader = SQLiteStore(path)
    old = await reader.get_approval("old")
    assert old is not None and (old.status, old.decision_reason) == (
        "superseded",
        "superseded: the run ended",
    )
    await reader.aclose()


RACER = """
import asyncio, sys
sys.path.insert(0, {root!r})
from supervisor._sqlite import SQLiteStore

async def main():
    store = SQLiteStore({db!r})
    won = await store.decide("race", sys.argv[1], None, None, sys.argv[1])
    await store.aclose()
    print("won" if won else "lost")

asyncio.run(main())
"""


def test_two_processes_deciding_one_approval_only_one_wins(tmp_path: Path) -> None:
    import subprocess

    path = tmp_path / "r.db"

    async def file_it() -> None:
        store = SQLiteStore(path)
        await store.add_approval(ApprovalRecord("race", "run", "W", "t", "c", {}, {}, "", 0.0, 1e12))
        await store.aclose()

    asyncio.run(file_it())
    script = tmp_path / "racer.py"
    script.write_text(RACER.format(root=str(ROOT), db=str(path)))
    racers = [
        subprocess.Popen([sys.executable, str(script), status], stdout=subprocess.PIPE, text=True)
        for status in ("approved", "denied")
    ]
    outputs = [racer.communicate(timeout=60)[0].strip() for racer in racers]
    assert sorted(outputs) == ["lost", "won"]


async def test_an_abandoned_terminal_question_stops_reading_and_the_next_line_answers_the_next(
    tmp_path: Path,
) -> None:
    from supervisor import _terminal
    from workers._hooks import TimedGate

    master, slave = os.openpty()
    screen = io.StringIO()
    with open(slave, encoding="utf-8", closefd=True) as tty:  # noqa: ASYNC230 (an open pty: no wait)
        approver = TerminalApprover(output=screen, stdin=tty)
        request = ApprovalRequest("r", "Payer", "refund", {"amount": 5})
        timed = await TimedGate(approver, 0.2).review(request)  # nobody types
        assert (timed.kind, timed.by) == ("deny", "timeout")
        # Its reading thread lets go of the terminal at once, not at the next line typed.
        assert await asyncio.to_thread(_terminal._TERMINAL.acquire, True, 2.0)
        _terminal._TERMINAL.release()
        assert "no longer waiting for this answer" in screen.getvalue()
        os.write(master, b"a\n")
        answered = await approver.review(request)
        assert answered.kind == "approve"
    os.close(master)


async def test_a_sync_approver_that_blocks_is_denied_when_its_time_is_up_and_the_loop_goes_on(
    checked: Check,
) -> None:
    # It ran on the event loop: the timeout could not fire, and the call ran after its deadline.
    import threading
    import time

    release = threading.Event()

    def slow_person(request: ApprovalRequest) -> bool:
        release.wait(5)  # bounded
        return True

    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    model = payer_model(checked)
    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    async with Supervisor(
        [Payer(model=model)], model=checked(ScriptedModel([])), approver=slow_person, approval_timeout_s=0.2
    ) as sup:
        await sup.run_plan(PLAN)
    took = time.monotonic() - started
    ticker.cancel()
    release.set()
    told = model.requests[1].tool_results[0].content
    assert told == "This call was not approved in time, so it was not run: no answer within 0.2 s."
    assert took < 2 and ticks >= 5  # the loop ran while the approver blocked


async def test_an_approver_that_raises_stops_the_step_and_the_call_is_not_run(checked: Check) -> None:
    from supervisor import ApproverFailed, StepFailed

    ran: list[str] = []

    @tool(risky=True)
    async def wire(amount: float) -> str:
        """Wire money."""
        ran.append("wired")
        return "wired"

    class Banker(Worker):
        """Wires money."""

        tools = [wire]

    def broken(request: ApprovalRequest) -> bool:
        raise RuntimeError("approval service down")

    model = checked(ScriptedModel([reply.tool_call("wire", amount=5)]))
    async with Supervisor(
        [Banker(model=model)], model=checked(ScriptedModel([])), approver=broken, step_retries=0
    ) as sup:
        with pytest.raises(StepFailed) as caught:
            await sup.run_plan(Plan(steps=[Step("w", "Banker", "wire 5")]), run_id="ap")
    error = caught.value.cause
    assert isinstance(error, ApproverFailed) and ran == []
    assert (error.tool, error.worker) == ("wire", "Banker") and isinstance(error.cause, RuntimeError)
    shown = "the approver raised on a call of tool 'wire' by Banker (RuntimeError: approval service down)"
    assert shown in str(caught.value)
    assert caught.value.run_id == "ap"


async def test_an_approval_timeout_of_zero_denies_at_once_in_the_store_queue(
    checked: Check, tmp_path: Path
) -> None:
    # 0 was read as "not given": the call waited 600 s for a person.
    model = payer_model(checked)
    async with Supervisor(
        [Payer(model=model)], model=checked(ScriptedModel([])), store=tmp_path / "r.db", approval_timeout_s=0
    ) as sup:
        await asyncio.wait_for(sup.run_plan(PLAN), 10)
    assert "not approved in time" in model.requests[1].tool_results[0].content
    with pytest.raises(ConfigurationError, match="approval_timeout_s must be None or 0 or more"):
        Supervisor([Payer(model=model)], model=checked(ScriptedModel([])), approval_timeout_s=-1)


async def test_an_approver_that_raises_one_of_our_errors_is_not_wrapped(checked: Check) -> None:
    def stop_everything(request: ApprovalRequest) -> bool:
        raise RunAborted("refund", "the approver stopped the run", by="approver")

    model = payer_model(checked, allow_unused=True)
    async with Supervisor(
        [Payer(model=model)], model=checked(ScriptedModel([])), approver=stop_everything
    ) as sup:
        with pytest.raises(RunAborted, match="the approver stopped the run"):
            await sup.run_plan(PLAN)


def test_unreadable_answers_at_the_approve_command_leave_the_request_for_later() -> None:
    """Five answers it could not read recorded a denial nobody made; the command can skip."""
    from supervisor._terminal import ask

    request = ApprovalRequest("r1", "Payer", "refund", {"amount": 1})
    answers = iter(["x"] * 5)
    out = io.StringIO()
    assert ask(request, lambda prompt: next(answers), out, "alice", allow_skip=True) is None
    assert out.getvalue().endswith("No valid answer: left for later.\n")
    inline = iter(["x"] * 5)  # TerminalApprover cannot skip: it denies, and says why
    decision = ask(request, lambda prompt: next(inline), io.StringIO(), "alice")
    assert decision is not None and (decision.kind, decision.reason) == (
        "deny",
        "no valid answer at the terminal",
    )


def test_a_decision_of_no_known_kind_cannot_be_made() -> None:
    """`Decision("reject")` or `Decision("Deny")` ran the risky call: only "abort", "deny" and
    "edit" were looked at, and everything else went on as an approval."""
    for kind in ("reject", "Deny", "approved", None):
        with pytest.raises(ConfigurationError, match="kind is one of approve, deny, edit, abort"):
            Decision(kind)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="arguments are a mapping"):
        Decision("edit", arguments=5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="reason and by are text"):
        Decision("deny", reason=None)  # type: ignore[arg-type]


async def test_only_a_well_formed_approval_runs_a_risky_call(checked: Check) -> None:
    """A user's gate answering True (not a Decision), or a decision altered after it was made,
    is a denial: the model is told, and the call does not run."""
    ran: list[float] = []

    @tool(risky=True)
    async def pay(amount: float) -> str:
        """Pay."""
        ran.append(amount)
        return "paid"

    class Teller(Worker):
        """Pays."""

        model = "openai:gpt-4o"
        tools = [pay]

    class TrueGate:
        async def review(self, request: ApprovalRequest) -> Any:
            return True

    altered = Decision.approve()
    object.__setattr__(altered, "kind", "Approve")
    for approver, told in [
        (TrueGate(), "the gate answered True"),
        (lambda r: altered, "decision is malformed"),
    ]:
        model = checked(ScriptedModel([reply.tool_call("pay", amount=5), reply.text("done")]))
        await Teller(model=model).run("pay", approver=approver)
        assert told in model.requests[1].tool_results[0].content
    assert ran == []
