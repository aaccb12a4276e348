"""Events the worker layer emits, and the sink Protocol the layers above implement.

Tracing is not wired into the core: code here calls `sink.emit(event)` and knows nothing of
where events go. The supervisor's tracer, a progress display or a test list implements the sink.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from ._usage import Usage

__all__ = [
    "ApprovalEvent",
    "Event",
    "EventSink",
    "ModelCallEvent",
    "ModelRetryEvent",
    "NullSink",
    "RateLimitWaitEvent",
    "RepairEvent",
    "ToolCallEvent",
]


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


@dataclass(frozen=True, slots=True)
class ModelCallEvent:
    """A model call finished (after any retries)."""

    model: str
    usage: Usage
    stop_reason: str
    latency_s: float
    first_token_s: float | None
    request_id: str | None
    kind: Literal["model_call"] = "model_call"


ToolStatus = Literal["ok", "error", "invalid", "unknown", "timeout", "denied"]


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
    kind: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True, slots=True)
class ApprovalEvent:
    """A decision on a risky tool call."""

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


Event = ModelRetryEvent | RateLimitWaitEvent | ModelCallEvent | ToolCallEvent | ApprovalEvent | RepairEvent


class EventSink(Protocol):
    """Receives events as they happen; must not block."""

    def emit(self, event: Event) -> None:
        """Record one event."""
        ...


class NullSink:
    """The default sink: drops every event."""

    __slots__ = ()

    def emit(self, event: Event) -> None:
        """Drop the event."""
