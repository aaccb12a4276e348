"""A tool call on its way through a turn: its arguments read, and what became of it so far.

Checking its arguments, a person's approval, a resumed run's journal and the run itself each take
a call a step further; each reads here what the steps before did to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tools import Tool, parse_arguments_text
from tools._jsontext import canonical_json

from ._events import ToolStatus
from ._messages import ToolCallPart, ToolResultPart

__all__ = ["Issue", "Prepared", "issues_text", "parsed"]

Issue = tuple[str, object, str]


@dataclass(slots=True)
class Prepared:
    """One call on its way: answered early (status set) or run (kwargs set)."""

    call: ToolCallPart
    tool: Tool | None = None
    kwargs: dict[str, Any] | None = None
    arguments: dict[str, Any] | None = None  # the JSON arguments that passed validation (or a person's edit)
    result: ToolResultPart | None = None
    status: ToolStatus | None = None
    issues: list[Issue] = field(default_factory=list)
    key: str = ""  # the journal key ("" when the run keeps no journal)
    starts: int = 0  # earlier starts that never finished (a resumed run)
    approved: bool = False  # a person's approval was recorded before the process stopped
    canonical: str = ""  # `arguments` as canonical JSON, once computed ("" until then)

    def arguments_json(self) -> str:
        """The arguments that run, as canonical JSON (computed once: journal, loop check, trace)."""
        if not self.canonical:
            self.canonical = canonical_json(self.arguments or {})
        return self.canonical


def issues_text(tool: str, issues: Sequence[Issue]) -> str:
    lines = "\n".join(f"- {path}: {rule}" for path, _, rule in issues[:20])
    return f"Invalid arguments for tool {tool!r}:\n{lines}\nFix the arguments and call the tool again."


def parsed(call: ToolCallPart) -> tuple[dict[str, Any] | None, list[Issue]]:
    """The call's arguments as a JSON object, or why they cannot be read (cut off, not JSON)."""
    if call.truncated:
        return None, [("$", call.raw_arguments, "arguments were cut off by the token limit")]
    if call.arguments is not None:
        return dict(call.arguments), []
    value, issues = parse_arguments_text(call.raw_arguments)
    return (value, []) if isinstance(value, dict) and not issues else (None, issues)
