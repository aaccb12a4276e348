"""`TerminalApprover`: a person approves risky tool calls at this terminal, inline.

The prompt runs in a thread so the event loop (other workers, other runs) keeps going while the
person reads. Unanswered past the supervisor's `approval_timeout_s` means denied.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import TextIO

from workers import ApprovalRequest, Decision

__all__ = ["TerminalApprover"]

_CHOICES = "[a]pprove, [d]eny, [e]dit the arguments, a[b]ort the run"


class TerminalApprover:
    """Asks at the terminal: approve (`a` or `y`), deny (`d` or `n`), edit (`e`), abort (`b`).

    Args:
        input: Reads one answer (defaults to the built-in `input`).
        output: Where the question is written (defaults to stdout).
        who: Recorded as the decider (defaults to "terminal").
    """

    def __init__(
        self,
        *,
        input: Callable[[str], str] | None = None,
        output: TextIO | None = None,
        who: str = "terminal",
    ) -> None:
        self._input = input or _builtin_input
        self._output = output
        self.who = who

    async def review(self, request: ApprovalRequest) -> Decision:
        """Show the request and wait for a decision (in a thread: the loop keeps running)."""
        return await asyncio.to_thread(self._ask, request)

    def _ask(self, request: ApprovalRequest) -> Decision:
        out = self._output or sys.stdout
        run = request.run_id or "-"
        out.write(f"\nApproval needed (run {run}): {request.worker} wants to call {request.tool}\n")
        out.write(json.dumps(dict(request.arguments), indent=2, default=str) + "\n")
        if request.reason:
            out.write(f"The model said: {request.reason}\n")
        for _ in range(5):  # bounded: five unreadable answers are a denial
            answer = self._input(f"{_CHOICES}? ").strip().lower()
            if answer in ("a", "y", "yes", "approve"):
                return Decision.approve(by=self.who)
            if answer in ("d", "n", "no", "deny"):
                return Decision.deny(self._input("Reason (the model is told): ").strip(), by=self.who)
            if answer in ("b", "abort"):
                return Decision.abort(self._input("Reason: ").strip(), by=self.who)
            if answer in ("e", "edit"):
                edited = self._input("New arguments as JSON: ")
                try:
                    arguments = json.loads(edited)
                except ValueError as exc:
                    out.write(f"Not JSON ({exc}); try again.\n")
                    continue
                if isinstance(arguments, dict):
                    return Decision.edit(arguments, by=self.who)
                out.write("The arguments must be a JSON object; try again.\n")
                continue
            out.write(f"Please answer one of: {_CHOICES}.\n")
        return Decision.deny("no valid answer at the terminal", by=self.who)


def _builtin_input(prompt: str) -> str:
    return input(prompt)
