"""Where runs are kept: the store interface, its records, and the in-memory store.

A store keeps what a run finished (its plan, every finished step with its output and usage,
the run's status) so that a run can be resumed and nothing finished is lost. `store=None` keeps
everything in memory (resume works within the process); `store="runs.db"` is the SQLite
journal; any object with these methods works.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from tools.errors import ConfigurationError, StoreError
from workers._records import fast_init

from ._approvals import ApprovalRecord, ApprovalStatus, ApprovalStore
from ._calls import CallRecord, CallStore

__all__ = [
    "open_existing",
    "UNNAMED",
    "new_run_id",
    "open_store",
    "MemoryStore",
    "RunRecord",
    "RunStatus",
    "StepRecord",
    "Store",
]

RunStatus = Literal["running", "succeeded", "failed", "aborted"]
UNNAMED = "unnamed"  # `aborted_by` of a run a person aborted without giving a name


def new_run_id() -> str:
    """A new run's id: a UUID version 7 as 32 hex digits, its time (in ms) first, then 74 random bits.

    Ids made one after another sort in time order, so the store's tables and indexes, keyed by
    run id first, grow at their end: the runs of a busy process write to the same few pages of
    the file, where random ids (version 4) gave each run pages of its own in every commit.
    """
    ms = time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits: 12 and 62 of them are used
    value = ms << 80 | 0x7 << 76 | (rand >> 68) << 64 | 0b10 << 62 | rand & ((1 << 62) - 1)
    return f"{value:032x}"


@fast_init
@dataclass(frozen=True, slots=True)
class StepRecord:
    """A finished step as stored: its output as JSON text (typed again on load)."""

    step_id: str
    worker: str
    output_json: str
    usage: Mapping[str, Any]
    attempts: int = 1
    finished_at: float = field(default_factory=time.time)


@fast_init
@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as stored.

    Attributes:
        run_id: The run's id.
        goal: The goal (None for a plan run without one).
        status: "running", "succeeded", "failed" or "aborted".
        plan: The plan as JSON-able data (None before planning).
        workers: The names of the supervisor's workers when the run started.
        usage: The run's usage so far (token and cost sums).
        output_json: The final output as JSON text, once succeeded.
        error: Why it failed or was aborted.
        steps: Finished steps by id.
        created_at: When it started (epoch seconds).
        updated_at: When it last changed.
        owner: The process running it ("host:pid"), so two processes never run it at once.
        aborted_by: Who aborted the run, when a person did (at an approval, or by run id): the
            name their decision gave (`UNNAMED` when none). None for every other end: a run
            "aborted" because its process stopped (cancelled, SIGTERM) has None, and an engine
            that recovers runs by itself (DBOS) takes it up again; one a person aborted, it
            leaves as it is. Taking a run up by hand clears it.
    """

    run_id: str
    goal: str | None
    status: RunStatus = "running"
    plan: Mapping[str, Any] | None = None
    workers: Sequence[str] = ()
    usage: Mapping[str, Any] = field(default_factory=dict)
    output_json: str | None = None
    error: str | None = None
    steps: Mapping[str, StepRecord] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    owner: str | None = None
    aborted_by: str | None = None


class Store(ApprovalStore, CallStore, Protocol):
    """What the supervisor needs from a store. Every write is a checkpoint."""

    async def load(self, run_id: str) -> RunRecord | None:
        """The run with this id, with its finished steps, or None."""
        ...

    async def start(self, run: RunRecord, previous: RunRecord | None = None) -> bool:
        """Record a new run, or take up `previous` (as loaded); False when another process
        created or took the run in between."""
        ...

    async def save_plan(self, run_id: str, plan: Mapping[str, Any]) -> None:
        """Record the plan the run follows (may be committed after it returns, before any later
        checkpoint: a lost plan is made again from the planner's journaled response)."""
        ...

    async def save_step(self, run_id: str, step: StepRecord, usage: Mapping[str, Any]) -> None:
        """Record a finished step and the run's usage so far (may be committed after it returns,
        before any later checkpoint: a lost step is replayed from its journaled calls)."""
        ...

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
        """Record how the run ended (`aborted_by`: who aborted it, when a person did); a
        checkpoint: what `put_call` queued before it is committed with it."""
        ...

    def add_events(self, run_id: str, events: Sequence[tuple[Any, float]]) -> None:
        """Queue trace events (event, time); written in batches, never awaited."""
        ...

    async def runs(self) -> list[RunRecord]:
        """Every run, newest first (without their steps)."""
        ...

    async def aclose(self) -> None:
        """Write what is queued and release the store."""
        ...


class MemoryStore:
    """The store of `store=None`: runs live as long as the process.

    It keeps no trace events (a trace is read from a store file): holding every event of every
    run would grow without bound in a long-lived process.
    """

    keeps_events = False

    def __init__(self) -> None:
        self._runs: dict[str, _Run] = {}
        self._approvals: dict[str, ApprovalRecord] = {}
        self._calls: dict[str, dict[str, CallRecord]] = {}

    def put_call(self, run_id: str, record: CallRecord, *, now: bool = False) -> None:
        """Keep a journaled call until its run succeeds."""
        self._calls.setdefault(run_id, {})[record.key] = record

    async def save_call(self, run_id: str, record: CallRecord) -> None:
        """Keep a journaled call."""
        self.put_call(run_id, record)

    async def commit_calls(self) -> None:
        """Nothing to commit in memory."""

    async def calls(self, run_id: str) -> list[CallRecord]:
        """The journaled calls of an unfinished run."""
        return list(self._calls.get(run_id, {}).values())

    async def approval_for(self, run_id: str, key: str) -> ApprovalRecord | None:
        """The latest approval asked for this call."""
        found = [a for a in self._approvals.values() if a.run_id == run_id and a.key == key]
        return max(found, key=lambda a: a.created_at) if found else None

    async def add_approval(self, record: ApprovalRecord) -> None:
        """Keep a pending approval."""
        self._approvals[record.approval_id] = record

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        """One approval, or None."""
        return self._approvals.get(approval_id)

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
        """Take a decision only if still pending (in memory, a run has one owner: no fence)."""
        record = self._approvals.get(approval_id)
        if record is None or record.status != "pending":
            return False
        decided = replace(
            record,
            status=status,
            decision_reason=reason,
            edited_arguments=edited,
            decided_by=by,
            decided_at=time.time(),
        )
        self._approvals[approval_id] = decided
        return True

    async def pending_approvals(self, run_id: str | None = None) -> list[ApprovalRecord]:
        """Pending approvals, oldest first."""
        pending = [
            a for a in self._approvals.values() if a.status == "pending" and run_id in (None, a.run_id)
        ]
        return sorted(pending, key=lambda a: a.created_at)

    async def load(self, run_id: str) -> RunRecord | None:
        """The run with this id, or None."""
        run = self._runs.get(run_id)
        return run.record() if run is not None else None

    async def start(self, run: RunRecord, previous: RunRecord | None = None) -> bool:
        """Record a new run, or take up `previous`, keeping its steps and creation time."""
        old = self._runs.get(run.run_id)
        old_record = old.record() if old is not None else None
        if old_record is not previous:  # created or taken by someone else since it was loaded
            return False
        if old_record is not None:
            run = replace(run, steps=old_record.steps, created_at=old_record.created_at)
        self._runs[run.run_id] = _Run(run)
        return True

    async def save_plan(self, run_id: str, plan: Mapping[str, Any]) -> None:
        """Record the plan."""
        self._runs[run_id].change(plan=dict(plan))

    async def save_step(self, run_id: str, step: StepRecord, usage: Mapping[str, Any]) -> None:
        """Record a finished step."""
        run = self._runs[run_id]
        run.steps[step.step_id] = step
        run.change(usage=dict(usage))

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
        """Record how the run ended."""
        if status == "succeeded":  # nothing left to resume: the calls are not needed any more
            self._calls.pop(run_id, None)
        self._runs[run_id].change(
            status=status, usage=dict(usage), output_json=output_json, error=error, aborted_by=aborted_by
        )

    def add_events(self, run_id: str, events: Sequence[tuple[Any, float]]) -> None:
        """Drop the events: an in-memory run has no trace to keep them for."""

    async def runs(self) -> list[RunRecord]:
        """Every run, newest first."""
        return sorted((r.record() for r in self._runs.values()), key=lambda r: r.created_at, reverse=True)

    async def aclose(self) -> None:
        """Nothing to release."""


class _Run:
    """A run in memory: its record as started, and what changed since.

    A record is rebuilt only when read (a resume, a listing), not on every step: re-making a
    frozen record of a dozen fields per checkpoint cost more than the rest of the checkpoint.
    """

    __slots__ = ("base", "changes", "steps", "snapshot")

    def __init__(self, base: RunRecord) -> None:
        self.base = base
        self.changes: dict[str, Any] = {}
        self.steps = dict(base.steps)
        self.snapshot: RunRecord | None = base

    def change(self, **fields: Any) -> None:
        self.changes.update(fields, updated_at=time.time())
        self.snapshot = None

    def record(self) -> RunRecord:
        """The run as it stands (the same object until it changes)."""
        if self.snapshot is None:
            self.snapshot = replace(self.base, steps=dict(self.steps), **self.changes)
        return self.snapshot


def open_store(store: object) -> Store:
    """The store for a `store=` argument: None in memory, a "postgresql://" URL in PostgreSQL,
    a path in SQLite, an object as it is."""
    if store is None or store == ":memory:":  # SQLite's name for "in memory": ours is shared
        return MemoryStore()
    from ._pg_schema import is_postgres

    if isinstance(store, str) and is_postgres(store):
        from ._postgres import PostgresStore

        return PostgresStore(store)
    if isinstance(store, str | os.PathLike):
        from ._sqlite import SQLiteStore

        return SQLiteStore(store)
    needed = (
        "load",
        "start",
        "save_plan",
        "save_step",
        "finish",
        "add_events",
        "runs",
        "aclose",
        "add_approval",
        "get_approval",
        "decide",
        "pending_approvals",
        "approval_for",
        "put_call",
        "save_call",
        "calls",
        "commit_calls",
    )
    missing = [name for name in needed if not callable(getattr(store, name, None))]
    if missing:
        raise ConfigurationError(f"{store!r} is not a store: it has no {', '.join(missing)}")
    return store  # type: ignore[return-value]


def open_existing(store: str | os.PathLike[str]) -> Store:
    """The store named by a command or a recording: a PostgreSQL database, or a SQLite file that
    must be there (never created here: a misspelt name would make an empty store)."""
    from ._pg_schema import is_postgres, public_url

    name = str(store)
    if is_postgres(name):
        return open_store(name)
    if "://" in name:
        raise StoreError(public_url(name), "neither a PostgreSQL URL nor a SQLite file")
    if not os.path.isfile(name):
        raise StoreError(name, "no such file")
    return open_store(store)
