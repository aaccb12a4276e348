"""A run's plans: the planner's first plan (unless the caller gave one), a new plan after a step
failed, and the answer to the goal from the step outputs.

A failed step stands (`StepFailed`) when the plan is the caller's or there is no goal to plan
for, when `max_replans` is spent, or when `max_steps` leaves no step for a new plan: every step
that ran counts, failed ones too. The supervisor keeps the planner and synthesizer classes of
the common case, made once, so that a run does no schema work for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from tools.errors import StepFailed
from workers import Model, PlanEvent, RunContext, Worker

from ._budget import Budget
from ._execute import Execution, StepFailure
from ._journal import plan_data
from ._plan import Plan
from ._planner import answer_goal, make_plan, planner_class, synthesizer_class
from ._result import RunResult, StepResult
from ._store import Store

__all__ = ["Planning", "plan_and_execute"]


class Planning(Protocol):
    """What planning reads of the supervisor, when it needs it (a run reads the budget the
    supervisor has then), and where it keeps the planner and synthesizer classes it made."""

    workers: Mapping[str, Worker]
    model: str | Model
    budget: Budget
    output: type[Any]
    max_replans: int
    _store: Store
    _planner: type[Worker] | None
    _synthesizer: type[Worker] | None


async def plan_and_execute(
    supervisor: Planning, goal: str | None, plan: Plan | None, ctx: RunContext, execution: Execution
) -> RunResult:
    """Plan the goal (unless `plan` is given), run the plan, re-plan after a failed step while
    that is allowed, and answer the goal."""
    if plan is None:
        assert goal is not None
        plan = await _make_plan(supervisor, goal, ctx, execution, None)
    replans = max(0, execution.version - 1)  # a resumed run has had its re-plans already
    # Each earlier plan of a resumed run failed in at least one step; this process counts its
    # own failures (the current plan's recorded ones fail again as they are replayed).
    failed_before = replans
    while (failure := await execution.run(plan)) is not None:
        # A run's steps, failed ones too, stay within max_steps: a re-plan needs a step left.
        failed = failed_before + execution.failed
        max_steps = supervisor.budget.max_steps
        no_room = max_steps is not None and len(execution.done) + failed >= max_steps
        if goal is None or execution.given or replans >= supervisor.max_replans or no_room:  # it stands
            raise StepFailed(
                failure.step.id, failure.worker, failure.attempts, failure.error, run_id=ctx.run_id
            ) from failure.error
        replans += 1
        plan = await _make_plan(supervisor, goal, ctx, execution, failure, failed)
    output = await _answer(supervisor, goal, plan, execution.done, execution.scoped("answer", final=True))
    usage = ctx.usage
    assert ctx.run_id is not None
    return RunResult(
        output, ctx.run_id, usage.total, dict(execution.done), plan, "succeeded", dict(usage.by_worker)
    )


async def _make_plan(
    supervisor: Planning,
    goal: str,
    ctx: RunContext,
    execution: Execution,
    failure: StepFailure | None,
    failed: int = 0,
) -> Plan:
    done = dict(execution.done)  # a snapshot: the planner class keeps it, and the dict grows
    if done or failed or supervisor._planner is None:
        max_steps = supervisor.budget.max_steps
        left = None if max_steps is None else max_steps - failed  # failed steps were run too
        planner = planner_class(supervisor.workers, supervisor.model, left, supervisor.max_replans, done)
        if not done and not failed:
            supervisor._planner = planner  # the common case, built once: no schema work per run
    else:
        planner = supervisor._planner
    version = execution.version + 1
    plan = await make_plan(planner, goal, execution.scoped(f"plan{version}"), done, failure)
    execution.version = version
    await supervisor._store.save_plan(ctx.run_id or "", plan_data(plan, version))
    steps = tuple((s.id, s.worker, tuple(s.depends_on), s.reason) for s in plan.steps)
    ctx.events.emit(PlanEvent(1 if failure is None else 2, steps, plan.reasoning))
    return plan


async def _answer(
    supervisor: Planning, goal: str | None, plan: Plan, done: Mapping[str, StepResult], ctx: RunContext
) -> Any:
    if supervisor._synthesizer is None:
        supervisor._synthesizer = synthesizer_class(supervisor.model, supervisor.output)
    return await answer_goal(supervisor._synthesizer, goal, plan, done, ctx, plain=supervisor.output is str)
