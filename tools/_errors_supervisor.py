"""Failures of a supervisor run: plans, steps, budgets, breakers, handoffs (drawn in `tools.errors`)."""

from __future__ import annotations

from ._errors_base import AgentError, Redact, excerpt, shown

__all__ = [
    "BudgetExceeded",
    "CircuitOpen",
    "HandoffError",
    "HandoffLoop",
    "PlanError",
    "RecordedFailure",
    "ReplayMismatch",
    "ResumeError",
    "RunNotFound",
    "StepFailed",
    "StoreError",
]


class PlanError(AgentError):
    """No valid plan: the planner's last plan still broke these rules after the re-plans allowed.

    Attributes:
        issues: Every problem of the last plan, as readable lines ("step b: unknown worker 'X'").
        attempts: How many plans were tried (0: the plan was the user's, given to `run_plan`).
    """

    def __init__(self, issues: list[str], attempts: int, *, run_id: str | None = None) -> None:
        shown = "; ".join(issues[:5]) + (f" (and {len(issues) - 5} more)" if len(issues) > 5 else "")
        # attempts 0: a plan written in Python (run_plan), refused before anything ran
        what = "the plan given is invalid" if attempts == 0 else f"no valid plan after {attempts} attempts"
        super().__init__(f"{what}: {shown}", run_id=run_id)
        self.issues = issues
        self.attempts = attempts


class StepFailed(AgentError):
    """A plan step failed after its retries (and any re-planning).

    Attributes:
        step: The step id.
        worker: The worker that ran it.
        attempts: How many times it ran.
        cause: The last error (also the `__cause__`).
    """

    def __init__(
        self, step: str, worker: str, attempts: int, cause: BaseException, *, run_id: str | None = None
    ) -> None:
        super().__init__(self._text(step, worker, attempts, str(cause)), run_id=run_id)
        self.step = step
        self.worker = worker
        self.attempts = attempts
        self.cause = cause

    @staticmethod
    def _text(step: str, worker: str, attempts: int, cause: str) -> str:
        return f"step {step!r} ({worker}) failed after {attempts} attempts: {cause}"

    def redacted(self, redact: Redact) -> str:
        return self._text(self.step, self.worker, self.attempts, shown(self.cause, redact))


class BudgetExceeded(AgentError):
    """A call or a step would pass a hard limit of the run's `Budget`; it was not sent.

    Attributes:
        limit: Which limit: "max_usd", "max_tokens" or "deadline_s". (The other limits end a run
            as what they stopped: `max_steps` a plan too long, `PlanError`, or a failed step with
            no step left to re-plan, `StepFailed`; `max_handoffs` a `HandoffLoop`.)
        maximum: The limit's value.
        used: What the run had used (or reserved) when it was refused.
        requested: What the refused call or step needed at worst.
    """

    def __init__(
        self, limit: str, maximum: float, used: float, requested: float, *, run_id: str | None = None
    ) -> None:
        if limit == "deadline_s":
            text = f"budget deadline_s={maximum:g} passed: the run was stopped after {used:g} s"
        else:
            text = (
                f"budget {limit}={maximum:g} would be exceeded: used {used:g}, this needs up to {requested:g}"
            )
        super().__init__(text, run_id=run_id)
        self.limit = limit
        self.maximum = maximum
        self.used = used
        self.requested = requested


class CircuitOpen(AgentError):
    """The breaker of a model is open after repeated failures; calls fail fast until `retry_in_s`."""

    def __init__(self, model: str, failures: int, retry_in_s: float) -> None:
        super().__init__(
            f"circuit open for {model} after {failures} failures; next probe in {retry_in_s:.1f} s"
        )
        self.model = model
        self.failures = failures
        self.retry_in_s = retry_in_s


class HandoffError(AgentError):
    """A handoff to a worker that is not allowed, or with a payload its input rejects.

    Attributes:
        source: The worker handing over.
        target: The worker it named.
        reason: Why it was refused.
        value: The payload it handed over.
    """

    def __init__(
        self, source: str, target: str, reason: str, *, value: object = None, run_id: str | None = None
    ) -> None:
        payload = excerpt(value) if value is not None else None
        super().__init__(self._text(source, target, reason, payload), run_id=run_id)
        self.source = source
        self.target = target
        self.reason = reason
        self.value = value

    @staticmethod
    def _text(source: str, target: str, reason: str, payload: str | None) -> str:
        shown = f" (payload {payload})" if payload is not None else ""
        return f"handoff {source} -> {target} refused: {reason}{shown}"

    def redacted(self, redact: Redact) -> str:
        # The handoff is the model's call of its transfer action: the payload is its arguments.
        payload = (
            None
            if self.value is None
            else redact(f"transfer_to_{self.target}", "arguments", excerpt(self.value))
        )
        return self._text(self.source, self.target, self.reason, payload)


class HandoffLoop(AgentError):
    """Handoffs went round in a cycle that brought nothing new, or past `max_handoffs`.

    Attributes:
        chain: The workers in handoff order, the first one first.
    """

    def __init__(self, chain: list[str], why: str, *, run_id: str | None = None) -> None:
        super().__init__(f"handoff loop {' -> '.join(chain)}: {why}", run_id=run_id)
        self.chain = chain
        self.why = why


class StoreError(AgentError):
    """The run store cannot be used: a file that is not ours, from a newer schema, or a failed write.

    Attributes:
        path: The store (a file, or a database URL without its password).
        reason: What failed.
        transient: Whether trying again later may succeed: the database did not answer in time,
            the connection was lost, the file was locked by another process. A store that is not
            ours, a newer schema or a statement the database refused stay as they are.
    """

    def __init__(self, path: str, reason: str, *, transient: bool = False) -> None:
        super().__init__(f"store {path}: {reason}")
        self.path = path
        self.reason = reason
        self.transient = transient


class RecordedFailure(AgentError):
    """A step attempt that failed before the process stopped, given back as it was on resume.

    Replaying it (rather than trying the attempt again) keeps the resumed run on the path it
    took: the retries and re-plans that followed the failure are the ones recorded.

    Attributes:
        error_type: The class name of the original error.
        message: Its message.
    """

    def __init__(self, error_type: str, message: str, *, run_id: str | None = None) -> None:
        super().__init__(message, run_id=run_id)
        self.error_type = error_type
        self.message = message


class ReplayMismatch(AgentError):
    """A replayed run asked for something its recording does not have: it took another path.

    Attributes:
        key: The place in the run (plan version, step, attempt, handoff, worker, turn, call).
        what: What was asked for ("a model answer", "the result of tool 'refund'").
    """

    def __init__(self, run_id: str, key: str, what: str) -> None:
        super().__init__(
            f"replay of run {run_id}: {what} at {key} is not in the recording; the run now takes "
            "another path than the one recorded",
            run_id=run_id,
        )
        self.key = key
        self.what = what


class RunNotFound(AgentError):
    """A run id the store does not have.

    Attributes:
        where: The store (its file).
    """

    def __init__(self, run_id: str, where: str) -> None:
        super().__init__(f"no run {run_id!r} in {where}", run_id=run_id)
        self.where = where


class ResumeError(AgentError):
    """A run cannot be resumed: it no longer matches the code (workers, plan) or is already running."""

    def __init__(self, run_id: str, reason: str) -> None:
        super().__init__(f"cannot resume run {run_id}: {reason}", run_id=run_id)
        self.reason = reason


class RunTakenOver(ResumeError):
    """Another process took the run over while this one ran it: this one writes and starts nothing more."""

    def __init__(self, run_id: str, owner: str | None) -> None:
        reason = f"another process has taken it over (it is no longer {owner}'s): this one stops"
        super().__init__(run_id, reason)
        self.owner = owner
