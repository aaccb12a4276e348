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
import contextvars
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tools._errors_provider import SPENT_QUOTA
from tools._jsontext import canonical_json
from tools.errors import (
    AgentError,
    BudgetExceeded,
    CircuitOpen,
    ConfigurationError,
    HandoffError,
    HandoffLoop,
    ModelNotFound,
    ProviderAuthError,
    ProviderError,
    RecordedFailure,
    ReplayMismatch,
    ResumeError,
    RunAborted,
    StoreError,
    ToolInterrupted,
    WorkerInputError,
    shown,
)
from workers import Handoff, HandoffEvent, RunContext, StepEvent, UsageSum, Worker, WorkerResult
from workers._loop import run_loop

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
    ProviderAuthError,  # a refused key fails every attempt, and every worker of the provider
    ModelNotFound,  # the model's name is wrong (or not this account's): no attempt finds it
)
_DEFAULT_MAX_HANDOFFS = 10
_BASE_RUN = Worker.run  # a worker class that keeps it is run by calling its turn loop directly


@dataclass(frozen=True, slots=True)
class StepFailure:
    """A step that failed after its retries."""

    step: Step
    worker: str
    attempts: int
    error: AgentError


def _canonical(value: Any) -> str:
    """The same text for equal tasks: a task seen before is a handoff going round in a loop."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    return canonical_json(value)


def _allowed(worker: Worker) -> set[str]:
    return {t if isinstance(t, str) else t.__name__ for t in type(worker).handoffs}


class Execution:
    """The steps of one run: what is done, and how to run more."""

    __slots__ = (
        "_context",
        "_failure",
        "_group",
        "_pending",
        "ctx",
        "done",
        "failed",
        "given",
        "handoffs",
        "journal",
        "max_handoffs",
        "on_finished",
        "step_retries",
        "version",
        "workers",
    )

    def __init__(
        self, workers: Mapping[str, Worker], ctx: RunContext, *, step_retries: int, max_handoffs: int | None
    ) -> None:
        self.workers = workers
        self.ctx = ctx
        self.step_retries = step_retries
        self.max_handoffs = _DEFAULT_MAX_HANDOFFS if max_handoffs is None else max_handoffs
        self.done: dict[str, StepResult] = {}
        self.failed = 0  # steps that failed after their retries, in this process (they ran: max_steps)
        self.handoffs = 0
        self.version = 0  # the plan's version: 1 for the first plan, one more for each re-plan
        self.given = False  # the plan is the user's (run_plan): never replaced by a planner's
        self.journal: RunJournal | None = None
        self.on_finished: Callable[[StepResult], Awaitable[None]] | None = None  # the step checkpoint
        self._pending: dict[str, Step] = {}  # the current plan's steps not started yet
        self._failure: StepFailure | None = None  # the current plan's first failed step
        self._group: asyncio.TaskGroup | None = None
        self._context = contextvars.Context()

    async def run(self, plan: Plan) -> StepFailure | None:
        """Run the steps of `plan` not yet done; the first failure, or None when all finished.

        A step starts as soon as its dependencies are done: each finishing step starts the
        steps it was the last dependency of, so no task waits on the others in between.
        """
        self._pending = _not_done(plan, self.done)
        self._failure = None
        # Steps start from the task of the step they waited for: each gets a copy of the run's
        # context, as when the run's own task started them, not of that step's.
        self._context = contextvars.copy_context()
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self._start_ready()
        except BaseExceptionGroup as group_error:
            error = _first(group_error)
            error.__suppress_context__ = True  # the group says nothing more; `from None` would drop the cause
            raise error  # noqa: B904
        finally:
            self._group = None
        return self._failure

    def _start_ready(self) -> None:
        """Start every pending step whose dependencies are done (none after a failure)."""
        group = self._group
        if self._failure is not None or group is None:
            return
        for step in _ready(self._pending, self.done):
            del self._pending[step.id]
            group.create_task(self._run_step(step), context=self._context.copy())

    async def _run_step(self, step: Step) -> None:
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
                upstream = _outputs(step, self.done)
                hops = 0
                while True:  # bounded: _follow raises past max_handoffs
                    ctx = self.scoped(f"{self.version}/{step.id}.{attempt}/{hops}")
                    result = await _worker_run(chain.worker, chain.task, ctx, upstream)
                    if result.handoff is None:
                        break
                    self._follow(step, chain, result)
                    hops += 1
            except _FATAL:
                raise
            except AgentError as error:
                if self._failed(step, attempt, error, key if recorded is None else None):
                    return
                continue
            worker = chain.worker.name
            self.ctx.events.emit(StepEvent(step.id, worker, "finished", attempt))
            usage, handoffs, trail = result.usage, tuple[Handoff, ...](), chain.trail
            if trail is not None:  # handed over: every worker of the chain counts
                trail.usage.add(usage)
                usage, handoffs = trail.usage.value(), tuple(trail.handoffs)
            done = self.done[step.id] = StepResult(step.id, worker, result.output, usage, attempt, handoffs)
            if self.on_finished is not None:
                await self.on_finished(done)
            self._start_ready()
            return

    def _failed(self, step: Step, attempt: int, error: AgentError, key: str | None) -> bool:
        """Take an attempt's failure: whether the step has failed for good (else it is tried
        again); `key`: where to journal the failure (None: it was replayed from there)."""
        if isinstance(error, ProviderError) and error.error_type in SPENT_QUOTA:
            raise error  # the account's quota or credit is spent: every attempt is refused
        if self.journal is not None and key is not None:
            self.journal.record_failure(key, error)
        why = shown(error, self.ctx.redact)
        if attempt <= self.step_retries:
            self.ctx.events.emit(StepEvent(step.id, step.worker, "retrying", attempt, why))
            return False
        self.ctx.events.emit(StepEvent(step.id, step.worker, "failed", attempt, why))
        self.failed += 1
        if self._failure is None:
            self._failure = StepFailure(step, step.worker, attempt, error)
        return True

    def scoped(self, scope: str, *, final: bool = False) -> RunContext:
        """The run's context for one place in the run, so the journal keys its calls there
        (`final`: the run ends with the answer given there; see `RunContext.final`)."""
        if self.ctx.journal is None:
            return self.ctx
        return self.ctx.at(scope, final=final)

    def _follow(self, step: Step, chain: _Chain, result: WorkerResult) -> None:
        """Hand the step's task over: check the handoff and the chain's bounds, then move on."""
        handoff = result.handoff
        assert handoff is not None
        self.ctx.events.emit(HandoffEvent(step.id, handoff.source, handoff.target, handoff.reason))
        trail = chain.trail
        if trail is None:
            trail = chain.trail = _Trail(chain.worker, chain.task)
        trail.usage.add(result.usage)
        target = self._check_handoff(chain.worker, handoff)
        self.handoffs += 1
        trail.names.append(target.name)
        if self.handoffs > self.max_handoffs:
            raise HandoffLoop(trail.names, f"more than {self.max_handoffs} handoffs", run_id=self.ctx.run_id)
        key = (target.name, _canonical(handoff.input))
        if key in trail.seen:
            raise HandoffLoop(
                trail.names, f"{target.name} was handed the same task again", run_id=self.ctx.run_id
            )
        trail.seen.add(key)
        trail.handoffs.append(handoff)
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
                source.name, handoff.target, f"payload rejected: {exc}", value=handoff.input, run_id=run_id
            ) from exc
        return target


class _Chain:
    """One attempt at a step: the worker that has the task now, and the handoffs that led there
    (kept from the first handoff on: most steps have none)."""

    __slots__ = ("worker", "task", "trail")

    def __init__(self, worker: Worker, task: object) -> None:
        self.worker, self.task = worker, task
        self.trail: _Trail | None = None


class _Trail:
    """The handoffs of one step attempt: who had the task, with what, and what they used."""

    __slots__ = ("usage", "names", "handoffs", "seen")

    def __init__(self, worker: Worker, task: object) -> None:
        self.usage = UsageSum()  # the usage of the workers that handed the task over
        self.names = [worker.name]
        self.handoffs: list[Handoff] = []
        self.seen = {(worker.name, _canonical(task))}  # (worker, task) pairs


# Comprehensions over `self` in a coroutine make `self` a cell for the coroutine's whole life
# (Python 3.11); a thousand runs in flight hold fewer objects with these outside.


def _not_done(plan: Plan, done: Mapping[str, StepResult]) -> dict[str, Step]:
    return {s.id: s for s in plan.steps if s.id not in done}


def _ready(pending: Mapping[str, Step], done: Mapping[str, StepResult]) -> list[Step]:
    return [s for s in pending.values() if all(d in done for d in s.depends_on)]


def _outputs(step: Step, done: Mapping[str, StepResult]) -> dict[str, Any]:
    """The typed outputs of the steps `step` depends on."""
    return {dep: done[dep].output for dep in step.depends_on}


def _worker_run(
    worker: Worker, task: object, ctx: RunContext, upstream: Mapping[str, Any]
) -> Awaitable[WorkerResult]:
    """`worker.run(task)` in the run's context: its turn loop itself when the class keeps the
    base `run` (which adds nothing here), so a waiting step holds a frame less."""
    if type(worker).run is _BASE_RUN and "run" not in getattr(worker, "__dict__", ()):  # not wrapped
        return run_loop(worker, task, ctx, upstream)
    return worker.run(task, context=ctx, upstream=upstream)


def _first(group: BaseExceptionGroup) -> BaseException:
    """The first error of a task group, unwrapped: callers see one typed error, not a group."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
