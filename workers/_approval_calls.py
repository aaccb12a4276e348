"""A risky tool call put to a person before it runs, and the decision kept.

The person approves exactly what will run: the validated arguments, or their own edit of them.
A denial answers the call without running it. The journal keeps the decision, so a resumed run
takes the same one: a person is not asked twice about one call.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tools import Tool
from tools._jsontext import canonical_json
from tools.errors import RunAborted

from ._context import RunContext
from ._events import ApprovalEvent, ToolStatus
from ._hooks import RERUN_NOTE, ApprovalRequest, sound
from ._prepared import Prepared

__all__ = ["approve"]

# How the tool runner answers a call that will not run (an error result and its event).
Answer = Callable[[Prepared, str, ToolStatus], None]


async def approve(
    ctx: RunContext, worker: str, item: Prepared, tool: Tool, reason: str, answer: Answer
) -> None:
    """Ask `ctx.gate` about the call: approved, it keeps (or takes a person's edit of) its
    arguments; denied, `answer` answers it; aborted, the run ends (`RunAborted`)."""
    call = item.call
    # The person approves exactly what will run: the validated arguments, not the raw call.
    arguments = dict(item.arguments or {})
    key = item.key
    if item.starts:  # asked again, under a key of its own: the earlier approval was used
        key = f"{key}@{item.starts}"
        reason = f"{RERUN_NOTE}\n\n{reason}"
    request = ApprovalRequest(ctx.run_id, worker, call.name, arguments, call.id, reason, tool.parameters, key)
    ctx.events.emit(ApprovalEvent(worker, call.name, call.id, "requested", "", "", 0.0))
    started = time.monotonic()
    decision = sound(await ctx.gate.review(request))
    waited = time.monotonic() - started if decision.waited_s is None else decision.waited_s
    ctx.events.emit(
        ApprovalEvent(worker, call.name, call.id, decision.kind, decision.by, decision.reason, waited)
    )
    if decision.kind == "abort":
        raise RunAborted(call.name, decision.reason, by=decision.by)
    if decision.kind == "deny":
        answer(item, _denied(decision.by, decision.reason), "denied")
    elif decision.kind == "edit":
        edited = dict(decision.arguments or {})
        kwargs, issues = tool.validated(edited)
        if kwargs is None:
            text = "The arguments a person edited are invalid, so the call was not run: "
            answer(item, text + "; ".join(f"{p}: {r}" for p, _, r in issues), "denied")
        else:
            item.kwargs, item.arguments, item.canonical = kwargs, edited, ""
    journal = ctx.journal
    if item.result is None and journal is not None and item.key:  # approved, maybe edited
        await journal.tool_approved(item.key, call, item.arguments_json())
    if item.result is not None and journal is not None and item.key:
        # Whoever decided (a callable, a terminal, the store's queue), a resumed run takes
        # the same decision: a person is not asked twice, and the answers that follow fit.
        arguments_json = canonical_json(arguments)
        await journal.tool_finished(item.key, call, arguments_json, item.result, "denied", 0.0, durable=True)


def _denied(by: str, reason: str) -> str:
    """What the model is told of a denial: who denied the call (a person, the approver, no one
    answering in time, the policy), and why."""
    why = reason or "no reason given"
    if by == "timeout":
        return f"This call was not approved in time, so it was not run: {why}."
    if by == "policy":
        return f"This call was not run: {why}."
    if by == "approver":
        return f"The approver denied this call: {why}."
    return f"A person denied this call: {why}."
