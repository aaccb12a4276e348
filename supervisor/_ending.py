"""How a run ends: its last event, and its status and output recorded in the store.

The end is recorded however the run stopped, and even when the user's event sink raises on the
last event; pending approvals the run left are closed so nobody decides a stale request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from tools import serialize_result
from tools.errors import RunAborted, RunTakenOver, shown
from workers import Redactor, RunContext, RunEvent, ToolGate

from ._approvals import StoreGate, supersede_pending
from ._calls import usage_data
from ._result import RunResult
from ._store import UNNAMED, RunRecord, Store

__all__ = ["ActiveTime", "record_end"]


class ActiveTime:
    """How long the run has been running, summed over every process that ran it.

    Kept with the run's usage at each checkpoint, so that `deadline_s` bounds the run's running
    time as a whole: a run taken up after a crash gets what its deadline has left, not a new one
    (the time no process ran it does not count)."""

    __slots__ = ("before", "since")

    def __init__(self, record: RunRecord | None) -> None:
        spent = (record.usage or {}).get("active_s", 0.0) if record is not None else 0.0
        self.before = float(spent) if isinstance(spent, int | float) else 0.0
        self.since = time.monotonic()

    def left(self, deadline_s: float | None) -> float | None:
        """What the deadline leaves this process (None: no deadline)."""
        return None if deadline_s is None else max(deadline_s - self.before, 0.0)

    def usage(self, ctx: RunContext) -> dict[str, Any]:
        """The run's usage for a checkpoint, its running time included."""
        return {
            **usage_data(ctx.usage.total),
            "active_s": round(self.before + time.monotonic() - self.since, 3),
        }


Ended = Literal["succeeded", "failed", "aborted"]


def _status(outcome: RunResult | BaseException | None) -> Ended:
    if isinstance(outcome, RunResult):
        return "succeeded"
    return "aborted" if isinstance(outcome, RunAborted | asyncio.CancelledError) else "failed"


async def record_end(
    store: Store,
    gate: ToolGate,
    run_id: str,
    outcome: RunResult | BaseException | None,
    ctx: RunContext,
    resumed: bool,
    active: ActiveTime,
) -> None:
    """Record the run's end, then emit its last event: whoever is told of the end finds it
    recorded, with the run's final answer (committed with the end, see `RunContext.final`)."""
    status = _status(outcome)
    usage = active.usage(ctx)
    try:
        await _finish(store, gate, run_id, outcome, status, usage, resumed, redact=ctx.redact)
    finally:  # the user's sink may raise: the end is recorded already
        detail = shown(outcome, ctx.redact) if status != "succeeded" and outcome is not None else ""
        ctx.events.emit(RunEvent(run_id, status, None, detail))


async def _finish(
    store: Store,
    gate: ToolGate,
    run_id: str,
    outcome: RunResult | BaseException | None,
    status: Ended,
    usage: dict[str, Any],
    resumed: bool,
    *,
    redact: Redactor | None = None,
) -> None:
    asked = isinstance(gate, StoreGate) and gate.asked(run_id)  # the gate forgets the run here
    if isinstance(outcome, RunTakenOver):  # the run is another process's now: leave it as it is
        return
    try:
        if resumed or asked:
            await supersede_pending(store, run_id)  # nobody waits on them any more
        if isinstance(outcome, RunResult):
            await store.finish(run_id, status, usage, serialize_result(outcome.output), None)
        elif isinstance(outcome, RunAborted):  # kept apart from a stop: it is not taken up by itself
            await store.finish(run_id, status, usage, None, str(outcome), aborted_by=outcome.by or UNNAMED)
        else:  # what `runs` and `trace` show of the error: redacted as the run's events are
            await store.finish(run_id, status, usage, None, shown(outcome, redact))
    except asyncio.CancelledError:
        pass  # cancelled again while recording: the last checkpoint stands, and resume takes it up
