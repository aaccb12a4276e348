"""Progress while a run runs: steps starting and finishing, who is working, what it has cost so
far, and what waits for a person.

`Progress` is an event sink: pass it as `Supervisor(events=Progress())`. On a terminal it keeps
one live status line at the bottom and prints what happened above it; elsewhere (a log, a pipe,
a test) it prints plain lines only, one per event worth telling.
"""

from __future__ import annotations

import sys
from typing import TextIO

from workers import (
    ApprovalEvent,
    Event,
    ModelCallEvent,
    ModelRetryEvent,
    PlanEvent,
    RunEvent,
    StepEvent,
    ToolCallEvent,
)

__all__ = ["Progress"]

_CLEAR = "\r\x1b[2K"


class Progress:
    """Shows runs as they happen.

    Args:
        out: Where to write (standard error by default, so the output stays clean).
        live: Keep a status line updated in place; by default, only when `out` is a terminal.
    """

    def __init__(self, out: TextIO | None = None, *, live: bool | None = None) -> None:
        self.out = out if out is not None else sys.stderr
        self.live = self.out.isatty() if live is None else live
        self.steps = 0
        self.done = 0
        self.running: dict[str, str] = {}  # step -> its worker
        self.tokens = 0
        self.cost = 0.0
        self.unpriced = False
        self.pending = 0
        self._status_shown = False

    def emit(self, event: Event) -> None:
        """Take one event: print what is worth telling, and update the status."""
        line = self._line(event)
        if self.live:
            if line is not None:
                self.out.write(_CLEAR + line + "\n")
            self.out.write(_CLEAR + self.status())
            self._status_shown = True
            if isinstance(event, RunEvent) and event.status != "started":
                self.out.write("\n")
                self._status_shown = False
            self.out.flush()
        elif line is not None:
            self.out.write(line + "\n")

    def status(self) -> str:
        """The one-line summary: steps done, who is working, cost so far, approvals waiting."""
        working = ", ".join(sorted(set(self.running.values()))) or "-"
        money = f"${self.cost:.4f}" + ("+ (unpriced calls)" if self.unpriced else "")
        waiting = f" | {self.pending} waiting for approval" if self.pending else ""
        return f"[{self.done}/{self.steps} steps] working: {working} | {self.tokens} tokens, {money}{waiting}"

    def _line(self, event: Event) -> str | None:
        if isinstance(event, ModelCallEvent):
            self.tokens += event.usage.input_tokens + event.usage.output_tokens
            self.cost += event.usage.known_cost_usd
            self.unpriced = self.unpriced or event.usage.unpriced_requests > 0
            return None
        if isinstance(event, RunEvent):
            if event.status == "started":
                return None
            return (
                f"run {event.status}" + (f": {event.detail}" if event.detail else "") + f" ({self.status()})"
            )
        if isinstance(event, PlanEvent):
            self.steps = len(event.steps)
            lines = [f"plan: {event.reasoning}"]
            for sid, worker, deps, why in event.steps:
                after = f" after {', '.join(deps)}" if deps else ""
                lines.append(f"  {sid}: {worker}{after} - {why}")
            return "\n".join(lines)
        if isinstance(event, StepEvent):
            return self._step(event)
        if isinstance(event, ToolCallEvent):
            detail = f" {event.detail}" if event.status != "ok" and event.detail else ""
            return f"  {event.worker} -> {event.tool}({event.arguments}) [{event.status}]{detail}"
        if isinstance(event, ApprovalEvent):
            if event.decision == "requested":
                self.pending += 1
                return f"  {event.worker} waits for approval of {event.tool}"
            self.pending = max(0, self.pending - 1)
            why = f" {event.reason}" if event.reason else ""
            return f"  approval of {event.tool}: {event.decision} by {event.by}{why}"
        if isinstance(event, ModelRetryEvent):
            return f"  retry {event.attempt} in {event.delay_s:.2f}s: {event.error}"
        return None

    def _step(self, event: StepEvent) -> str:
        if event.status == "started":
            self.running[event.step] = event.worker
        else:
            self.running.pop(event.step, None)
        if event.status == "finished":
            self.done += 1
            self.steps = max(self.steps, self.done)
            return f"step {event.step} [{event.worker}] finished ({self.done}/{self.steps} steps)"
        detail = f": {event.detail}" if event.detail else ""
        return f"step {event.step} [{event.worker}] {event.status}{detail}"
