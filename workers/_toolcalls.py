"""One turn's tool calls: check them, ask for approval, run them, and answer every one.

Every call the model made gets exactly one result, in call order, whatever happened to it:
unknown tool, invalid arguments, denied, timed out, raised, or ran. Problems go back to the model
as error results while repairs are allowed; past the bounds they end the worker with a typed error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from tools import Tool, parse_arguments_text, truncate_result
from tools.errors import (
    LoopDetected,
    ResumeError,
    ToolArgumentsError,
    ToolInterrupted,
    ToolTimeoutError,
    UnknownToolError,
    excerpt,
)

from ._approval_calls import approve
from ._context import RunContext
from ._events import ToolCallEvent, ToolStatus
from ._messages import ToolCallPart, ToolResultPart
from ._prepared import Issue, Prepared, issues_text, parsed
from ._replay import ToolRecord, steps_of
from ._toolrun import run_call
from ._toolstep import in_step

__all__ = ["ToolRunner"]

_OWN_BOUNDS = frozenset({"timeout", "invalid", "unknown"})  # ToolTimeoutError, repairs, UnknownToolError


def _streaks(
    counts: dict[tuple[str, str], int], prepared: Sequence[Prepared], status: ToolStatus
) -> dict[str, Prepared]:
    """Count, per tool, the turns in a row with a call of this status (a turn without one resets
    it) under (status, tool) in `counts`; the calls of this turn with it, by tool."""
    hit = {i.call.name: i for i in prepared if i.status == status}
    if not hit and not counts:  # the common turn: nothing failed now or before
        return hit
    for name in {i.call.name for i in prepared if i.tool is not None}:
        key = (status, name)
        if name in hit:
            counts[key] = counts.get(key, 0) + 1
        else:
            counts.pop(key, None)
    return hit


class ToolRunner:
    """Runs the tool calls of one worker run, keeping the repair and loop counters across turns."""

    __slots__ = (
        "_seen",
        "_streak",
        "_unknown",
        "_unsaved",
        "ctx",
        "loop_limit",
        "max_result_chars",
        "repairs",
        "tools",
        "worker",
    )

    def __init__(
        self,
        worker: str,
        tools: Mapping[str, Tool],
        ctx: RunContext,
        *,
        repairs: int,
        loop_limit: int,
        max_result_chars: int | None,
    ) -> None:
        self.worker = worker
        self.tools = tools
        self.ctx = ctx
        self.repairs = repairs
        self.loop_limit = loop_limit
        self.max_result_chars = max_result_chars
        # Turns in a row with invalid arguments ("invalid", tool) or a timeout ("timeout", tool).
        self._streak: dict[tuple[str, str], int] = {}
        self._unknown = 0
        # per (tool, canonical arguments): calls in a row with the same result, and that result
        self._seen: dict[tuple[str, str], tuple[int, str]] = {}
        self._unsaved = False

    async def run_turn(
        self, calls: Sequence[ToolCallPart], reason: str, key: str = "", unsaved: bool = False
    ) -> tuple[ToolResultPart, ...]:
        """Answer every call of one model turn, in call order.

        `key` is the turn's journal key; `unsaved` says its response is not committed yet: it is
        committed before a person is asked or an idempotent tool runs, with the start of a tool
        that is not idempotent, and at the end of the turn at the latest.
        """
        prepared = list(map(self._prepare, calls))  # not a comprehension: `self` would be a cell
        self._check_bounds(prepared)
        journal = self.ctx.journal
        self._unsaved = unsaved and journal is not None
        if journal is not None and key:
            for index, item in enumerate(prepared):
                if item.result is None and item.tool is not None:
                    item.key = f"{key}/{index}"
                    self._recall(item, item.tool, journal.tool(item.key))
        for item in prepared:
            if item.result is None and item.tool is not None and item.tool.risky and not item.approved:
                await self._commit()
                await approve(self.ctx, self.worker, item, item.tool, reason, self._answer)
        runnable = [
            (i, i.tool, i.kwargs)
            for i in prepared
            if i.result is None and i.tool is not None and i.kwargs is not None
        ]
        if any(tool.idempotent for _, tool, _ in runnable):  # it starts with no commit of its own
            await self._commit()
        if len(runnable) == 1:  # the common case: no task group, no extra task
            await self._execute(*runnable[0])
        elif runnable:
            async with asyncio.TaskGroup() as group:
                for run in runnable:
                    group.create_task(self._execute(*run))
        for item in prepared:  # every call gets its one result, whatever happened to its task
            if item.result is None:
                self._answer(item, "The tool did not finish.", "error")
        await self._commit()
        self._count_timeouts(prepared)
        self._note_results(prepared)
        return tuple(item.result for item in prepared if item.result is not None)

    async def _commit(self) -> None:
        """Commit the turn's response, once."""
        if self._unsaved and self.ctx.journal is not None:
            self._unsaved = False
            await self.ctx.journal.commit()

    def _prepare(self, call: ToolCallPart) -> Prepared:
        item = Prepared(call)
        tool = self.tools.get(call.name)
        if tool is None:
            available = ", ".join(sorted(self.tools)) or "none"
            self._answer(item, f"Unknown tool {call.name!r}. Available tools: {available}.", "unknown")
            return item
        item.tool = tool
        arguments, issues = parsed(call)
        kwargs, issues = tool.validated(arguments) if arguments is not None else (None, issues)
        if arguments is None or kwargs is None:
            self._answer(item, issues_text(call.name, issues), "invalid", issues)
            return item
        item.kwargs, item.arguments = kwargs, arguments
        same = self._seen.get((call.name, item.arguments_json()))
        if same is not None and same[0] >= self.loop_limit - 1:  # this call would be one more
            raise LoopDetected(self.worker, call.name, item.canonical, same[0] + 1)
        return item

    def _note_results(self, prepared: Sequence[Prepared]) -> None:
        """Count, per tool and arguments, the calls in a row that were answered the same: a call
        repeated with nothing new (the same result, the same error, the same denial) is a loop;
        one whose result changes (a job's status, polled) is progress. Timeouts, invalid
        arguments and unknown tools have bounds of their own."""
        seen = self._seen
        for item in prepared:
            result = item.result
            if result is None or item.arguments is None or item.status in _OWN_BOUNDS:
                continue
            key = (item.call.name, item.arguments_json())
            content = result.content  # kept by the conversation anyway: no copy, no hash
            before = seen.get(key)
            if before is not None and before[1] == content:
                seen[key] = (before[0] + 1, content)
            else:
                seen[key] = (1, content)

    def _recall(self, item: Prepared, tool: Tool, record: ToolRecord | None) -> None:
        """Take up what a resumed run's journal says of this call."""
        if record is None:
            return
        if record.tool != tool.name:  # the journal does not describe this run any more
            raise ResumeError(
                self.ctx.run_id or "",
                f"its journal has a call of {record.tool!r} at {item.key}, "
                f"where the run now calls {tool.name!r}",
            )
        if record.state == "finished" and record.result is not None:
            item.result, item.status = record.result, record.status or "ok"
            self._emit(
                item.call, item.status, 0.0, len(record.result.content), "recorded result (resumed run)"
            )
            return
        # Approved and not started yet, or started and never finished (it may have taken effect).
        item.starts = record.starts
        item.approved = record.state == "approved"
        if record.state == "started" and not tool.idempotent and not tool.risky:
            raise ToolInterrupted(tool.name, record.arguments_json, item.key, run_id=self.ctx.run_id)
        arguments, issues = parse_arguments_text(record.arguments_json)
        if isinstance(arguments, dict) and not issues:  # what ran, a person's edit included
            kwargs, _ = tool.validated(arguments)
            if kwargs is not None:
                item.kwargs, item.arguments, item.canonical = kwargs, arguments, ""

    def _check_bounds(self, prepared: Sequence[Prepared]) -> None:
        """Count this turn's failures, once per tool per turn; past the allowed repairs, end the worker."""
        for name, item in _streaks(self._streak, prepared, "invalid").items():
            streak = self._streak[("invalid", name)]
            if streak > self.repairs:
                raw = item.call.raw_arguments
                raise ToolArgumentsError(name, item.issues, attempts=streak, raw_arguments=raw)
        unknown = [i.call.name for i in prepared if i.status == "unknown"]
        self._unknown = self._unknown + 1 if unknown else 0
        if self._unknown > self.repairs:
            raise UnknownToolError(unknown[0], sorted(self.tools), attempts=self._unknown)

    def _count_timeouts(self, prepared: Sequence[Prepared]) -> None:
        """A tool that keeps timing out, turn after turn, ends the worker."""
        for name, item in _streaks(self._streak, prepared, "timeout").items():
            tool, streak = item.tool, self._streak[("timeout", name)]
            if streak > self.repairs and tool is not None and tool.timeout_s is not None:
                raise ToolTimeoutError(name, tool.timeout_s, attempts=streak)

    async def _execute(self, item: Prepared, tool: Tool, kwargs: dict[str, Any]) -> None:
        call = item.call
        journal = self.ctx.journal if item.key else None
        durable = not tool.idempotent  # its start is committed before it runs: a kill never hides a run
        arguments_json = item.arguments_json()
        if journal is not None and durable:
            try:
                await journal.tool_started(item.key, call, arguments_json, durable=True)
            except BaseException:  # stopped while the start was being written: it never ran
                never = ToolResultPart(
                    call.id, call.name, "Not run: the run stopped before it started.", True
                )
                await journal.tool_finished(
                    item.key, call, arguments_json, never, "error", 0.0, durable=False
                )
                raise
            self._unsaved = False  # the start was committed with the response
        steps = steps_of(journal)
        if steps is None:
            item.result, item.status, duration, stopping = await run_call(
                tool, kwargs, call, self.max_result_chars
            )
        else:
            item.result, item.status, duration, stopping = await in_step(
                steps, journal, item, tool, kwargs, arguments_json, self.max_result_chars
            )
        text, status = item.result.content, item.status
        if journal is not None:
            await journal.tool_finished(
                item.key, call, arguments_json, item.result, status, duration, durable=durable
            )
        self._emit(
            call,
            status,
            duration,
            len(text),
            "" if status == "ok" else text,
            arguments_json,
        )
        if stopping:  # recorded: now the run stops, as it was asked to
            raise asyncio.CancelledError

    def _answer(self, item: Prepared, text: str, status: ToolStatus, issues: Sequence[Issue] = ()) -> None:
        text = truncate_result(text, self.max_result_chars)  # what the model gets is bounded, errors too
        item.result = ToolResultPart(item.call.id, item.call.name, text, is_error=True)
        item.status, item.issues = status, list(issues)
        detail = "; ".join(f"{path}: {rule}" for path, _, rule in issues) if issues else text
        self._emit(item.call, status, 0.0, len(text), detail)

    def _emit(
        self,
        call: ToolCallPart,
        status: ToolStatus,
        duration: float,
        chars: int,
        detail: str,
        ran_with: str | None = None,
    ) -> None:
        # The trace shows the arguments that ran (a person's edit included), else the model's text.
        arguments = ran_with if ran_with is not None else call.raw_arguments
        redact = self.ctx.redact
        if redact is not None:
            arguments = redact(call.name, "arguments", arguments)
            # Why arguments were refused quotes them ("'4111...' does not match"): as arguments.
            what = "arguments" if status == "invalid" else "result"
            detail = redact(call.name, what, detail) if detail else detail
        if detail:  # cut after redaction: a cut secret could escape the redactor
            detail = excerpt(detail, 300)
        scope = self.ctx.scope
        event = ToolCallEvent(
            self.worker, call.name, call.id, arguments, status, duration, chars, detail, scope
        )
        self.ctx.events.emit(event)
