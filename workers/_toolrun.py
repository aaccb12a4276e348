"""One tool call's run: what the model reads of it, whatever happened.

A tool's result, its failure, its timeout, or a stop of the whole run while it ran, each become
the text the model gets and a status.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tools import Tool, serialize_result, truncate_result

from ._events import ToolStatus

__all__ = ["outcome"]


async def outcome(tool: Tool, kwargs: dict[str, Any], limit: int | None) -> tuple[str, ToolStatus, bool]:
    """Run the tool: the text the model gets, its status, and whether the run is stopping.

    A run cancelled while a plain function runs in its thread cannot stop the thread: its
    effect happens anyway. So the thread is waited for (bounded) and its result kept, then
    the run stops; a resumed run finds the call finished rather than caught half-way.
    """
    running = asyncio.ensure_future(tool.invoke(kwargs)) if tool.is_sync else None
    deadline = asyncio.timeout(tool.timeout_s) if tool.timeout_s is not None else None
    try:
        if deadline is None:  # no limit: no timeout to enter and leave at every call
            value = await (asyncio.shield(running) if running is not None else tool.invoke(kwargs))
        else:
            async with deadline:
                value = await (asyncio.shield(running) if running is not None else tool.invoke(kwargs))
    except TimeoutError as exc:
        if running is not None:
            running.cancel()  # the thread runs on; nothing waits for it any more
        if deadline is not None and deadline.expired():
            return _timed_out(tool), "timeout", False
        return f"The tool failed: TimeoutError: {exc}", "error", False  # its own, not ours
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is None or not current.cancelling():
            if running is not None:
                running.cancel()
            return "The tool was cancelled before it finished.", "error", False
        if running is None:
            raise  # the run itself is being cancelled, and the tool with it
        return await _after_stop(running, limit)
    except Exception as exc:  # a tool's failure is the model's to handle, not a crash
        return f"The tool failed: {type(exc).__name__}: {exc}", "error", False
    return _shown(value, limit), "ok", False


def _timed_out(tool: Tool) -> str:
    text = f"The tool timed out after {tool.timeout_s:g} s."
    if tool.is_sync:  # a thread cannot be stopped: say so, so the model does not blindly repeat it
        text += " It may still be running, and its effect may still happen: check before calling it again."
    return text


# How long a stopping run waits for a tool's thread to finish, so as to keep its result.
_THREAD_GRACE_S = 30.0


async def _after_stop(running: asyncio.Future[Any], limit: int | None) -> tuple[str, ToolStatus, bool]:
    """The result of a tool's thread that the run's stop could not stop (see `outcome`)."""
    try:
        async with asyncio.timeout(_THREAD_GRACE_S):
            value = await asyncio.shield(running)
    except TimeoutError:
        running.cancel()
        raise asyncio.CancelledError from None  # still running: it stays started, never finished
    except asyncio.CancelledError:
        running.cancel()
        raise
    except Exception as exc:
        return f"The tool failed: {type(exc).__name__}: {exc}", "error", True
    return _shown(value, limit), "ok", True


def _shown(value: Any, limit: int | None) -> str:
    """A tool's return value as the model reads it."""
    return truncate_result(serialize_result(value), limit) or "(empty result)"
