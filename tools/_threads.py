"""Blocking calls in daemon threads of their own, awaited from the event loop.

`asyncio.to_thread` uses the loop's default executor, whose threads `asyncio.run` joins on the
way out and the interpreter joins at exit: one blocked call (a tool past its timeout, an
approver waiting on `input()`) holds the process open for as long as it blocks. A daemon thread
does not: what waited for it gets its answer, or has stopped waiting, and the process can end.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["in_daemon_thread", "is_async"]


def is_async(function: object) -> bool:
    """Whether calling `function` gives a coroutine to await: an async function, a partial of
    one, or an object whose `__call__` is async. Anything else runs as a blocking call."""
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(type(function).__call__)


def in_daemon_thread(call: Callable[[], Any], name: str = "blocking-call") -> asyncio.Future[Any]:
    """`call()` in a new daemon thread, in a copy of this context (as `to_thread` does); its
    outcome as a future of this loop. Cancelling the future leaves the thread to finish on its
    own and drops its answer."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)

    def run() -> None:
        try:
            value, error = context.run(call), None
        except BaseException as exc:  # handed to the loop as the call's outcome
            value, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:  # the loop is closed: nobody waits for the answer any more
            pass

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
