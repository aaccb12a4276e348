"""`Supervisor`: plan with a model, run the plan with at most four workers, answer the goal.

    supervisor = Supervisor(workers=[Billing(), Orders()], model="anthropic:claude-sonnet-4-5",
                            budget=Budget(max_usd=0.50, max_steps=12, deadline_s=120))
    result = await supervisor.run("Refund invoice 42 if it was charged twice")

The planner is itself a worker: its output is the plan, validated against the rules (known
workers, valid inputs, a DAG within max_steps), so a broken plan goes back to it with the exact
problems, a bounded number of times. Every model call of the run, the planner's included, goes
through the run's budget, rate limits, retries and breakers.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from tools.errors import (
    AgentError,
    BudgetExceeded,
    ConfigurationError,
    PlanError,
    RunAborted,
    excerpt,
)
from workers import (
    Approver,
    Decision,
    Event,
    EventSink,
    Model,
    NullSink,
    PriceTable,
    RateLimits,
    Redactor,
    RetryPolicy,
    RunContext,
    RunEvent,
    ToolGate,
    Worker,
)
from workers._events import as_sink
from workers._hooks import as_gate

from ._approvals import STATUS_OF, ApprovalRecord, StoreGate, expired_meanwhile, pending_in_time
from ._breaker import CircuitBreakers
from ._budget import Budget
from ._calls import StepEngine
from ._ending import ActiveTime, record_end
from ._execute import Execution
from ._journal import step_record, stored_result
from ._plan import Plan, check_plan
from ._planning import plan_and_execute
from ._result import RunResult, StepResult
from ._resume import begin, claim, same_run
from ._settings import MAX_WORKERS, check_options, checked_settings
from ._shared import Shared
from ._store import RunRecord, Store, new_run_id, open_store
from ._stream import stream_events

__all__ = ["MAX_WORKERS", "Supervisor", "check_goal"]


class Supervisor:
    """Plans and runs work across at most four workers, inside a hard budget.

    Args:
        workers: The workers (instances); at most four, with distinct names.
        model: The planner's model ("provider:name" or a model object); workers may use cheaper ones.
        budget: Hard limits of each run.
        store: Where runs are kept: a path (the SQLite journal, created if missing), a store
            object, or None to keep them in memory. A run whose id is in the store resumes.
        approver: Decides on risky tool calls: a callable `(request) -> bool | Decision`, sync or
            async, `TerminalApprover()`, or a gate. Without one, each risky call waits in the
            store's approval queue for `python -m supervisor approve --store PATH`.
        output: A pydantic model for the final answer, or `str`.
        retry: The retry policy of every model call.
        limits: Rate limits; share one object between supervisors to share the limits.
        breakers: Circuit breakers; shared by every run of this supervisor by default.
        prices: Prices for models the built-in table does not know.
        events: Receives every event of every run (steps, model and tool calls, handoffs...): a
            sink, `Progress()`, or any callable taking the event.
        step_retries: How many times a failed step is run again before re-planning. A refusal
            no attempt can change (a refused API key, an unknown model, a spent quota) ends
            the run at once, as do budget, abort and store errors.
        max_replans: Re-plans allowed: for an invalid plan, and again after a step failed.
        approval_timeout_s: An approval unanswered for this long is a denial (0: at once). None:
            an approver callable is waited for without a limit; the store's queue keeps 600 s.
        redact: `redact(tool, "arguments" or "result", text)` rewrites what events, progress
            and traces show of tool calls (card numbers, say). The journal keeps the values
            resume and replay need; the person asked to approve a call sees what will run.
    """

    def __init__(
        self,
        workers: Sequence[Worker],
        model: str | Model,
        *,
        budget: Budget | None = None,
        store: str | os.PathLike[str] | Store | None = None,
        approver: Approver | ToolGate | None = None,
        output: type[Any] = str,
        retry: RetryPolicy | None = None,
        limits: RateLimits | None = None,
        breakers: CircuitBreakers | None = None,
        prices: PriceTable | None = None,
        events: EventSink | Callable[[Event], Any] | None = None,
        step_retries: int = 1,
        max_replans: int = 2,
        approval_timeout_s: float | None = 600.0,
        redact: Redactor | None = None,
    ) -> None:
        by_name = checked_settings(workers, model, approval_timeout_s)
        check_options(budget=budget, redact=redact, step_retries=step_retries, max_replans=max_replans)
        sink = as_sink(events) if events is not None else NullSink()
        # Made (so checked) before the store opens: a mistake leaves no store file behind.
        gate: ToolGate | None = as_gate(approver, approval_timeout_s) if approver is not None else None
        self._store: Store = open_store(store)
        self._takeover = False  # set by a backend that hands each run to one process (DBOS)
        self._steps: StepEngine | None = None  # set by a backend whose steps run the calls (DBOS)
        if gate is None:  # no one to ask here: risky calls wait in the store's approval queue
            # None: the default bound (a wait on the store is never unbounded); 0: denied at once.
            gate = StoreGate(self._store, 600.0 if approval_timeout_s is None else approval_timeout_s)
        self.workers: Mapping[str, Worker] = by_name
        self.model = model
        self.budget = budget or Budget()
        self.output = output
        self.step_retries = step_retries
        self.max_replans = max_replans
        self.approval_timeout_s = approval_timeout_s
        self._shared = Shared(
            store=self._store,
            gate=gate,
            events=sink,
            retry=retry,
            limits=limits,
            breakers=breakers,
            prices=prices,
            redact=redact,
        )
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._aborts: dict[str, str] = {}
        # The planner and synthesizer classes of the common case, made once (`_planning`).
        self._planner: type[Worker] | None = None
        self._synthesizer: type[Worker] | None = None
        self._token = uuid.uuid4().hex[:12]  # tells this supervisor's runs from another's in-process

    def _owner(self) -> str:
        """Who runs this supervisor's runs: host, process (read now: a fork is another), instance."""
        return f"{socket.gethostname()}:{os.getpid()}:{self._token}"

    def stream(
        self, goal: str | None = None, *, plan: Plan | None = None, run_id: str | None = None
    ) -> AsyncGenerator[Event | RunResult, None]:
        """Run like `run(goal)` (or `run_plan(plan)` when a plan is given) and yield each event as
        it happens, then the `RunResult`; errors are raised from the iterator.

            async with contextlib.aclosing(supervisor.stream(goal)) as run:
                async for item in run:
                    ...

        Closing the iterator before its end cancels the run (recorded as aborted, resumable).
        `break` alone does not close it: Python closes an async generator when it is dropped,
        which an inline `async for` does at once, but a variable keeps it (and the run) alive;
        `aclosing` closes it whatever the loop did.
        """
        if plan is not None:
            check_goal(goal, optional=True)
            issues = check_plan(plan, self.workers, self.budget.max_steps)
            if issues:
                raise PlanError(issues, attempts=0, run_id=run_id)
        elif goal is None:
            raise ConfigurationError("stream needs a goal or a plan")
        else:
            check_goal(goal)
        return stream_events(lambda sink: self._run(goal, plan, run_id, sink))

    async def run(self, goal: str, run_id: str | None = None) -> RunResult:
        """Plan with the model, run the plan, and answer the goal from the step outputs.

        Raises:
            AgentError: a typed error of the tree, carrying `run_id`.
        """
        check_goal(goal)
        return await self._run(goal, None, run_id)

    async def run_plan(self, plan: Plan, *, goal: str | None = None, run_id: str | None = None) -> RunResult:
        """Run a plan written in Python, with no planner call.

        With a `goal` (or an `output` model) the supervisor's model answers it from the step
        outputs; otherwise the output is the last step's output (a dict by step id when several
        steps end the plan).
        """
        check_goal(goal, optional=True)
        issues = check_plan(plan, self.workers, self.budget.max_steps)
        if issues:
            raise PlanError(issues, attempts=0, run_id=run_id)
        return await self._run(goal, plan, run_id)

    def abort(self, run_id: str, reason: str = "aborted") -> bool:
        """Stop a running run: calls in flight are cancelled and it raises `RunAborted`."""
        task = self._running.get(run_id)
        if task is None or task.done():
            return False
        self._aborts[run_id] = reason
        task.cancel()
        return True

    async def _run(
        self, goal: str | None, plan: Plan | None, run_id: str | None, listener: EventSink | None = None
    ) -> RunResult:
        new = run_id is None
        run_id = run_id or new_run_id()
        task = asyncio.current_task()
        record, calls = await claim(
            self._store, self._running, run_id, new, task, self._owner(), self._takeover
        )
        if record is not None and record.status == "succeeded":  # asked again: nothing runs twice
            self._running.pop(run_id, None)
            same_run(run_id, record, goal, plan, self.workers)
            return stored_result(record, self.workers, self.output)
        active = ActiveTime(record)
        try:
            ctx = self._shared.context(run_id, listener, self.budget, self.workers, self.model)
            execution = Execution(
                self.workers, ctx, step_retries=self.step_retries, max_handoffs=self.budget.max_handoffs
            )
            plan = await begin(
                run_id, record, goal, plan, calls, self._store, execution, self._steps, self._owner(), active
            )
        except BaseException as exc:
            self._running.pop(run_id, None)  # the id is free to be asked for again
            if isinstance(exc, AgentError) and exc.run_id is None:
                exc.run_id = run_id
            raise
        gate = self._shared.gate
        if record is not None and isinstance(gate, StoreGate):  # forgotten at the run's end
            gate.taken_up(run_id, after_abort=record.aborted_by is not None)
        # A partial, not a lambda: a closure would make these variables cells for the whole run.
        execution.on_finished = functools.partial(self._save_step, run_id, ctx, active)
        deadline = asyncio.timeout(active.left(self.budget.deadline_s))
        outcome: RunResult | BaseException | None = None
        try:
            ctx.events.emit(RunEvent(run_id, "started", goal))  # a sink that raises ends the run, recorded
            async with deadline:
                outcome = await plan_and_execute(self, goal, plan, ctx, execution)
                return outcome
        except TimeoutError:
            if not deadline.expired():
                raise
            assert self.budget.deadline_s is not None
            limit = self.budget.deadline_s
            outcome = BudgetExceeded("deadline_s", limit, limit, 0, run_id=run_id)
            raise outcome from None
        except asyncio.CancelledError as cancelled:
            reason = self._aborts.pop(run_id, None)
            if reason is None or task is None:
                outcome = cancelled
                raise
            task.uncancel()
            outcome = RunAborted("", reason, by="abort", run_id=run_id)
            raise outcome from None
        except AgentError as error:
            outcome = error
            raise
        except Exception as unexpected:  # a bug: recorded with its own message, raised unchanged
            outcome = unexpected
            raise
        finally:
            self._running.pop(run_id, None)
            if isinstance(outcome, AgentError):
                outcome.run_id = outcome.run_id or run_id
                outcome.completed = dict(execution.done)  # nothing finished is lost
            await record_end(self._store, self._shared.gate, run_id, outcome, ctx, record is not None, active)

    def _save_step(
        self, run_id: str, ctx: RunContext, active: ActiveTime, result: StepResult
    ) -> Awaitable[None]:
        """The checkpoint of a finished step."""
        return self._store.save_step(run_id, step_record(result), active.usage(ctx))

    async def pending_approvals(self, run_id: str | None = None) -> list[ApprovalRecord]:
        """Risky calls waiting in this supervisor's store for a decision, oldest first (not those
        past their expiry: they are denied, whatever is decided now)."""
        return await pending_in_time(self._store, run_id)

    async def decide(self, approval_id: str, decision: Decision) -> bool:
        """Decide a pending approval from code (a web handler, say); False when already decided,
        or expired (an abort is taken even then)."""
        status = STATUS_OF[decision.kind]
        record = await self._store.get_approval(approval_id)
        if record is not None and await expired_meanwhile(self._store, record, status):
            return False
        args = (decision.reason or None, decision.arguments, decision.by or "code")
        taken = await self._store.decide(approval_id, status, *args)
        gate = self._shared.gate
        if taken and isinstance(gate, StoreGate):
            await gate.decided(approval_id, status)  # wakes the run where it waits
        return taken

    async def runs(self) -> list[RunRecord]:
        """The runs in this supervisor's store, newest first."""
        return await self._store.runs()

    async def aclose(self) -> None:
        """Write what the store has queued and release it; close the models' connections."""
        try:
            await self._shared.aclose()
        finally:
            await self._store.aclose()

    async def __aenter__(self) -> Supervisor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def check_goal(goal: object, *, optional: bool = False) -> None:
    """A goal is a non-empty string (or None, where a plan is given instead)."""
    if optional and goal is None:
        return
    if not isinstance(goal, str) or not goal.strip():
        raise ConfigurationError(f"the goal must be a non-empty string, got {excerpt(goal)}")
