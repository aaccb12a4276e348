"""Tool calls the APIs accept back in the conversation: ids unique and well formed, names well
formed.

A model that repeats or garbles an id, or calls a name no tool can have (OpenAI models at times
call their internal `multi_tool_use.parallel`), would otherwise get every later request of the
conversation refused ("tool_use ids must be unique", "string does not match pattern"), though
the run itself did nothing wrong. Such ids and names are replaced before the calls run or are
answered; a replaced name is no tool's (it says so), so the call is answered as unknown.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import replace

from ._messages import AssistantPart, ToolCallPart
from ._model import ModelResponse

__all__ = ["conforming_calls"]

_WELL_FORMED = re.compile(r"[A-Za-z0-9_-]{1,64}")  # ids and names alike, on both APIs
_OTHER = re.compile(r"[^A-Za-z0-9_-]")


def conforming_calls(
    response: ModelResponse, calls: tuple[ToolCallPart, ...], seen: set[str], known: Container[str]
) -> tuple[ModelResponse, tuple[ToolCallPart, ...]]:
    """The response (and its calls) with each call id new to `seen` and well formed, and each
    name well formed (the `known` names are: they were checked when defined); `seen` gains the
    ids."""
    if len(calls) == 1:  # the common case: one call, a good new id, a tool's name
        call = calls[0]
        name = call.name
        if (
            call.id not in seen
            and _WELL_FORMED.fullmatch(call.id)
            and (name in known or _WELL_FORMED.fullmatch(name))
        ):
            seen.add(call.id)
            return response, calls
    parts: list[AssistantPart] = []
    changed = False
    for part in response.parts:
        if isinstance(part, ToolCallPart):
            if part.id in seen or not _WELL_FORMED.fullmatch(part.id):
                new = f"call_{len(seen)}"
                while new in seen:  # bounded: the set is finite
                    new += "_"
                part, changed = replace(part, id=new), True
            if part.name not in known and not _WELL_FORMED.fullmatch(part.name):
                part, changed = replace(part, name=_no_tool(part.name, known)), True
            seen.add(part.id)
        parts.append(part)
    if not changed:
        return response, calls
    response = replace(response, parts=tuple(parts))
    return response, response.tool_calls


def _no_tool(name: str, known: Container[str]) -> str:
    """A well-formed name for a malformed one, never a tool's: the call is answered as unknown,
    it must not run a tool whose name the cleaning happened to produce ("delete.rows")."""
    cleaned = _OTHER.sub("_", name)[:48] or "unnamed"
    new, tries = f"not_a_tool_{cleaned}", 0
    while new in known:  # bounded: `known` is finite and each try gives another name
        tries += 1
        new = f"not_a_tool_{tries}_{cleaned}"[:64]
    return new
