"""Asking a person at a terminal: `TerminalApprover` inline, and the `approve` command's prompt.

The prompt runs in a thread so the event loop (other workers, other runs) keeps going while the
person reads. The thread reads the terminal in short waits, so a question abandoned (the run was
cancelled, or the approval timed out) stops being asked at once: its thread ends, and the next
line typed answers the next question, not the abandoned one. Edited arguments are checked
against the tool's JSON Schema and asked again when they do not fit; they are never run
unchecked. Without a terminal it does not guess: it denies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import select
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from workers import ApprovalRequest, Decision
from workers._hooks import RERUN_NOTE

__all__ = ["TerminalApprover", "ask", "terminal_line"]

_log = logging.getLogger("supervisor.approvals")

_TRIES = 5  # unreadable answers in a row before the question ends in a denial
_POLL_S = 0.1  # how soon an abandoned question notices
# The terminal is one per process: one question at a time, or an answer could reach another call.
_TERMINAL = threading.Lock()
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    """Model-written text without control characters: escape codes cannot redraw the screen."""
    return _CONTROL.sub("?", text)


def _issues(name: str, schema: Mapping[str, Any], arguments: object) -> list[str]:
    """What is wrong with edited arguments, exactly as the tool itself would say it."""
    if not schema:
        return []
    from tools import Tool

    checker = Tool.from_schema(_never, name=name, description="", parameters=schema)
    return [f"{path}: {rule}" for path, _, rule in checker.issues(arguments)]


def _never(**_: Any) -> None:
    raise RuntimeError("only used to check arguments")


def ask(
    request: ApprovalRequest,
    read: Callable[[str], str],
    out: TextIO,
    who: str,
    *,
    age_s: float | None = None,
    allow_skip: bool = False,
) -> Decision | None:
    """Show one request and read a decision; None when the person skips it."""
    choices = "[a]pprove, [d]eny, [e]dit, a[b]ort the run" + (", [s]kip" if allow_skip else "")
    waited = f", waiting {age_s:.0f} s" if age_s is not None else ""
    who_calls = f"{_printable(request.worker)} wants to call {_printable(request.tool)}"
    reason = request.reason
    if reason.startswith(RERUN_NOTE):  # the framework's warning, not the model's words
        out.write(f"\nNote: {RERUN_NOTE}\n")
        reason = reason[len(RERUN_NOTE) :].strip()
    if reason:  # the model's words first, then what will really run
        out.write(f"\nThe model said: {_printable(reason)}\n")
    out.write(f"\nrun {_printable(request.run_id or '-')}{waited}: {who_calls}\n")
    out.write(json.dumps(dict(request.arguments), indent=2, default=str) + "\n")
    for _ in range(_TRIES):
        answer = read(f"{choices}? ").strip().lower()
        if answer in ("a", "y", "yes", "approve"):
            return Decision.approve(by=who)
        if answer in ("d", "n", "no", "deny"):
            return Decision.deny(read("Reason (the model is told): ").strip(), by=who)
        if answer in ("b", "abort"):
            return Decision.abort(read("Reason: ").strip(), by=who)
        if answer in ("s", "skip") and allow_skip:
            return None
        if answer in ("e", "edit"):
            edited = _read_arguments(request, read, out)
            if edited is not None:
                return Decision.edit(edited, by=who)
            continue
        out.write(f"Please answer one of: {choices}.\n")
    if allow_skip:  # the command: nobody decided, so nothing is recorded
        out.write("No valid answer: left for later.\n")
        return None
    return Decision.deny("no valid answer at the terminal", by=who)


def _read_arguments(
    request: ApprovalRequest, read: Callable[[str], str], out: TextIO
) -> dict[str, Any] | None:
    text = read("New arguments as JSON: ")
    try:
        arguments = json.loads(text)
    except ValueError as exc:
        out.write(f"Not JSON ({exc}); nothing changed.\n")
        return None
    problems = (
        _issues(request.tool, request.schema, arguments)
        if isinstance(arguments, dict)
        else ["$: must be a JSON object"]
    )
    if problems:
        out.write("These arguments do not fit the tool, so they were not used:\n")
        out.write("".join(f"  {p}\n" for p in problems))
        return None
    return dict(arguments)


class TerminalApprover:
    """Asks at this terminal: approve (`a`/`y`), deny (`d`/`n`), edit (`e`), abort the run (`b`).

    Args:
        input: Reads one answer (defaults to the built-in `input`, on a real terminal only).
        output: Where the question is written (defaults to stdout).
        who: Recorded as the decider.
    """

    def __init__(
        self,
        *,
        input: Callable[[str], str] | None = None,
        output: TextIO | None = None,
        who: str = "terminal",
        stdin: TextIO | None = None,
    ) -> None:
        self._input = input
        self._output = output
        self._stdin = stdin
        self.who = who

    async def review(self, request: ApprovalRequest) -> Decision:
        """Show the request and wait for a decision (in a thread: the loop keeps running)."""
        stdin = self._stdin or sys.stdin
        if self._input is None and not stdin.isatty():
            why = "no terminal to ask at (standard input is not a terminal)"
            _log.warning("%s wants to call %s: denied, %s", request.worker, request.tool, why)
            return Decision.deny(why, by=self.who)
        abandoned = threading.Event()
        read = self._input or _TerminalLine(stdin, self._output or sys.stdout, abandoned)
        try:
            decision = await asyncio.to_thread(self._ask_alone, request, read)
        except (EOFError, OSError) as exc:  # the terminal closed: no answer is a denial
            return Decision.deny(f"the terminal closed before an answer ({type(exc).__name__})", by=self.who)
        finally:
            abandoned.set()  # cancelled or timed out: the thread stops reading within _POLL_S
        return decision or Decision.deny("skipped", by=self.who)

    def _ask_alone(self, request: ApprovalRequest, read: Callable[[str], str]) -> Decision | None:
        with _TERMINAL:
            return ask(request, read, self._output or sys.stdout, self.who)


def terminal_line(stdin: TextIO, out: TextIO, abandoned: threading.Event) -> Callable[[str], str]:
    """Reads a line in short waits, for a prompt in a thread that must stop when `abandoned` is
    set (the `approve` command interrupted: the thread would hold the process until Enter)."""
    return _TerminalLine(stdin, out, abandoned)


class _Abandoned(Exception):
    """Nobody waits for this answer any more."""


class _TerminalLine:
    """Reads one line from a terminal in short waits, giving up once `abandoned` is set."""

    def __init__(self, stdin: TextIO, out: TextIO, abandoned: threading.Event) -> None:
        self._stdin = stdin
        self._out = out
        self._abandoned = abandoned

    def __call__(self, prompt: str) -> str:
        self._out.write(prompt)
        self._out.flush()
        fd = self._stdin.fileno()
        while not self._abandoned.is_set():  # bounded by the approval's own timeout
            ready, _, _ = select.select([fd], [], [], _POLL_S)
            if ready:
                line = self._stdin.readline()
                if not line:
                    raise EOFError
                return line.rstrip("\r\n")
        self._out.write("\n(no longer waiting for this answer)\n")
        raise _Abandoned
