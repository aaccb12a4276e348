"""One tool call's run: what the model reads of it, whatever happened.

A tool's result, its failure, its timeout, or a stop of the whole run while it ran, each become
the text the model gets and a status.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tools import Tool, serialize_result, truncate_result

from ._events import ToolStatus
from ._messages import ToolCallPart, ToolResultPart

__all__ = ["outcome", "run_call"]


async def run_call(
    tool: Tool, kwargs: dict[str, Any], call: ToolCallPart, limit: int | None
) -> tuple[ToolResultPart, ToolStatus, float, bool]:
    """Run the tool: the result the model gets, its status, how long it ran, and whether the
    run is stopping."""
    started = time.monotonic()
    text, status, stopping = await outcome(tool, kwargs, limit)
    result = ToolResultPart(call.id, call.name, text, status != "ok")
    return result, status, time.monotonic() - started, stopping


async def outcome(tool: Tool, kwargs: dict[str, Any], limit: int | None) -> tuple[str, ToolStatus, bool]:
    """Run the tool: the text the model gets, its status, and whether the run is stopping.

    A run cancelled while a plain function runs in its thread cannot stop the thread: its
    effect happens anyway. So the thread is waited for (bounded) and its result kept, then
    the run stops; a resumed run finds the call finished rather than caught half-way.

    An async tool with a `timeout_s` runs as a task of its own, so that its time limit holds even
    when it ignores being cancelled (the worker is not held up by it): at the limit it is
    cancelled and given `_CANCEL_GRACE_S` to end, then left behind.
    """
    deadline = asyncio.timeout(tool.timeout_s) if tool.timeout_s is not None else None
    running = asyncio.ensure_future(tool.invoke(kwargs)) if tool.is_sync or deadline is not None else None
    try:
        if deadline is None:  # no limit: no timeout to enter and leave at every call
            value = await (asyncio.shield(running) if running is not None else tool.invoke(kwargs))
        else:
            async with deadline:
                value = await (asyncio.shield(running) if running is not None else tool.invoke(kwargs))
    except TimeoutError as exc:
        if deadline is not None and deadline.expired():
            ended = await _stop(running, tool.is_sync)
            return _timed_out(tool, ended), "timeout", False
        return _failed(exc, limit), "error", False  # its own, not ours
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is None or not current.cancelling():
            if running is not None:
                running.cancel()
            return "The tool was cancelled before it finished.", "error", False
        if running is None:
            raise  # the run itself is being cancelled, and the tool with it
        if not tool.is_sync:
            await _stop(running, False)
            raise
        return await _after_stop(running, limit)
    except Exception as exc:  # a tool's failure is the model's to handle, not a crash
        return _failed(exc, limit), "error", False
    return _shown(value, limit), "ok", False


def _timed_out(tool: Tool, ended: bool) -> str:
    text = f"The tool timed out after {tool.timeout_s:g} s."
    if not ended:  # a thread cannot be stopped: say so, so the model does not blindly repeat it
        text += " It may still be running, and its effect may still happen: check before calling it again."
    return text


# How long a timed-out async tool may take to end once cancelled before it is left behind.
_CANCEL_GRACE_S = 1.0


async def _stop(running: asyncio.Future[Any] | None, in_thread: bool) -> bool:
    """Cancel a tool past its time; whether it ended (a thread never does: it runs on).

    An async tool gets a short grace to run its cleanup; one that ignores the cancel is left
    running, its outcome consumed so that nothing reports it as never retrieved."""
    if running is None:
        return True  # run inline: the deadline cancelled it, and it ended
    running.cancel()
    if not in_thread:
        await asyncio.wait((running,), timeout=_CANCEL_GRACE_S)
    if running.done():
        _consume(running)
        return not in_thread
    running.add_done_callback(_consume)
    return False


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


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
        return _failed(exc, limit), "error", True
    return _shown(value, limit), "ok", True


def _failed(exc: BaseException, limit: int | None) -> str:
    """What the model reads of a tool's failure, even when the exception cannot say itself; cut
    to the worker's result limit, as a result is (an exception may quote a whole payload)."""
    try:
        said = str(exc)
    except Exception as broken:  # a tool's own exception class with a broken __str__
        said = f"(its message cannot be shown: {type(broken).__name__})"
    return truncate_result(f"The tool failed: {type(exc).__name__}: {said}", limit)


def _shown(value: Any, limit: int | None) -> str:
    """A tool's return value as the model reads it."""
    return truncate_result(serialize_result(value), limit) or "(empty result)"
