"""A tool call run as its journal's durable step (DBOS).

The engine checks for a record before the tool and records after it, so a step can fail on
either side of the tool; the call's record must then still say whether it ran, as without steps.
"""

from __future__ import annotations

from typing import Any

from tools import Tool

from ._events import ToolStatus
from ._messages import ToolResultPart
from ._prepared import Prepared
from ._replay import CallJournal, CallSteps
from ._toolrun import run_call

__all__ = ["in_step"]


async def in_step(
    steps: CallSteps,
    journal: CallJournal | None,
    item: Prepared,
    tool: Tool,
    kwargs: dict[str, Any],
    arguments_json: str,
    limit: int | None,
) -> tuple[ToolResultPart, ToolStatus, float, bool]:
    """Run the tool inside the journal's durable step for this call (see
    `ToolRunner._execute`): the result, its status, how long it ran, and whether the run is
    stopping.

    The step can fail around the tool (its engine checks for a record before, and records
    after): stopped before the tool began, it never ran, and is journaled so, as a stop
    while its start is written is; stopped after it ended, its result is journaled here as
    without steps, then the error stands."""
    call = item.call
    done: list[Any] = []  # [] before the tool began; [None] while it runs; then its outcome

    async def execute() -> tuple[ToolResultPart, ToolStatus, float]:
        done.append(None)
        done[0] = await run_call(tool, kwargs, call, limit)
        return done[0][:3]  # type: ignore[no-any-return]

    try:
        result, status, duration = await steps.tool(item.key, call, arguments_json, execute)
    except BaseException:
        if journal is not None and not done:  # it never ran: the model is told so on resume
            never = ToolResultPart(call.id, call.name, "Not run: the run stopped before it started.", True)
            await journal.tool_finished(item.key, call, arguments_json, never, "error", 0.0, durable=False)
        elif journal is not None and done[0] is not None:  # it ran: its result is kept
            result, status, duration, _ = done[0]
            await journal.tool_finished(
                item.key, call, arguments_json, result, status, duration, durable=True
            )
        raise
    return result, status, duration, bool(done and done[0] is not None and done[0][3])
