"""Events the worker layer emits, and the sink Protocol the layers above implement.

Tracing is not wired into the core: code here calls `sink.emit(event)` and knows nothing of
where events go. The supervisor's tracer, a progress display or a test list implements the sink.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from ._usage import Usage

__all__ = ["Event", "EventSink", "ModelCallEvent", "ModelRetryEvent", "NullSink", "RateLimitWaitEvent"]


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


Event = ModelRetryEvent | RateLimitWaitEvent | ModelCallEvent


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
