"""Tool call ids the APIs accept: unique in the conversation and of the allowed form.

A model that repeats or garbles an id would otherwise get every later request of the
conversation refused ("tool_use ids must be unique", or a pattern error), though the run
itself did nothing wrong. Such ids are renamed before the calls run or are answered.
"""

from __future__ import annotations

import re
from dataclasses import replace

from ._messages import AssistantPart, ToolCallPart
from ._model import ModelResponse

__all__ = ["unique_call_ids"]

_CALL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def unique_call_ids(
    response: ModelResponse, calls: tuple[ToolCallPart, ...], seen: set[str]
) -> tuple[ModelResponse, tuple[ToolCallPart, ...]]:
    """The response (and its calls) with each call id new to `seen` and well formed; `seen`
    gains them."""
    if len(calls) == 1 and calls[0].id not in seen and _CALL_ID.fullmatch(calls[0].id):
        seen.add(calls[0].id)  # the common case: one call, a good new id
        return response, calls
    parts: list[AssistantPart] = []
    changed = False
    for part in response.parts:
        if isinstance(part, ToolCallPart):
            if part.id in seen or not _CALL_ID.fullmatch(part.id):
                new = f"call_{len(seen)}"
                while new in seen:  # bounded: the set is finite
                    new += "_"
                part, changed = replace(part, id=new), True
            seen.add(part.id)
        parts.append(part)
    if not changed:
        return response, calls
    response = replace(response, parts=tuple(parts))
    return response, response.tool_calls
