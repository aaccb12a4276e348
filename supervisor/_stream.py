"""Events of one run as an async iterator, and a sink that hands each event to two."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from workers import Event, EventSink
from workers._events import CallbackSink

from ._result import RunResult

__all__ = ["Both", "stream_events"]

_END = object()


class Both:
    """A sink that hands each event to two sinks, in order."""

    __slots__ = ("_first", "_second")

    def __init__(self, first: EventSink, second: EventSink) -> None:
        self._first = first
        self._second = second

    def emit(self, event: Event) -> None:
        """Pass the event to both."""
        self._first.emit(event)
        self._second.emit(event)

    def for_run(self, run_id: str) -> EventSink:
        """Both sinks as one run sees them (a sink that keeps state per run gets its own)."""
        return Both(_for_run(self._first, run_id), _for_run(self._second, run_id))


def _for_run(sink: EventSink, run_id: str) -> EventSink:
    for_run = getattr(sink, "for_run", None)
    return for_run(run_id) if callable(for_run) else sink


async def stream_events(
    start: Callable[[EventSink], Awaitable[RunResult]],
) -> AsyncGenerator[Event | RunResult, None]:
    """Run `start(sink)` and yield each event the sink gets as it comes, then the result.

    The run's errors are raised from the iterator. Leaving the loop early (or closing the
    iterator) cancels the run and waits for it: no task outlives the iteration.
    """
    queue: asyncio.Queue[Any] = asyncio.Queue()
    run = asyncio.ensure_future(start(CallbackSink(queue.put_nowait)))
    run.add_done_callback(lambda _: queue.put_nowait(_END))
    try:
        while (item := await queue.get()) is not _END:  # ends: the run always finishes, then _END
            yield item
        yield run.result()
    finally:
        if not run.done():
            run.cancel()
        await asyncio.gather(run, return_exceptions=True)
