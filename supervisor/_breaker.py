"""Circuit breakers per provider model: fail fast while a model is down.

Closed: calls go through. After `failures` consecutive failures (or calls slower than
`slow_call_s`, which count as failures) the breaker opens: calls fail at once with
`CircuitOpen`. A 429 is not a failure: the provider answered, and the rate limits and its
retry-after pace the calls. After `cooldown_s` it is half-open: one probe call goes through; its success
closes the breaker, its failure opens it again. A probe that ends with no outcome (cancelled, out of
time before it was sent, a 400) lets the next call probe.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from tools.errors import CircuitOpen
from workers import BreakerEvent, EventSink, NullSink

__all__ = ["BreakerSettings", "CircuitBreaker", "CircuitBreakers"]


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """When a breaker opens and how long it stays open."""

    failures: int = 5
    cooldown_s: float = 30.0
    slow_call_s: float | None = None


class CircuitBreaker:
    """The breaker of one model."""

    __slots__ = ("model", "settings", "events", "state", "failures", "opened_at", "probe", "_probing")

    def __init__(self, model: str, settings: BreakerSettings, events: EventSink) -> None:
        self.model = model
        self.settings = settings
        self.events = events
        self.state: Literal["closed", "open", "half_open"] = "closed"
        self.failures = 0
        self.opened_at = 0.0
        self._probing = False
        self.probe = 0  # which probe was let through last: a release names the one it ends

    def check(self) -> None:
        """Raise CircuitOpen while open; after the cooldown, let exactly one probe through."""
        if self.state == "closed":
            return
        wait = self.opened_at + self.settings.cooldown_s - time.monotonic()
        if self.state == "open" and wait <= 0:
            self._move("half_open")
        if self.state == "half_open" and not self._probing:
            self._probing = True
            self.probe += 1
            return
        raise CircuitOpen(self.model, self.failures, max(wait, 0.0))

    def record(self, failed: bool, latency_s: float) -> None:
        """Count one attempt: a provider failure, or a success (slow successes count as failures)."""
        slow = self.settings.slow_call_s is not None and latency_s > self.settings.slow_call_s
        self._probing = False
        if failed or slow:
            self.failures += 1
            if self.state == "half_open" or self.failures >= self.settings.failures:
                self.opened_at = time.monotonic()
                self._move("open")
        else:
            self.failures = 0
            if self.state != "closed":
                self._move("closed")

    def release(self, probe: object) -> None:
        """The call let through as `probe` (read after `check`) ended with no outcome to record:
        if it is the probe still out, the next call may probe (cancelled, or refused before it
        was sent, it would hold the breaker half-open for good). A call let through earlier
        releases nothing: the probe out now is another's."""
        if self.state == "half_open" and probe == self.probe:
            self._probing = False

    def _move(self, state: Literal["closed", "open", "half_open"]) -> None:
        if state != self.state:
            self.state = state
            self.events.emit(BreakerEvent(self.model, state, self.failures))


class CircuitBreakers:
    """The breakers of every model; share one object across runs to share what they learned."""

    __slots__ = ("settings", "events", "_breakers")

    def __init__(self, settings: BreakerSettings | None = None, events: EventSink | None = None) -> None:
        self.settings = settings or BreakerSettings()
        self.events: EventSink = events or NullSink()
        self._breakers: dict[str, CircuitBreaker] = {}

    def for_model(self, model_id: str) -> CircuitBreaker:
        """The breaker of "provider:name", created closed on first use."""
        breaker = self._breakers.get(model_id)
        if breaker is None:
            breaker = self._breakers[model_id] = CircuitBreaker(model_id, self.settings, self.events)
        return breaker
