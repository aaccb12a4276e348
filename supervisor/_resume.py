"""Taking up a run that stopped: its finished steps, plan, usage and journal, and who owns it.

However a run stopped (its process killed, aborted, failed), taking it up goes on where it
stopped: its recorded calls are replayed, so nothing finished runs twice. A failed run's
unfinished steps go on in their last attempt, from where it broke: a failure that came from a
recorded answer comes again (unless the code allows more now), one that did not (a provider
outage, a budget or deadline raised since) is tried again, live. Two supervisors never run one
run at once: a run marked running by a live owner is refused, and the store records a run as
running only if nobody changed it since it was read.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from tools.errors import ResumeError
from workers import CallSteps, RunContext, Worker

from ._budget import BudgetGuard
from ._calls import CallRecord, RunJournal, StepEngine, spent, usage_from
from ._ending import ActiveTime
from ._execute import Execution
from ._journal import plan_data, plan_shape, restore_plan, restore_steps
from ._plan import Plan
from ._store import RunRecord, Store

__all__ = ["begin", "claim", "owner_alive", "same_run", "take_up"]

# A run marked running by a process on another machine is taken as alive for this long after its
# last checkpoint: that process cannot be asked, and its runs may wait on approvals for minutes.
_FOREIGN_LEASE_S = 3600.0


async def claim(
    store: Store,
    running: dict[str, asyncio.Task[Any]],
    run_id: str,
    new: bool,
    task: asyncio.Task[Any] | None,
    owner: str,
    takeover: bool = False,
) -> tuple[RunRecord | None, list[CallRecord]]:
    """Mark the run as running in `running` before the first await, then read what the store has
    of it: its record and journal, or `ResumeError` when another supervisor runs it.

    `takeover`: an engine that hands each run to one live process (DBOS) has written off a
    previous owner on another host, which this process cannot ask; one on this host is still
    asked, and the store's compare-and-swap still guards the claim."""
    if run_id in running:
        raise ResumeError(run_id, "it is already running in this process")
    if task is not None:
        running[run_id] = task
    try:
        if new:  # a fresh id cannot be in the store
            return None, []
        record = await store.load(run_id)
        if record is None or record.status == "succeeded":
            return record, []
        if record.status == "running" and owner_alive(record, owner, takeover):
            raise ResumeError(run_id, f"it is running in another process ({record.owner})")
        return record, await store.calls(run_id)
    except BaseException:
        running.pop(run_id, None)
        raise


async def begin(
    run_id: str,
    record: RunRecord | None,
    goal: str | None,
    plan: Plan | None,
    calls: list[CallRecord],
    store: Store,
    execution: Execution,
    engine: StepEngine | None,
    owner: str,
    active: ActiveTime,
) -> Plan | None:
    """Load what the run finished into `execution` and its context (`take_up`), then record the
    run as running, owned by `owner`; its plan. `engine`: a backend whose steps run the calls
    (DBOS)."""
    ctx, workers = execution.ctx, execution.workers
    steps: CallSteps | None = None
    missing: list[CallRecord] = []
    if engine is not None:  # the outputs of calls come from the engine's steps
        calls, steps, missing = await engine.take_up(run_id, calls, resumed=record is not None)
    plan = take_up(run_id, record, goal, plan, calls, workers, store, ctx, execution)
    if steps is not None and execution.journal is not None:
        execution.journal.steps = steps
    started = RunRecord(
        run_id,
        goal,
        "running",
        plan_data(plan, execution.version, execution.given) if plan else None,
        tuple(workers),
        active.usage(ctx),
        owner=owner,
    )
    if not await store.start(started, record):
        raise ResumeError(run_id, "another process started or took it up at the same moment")
    if missing and execution.journal is not None:  # the store shows every call (trace, export)
        execution.journal.restore(missing)
    return plan


def take_up(
    run_id: str,
    record: RunRecord | None,
    goal: str | None,
    plan: Plan | None,
    calls: list[CallRecord],
    workers: Mapping[str, Worker],
    store: Store,
    ctx: RunContext,
    execution: Execution,
) -> Plan | None:
    """Check the run still matches the code, and load what it finished into `execution`; a new
    run (no record) starts with an empty journal."""
    if record is None:
        ctx.journal = execution.journal = RunJournal(store, run_id, redact=ctx.redact)
        execution.version = 1 if plan is not None else 0
        execution.given = plan is not None
        return plan
    stored = same_run(run_id, record, goal, plan, workers)
    execution.done.update(restore_steps(run_id, record.steps, workers))
    execution.version = record.plan.get("version", 1) if record.plan else 0
    # A plan passed again is the user's (run_plan); the record says so for a run taken up
    # without one (`resume`). Runs recorded before the flag existed count as given when passed.
    execution.given = plan is not None or bool(record.plan and record.plan.get("given"))
    chosen = plan or stored
    if record.status == "failed" and chosen is not None:
        unfinished = [s.id for s in chosen.steps if s.id not in execution.done]
        calls = _last_attempts_open(calls, execution.version, unfinished)
    strict = getattr(store, "replay_only", False)  # supervisor.testing.replay
    ctx.journal = execution.journal = RunJournal(store, run_id, calls, strict=strict, redact=ctx.redact)
    # Every recorded call was paid for, replayed or not.
    used, by_worker = spent(calls)
    used = used or usage_from(record.usage)
    ctx.usage.restore(used, by_worker)
    if isinstance(ctx.guard, BudgetGuard):  # the budget is for the whole run, not each resumption
        ctx.guard.spent_tokens = used.input_tokens + used.output_tokens
        ctx.guard.spent_usd = used.known_cost_usd
    return chosen


def same_run(
    run_id: str, record: RunRecord, goal: str | None, plan: Plan | None, workers: Mapping[str, Worker]
) -> Plan | None:
    """The run's stored plan, after checking that the run asked for is the one stored: the same
    goal, workers and plan shape. Asked with another goal or plan, an id that already names a
    run (unfinished or finished) is refused, never answered with that run's result."""
    ended = "finished" if record.status == "succeeded" else "was started"
    if record.goal != goal:
        raise ResumeError(run_id, f"it {ended} for another goal ({record.goal!r})")
    if set(record.workers) != set(workers):
        had, has = ", ".join(sorted(record.workers)), ", ".join(sorted(workers))
        raise ResumeError(run_id, f"it ran with workers {had}; this supervisor has {has}")
    stored = restore_plan(run_id, record.plan, workers) if record.plan else None
    if plan is not None and stored is not None and plan_shape(plan) != plan_shape(stored):
        raise ResumeError(run_id, "its plan no longer matches the plan given")
    return stored


def owner_alive(record: RunRecord, mine: str, takeover: bool = False) -> bool:
    """Whether the supervisor that marked the run running may still be running it (`mine` is
    the asking supervisor's owner string; `takeover`: an owner on another host is written off)."""
    host, _, rest = (record.owner or "").partition(":")
    pid = rest.partition(":")[0]
    if not host or not pid.isdigit():
        return False  # written before runs had owners
    if host != socket.gethostname():
        return not takeover and time.time() - record.updated_at < _FOREIGN_LEASE_S
    if int(pid) == os.getpid():
        # This process: another supervisor in it may run it; this one does not (not in `_running`).
        return record.owner != mine
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, under another user
    return True


def _last_attempts_open(calls: list[CallRecord], version: int, unfinished: list[str]) -> list[CallRecord]:
    """The journal without the failure of each unfinished step's last attempt, which goes on.

    The last attempt is the highest one with any record (a fatal error records no failure), and
    steps are matched by their ids, whatever characters those hold.
    """
    last: dict[str, int] = {}
    for record in calls:
        for step in unfinished:
            prefix = f"{version}/{step}."
            if record.key.startswith(prefix):
                attempt, slash, _ = record.key[len(prefix) :].partition("/")
                if slash and attempt.isdigit():
                    last[step] = max(last.get(step, 0), int(attempt))
    reopened = {f"{version}/{step}.{attempt}/failed" for step, attempt in last.items()}
    return [record for record in calls if record.key not in reopened]
