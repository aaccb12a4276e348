"""Events the worker layer emits, and the sink Protocol the layers above implement.

Tracing is not wired into the core: code here calls `sink.emit(event)` and knows nothing of
where events go. The supervisor's tracer, a progress display or a test list implements the sink.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from tools._threads import is_async
from tools.errors import ConfigurationError

from ._records import fast_init
from ._usage import Usage

__all__ = [
    "ApprovalEvent",
    "CompactionEvent",
    "RunEvent",
    "BreakerEvent",
    "BudgetEvent",
    "CallbackSink",
    "HandoffEvent",
    "PlanEvent",
    "StepEvent",
    "Event",
    "EventSink",
    "ModelCallEvent",
    "ModelRetryEvent",
    "NullSink",
    "RateLimitWaitEvent",
    "RepairEvent",
    "ToolCallEvent",
    "as_sink",
]


@fast_init
@dataclass(frozen=True, slots=True)
class RunEvent:
    """A supervisor run started, or ended ("succeeded", "failed", "aborted", with why)."""

    run_id: str
    status: Literal["started", "succeeded", "failed", "aborted"]
    goal: str | None
    detail: str = ""
    kind: Literal["run"] = "run"


@dataclass(frozen=True, slots=True)
class ModelRetryEvent:
    """A model request failed with a retryable error and will be sent again after `delay_s`."""

    model: str
    attempt: int
    delay_s: float
    error: str
    status_code: int | None
    kind: Literal["model_retry"] = "model_retry"


@dataclass(frozen=True, slots=True)
class RateLimitWaitEvent:
    """A request waited for the rate limiter before it was sent."""

    model: str
    waited_s: float
    reason: str
    kind: Literal["rate_limit_wait"] = "rate_limit_wait"


@fast_init
@dataclass(frozen=True, slots=True)
class ModelCallEvent:
    """A model call finished (after any retries).

    `worker` and `scope` say who called and where in the run (plan version, step, attempt,
    handoff; "plan1" for the planner, "answer" for the synthesis); empty outside a worker.
    """

    model: str
    usage: Usage
    stop_reason: str
    latency_s: float
    first_token_s: float | None
    request_id: str | None
    worker: str = ""
    scope: str = ""
    kind: Literal["model_call"] = "model_call"


ToolStatus = Literal["ok", "error", "invalid", "unknown", "timeout", "denied"]


@fast_init
@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    """One tool call of a worker, run or refused.

    `status`: "ok"; "error" (the tool raised); "invalid" (arguments failed the schema);
    "unknown" (no such tool); "timeout"; "denied" (a person or policy said no).
    """

    worker: str
    tool: str
    call_id: str
    arguments: str
    status: ToolStatus
    duration_s: float
    result_chars: int
    detail: str = ""
    scope: str = ""  # where in the run (see ModelCallEvent)
    kind: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True, slots=True)
class ApprovalEvent:
    """A risky tool call waiting for a person (`decision` "requested"), or the decision taken."""

    worker: str
    tool: str
    call_id: str
    decision: str
    by: str
    reason: str
    waited_s: float
    kind: Literal["approval"] = "approval"


@dataclass(frozen=True, slots=True)
class RepairEvent:
    """The model is asked to try again: `what` was wrong ("output", "refusal", "truncated")."""

    worker: str
    what: str
    attempt: int
    detail: str
    kind: Literal["repair"] = "repair"


@fast_init
@dataclass(frozen=True, slots=True)
class PlanEvent:
    """A plan was made (or re-made): the steps, and why each worker was chosen."""

    attempt: int
    steps: tuple[tuple[str, str, tuple[str, ...], str], ...]  # (id, worker, depends_on, reason)
    reasoning: str
    kind: Literal["plan"] = "plan"


@fast_init
@dataclass(frozen=True, slots=True)
class StepEvent:
    """A plan step started, finished, failed or is retried."""

    step: str
    worker: str
    status: Literal["started", "finished", "failed", "retrying"]
    attempt: int
    detail: str = ""
    kind: Literal["step"] = "step"


@dataclass(frozen=True, slots=True)
class HandoffEvent:
    """A worker handed its task over: why the run went to `target`."""

    step: str
    source: str
    target: str
    reason: str
    kind: Literal["handoff"] = "handoff"


@dataclass(frozen=True, slots=True)
class BudgetEvent:
    """A budget decision: a call's worst case reserved, a call refused, its max_tokens lowered,
    or a model that has no price."""

    worker: str
    model: str
    action: Literal["reserved", "refused", "lowered", "unpriced"]
    detail: str
    kind: Literal["budget"] = "budget"


@dataclass(frozen=True, slots=True)
class CompactionEvent:
    """A worker's conversation was compacted to fit the context window.

    `strategy` is what it took: "trim" (old tool results shortened to a stub), "summarise"
    (the oldest turns replaced by a summary), "drop" (the oldest turns removed); `reason` is
    "threshold" (before the call) or "refused" (the provider said the prompt was too long).
    """

    worker: str
    strategy: str
    reason: str
    tokens_before: int
    tokens_after: int
    messages_before: int
    messages_after: int
    scope: str = ""
    kind: Literal["compaction"] = "compaction"


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """A model's circuit breaker changed state."""

    model: str
    state: Literal["open", "half_open", "closed"]
    failures: int
    kind: Literal["breaker"] = "breaker"


Event = (
    RunEvent
    | ModelRetryEvent
    | RateLimitWaitEvent
    | ModelCallEvent
    | ToolCallEvent
    | ApprovalEvent
    | RepairEvent
    | PlanEvent
    | StepEvent
    | HandoffEvent
    | BudgetEvent
    | CompactionEvent
    | BreakerEvent
)


class EventSink(Protocol):
    """Receives events as they happen; must not block.

    A sink that would drop every `ModelCallEvent` may say so with a class attribute
    `drops_model_calls = True`: the per-call event is then not even built.
    """

    def emit(self, event: Event) -> None:
        """Record one event."""
        ...


class NullSink:
    """The default sink: drops every event."""

    __slots__ = ()

    def emit(self, event: Event) -> None:
        """Drop the event."""


class CallbackSink:
    """A sink that calls a function with each event."""

    __slots__ = ("_callback",)

    def __init__(self, callback: Callable[[Event], Any]) -> None:
        self._callback = callback

    def emit(self, event: Event) -> None:
        """Call the function."""
        self._callback(event)


def as_sink(events: EventSink | Callable[[Event], Any]) -> EventSink:
    """A sink as it is; a plain callable wrapped so that it is called with each event.

    Raises:
        ConfigurationError: neither (a class given for its instance, or an async function,
            whose coroutines nobody would await: every event would be lost).
    """
    if isinstance(events, type):
        raise ConfigurationError(f"events={events.__name__}: give an instance, events={events.__name__}()")
    if hasattr(events, "emit"):
        return events
    if not callable(events):
        raise ConfigurationError(
            f"events must be a sink (with emit) or a function of each event, got {events!r}"
        )
    if is_async(events):
        raise ConfigurationError(
            f"events={getattr(events, '__name__', events)!r} is async: events are emitted as they happen, "
            "without waiting, so its coroutines would never run; give a plain function "
            "(it may put each event on an asyncio.Queue), or use `async for` over Supervisor.stream()"
        )
    return CallbackSink(events)
