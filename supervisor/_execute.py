"""Running a plan: every step whose dependencies are done starts at once.

A step's worker gets the typed outputs of the steps it depends on (and sees them after its
task). A worker that hands over is routed to the target after the handoff is checked again here:
the target must be allowed and its input must validate; the same worker getting the same task
again in one step is a loop, and handoffs are bounded. A step that fails is retried; when it
still fails, the steps already running finish, no new ones start, and the failure goes back to
the caller to re-plan or give up. Nothing finished is lost.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tools.errors import (
    AgentError,
    BudgetExceeded,
    CircuitOpen,
    ConfigurationError,
    HandoffError,
    HandoffLoop,
    RecordedFailure,
    ReplayMismatch,
    ResumeError,
    RunAborted,
    StoreError,
    ToolInterrupted,
    WorkerInputError,
)
from workers import Handoff, HandoffEvent, RunContext, StepEvent, UsageSum, Worker

from ._calls import RunJournal
from ._plan import Plan, Step
from ._result import StepResult

__all__ = ["Execution", "StepFailure"]

# Errors no retry or re-plan can fix: they end the run.
_FATAL = (
    BudgetExceeded,
    RunAborted,
    HandoffLoop,
    HandoffError,
    ConfigurationError,
    CircuitOpen,
    ToolInterrupted,  # a retry would run the call a second time: exactly what it must not do
    StoreError,  # the journal cannot say what ran: a retry could repeat it
    ReplayMismatch,  # a replay off its recording: a retry would not find it either
    ResumeError,  # the journal does not describe this run: a retry would go on without it
)
_DEFAULT_MAX_HANDOFFS = 10


@dataclass(frozen=True, slots=True)
class StepFailure:
    """A step that failed after its retries."""

    step: Step
    worker: str
    attempts: int
    error: AgentError


def _canonical(value: Any) -> str:
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    return json.dumps(value, sort_keys=True, default=str)


def _allowed(worker: Worker) -> set[str]:
    return {t if isinstance(t, str) else t.__name__ for t in type(worker).handoffs}


class Execution:
    """The steps of one run: what is done, and how to run more."""

    def __init__(
        self, workers: Mapping[str, Worker], ctx: RunContext, *, step_retries: int, max_handoffs: int | None
    ) -> None:
        self.workers = workers
        self.ctx = ctx
        self.step_retries = step_retries
        self.max_handoffs = _DEFAULT_MAX_HANDOFFS if max_handoffs is None else max_handoffs
        self.done: dict[str, StepResult] = {}
        self.handoffs = 0
        self.version = 0  # the plan's version: 1 for the first plan, one more for each re-plan
        self.journal: RunJournal | None = None
        self.on_finished: Callable[[StepResult], Awaitable[None]] | None = None  # the step checkpoint

    async def run(self, plan: Plan) -> StepFailure | None:
        """Run the steps of `plan` not yet done; the first failure, or None when all finished."""
        pending = {s.id: s for s in plan.steps if s.id not in self.done}
        running: dict[asyncio.Task[StepResult | StepFailure], Step] = {}
        failure: StepFailure | None = None
        try:
            async with asyncio.TaskGroup() as group:
                while pending or running:
                    if failure is None:
                        for step in [
                            s for s in pending.values() if all(d in self.done for d in s.depends_on)
                        ]:
                            del pending[step.id]
                            running[group.create_task(self._run_step(step))] = step
                    if not running:
                        break
                    finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    for task in finished:
                        step = running.pop(task)
                        outcome = task.result()
                        if isinstance(outcome, StepResult):
                            self.done[step.id] = outcome
                            if self.on_finished is not None:
                                await self.on_finished(outcome)
                        elif failure is None:
                            failure = outcome
        except BaseExceptionGroup as group_error:
            raise _first(group_error) from None
        return failure

    async def _run_step(self, step: Step) -> StepResult | StepFailure:
        attempt = 0
        while True:
            attempt += 1
            self.ctx.events.emit(StepEvent(step.id, step.worker, "started", attempt))
            key = f"{self.version}/{step.id}.{attempt}/failed"
            recorded = self.journal.failure(key) if self.journal is not None else None
            try:
                if recorded is not None:  # resumed: this attempt failed before; it fails the same way
                    raise RecordedFailure(recorded.error_type, recorded.message, run_id=self.ctx.run_id)
                # The step's worker, then each worker it hands the task to, awaited here rather
                # than in a helper coroutine: a thousand runs in flight hold a frame less a step.
                chain = _Chain(self.workers[step.worker], step.input)
                upstream = {dep: self.done[dep].output for dep in step.depends_on}
                while True:
                    ctx = self.scoped(f"{self.version}/{step.id}.{attempt}/{len(chain.handoffs)}")
                    result = await chain.worker.run(chain.task, context=ctx, upstream=upstream)
                    chain.usage.add(result.usage)
                    if result.handoff is None:
                        break
                    self._follow(step, chain, result.handoff)
            except _FATAL:
                raise
            except AgentError as error:
                if self.journal is not None and recorded is None:
                    self.journal.record_failure(key, error)
                if attempt > self.step_retries:
                    self.ctx.events.emit(StepEvent(step.id, step.worker, "failed", attempt, str(error)))
                    return StepFailure(step, step.worker, attempt, error)
                self.ctx.events.emit(StepEvent(step.id, step.worker, "retrying", attempt, str(error)))
                continue
            worker = chain.worker.name
            self.ctx.events.emit(StepEvent(step.id, worker, "finished", attempt))
            return StepResult(
                step.id, worker, result.output, chain.usage.value(), attempt, tuple(chain.handoffs)
            )

    def scoped(self, scope: str) -> RunContext:
        """The run's context for one place in the run, so the journal keys its calls there."""
        if self.ctx.journal is None:
            return self.ctx
        return self.ctx.at(scope)

    def _follow(self, step: Step, chain: _Chain, handoff: Handoff) -> None:
        """Hand the step's task over: check the handoff and the chain's bounds, then move on."""
        self.ctx.events.emit(HandoffEvent(step.id, handoff.source, handoff.target, handoff.reason))
        if chain.seen is None:
            chain.seen = {(chain.worker.name, _canonical(chain.task))}
        target = self._check_handoff(chain.worker, handoff)
        self.handoffs += 1
        chain.names.append(target.name)
        if self.handoffs > self.max_handoffs:
            raise HandoffLoop(chain.names, f"more than {self.max_handoffs} handoffs", run_id=self.ctx.run_id)
        key = (target.name, _canonical(handoff.input))
        if key in chain.seen:
            raise HandoffLoop(
                chain.names, f"{target.name} was handed the same task again", run_id=self.ctx.run_id
            )
        chain.seen.add(key)
        chain.handoffs.append(handoff)
        chain.worker, chain.task = target, handoff.input

    def _check_handoff(self, source: Worker, handoff: Handoff) -> Worker:
        """The target of a handoff, after checking it is allowed and its input validates."""
        target = self.workers.get(handoff.target)
        run_id = self.ctx.run_id
        if target is None or handoff.target not in _allowed(source):
            raise HandoffError(
                source.name, handoff.target, "not among the workers it may hand off to", run_id=run_id
            )
        try:
            target.task_text(handoff.input)
        except WorkerInputError as exc:
            raise HandoffError(
                source.name, handoff.target, f"payload rejected: {exc}", run_id=run_id
            ) from exc
        return target


class _Chain:
    """One attempt at a step: the worker that has the task now, and the handoffs that led there."""

    __slots__ = ("worker", "task", "usage", "names", "handoffs", "seen")

    def __init__(self, worker: Worker, task: object) -> None:
        self.worker, self.task = worker, task
        self.usage = UsageSum()
        self.names = [worker.name]
        self.handoffs: list[Handoff] = []
        self.seen: set[tuple[str, str]] | None = None  # (worker, task) pairs, from the first handoff on


def _first(group: BaseExceptionGroup) -> BaseException:
    """The first error of a task group, unwrapped: callers see one typed error, not a group."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
