"""Long bounds on many concurrent waits, kept by one timer per event loop.

Every model call is bounded by its retry policy's `max_total_s` (300 s by default). With
`asyncio.timeout`, each attempt schedules a timer handle, copies the context for it and pushes
it onto the loop's heap, where it stays, cancelled, long after the call ended; a thousand runs
in flight keep thousands of them alive. Bounds that long do not need a precise timer: here
they wait in buckets of `resolution_s`, and one timer per loop, armed only while something is
bounded, expires the due ones. A bound shorter than `precise_below_s` still gets its own
`asyncio.timeout`, so short bounds stay exact; a long one ends at most `resolution_s` late.
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType
from typing import Any

__all__ = ["Deadlines"]


class Deadlines:
    """Bounds many concurrent waits on one timer per event loop (shared by the runs of a supervisor).

    `async with deadlines.bound(seconds):` behaves like `asyncio.timeout(seconds)`: when the time
    runs out the block is cancelled and TimeoutError raised, and `expired()` tells that apart
    from a TimeoutError of the code inside.
    """

    def __init__(self, resolution_s: float = 1.0, precise_below_s: float = 30.0) -> None:
        self.resolution_s = resolution_s
        self.precise_below_s = precise_below_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buckets: dict[int, set[_Bound]] = {}  # tick -> the bounds due at it
        self._timer: asyncio.TimerHandle | None = None  # armed while anything is bounded

    def bound(self, seconds: float | None) -> _Bound | asyncio.Timeout:
        """A context manager that cancels its block after `seconds` (None: never)."""
        if seconds is None or seconds < self.precise_below_s:
            return asyncio.timeout(seconds)
        loop = self._loop
        if (
            loop is not None
            and self._buckets
            and loop is not asyncio.get_running_loop()
            and not loop.is_closed()
        ):
            return asyncio.timeout(seconds)  # another loop still has bounds here: one timer serves one loop
        return _Bound(self, seconds)

    def _add(self, bound: _Bound, seconds: float) -> int:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop: what the last one held ended with it
            self._loop, self._buckets, self._timer = loop, {}, None
        now = loop.time()
        tick = math.ceil((now + seconds) / self.resolution_s)  # never early, at most one tick late
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = set()
        bucket.add(bound)
        if self._timer is None:
            self._timer = loop.call_at(
                (math.floor(now / self.resolution_s) + 1) * self.resolution_s, self._tick
            )
        return tick

    def _remove(self, bound: _Bound, tick: int) -> None:
        bucket = self._buckets.get(tick)
        if bucket is not None:
            bucket.discard(bound)
            if not bucket:
                del self._buckets[tick]

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        now = math.floor(loop.time() / self.resolution_s)
        # Bounded: one bucket per tick up to the longest bound.
        for tick in [t for t in self._buckets if t <= now]:
            for bound in self._buckets.pop(tick):
                bound.expire()
        self._timer = loop.call_at((now + 1) * self.resolution_s, self._tick) if self._buckets else None


class _Bound:
    """One bounded block (see `Deadlines.bound`)."""

    __slots__ = ("_owner", "_seconds", "_tick", "_task", "_cancelling", "_expired")

    def __init__(self, owner: Deadlines, seconds: float) -> None:
        self._owner, self._seconds = owner, seconds
        self._tick = 0
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0
        self._expired = False

    def expired(self) -> bool:
        """Whether the time ran out (the block was cancelled for it)."""
        return self._expired

    def expire(self) -> None:
        if self._task is not None and not self._expired:
            self._expired = True
            self._task.cancel()

    async def __aenter__(self) -> _Bound:
        if self._tick:
            raise RuntimeError("a deadline bounds one block: make another with Deadlines.bound()")
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline must be used inside a task")
        self._task, self._cancelling = task, task.cancelling()
        self._tick = self._owner._add(self, self._seconds)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._owner._remove(self, self._tick)
        task, self._task = self._task, None
        # As asyncio.timeout: our cancellation becomes TimeoutError, anyone else's stays.
        if self._expired and task is not None and task.uncancel() <= self._cancelling:
            if kind is asyncio.CancelledError:
                raise TimeoutError from error
