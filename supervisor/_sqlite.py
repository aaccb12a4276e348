"""The embedded default store: one SQLite file, in WAL mode, written off the event loop.

Every write goes to one writer thread, which drains what is queued and commits it as one
transaction: checkpoints (plan, step, end of run) are awaited until committed, trace events are
not awaited and ride along with the next batch. The schema is versioned; a file that is not
ours, or that a newer version wrote, is refused with a clear error and left untouched.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

from tools.errors import RunNotFound, StoreError

from ._approvals import ApprovalRecord, ApprovalStatus, record_of, record_row
from ._calls import CallRecord, call_from_json
from ._json import usage_json
from ._rows import call_item, call_row, event_row, run_from_row
from ._sqlite_schema import SCHEMA_VERSION, migrate, read_only_uri, schema_version
from ._store import RunRecord, RunStatus, StepRecord
from ._writer import Writer

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

_EVENT_SQL = "INSERT INTO events (run_id, kind, at, body) VALUES (?, ?, ?, ?)"
_CALL_SQL = "INSERT OR REPLACE INTO calls (run_id, key, kind, body, at) VALUES (?, ?, ?, ?, ?)"
_PLAN_SQL = "UPDATE runs SET plan = ?, updated_at = ? WHERE run_id = ?"
_STEP_SQL = "INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?, ?, ?)"
_USAGE_SQL = "UPDATE runs SET usage = ?, updated_at = ? WHERE run_id = ?"


class SQLiteStore:
    """Runs kept in one SQLite file.

    Args:
        path: The file; created with the current schema when missing.
        commit_timeout_s: How long a checkpoint may wait for its commit before `StoreError`.
    """

    keeps_events = True

    def __init__(self, path: str | os.PathLike[str], *, commit_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        if str(path) == ":memory:" or str(path).startswith("file::memory:"):
            # Each connection would get a database of its own: the writer's tables unseen by readers.
            raise StoreError(str(path), "an in-memory SQLite database cannot be shared; use store=None")
        if not self.path.parent.is_dir():
            raise StoreError(str(self.path), f"its folder {str(self.path.parent)!r} does not exist")
        version = schema_version(self.path)  # checks before anything is written
        if version < SCHEMA_VERSION:
            try:
                db = self._connect()
                try:
                    migrate(db, version, str(self.path))
                finally:
                    db.close()
            except sqlite3.Error as exc:
                raise StoreError(str(self.path), f"cannot set it up: {type(exc).__name__}: {exc}") from None
        self._writer = Writer(str(self.path), self._connect, commit_timeout_s)
        self._workers: tuple[tuple[str, ...], str] = ((), "[]")  # the last workers' JSON: one team
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            _wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            db.close()
            raise
        return db

    # --- writes, through the writer thread ----------------------------------------------------

    async def start(self, run: RunRecord, previous: RunRecord | None = None) -> bool:
        """Record a new run, or take up `previous` as it was loaded (its steps and creation time
        kept); False when another process created or took the run meanwhile."""
        now = time.time()
        team = tuple(run.workers)
        if self._workers[0] != team:
            self._workers = (team, json.dumps(list(team)))
        workers = self._workers[1]
        if previous is None:
            sql = (
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?, NULL) "
                "ON CONFLICT(run_id) DO NOTHING"
            )
            plan = json.dumps(run.plan) if run.plan is not None else None
            usage = usage_json(run.usage)
            params: tuple[Any, ...] = (
                run.run_id,
                run.goal,
                run.status,
                plan,
                workers,
                usage,
                run.created_at,
                now,
                run.owner,
            )
        else:  # compare and swap: only if nobody changed the run since it was loaded
            sql = (
                "UPDATE runs SET status = ?, workers = ?, owner = ?, output = NULL, error = NULL, "
                "aborted_by = NULL, updated_at = ? "
                "WHERE run_id = ? AND owner IS ? AND status = ? AND updated_at = ?"
            )
            params = (
                run.status,
                workers,
                run.owner,
                now,
                run.run_id,
                previous.owner,
                previous.status,
                previous.updated_at,
            )
        return await self._writer.commit(sql, params) == 1

    async def save_plan(self, run_id: str, plan: Mapping[str, Any]) -> None:
        """Record the plan: committed with the run's next checkpoint, encoded in the writer thread.

        Not waited for: if it were lost, the resumed run would plan again from the planner's
        journaled response, without calling the model. A later plan of the run buffered
        meanwhile replaces it.
        """
        self._writer.buffer(_PLAN_SQL, _plan_row, (plan, time.time(), run_id), key=run_id)

    async def save_step(self, run_id: str, step: StepRecord, usage: Mapping[str, Any]) -> None:
        """Record a finished step and the run's usage so far: committed with the next checkpoint
        (the step's last response was committed before the step finished), encoded in the writer
        thread.

        Not waited for: if it were lost, the resumed run would replay the step from its
        journaled calls, calling no model and no tool again. Of the usage sums buffered for a
        run, only the last is written.
        """
        self._writer.buffer(_STEP_SQL, _step_row, (run_id, step))
        self._writer.buffer(_USAGE_SQL, _usage_row, (usage, time.time(), run_id), key=run_id)

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
        sql = (
            "UPDATE runs SET status = ?, usage = ?, output = ?, error = ?, aborted_by = ?, updated_at = ? "
            "WHERE run_id = ?"
        )
        used = usage_json(usage)
        await self._writer.commit(sql, (status, used, output_json, error, aborted_by, time.time(), run_id))

    def add_events(self, run_id: str, events: Sequence[tuple[Any, float]]) -> None:
        """Buffer trace events; they go to the writer thread in batches, serialised there."""
        for event, at in events:
            self._writer.buffer(_EVENT_SQL, event_row, (run_id, event, at))

    def put_call(self, run_id: str, record: CallRecord, *, now: bool = False) -> None:
        """Buffer a journaled call, encoded in the writer thread and committed with the next
        checkpoint; with `now`, hand it (and what is buffered) to the writer at once."""
        self._writer.buffer(_CALL_SQL, call_item, (run_id, record, time.time()))
        if now:
            self._writer.flush()

    def save_call(self, run_id: str, record: CallRecord) -> Coroutine[Any, Any, None]:
        """Write a journaled call (and what was buffered before it); committed when awaited.

        The writer's own coroutine, not one around it: a checkpoint is waited for at every model
        call, and each coroutine in the chain costs as much to resume as to make.
        """
        return self._writer.wait(_CALL_SQL, functools.partial(call_row, run_id, record, time.time()))

    def commit_calls(self) -> Coroutine[Any, Any, None]:
        """Commit the journaled calls buffered so far (awaited: committed)."""
        return self._writer.wait(None, ())

    async def calls(self, run_id: str) -> list[CallRecord]:
        """The journaled calls of a run, in the order written."""
        await self._own_writes()
        rows = await asyncio.to_thread(
            self._read, "SELECT key, kind, body FROM calls WHERE run_id = ? ORDER BY at", (run_id,)
        )
        return [CallRecord(key, call_from_json(kind, body)) for key, kind, body in rows]

    # --- reads: in a thread, on a connection of their own ------------------------------------

    async def _own_writes(self) -> None:
        """Commit what this store still buffers, so that a read sees this process's own writes
        (a run taken up again in the process that stopped it finds its last steps and usage)."""
        if self._writer.buffered:
            await self._writer.wait(None, ())

    def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._read_lock:  # one read-only connection, shared by the reading threads in turn
            if self._reader is None:
                self._reader = sqlite3.connect(
                    read_only_uri(self.path), uri=True, timeout=30, check_same_thread=False
                )
            return list(self._reader.execute(sql, params))

    async def load(self, run_id: str) -> RunRecord | None:
        """The run with this id and its finished steps, or None."""
        await self._own_writes()
        rows = await asyncio.to_thread(self._read, "SELECT * FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            return None
        step_rows = await asyncio.to_thread(
            self._read, "SELECT * FROM steps WHERE run_id = ? ORDER BY finished_at", (run_id,)
        )
        steps = {
            r[1]: StepRecord(
                step_id=r[1],
                worker=r[2],
                output_json=r[3],
                usage=json.loads(r[4]),
                attempts=r[5],
                finished_at=r[6],
            )
            for r in step_rows
        }
        return run_from_row(rows[0], steps)

    async def runs(self) -> list[RunRecord]:
        """Every run, newest first (without their steps)."""
        await self._own_writes()
        rows = await asyncio.to_thread(self._read, "SELECT * FROM runs ORDER BY created_at DESC", ())
        return [run_from_row(row, {}) for row in rows]

    async def events(self, run_id: str) -> list[tuple[str, float, dict[str, Any]]]:
        """The trace events of a run, in order."""
        await self._own_writes()
        rows = await asyncio.to_thread(
            self._read, "SELECT kind, at, body FROM events WHERE run_id = ? ORDER BY seq", (run_id,)
        )
        return [(kind, at, json.loads(body)) for kind, at, body in rows]

    async def export_run(self, run_id: str, to: str | os.PathLike[str]) -> None:
        """Copy one run (its record, steps, calls, events and approvals) into the store file `to`.

        `to` is created when missing; a run it already has is refused, and nothing is copied.
        """
        await self.commit_calls()  # what this store has queued is in the file
        if await self.load(run_id) is None:  # before `to` is made: a wrong id leaves no file
            raise RunNotFound(run_id, str(self.path))
        target = SQLiteStore(to)  # creates or checks the schema
        await target.aclose()
        await asyncio.to_thread(_copy_run, self.path, Path(to), run_id)

    # --- the approval queue ----------------------------------------------------------------------

    async def add_approval(self, record: ApprovalRecord) -> None:
        """Record a pending approval."""
        await self._writer.commit(
            "INSERT INTO approvals VALUES (" + ", ".join("?" * 16) + ")", record_row(record)
        )

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        """One approval, or None."""
        rows = await asyncio.to_thread(
            self._read, "SELECT * FROM approvals WHERE approval_id = ?", (approval_id,)
        )
        return record_of(rows[0]) if rows else None

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
        """Take a decision only if still pending (one UPDATE: two approvers cannot both win).

        `owner_of` fences nothing here, as no write to a SQLite file is fenced: a run in one is
        taken over only from a process taken to be dead (gone from its host's process table, or
        silent for an hour on another host)."""
        sql = (
            "UPDATE approvals SET status = ?, decision_reason = ?, edited_arguments = ?, decided_by = ?, "
            "decided_at = ? WHERE approval_id = ? AND status = 'pending'"
        )
        edited_json = json.dumps(dict(edited)) if edited is not None else None
        return (
            await self._writer.commit(sql, (status, reason, edited_json, by, time.time(), approval_id)) == 1
        )

    async def approval_for(self, run_id: str, key: str) -> ApprovalRecord | None:
        """The latest approval asked for the call with this journal key, or None."""
        rows = await asyncio.to_thread(
            self._read,
            "SELECT * FROM approvals WHERE run_id = ? AND call_key = ? ORDER BY created_at DESC LIMIT 1",
            (run_id, key),
        )
        return record_of(rows[0]) if rows else None

    async def pending_approvals(self, run_id: str | None = None) -> list[ApprovalRecord]:
        """Pending approvals, oldest first."""
        sql = "SELECT * FROM approvals WHERE status = 'pending'" + (" AND run_id = ?" if run_id else "")
        rows = await asyncio.to_thread(self._read, sql + " ORDER BY created_at", (run_id,) if run_id else ())
        return [record_of(row) for row in rows]

    async def aclose(self) -> None:
        """Write what is queued, then stop the writer thread."""
        await self._writer.aclose()
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None


def _plan_row(item: tuple[Mapping[str, Any], float, str]) -> tuple[str, float, str]:
    plan, at, run_id = item
    return (json.dumps(plan), at, run_id)


def _step_row(item: tuple[str, StepRecord]) -> tuple[Any, ...]:
    run_id, step = item
    return (
        run_id,
        step.step_id,
        step.worker,
        step.output_json,
        usage_json(step.usage),
        step.attempts,
        step.finished_at,
    )


def _usage_row(item: tuple[Mapping[str, Any], float, str]) -> tuple[str, float, str]:
    usage, at, run_id = item
    return (usage_json(usage), at, run_id)


_COPIES = (
    "INSERT INTO dest.runs SELECT * FROM main.runs WHERE run_id = ?",
    "INSERT INTO dest.steps SELECT * FROM main.steps WHERE run_id = ?",
    "INSERT INTO dest.calls SELECT * FROM main.calls WHERE run_id = ?",
    "INSERT INTO dest.events (run_id, kind, at, body) SELECT run_id, kind, at, body FROM main.events "
    "WHERE run_id = ? ORDER BY seq",
    "INSERT INTO dest.approvals SELECT * FROM main.approvals WHERE run_id = ?",
)


def _wal(db: sqlite3.Connection) -> None:
    """WAL mode, waiting for it as for any lock: the switch of a new file, which processes
    opening it together all try, answers "database is locked" at once instead of waiting."""
    deadline = time.monotonic() + 30
    while True:  # bounded by the deadline
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _copy_run(source: Path, to: Path, run_id: str) -> None:
    db = sqlite3.connect(source, timeout=30, isolation_level=None)
    try:
        db.execute("ATTACH DATABASE ? AS dest", (str(to),))
        if not db.execute("SELECT 1 FROM main.runs WHERE run_id = ?", (run_id,)).fetchone():
            raise RunNotFound(run_id, str(source))
        if db.execute("SELECT 1 FROM dest.runs WHERE run_id = ?", (run_id,)).fetchone():
            raise StoreError(str(to), f"it already has run {run_id!r}")
        db.execute("BEGIN IMMEDIATE")
        for sql in _COPIES:
            db.execute(sql, (run_id,))
        db.execute("COMMIT")
    finally:
        db.close()
