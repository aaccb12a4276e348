"""The shared store: runs kept in PostgreSQL, for processes on any number of hosts.

`store="postgresql://user:password@host/db"` keeps runs in that database, in a schema of its
own ("foreman"), so it may share the database with DBOS or anything else. It does what the
SQLite store does, table for table: checkpoints are awaited until committed, trace events and
buffered journal records ride along with the next commit, and the writes of every run of the
process are committed together (group commit, `_pg_writer.py`) on one connection; reads use a
second one (`_pg_reader.py`). Two processes on two hosts never both take up a run: taking one
up is a compare and swap in SQL, and so is deciding an approval. A process's writes to a run it
took up are fenced by its owner: once another process has taken the run over, they change
nothing, and its next awaited journal write (the start of a tool that is not idempotent, say)
raises `ResumeError`, so it starts nothing more. So are the approvals it files and closes
itself (expired, superseded), but not a person's decision, which counts from any process.
psycopg is imported when a store is made, not with `supervisor`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tools.errors import ConfigurationError, RunNotFound, RunTakenOver, StoreError

from ._approvals import ApprovalRecord, ApprovalStatus, record_of, record_row
from ._calls import CallRecord, call_from_json
from ._pg_reader import PgReader
from ._pg_schema import (
    APPROVAL,
    CALL,
    EVENT,
    RUN,
    STEP,
    Statements,
    check_schema_name,
    normal_url,
    public_url,
)
from ._pg_writer import PgWriter
from ._rows import call_item, call_row, event_row, run_from_row
from ._store import RunRecord, RunStatus, StepRecord

__all__ = ["PostgresStore"]


def owned_call_row(run_id: str, record: CallRecord, at: float, owner: str | None) -> tuple[Any, ...]:
    """A `calls` row, then the run and the owner that fence it."""
    return (*call_row(run_id, record, at), run_id, owner)


def owned_call_item(item: tuple[str, CallRecord, float, str | None]) -> tuple[Any, ...]:
    return owned_call_row(*item)


class PostgresStore:
    """Runs kept in a PostgreSQL database that several processes and hosts share.

    Nothing connects until the first read or write; then the schema is checked (and created
    when missing). Use it from one event loop at a time: `aclose()` it before another.

    Args:
        url: "postgresql://user:password@host:port/database", or any libpq connection string.
        schema: The schema of the store's tables; a schema holding other tables is refused.
        commit_timeout_s: How long a checkpoint or a read may wait before `StoreError`.
    """

    keeps_events = True

    def __init__(self, url: str, *, schema: str = "foreman", commit_timeout_s: float = 60.0) -> None:
        try:  # said when the store is made, rather than as a failed write later
            import psycopg  # noqa: F401
        except ImportError as exc:
            needs = "a PostgreSQL store needs psycopg 3: pip install 'psycopg[binary]'"
            raise ConfigurationError(needs) from exc

        s = check_schema_name(schema)
        self.url = url = normal_url(url)
        self.schema = schema
        self.where = public_url(url)  # in every message: the URL without its password
        self._reader = PgReader(url, schema, self.where, commit_timeout_s)
        self._writer = PgWriter(self.where, self._reader.connect, commit_timeout_s)
        self._sql = Statements.of(s)
        self._s = s
        # The runs this process took up, with the owner it wrote: their writes are fenced, so a
        # process whose run another took over (it was cut off, its lock expired) changes nothing.
        self._owners: dict[str, str | None] = {}

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r}, schema={self.schema!r})"

    async def open(self) -> None:
        """Connect and check (or create) the schema now, rather than at the first read or write."""
        await self._reader.read("SELECT 1")

    # --- writes, through the writer ------------------------------------------------------------

    async def start(self, run: RunRecord, previous: RunRecord | None = None) -> bool:
        """Record a new run, or take up `previous` as it was loaded (its steps and creation time
        kept); False when another process created or took the run meanwhile."""
        now, workers = time.time(), json.dumps(list(run.workers))
        if previous is None:
            plan = json.dumps(run.plan) if run.plan is not None else None
            usage = json.dumps(dict(run.usage))
            row = (run.run_id, run.goal, run.status, plan, workers, usage, run.created_at, now, run.owner)
            taken = await self._writer.commit(self._sql.new_run, row) == 1
        else:
            was = (previous.owner, previous.status, previous.updated_at)
            params = (run.status, workers, run.owner, now, run.run_id, *was)
            taken = await self._writer.commit(self._sql.take_up, params) == 1
        if taken:
            self._owners[run.run_id] = run.owner
        return taken

    async def save_plan(self, run_id: str, plan: Mapping[str, Any]) -> None:
        """Record the plan (committed within milliseconds, before any later checkpoint; a lost
        plan is made again from the planner's journaled response)."""
        row = (json.dumps(plan), time.time(), run_id)
        if run_id in self._owners:
            self._writer.soon(self._sql.owned_plan, (*row, self._owners[run_id]))
        else:
            self._writer.soon(self._sql.plan, row)

    async def save_step(self, run_id: str, step: StepRecord, usage: Mapping[str, Any]) -> None:
        """Record a finished step and the run's usage so far (committed within milliseconds; a
        lost step is replayed from its journaled calls)."""
        used = json.dumps(dict(step.usage))
        row = (run_id, step.step_id, step.worker, step.output_json, used, step.attempts, step.finished_at)
        usage_row = (json.dumps(dict(usage)), time.time(), run_id)
        if run_id in self._owners:
            owned = (run_id, self._owners[run_id])
            self._writer.soon(self._sql.owned_step, (*row, *owned))
            self._writer.soon(self._sql.owned_usage, (*usage_row, owned[1]))
        else:
            self._writer.soon(self._sql.step, row)
            self._writer.soon(self._sql.usage, usage_row)

    async def finish(
        self,
        run_id: str,
        status: RunStatus,
        usage: Mapping[str, Any],
        output_json: str | None,
        error: str | None,
        *,
        aborted_by: str | None = None,
    ) -> None:
        """Record how the run ended (`aborted_by`: who aborted it, when a person did)."""
        row = (status, json.dumps(dict(usage)), output_json, error, aborted_by, time.time(), run_id)
        if run_id in self._owners:  # another owner's run keeps the state that owner gives it
            await self._writer.commit(self._sql.owned_finish, (*row, self._owners.pop(run_id)))
        else:
            await self._writer.commit(self._sql.finish, row)

    def add_events(self, run_id: str, events: Sequence[tuple[Any, float]]) -> None:
        """Buffer trace events; written with the next commit, serialised when it is built."""
        for event, at in events:
            self._writer.buffer(self._sql.event, event_row, (run_id, event, at))

    def put_call(self, run_id: str, record: CallRecord, *, now: bool = False) -> None:
        """Buffer a journaled call, committed with the next checkpoint; with `now`, queue it (and
        what is buffered) at once."""
        if run_id in self._owners:
            item = (run_id, record, time.time(), self._owners[run_id])
            self._writer.buffer(self._sql.owned_call, owned_call_item, item)
        else:
            self._writer.buffer(self._sql.call, call_item, (run_id, record, time.time()))
        if now:
            self._writer.flush()

    async def save_call(self, run_id: str, record: CallRecord) -> None:
        """Write a journaled call (and what was buffered before it); committed when this returns."""
        # encoded when its batch is built
        if run_id not in self._owners:
            await self._writer.commit(
                self._sql.call, functools.partial(call_row, run_id, record, time.time())
            )
            return
        owner = self._owners[run_id]
        row = functools.partial(owned_call_row, run_id, record, time.time(), owner)
        if await self._writer.commit(self._sql.owned_call, row) == 0:  # its end stays fenced too
            raise RunTakenOver(run_id, owner)

    async def commit_calls(self) -> None:
        """Commit the journaled calls buffered so far."""
        await self._writer.commit("", ())

    # --- the approval queue ----------------------------------------------------------------------

    async def add_approval(self, record: ApprovalRecord) -> None:
        """Record a pending approval; `RunTakenOver` (and nothing recorded) when the run this
        process took up has another owner now."""
        if record.run_id not in self._owners:
            await self._writer.commit(self._sql.add_approval, record_row(record))
            return
        owner = self._owners[record.run_id]
        params = (*record_row(record), record.run_id, owner)
        if await self._writer.commit(self._sql.owned_add_approval, params) == 0:
            raise RunTakenOver(record.run_id, owner)

    async def decide(
        self,
        approval_id: str,
        status: ApprovalStatus,
        reason: str | None,
        edited: Mapping[str, Any] | None,
        by: str,
        *,
        owner_of: str | None = None,
    ) -> bool:
        """Take a decision only if still pending: across processes, one decision wins.

        With `owner_of` (a run this process took up), the decision is the run owner's, fenced:
        `RunTakenOver` when another process owns the run now."""
        edited_json = json.dumps(dict(edited)) if edited is not None else None
        params = (status, reason, edited_json, by, time.time(), approval_id)
        if owner_of is None or owner_of not in self._owners:
            return await self._writer.commit(self._sql.decide, params) == 1
        owner = self._owners[owner_of]
        if await self._writer.commit(self._sql.owned_decide, (*params, owner_of, owner)) == 1:
            return True
        rows = await self._reader.read(f"SELECT owner FROM {self._s}.runs WHERE run_id = %s", (owner_of,))
        if rows and rows[0][0] == owner:
            return False  # still the owner: a person decided first
        raise RunTakenOver(owner_of, owner)

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        """One approval, or None."""
        rows = await self._reader.read(
            f"SELECT {APPROVAL} FROM {self._s}.approvals WHERE approval_id = %s", (approval_id,)
        )
        return record_of(rows[0]) if rows else None

    async def approval_for(self, run_id: str, key: str) -> ApprovalRecord | None:
        """The latest approval asked for the call with this journal key, or None."""
        rows = await self._reader.read(
            f"SELECT {APPROVAL} FROM {self._s}.approvals WHERE run_id = %s AND call_key = %s "
            "ORDER BY created_at DESC LIMIT 1",
            (run_id, key),
        )
        return record_of(rows[0]) if rows else None

    async def pending_approvals(self, run_id: str | None = None) -> list[ApprovalRecord]:
        """Pending approvals, oldest first (of one run, or of every run)."""
        sql = f"SELECT {APPROVAL} FROM {self._s}.approvals WHERE status = 'pending'"
        if run_id:
            rows = await self._reader.read(sql + " AND run_id = %s ORDER BY created_at", (run_id,))
        else:
            rows = await self._reader.read(sql + " ORDER BY created_at")
        return [record_of(row) for row in rows]

    # --- reads -------------------------------------------------------------------------------------

    async def load(self, run_id: str) -> RunRecord | None:
        """The run with this id and its finished steps, or None."""
        rows = await self._reader.read(self._sql.runs + " WHERE run_id = %s", (run_id,))
        if not rows:
            return None
        step_rows = await self._reader.read(
            f"SELECT {STEP} FROM {self._s}.steps WHERE run_id = %s ORDER BY finished_at", (run_id,)
        )
        steps = {r[1]: StepRecord(r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in step_rows}
        return run_from_row(rows[0], steps)

    async def runs(self) -> list[RunRecord]:
        """Every run, newest first (without their steps)."""
        rows = await self._reader.read(self._sql.runs + " ORDER BY created_at DESC")
        return [run_from_row(row, {}) for row in rows]

    async def calls(self, run_id: str) -> list[CallRecord]:
        """The journaled calls of a run, in the order written."""
        rows = await self._reader.read(
            f"SELECT key, kind, body FROM {self._s}.calls WHERE run_id = %s ORDER BY seq", (run_id,)
        )
        return [CallRecord(key, call_from_json(kind, body)) for key, kind, body in rows]

    async def events(self, run_id: str) -> list[tuple[str, float, dict[str, Any]]]:
        """The trace events of a run, in order."""
        rows = await self._reader.read(
            f"SELECT kind, at, body FROM {self._s}.events WHERE run_id = %s ORDER BY seq", (run_id,)
        )
        return [(kind, at, json.loads(body)) for kind, at, body in rows]

    async def export_run(self, run_id: str, to: str | os.PathLike[str]) -> None:
        """Copy one run (its record, steps, calls, events and approvals) into the SQLite store
        file `to`, to replay it in a test; `to` is created when missing, and a run it already
        has is refused, with nothing copied."""
        from ._sqlite import SQLiteStore

        await self.commit_calls()  # what this store has queued is in the database
        tables: dict[str, list[tuple[Any, ...]]] = {}
        for table, columns, order in _EXPORTED:
            sql = f"SELECT {columns} FROM {self._s}.{table} WHERE run_id = %s ORDER BY {order}"
            tables[table] = await self._reader.read(sql, (run_id,))
        if not tables["runs"]:
            raise RunNotFound(run_id, self.where)
        target = SQLiteStore(to)  # creates or checks the schema
        await target.aclose()
        await asyncio.to_thread(_copy_into, Path(to), run_id, tables)

    async def aclose(self) -> None:
        """Write what is queued, then close the connections (the store opens them again if used)."""
        try:
            await self._writer.aclose()
        finally:
            await self._reader.aclose()


# What an export copies: each table, its columns (named as in the SQLite file), in order.
_EXPORTED = (
    ("runs", RUN, "run_id"),
    ("steps", STEP, "finished_at"),
    ("calls", CALL, "seq"),
    ("events", EVENT, "seq"),
    ("approvals", APPROVAL, "created_at"),
)


def _copy_into(to: Path, run_id: str, tables: Mapping[str, list[tuple[Any, ...]]]) -> None:
    db = sqlite3.connect(to, timeout=30, isolation_level=None)
    try:
        if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
            raise StoreError(str(to), f"it already has run {run_id!r}")
        db.execute("BEGIN IMMEDIATE")
        for table, columns, _ in _EXPORTED:
            marks = ", ".join("?" * (columns.count(",") + 1))
            db.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tables[table])
        db.execute("COMMIT")
    finally:
        db.close()
