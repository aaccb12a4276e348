"""Who aborted a run is kept, apart from a run that stopped with its process, in both stores.

Promises: a run a person aborted (at an approval, or by run id) is recorded "aborted" with who
did it (`aborted_by`); a run cancelled (its process stopping: SIGTERM, Ctrl-C) is recorded
"aborted" with none, which is how an engine that recovers runs by itself (DBOS) tells the one it
must leave from the one it takes up again; taking a run up by hand clears it; a store written
before this was kept (SQLite schema 3, PostgreSQL schema 1) is migrated, and its runs a person
aborted are known as such.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from supervisor import Decision, Plan, RunAborted, Step, Supervisor
from supervisor._pg_schema import MIGRATIONS as PG_MIGRATIONS
from supervisor._sqlite_schema import MIGRATIONS as SQLITE_MIGRATIONS
from supervisor._store import UNNAMED, RunRecord, open_store
from tools import tool
from workers import ModelRequest, Worker
from workers.testing import FunctionModel, ScriptedModel, reply

PLAN = Plan(steps=[Step("w", "Writer", "write it")])
PLAN_PAY = Plan(steps=[Step("p", "Payer", "pay 5")])
PERSON = "run aborted by carol at the approval of 'pay': wrong customer"  # RunAborted's message


class Writer(Worker):
    """Writes."""


@tool(risky=True)
def pay(amount: int) -> str:
    """Pays out (a person approves each call)."""
    return f"paid {amount}"


class Payer(Worker):
    """Pays."""

    tools = [pay]


def _store_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    return str(tmp_path / "runs.db") if kind == "sqlite" else str(request.getfixturevalue("postgres_url"))


async def _load(db: str, run_id: str) -> RunRecord:
    store = open_store(db)
    try:
        record = await store.load(run_id)
    finally:
        await store.aclose()
    assert record is not None
    return record


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
@pytest.mark.parametrize("how", ["abort by run id", "cancel"])
async def test_a_person_s_abort_is_recorded_with_who_and_a_cancel_without(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str, how: str
) -> None:
    db = _store_url(kind, tmp_path, request)
    started = asyncio.Event()

    async def hang(request: ModelRequest) -> Any:
        started.set()
        await asyncio.sleep(30)

    sup = Supervisor([Writer(model=FunctionModel(hang))], model=ScriptedModel([]), store=db)
    run = asyncio.create_task(sup.run_plan(PLAN, run_id="r"))
    await asyncio.wait_for(started.wait(), 10)
    if how == "cancel":
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
    else:
        assert sup.abort("r", "customer called back")
        with pytest.raises(RunAborted):
            await run
    await sup.aclose()
    record = await _load(db, "r")
    assert record.status == "aborted"
    assert record.aborted_by == ("abort" if how == "abort by run id" else None)

    again = Supervisor([Writer(model=ScriptedModel([reply.text("done")]))], model=ScriptedModel([]), store=db)
    async with again:
        assert (await again.run_plan(PLAN, run_id="r")).output == "done"  # taken up by hand
    record = await _load(db, "r")
    assert (record.status, record.aborted_by) == ("succeeded", None)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_an_abort_at_an_approval_is_recorded_with_the_name_the_decision_gave(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    db = _store_url(kind, tmp_path, request)
    model = ScriptedModel([reply.tool_call("pay", amount=5)])
    async with Supervisor([Payer(model=model)], model=ScriptedModel([]), store=db) as sup:
        run = asyncio.create_task(sup.run_plan(PLAN_PAY, run_id="queued"))
        for _ in range(500):  # bounded: 10 s at most
            pending = await sup.pending_approvals("queued")
            if pending:
                break
            await asyncio.sleep(0.02)
        assert await sup.decide(pending[0].approval_id, Decision.abort("wrong customer", by="carol"))
        with pytest.raises(RunAborted):
            await run
    model = ScriptedModel([reply.tool_call("pay", amount=5)])
    nameless = Supervisor(  # an approver that names nobody
        [Payer(model=model)], model=ScriptedModel([]), store=db, approver=lambda _: Decision.abort("no")
    )
    async with nameless:
        with pytest.raises(RunAborted):
            await nameless.run_plan(PLAN_PAY, run_id="called")
    assert [(r.status, r.aborted_by) for r in [await _load(db, "queued"), await _load(db, "called")]] == [
        ("aborted", "carol"),
        ("aborted", UNNAMED),
    ]


def test_a_schema_3_sqlite_store_is_migrated_and_knows_which_aborted_runs_a_person_aborted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        for script in SQLITE_MIGRATIONS[:3]:
            db.executescript(script)
        db.execute("INSERT INTO foreman_meta VALUES ('app', 'foreman'), ('schema_version', '3')")
        for run_id, status, error in (
            ("person", "aborted", PERSON),
            ("stop", "aborted", ""),
            ("f", "failed", "x"),
        ):
            db.execute(
                "INSERT INTO runs VALUES (?, 'g', ?, NULL, '[]', '{}', NULL, ?, 0, 0, NULL)",
                (run_id, status, error),
            )
    runs = asyncio.run(_all_runs(str(path)))
    assert runs == {"person": UNNAMED, "stop": None, "f": None}


async def test_a_schema_1_postgres_store_is_migrated_and_knows_which_aborted_runs_a_person_aborted(
    postgres_url: str,
) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute('CREATE SCHEMA "foreman"')
        await conn.execute(PG_MIGRATIONS[0].format(s='"foreman"'))
        await conn.execute(
            "INSERT INTO foreman.foreman_meta VALUES ('app', 'foreman'), ('schema_version', '1')"
        )
        for run_id, status, error in (
            ("person", "aborted", PERSON),
            ("stop", "aborted", ""),
            ("f", "failed", "x"),
        ):
            await conn.execute(
                "INSERT INTO foreman.runs VALUES (%s, 'g', %s, NULL, '[]', '{}', NULL, %s, 0, 0, NULL)",
                (run_id, status, error),
            )
    assert await _all_runs(postgres_url) == {"person": UNNAMED, "stop": None, "f": None}


async def _all_runs(db: str) -> dict[str, str | None]:
    store = open_store(db)
    try:
        return {run.run_id: run.aborted_by for run in await store.runs()}
    finally:
        await store.aclose()
