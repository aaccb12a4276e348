"""Replaying a recorded run offline, so that a run from production becomes a regression test.

The journal of a run (every model answer, every tool result, every failed attempt) is its
recording. `replay` runs your supervisor again on that recording: the planner, the workers'
loops, validation, routing, handoffs and the synthesis all run for real, but every model answer
and every tool result comes from the recording, so nothing is sent and no tool runs. When the
code now asks for something the recording does not have (a call it did not make, a tool it did
not run), the replay fails loudly with `ReplayMismatch`.

    # once: keep the run next to the tests (or replay straight from the production store)
    python -m supervisor export RUN_ID --store prod.db --to tests/runs/refund-42.db

    # a test
    async def test_the_refund_that_went_wrong_stays_fixed():
        result = await replay("tests/runs/refund-42.db", "RUN_ID", make_supervisor)
        assert result.output.refunded

`make_supervisor(store)` builds the Supervisor with the run's workers, the same factory the
`resume --app` command takes; its models are never called. Calls are matched by their place in
the run (plan version, step, attempt, handoff, worker, turn), not by the text of the request.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tools.errors import RunNotFound

from ._calls import CallRecord
from ._journal import restore_plan
from ._store import MemoryStore, RunRecord

if TYPE_CHECKING:
    from ._result import RunResult
    from ._supervisor import Supervisor

__all__ = ["ReplayStore", "load_recording", "replay"]


class ReplayStore(MemoryStore):
    """An in-memory store holding one recorded run, to be run again from its recording only."""

    replay_only = True


async def load_recording(source: str | os.PathLike[str] | Any, run_id: str) -> ReplayStore:
    """A store holding run `run_id` of `source` (a store file or a store), ready to replay.

    The run is taken back to its start: no step finished, the plan to be made again (kept only
    for a plan given in code), so that everything runs again from the recorded calls.
    """
    from ._store import open_existing

    store = open_existing(source) if isinstance(source, str | os.PathLike) else source
    try:
        record = await store.load(run_id)
        if record is None:
            raise RunNotFound(run_id, str(source))
        calls: list[CallRecord] = await store.calls(run_id)
    finally:
        if isinstance(source, str | os.PathLike):
            await store.aclose()
    planned = any(c.key.startswith("plan") for c in calls)
    plan = None if planned or record.plan is None else {**record.plan, "version": 1}
    fresh = RunRecord(run_id, record.goal, "running", plan, record.workers, {}, created_at=record.created_at)
    replaying = ReplayStore()
    await replaying.start(fresh)
    for call in calls:
        replaying.put_call(run_id, call)
    return replaying


async def replay(
    source: str | os.PathLike[str] | Any,
    run_id: str,
    make_supervisor: Callable[[ReplayStore], Supervisor],
) -> RunResult:
    """Run the recorded run `run_id` again, offline, with the supervisor `make_supervisor` builds.

    Raises:
        ReplayMismatch: the run asked for a call the recording does not have.
        RunNotFound: `source` has no such run.
        AgentError: the run failed the way the recorded one did (a recorded failure replays).
    """
    store = await load_recording(source, run_id)
    record = await store.load(run_id)
    assert record is not None
    supervisor = make_supervisor(store)
    async with supervisor:
        if record.goal is not None:
            return await supervisor.run(record.goal, run_id=run_id)
        plan = restore_plan(run_id, record.plan or {}, supervisor.workers)
        return await supervisor.run_plan(plan, run_id=run_id)
