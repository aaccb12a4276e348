"""Fast local token estimates, used where a count is needed before the provider reports one."""

from __future__ import annotations

from ._model import ModelRequest

__all__ = ["estimate_prompt_tokens", "estimate_tokens"]

_CHARS_PER_TOKEN = 4


def estimate_prompt_tokens(request: ModelRequest) -> int:
    """About how many prompt tokens `request` holds, at ~4 characters a token (O(request))."""
    chars = len(request.system)
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description) + len(str(tool.parameters))
    for message in request.messages:
        for part in message.parts:
            if part.kind == "tool_call":
                chars += len(part.name) + len(part.raw_arguments)
            elif part.kind == "tool_result":
                chars += len(part.content)
            else:
                chars += len(part.text)
    return chars // _CHARS_PER_TOKEN + 1


def estimate_tokens(request: ModelRequest) -> int:
    """The worst case a call can cost in tokens: the prompt estimate plus `max_tokens`."""
    return estimate_prompt_tokens(request) + request.max_tokens
