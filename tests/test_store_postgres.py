"""The PostgreSQL store: what the SQLite store promises, on a database several processes share.

Promises: runs, plans, steps, usage and ends come back as written; journal records come back
in the order written, a queued one is committed with the next awaited write and an awaited one
is committed when the call returns; the writes of concurrent runs share commits; of two claims
on one loaded run only one wins, and of two processes deciding one approval only one does; a
schema that is not ours, or is newer, is refused and nothing is written; every wait is bounded
and every error names the store without its password; a whole run resumes after a stop, and
the command line lists and traces it as it does from SQLite; once another process has taken a
run over, the first one's writes change nothing and it starts no tool. A process killed between
steps, and a run aborted and taken up again, are tested for both stores in tests/test_store.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from supervisor import Plan, Step, StepFailed, Supervisor
from supervisor._approvals import ApprovalRecord, StoreGate
from supervisor._calls import CallRecord
from supervisor._pg_schema import SCHEMA_VERSION, public_url
from supervisor._postgres import PostgresStore
from supervisor._sqlite import SQLiteStore
from supervisor._store import RunRecord, StepRecord, open_store
from tests import test_trace
from tests.test_store import PLAN, Checker, Verdict, Writer
from tools import tool
from tools.errors import ConfigurationError, RunTakenOver, StoreError
from workers import (
    ApprovalRequest,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolRecord,
    Usage,
    Worker,
)
from workers.testing import FunctionModel, Reply, ScriptedModel, reply

Check = Callable[[Any], Any]
ROOT = Path(__file__).resolve().parent.parent
RESPONSE = ModelResponse(
    (TextPart("Let me look."), ToolCallPart("toolu_1", "lookup", '{"id": 42}', {"id": 42})),
    "tool_use",
    Usage(120, 30, 100, 5, 1, 2, 0.0031, 0),
    "anthropic",
    "claude-sonnet-4-5",
    "req_1",
    1.25,
    0.4,
)


def _tool(state: str) -> ToolRecord:
    return ToolRecord("refund", state, 1, '{"amount":5}')  # type: ignore[arg-type]


def _query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """What another client sees, committed."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def _catalog(url: str) -> list[tuple[Any, ...]]:
    """Every schema and relation of the database: to show that nothing was created."""
    objects = _query(
        url,
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1, 2",
    )
    return objects + _query(url, "SELECT nspname, '' FROM pg_namespace ORDER BY 1")


# --- records ---------------------------------------------------------------------------------------


async def test_a_run_its_plan_steps_usage_and_end_come_back_as_written(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    run = RunRecord("r1", "a goal", workers=("Checker", "Writer"), usage={"requests": 0}, owner="h:1:x")
    assert await store.start(run)
    await store.save_plan("r1", {"reasoning": "r", "steps": [{"id": "a"}], "version": 1})
    step = StepRecord("a", "Checker", '{"ok":true}', {"requests": 1, "cost": 0.5}, attempts=2)
    await store.save_step("r1", step, {"requests": 1})
    await store.finish("r1", "succeeded", {"requests": 2}, '"done"', None)
    other = PostgresStore(postgres_url)  # another process
    loaded = await other.load("r1")
    assert loaded is not None
    assert (loaded.goal, loaded.status, loaded.workers, loaded.owner) == (
        "a goal",
        "succeeded",
        ("Checker", "Writer"),
        "h:1:x",
    )
    assert loaded.plan == {"reasoning": "r", "steps": [{"id": "a"}], "version": 1}
    assert loaded.steps == {"a": step} and loaded.usage == {"requests": 2} and loaded.output_json == '"done"'
    assert loaded.created_at == run.created_at and loaded.updated_at >= run.created_at
    assert await other.load("nope") is None
    assert await store.start(RunRecord("r0", None, created_at=run.created_at - 5))
    assert [r.run_id for r in await other.runs()] == ["r1", "r0"]  # newest first
    await store.aclose()
    await other.aclose()


async def test_journal_records_come_back_in_order_queued_ones_with_the_next_awaited_write(
    postgres_url: str,
) -> None:
    store, other = PostgresStore(postgres_url), PostgresStore(postgres_url)
    store.put_call("r", CallRecord("1/a.1/0/W/1", RESPONSE))
    store.put_call("r", CallRecord("1/a.1/0/W/1/0", _tool("started")))
    await asyncio.sleep(0.05)
    assert await other.calls("r") == []  # queued: not written on its own
    await store.save_call("r", CallRecord("1/a.1/0/W/1/0", _tool("finished")))  # replaces, moves last
    await store.save_call("r", CallRecord("1/a.1/0/W/2", RESPONSE))
    await store.save_call("s", CallRecord("1/a.1/0/W/1", RESPONSE))  # another run's own
    assert [(c.key, c.value) for c in await other.calls("r")] == [
        ("1/a.1/0/W/1", RESPONSE),
        ("1/a.1/0/W/1/0", _tool("finished")),
        ("1/a.1/0/W/2", RESPONSE),
    ]
    store.put_call("r", CallRecord("k", _tool("started")), now=True)  # queued now, not waited for
    for _ in range(200):
        if len(await other.calls("r")) == 4:
            break
        await asyncio.sleep(0.01)
    assert [c.key for c in await other.calls("r")][-1] == "k"
    store.put_call("r", CallRecord("k2", _tool("started")))
    await store.commit_calls()
    assert [c.key for c in await other.calls("r")][-1] == "k2"
    await store.aclose()
    await other.aclose()


async def test_the_writes_of_concurrent_runs_share_commits(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    await store.commit_calls()  # connected, so that the writes below queue up behind each other

    async def run(i: int) -> None:
        for turn in range(5):
            store.add_events(f"r{i}", [])
            await store.save_call(f"r{i}", CallRecord(f"1/a.1/0/W/{turn}", RESPONSE))

    await asyncio.gather(*(run(i) for i in range(40)))
    rows = _query(postgres_url, "SELECT count(*), count(DISTINCT xmin::text) FROM foreman.calls")
    (written, transactions) = rows[0]
    assert written == 200 and transactions < 100  # each awaited, and committed together
    await store.aclose()


async def test_one_bad_write_does_not_fail_the_other_runs_writes_in_its_batch(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    record = ApprovalRecord("a1", "r", "W", "refund", "c1", {}, {}, "why", 1.0, 2.0)
    await store.add_approval(record)
    outcomes = await asyncio.gather(
        store.start(RunRecord("r", None)),
        store.save_call("r", CallRecord("k", RESPONSE)),
        store.add_approval(record),  # the same id again: refused, and its batch rolled back
        return_exceptions=True,
    )
    assert outcomes[:2] == [True, None]  # written again alone: the start was not half-committed
    assert isinstance(outcomes[2], StoreError) and "UniqueViolation" in str(outcomes[2])
    assert isinstance(outcomes[2].__cause__, psycopg.errors.UniqueViolation)
    assert [c.key for c in await store.calls("r")] == ["k"]
    await store.aclose()


# --- claims and approvals, as from two processes ------------------------------------------------


async def test_of_two_processes_claiming_one_loaded_run_only_one_wins(postgres_url: str) -> None:
    first, second = PostgresStore(postgres_url), PostgresStore(postgres_url)
    assert await first.start(RunRecord("r", None, "failed", None, ("Writer",), owner="h:1"))
    assert not await second.start(RunRecord("r", None, "running", None, ("Writer",), owner="h:2"))
    loaded = await first.load("r")
    claims = await asyncio.gather(
        *(
            store.start(RunRecord("r", None, "running", None, ("Writer",), owner=f"h:{n}"), loaded)
            for n, store in ((3, first), (4, second), (5, first), (6, second))
        )
    )
    assert sorted(claims) == [False, False, False, True]
    now = await second.load("r")
    assert now is not None and now.owner == f"h:{3 + claims.index(True)}" and now.status == "running"
    assert not await first.start(RunRecord("r", None, owner="h:7"), loaded)  # loaded before: stale
    await first.aclose()
    await second.aclose()


async def test_once_another_process_takes_a_run_over_the_first_one_writes_nothing_more(
    postgres_url: str,
) -> None:
    """A process that lost its run (cut off, its lock expired, another took the run up) may
    still be running it: its journal, steps and end change nothing, and its next awaited
    journal write fails, so it starts no tool after losing the run."""
    old, new = PostgresStore(postgres_url), PostgresStore(postgres_url)
    assert await old.start(RunRecord("f", "goal", "running", None, ("Writer",), owner="a:1"))
    await old.save_call("f", CallRecord("1/s.1/0/Writer/1", RESPONSE))  # still its owner: written
    loaded = await new.load("f")
    assert await new.start(RunRecord("f", "goal", "running", None, ("Writer",), owner="b:2"), loaded)

    old.put_call("f", CallRecord("1/s.1/0/Writer/2", RESPONSE))
    await old.save_step("f", StepRecord("s", "Writer", '"late"', {}, 1, 1.0), {"requests": 9})
    with pytest.raises(RunTakenOver, match="taken it over"):
        await old.save_call("f", CallRecord("1/s.1/0/Writer/1/0", ToolRecord("pay", "started", 1, "{}")))
    await old.finish("f", "failed", {"requests": 9}, None, "lost")
    await old.aclose()

    assert [c.key for c in await new.calls("f")] == ["1/s.1/0/Writer/1"]
    run = await new.load("f")
    assert run is not None and (run.owner, run.status, run.steps, run.error) == ("b:2", "running", {}, None)
    await new.save_call("f", CallRecord("1/s.1/0/Writer/2", RESPONSE))  # the new owner writes on
    await new.finish("f", "succeeded", {"requests": 2}, '"done"', None)
    run = await new.load("f")
    assert run is not None and run.status == "succeeded"
    assert [c.key for c in await new.calls("f")] == ["1/s.1/0/Writer/1", "1/s.1/0/Writer/2"]
    await new.aclose()


async def test_a_supervisor_whose_run_another_process_took_over_starts_no_tool(postgres_url: str) -> None:
    paid: list[int] = []

    @tool
    async def pay(amount: int) -> str:
        """Pay (not idempotent: it must never run twice)."""
        paid.append(amount)
        return "paid"

    class Payer(Worker):
        """Pays."""

        tools = [pay]

    async def taken_over_then_pay(request: ModelRequest) -> Reply:
        other = PostgresStore(postgres_url)  # meanwhile, another process takes the run up
        loaded = await other.load("t")
        assert loaded is not None
        assert await other.start(dataclasses.replace(loaded, owner="elsewhere:1"), loaded)
        # ... and asks a person about a call of its own: the process that lost the run leaves it be
        asked = ApprovalRecord("new-1", "t", "Payer", "pay", "c1", {"amount": 5}, {}, "", 1.0, 1e12)
        await other.add_approval(asked)
        await other.aclose()
        return reply.tool_call("pay", amount=5)

    seed = PostgresStore(postgres_url)  # a run that failed before: this process takes it up
    assert await seed.start(RunRecord("t", None, "failed", None, ("Payer",)))
    await seed.aclose()
    payer = FunctionModel(taken_over_then_pay)
    async with Supervisor([Payer(model=payer)], model=ScriptedModel([]), store=postgres_url) as sup:
        with pytest.raises(RunTakenOver, match="taken it over"):
            await sup.run_plan(Plan(steps=[Step("p", "Payer", "pay 5")]), run_id="t")
    assert paid == []  # its start could not be recorded as this process's, so it never ran
    store = PostgresStore(postgres_url)
    run = await store.load("t")
    pending = await store.pending_approvals("t")
    await store.aclose()
    assert run is not None and (run.owner, run.status) == ("elsewhere:1", "running")
    assert [a.approval_id for a in pending] == ["new-1"]  # not superseded by the run it lost


async def test_an_approval_is_decided_once_when_two_processes_decide_at_once(postgres_url: str) -> None:
    first, second = PostgresStore(postgres_url), PostgresStore(postgres_url)
    for n, run_id in enumerate(("r1", "r2", "r1")):
        record = ApprovalRecord(f"a{n}", run_id, "W", "refund", "c", {"x": n}, {}, "", n, 99.0, key=f"k{n}")
        await first.add_approval(record)
    assert [a.approval_id for a in await second.pending_approvals()] == ["a0", "a1", "a2"]  # every run's
    assert [a.approval_id for a in await second.pending_approvals("r1")] == ["a0", "a2"]
    for approval_id in ("a0", "a1", "a2"):
        won = await asyncio.gather(
            first.decide(approval_id, "approved", None, None, "alice"),
            second.decide(approval_id, "denied", "no", None, "bob"),
        )
        assert sorted(won) == [False, True]
        decided = await second.get_approval(approval_id)
        assert decided is not None and decided.decided_by == ("alice" if won[0] else "bob")
        assert decided.status == ("approved" if won[0] else "denied")
    assert await first.pending_approvals() == []
    assert not await second.decide("a0", "aborted", "late", None, "carol")  # decided: stays so
    found = await first.approval_for("r1", "k2")
    assert found is not None and found.approval_id == "a2" and found.arguments == {"x": 2}
    await first.aclose()
    await second.aclose()


async def test_a_waiting_gate_sees_a_decision_taken_by_another_process(postgres_url: str) -> None:
    store, person = PostgresStore(postgres_url), PostgresStore(postgres_url)
    request = ApprovalRequest(
        "r", "Payer", "refund", {"amount": 5}, "c1", "why", {}, key="0.1/p.1/0/Payer/1/0"
    )
    waiting = asyncio.create_task(StoreGate(store, timeout_s=60, poll_s=0.01).review(request))
    for _ in range(500):
        pending = await person.pending_approvals()
        if pending:
            break
        await asyncio.sleep(0.01)
    assert await person.decide(pending[0].approval_id, "edited", None, {"amount": 4}, "bob")
    decision = await asyncio.wait_for(waiting, 10)
    assert (decision.kind, decision.arguments, decision.by) == ("edit", {"amount": 4}, "bob")
    again = await StoreGate(store, timeout_s=60).review(request)  # a resumed run asks again
    assert (again.kind, again.by) == ("edit", "bob") and await store.pending_approvals() == []
    await store.aclose()
    await person.aclose()


# --- schemas that are not ours ---------------------------------------------------------------------


async def test_a_schema_that_is_not_ours_is_refused_and_the_database_left_untouched(
    postgres_url: str,
) -> None:
    _query(postgres_url, "CREATE SCHEMA foreman; CREATE TABLE foreman.customers (id int)")
    before = _catalog(postgres_url)
    store = PostgresStore(postgres_url)
    with pytest.raises(StoreError, match=r"schema 'foreman' is not a foreman store .*customers") as caught:
        await store.start(RunRecord("r", None))
    assert not caught.value.transient  # a DBOS run is not taken up again for minutes, as for a restart
    with pytest.raises(StoreError, match="not a foreman store"):
        await store.load("r")
    await store.aclose()
    assert _catalog(postgres_url) == before
    beside = PostgresStore(postgres_url, schema="foreman_b")  # a schema of its own is fine
    assert await beside.start(RunRecord("r", None)) and await beside.load("r") is not None
    await beside.aclose()


async def test_a_schema_from_a_newer_version_is_refused_and_nothing_is_written(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    assert await store.start(RunRecord("r", None))
    await store.aclose()
    _query(
        postgres_url,
        "UPDATE foreman.foreman_meta SET value = %s WHERE key = 'schema_version'",
        (str(SCHEMA_VERSION + 1),),
    )
    before = _catalog(postgres_url), _query(postgres_url, "SELECT * FROM foreman.runs")
    newer = PostgresStore(postgres_url)
    with pytest.raises(StoreError, match="newer version") as caught:
        await newer.open()
    assert not caught.value.transient
    with pytest.raises(StoreError, match="newer version"):
        await newer.finish("r", "failed", {}, None, "x")
    newer.add_events("r", [])
    with pytest.raises(
        StoreError, match=f"schema {SCHEMA_VERSION + 1}; this one reads up to {SCHEMA_VERSION}"
    ):
        await newer.runs()
    await newer.aclose()
    assert (_catalog(postgres_url), _query(postgres_url, "SELECT * FROM foreman.runs")) == before


async def test_processes_opening_a_new_database_at_once_create_the_schema_once(postgres_url: str) -> None:
    stores = [PostgresStore(postgres_url) for _ in range(4)]
    await asyncio.gather(*(store.open() for store in stores))
    assert _query(postgres_url, "SELECT key, value FROM foreman.foreman_meta ORDER BY key") == [
        ("app", "foreman"),
        ("schema_version", str(SCHEMA_VERSION)),
    ]
    for store in stores:
        await store.aclose()


def test_a_schema_name_that_needs_quoting_is_refused() -> None:
    with pytest.raises(StoreError, match="schema name"):
        PostgresStore("postgresql://h/db", schema='x"; DROP TABLE runs; --')


# --- bounds and errors --------------------------------------------------------------------------


async def test_a_checkpoint_that_cannot_commit_fails_in_bounded_time_without_the_password(
    postgres_url: str,
) -> None:
    secret = postgres_url.replace("postgres@", "postgres:hunter2@")  # trust auth: any password works
    store = PostgresStore(secret, commit_timeout_s=0.5)
    assert await store.start(RunRecord("r", None))
    with psycopg.connect(postgres_url) as blocker:  # another process holds the table
        blocker.execute("LOCK TABLE foreman.runs IN ACCESS EXCLUSIVE MODE")
        started = asyncio.get_running_loop().time()
        with pytest.raises(StoreError, match=r"no commit within 0.5 s") as caught:
            await store.finish("r", "failed", {}, None, "x")
        assert asyncio.get_running_loop().time() - started < 3
        assert "hunter2" not in str(caught.value) and "postgres@127.0.0.1" in str(caught.value)
        assert caught.value.__cause__ is not None and caught.value.transient
        with pytest.raises(StoreError, match="no commit within"):
            await store.finish("r", "failed", {}, None, "y")
        with pytest.raises(StoreError, match="read failed") as read:
            await store.load("r")
        assert read.value.transient  # waited for the lock: it may pass
        blocker.rollback()
    await store.finish("r", "failed", {}, None, "z")  # and it recovers
    assert (await store.load("r")).error == "z"  # type: ignore[union-attr]
    await store.aclose()


async def test_a_server_that_cannot_be_reached_fails_at_once_and_names_it_without_the_password() -> None:
    from tests.pg import _free_port

    port = _free_port()  # nobody listens there
    store = PostgresStore(f"postgresql://me:hunter2@127.0.0.1:{port}/db", commit_timeout_s=30)
    started = asyncio.get_running_loop().time()
    with pytest.raises(StoreError, match="cannot connect") as caught:
        await store.finish("r", "failed", {}, None, "x")
    assert asyncio.get_running_loop().time() - started < 10
    assert "hunter2" not in str(caught.value) and f"me@127.0.0.1:{port}/db" in str(caught.value)
    assert isinstance(caught.value.__cause__, psycopg.OperationalError) and caught.value.transient
    with pytest.raises(StoreError, match="cannot connect") as read:
        await store.runs()
    assert read.value.transient
    await store.aclose()


async def test_a_store_error_says_whether_trying_again_later_may_pass(postgres_url: str) -> None:
    """A DBOS run whose store failed is taken up again for minutes only when the failure may pass:
    a statement the server refuses (a table another program dropped) stays as it is."""
    store = PostgresStore(postgres_url)
    assert await store.start(RunRecord("r", None))
    _query(postgres_url, "DROP TABLE foreman.events")
    with pytest.raises(StoreError, match="read failed: UndefinedTable") as read:
        await store.events("r")
    assert not read.value.transient
    ((name,),) = _query(postgres_url, "SELECT current_database()")
    _query(postgres_url, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    standby = PostgresStore(postgres_url)  # new connections: read-only, as a demoted primary's
    try:
        with pytest.raises(StoreError, match="write failed: ReadOnlySqlTransaction") as refused:
            await standby.finish("r", "failed", {}, None, "x")
        assert refused.value.transient  # a failover under way: it may pass
    finally:
        await standby.aclose()
        with psycopg.connect(postgres_url, autocommit=True) as conn:  # one statement a transaction
            conn.execute("SET default_transaction_read_only = off")
            conn.execute(f'ALTER DATABASE "{name}" RESET ALL')  # type: ignore[arg-type]
    _query(postgres_url, "ALTER TABLE foreman.runs DROP COLUMN error")
    with pytest.raises(StoreError, match="write failed: UndefinedColumn") as write:
        await store.finish("r", "failed", {}, None, "x")
    assert not write.value.transient
    await store.aclose()


def test_passwords_are_left_out_of_what_the_store_shows() -> None:
    assert public_url("postgresql://u:p%40ss@db.example:5432/runs?sslmode=require&password=x") == (
        "postgresql://u@db.example:5432/runs?sslmode=require&password=%2A%2A%2A"
    )
    assert (
        public_url("host=db user=u password='a b' dbname=runs") == "host=db user=u password=*** dbname=runs"
    )
    assert "p%40ss" not in repr(PostgresStore("postgres://u:p%40ss@h/db"))


def test_importing_supervisor_does_not_import_psycopg_and_urls_open_postgres() -> None:
    code = "import sys, supervisor; assert 'psycopg' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.stdout.strip() == "ok", out.stderr
    assert isinstance(open_store("postgres://u@h/db"), PostgresStore)
    assert isinstance(open_store("postgresql://u@h/db"), PostgresStore)


def test_without_psycopg_a_postgres_store_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed
    with pytest.raises(ConfigurationError, match=r"pip install 'psycopg\[binary\]'"):
        open_store("postgresql://u@h/db")


def test_a_store_used_from_one_event_loop_after_another_reconnects(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    assert asyncio.run(store.start(RunRecord("r", None)))  # not closed: its loop ends with it open
    assert asyncio.run(store.load("r")) is not None
    asyncio.run(store.aclose())


# --- whole runs ----------------------------------------------------------------------------------


async def test_a_run_is_journaled_and_resumes_after_a_failure(checked: Check, postgres_url: str) -> None:
    checker = checked(ScriptedModel([reply.output({"ok": True, "note": "checked once"})]))
    failing = checked(ScriptedModel([reply.text(""), reply.text(""), reply.text("")]))
    first = Supervisor(
        [Checker(model=checker), Writer(model=failing)],
        model=checked(ScriptedModel([])),
        store=postgres_url,
        step_retries=0,
    )
    with pytest.raises(StepFailed):
        await first.run_plan(PLAN, run_id="r2")
    await first.aclose()
    never = checked(ScriptedModel([]))
    writer = checked(ScriptedModel([reply.text("written after resume")]))
    async with Supervisor(
        [Checker(model=never), Writer(model=writer)], model=checked(ScriptedModel([])), store=postgres_url
    ) as again:
        result = await again.run_plan(PLAN, run_id="r2")
        (run,) = await again.runs()
    assert result.output == "written after resume" and never.requests == []
    assert result.steps["check"].output == Verdict(ok=True, note="checked once")
    assert (run.status, run.output_json) == ("succeeded", "written after resume")
    store = PostgresStore(postgres_url)
    assert [c.key for c in await store.calls("r2")][0] == "1/check.1/0/Checker/1"
    kinds = [kind for kind, _, _ in await store.events("r2")]
    assert "step" in kinds and "model_call" not in kinds
    await store.aclose()


async def test_the_runs_and_trace_commands_print_the_same_as_from_sqlite(
    checked: Check, tmp_path: Path, postgres_url: str
) -> None:
    path = tmp_path / "runs.db"
    await test_trace._traced_run(checked, path)
    await test_trace._traced_run(checked, postgres_url)  # type: ignore[arg-type]
    store = PostgresStore(postgres_url)
    record = await store.load("t")
    assert record is not None
    from supervisor._trace import build_trace, render

    tree = build_trace(record, await store.calls("t"), await store.events("t"))
    await store.aclose()
    assert test_trace._normalised(render(tree)) == test_trace.SNAPSHOT

    def command(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "supervisor", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    for args in (["trace", "t"], ["trace", "t", "--json"], ["runs"]):
        from_sqlite, from_postgres = await asyncio.gather(
            asyncio.to_thread(command, *args, "--store", str(path)),
            asyncio.to_thread(command, *args, "--store", postgres_url),
        )
        assert _times_out(from_postgres) == _times_out(from_sqlite)
    assert "t  " in from_postgres and "succeeded" in from_postgres


async def test_a_run_is_exported_from_postgres_into_a_file_to_replay(
    checked: Check, tmp_path: Path, postgres_url: str
) -> None:
    await test_trace._traced_run(checked, postgres_url)  # type: ignore[arg-type]
    store = PostgresStore(postgres_url)
    await store.export_run("t", tmp_path / "t.db")
    with pytest.raises(StoreError, match="already has run 't'"):
        await store.export_run("t", tmp_path / "t.db")
    by_command = await asyncio.to_thread(  # `export --store URL` was refused as "not a SQLite file"
        subprocess.run,
        [
            sys.executable,
            "-m",
            "supervisor",
            "export",
            "t",
            "--store",
            postgres_url,
            "--to",
            str(tmp_path / "c.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert by_command.returncode == 0, by_command.stderr
    for path in (tmp_path / "t.db", tmp_path / "c.db"):
        exported = SQLiteStore(path)
        assert await exported.load("t") == await store.load("t")
        assert await exported.calls("t") == await store.calls("t")
        assert await exported.events("t") == await store.events("t")
        await exported.aclose()
    await store.aclose()


def _times_out(text: str) -> str:
    """Output with times, durations and latencies replaced: two runs never take the same time."""
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "T", text)
    text = re.sub(r"  \[[^\]]*\]", "  [_]", text)  # the tree's timings
    text = re.sub(r"after [\d.]+ s", "after _ s", text)
    return re.sub(r'("(?:seconds|[a-z_]*_s|[a-z_]*_at)":|_s=)[\d.e-]+', r"\1_", text)


async def test_a_store_named_by_a_libpq_string_or_an_upper_case_scheme_is_postgresql(
    postgres_url: str,
) -> None:
    """Both were taken for SQLite file names: a file named with the password was made, or the
    error showed it."""
    from urllib.parse import urlsplit

    from supervisor._pg_schema import is_postgres, public_url

    parts = urlsplit(postgres_url)
    where = f"host={parts.hostname} port={parts.port} user={parts.username} dbname={parts.path[1:]}"
    keywords = f"{where} password=S3CRET"
    upper = postgres_url.replace("postgresql://", "POSTGRESQL://")
    for given in (keywords, upper):
        store = open_store(given)
        assert isinstance(store, PostgresStore)
        await store.open()
        assert await store.runs() == []
        await store.aclose()
    assert public_url(keywords).endswith("password=***")
    files = (
        "runs.db",
        "a=b.db",
        "my runs.db",
        "host.db",
        "dbname=runs.db",
        "service=billing.db",
        "HOST=a B=c",
    )
    assert not any(is_postgres(name) for name in files)


async def test_reads_at_once_after_the_connections_were_cut_all_succeed(postgres_url: str) -> None:
    """A read retries once on a connection lost while idle (a server restart); with several at
    once, the first to fail closed the connection another had just opened for its retry."""
    import psycopg

    store = PostgresStore(postgres_url)
    await store.open()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    assert await asyncio.gather(*(store.runs() for _ in range(4))) == [[]] * 4
    await store.aclose()
