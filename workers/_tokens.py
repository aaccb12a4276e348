"""Fast local token estimates, used where a count is needed before the provider reports one."""

from __future__ import annotations

from ._model import ModelRequest

__all__ = ["estimate_prompt_tokens", "estimate_tokens", "worst_case_prompt_tokens"]

_CHARS_PER_TOKEN = 4


def estimate_prompt_tokens(request: ModelRequest) -> int:
    """About how many prompt tokens `request` holds, at ~4 characters a token (O(request))."""
    chars = len(request.system)
    for tool in request.tools:
        chars += tool.size
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


# Providers wrap messages and tool definitions in tokens of their own (role markers, the hidden
# tool-use system prompt); these bound them from above.
_PER_MESSAGE = 16
_TOOLS_PREAMBLE = 600


def _utf8_len(text: str) -> int:
    """The UTF-8 size of `text`, without encoding it when it is ASCII (the common case)."""
    return len(text) if text.isascii() else len(text.encode())


def worst_case_prompt_tokens(request: ModelRequest) -> int:
    """An upper bound on a request's prompt tokens, for budgets that must never be overshot.

    Byte-level tokenizers never make more tokens than UTF-8 bytes, so the encoded size of every
    part plus a per-message and tool allowance bounds the count from above.
    """
    size = _utf8_len(request.system)
    for tool in request.tools:
        size += tool.size + _PER_MESSAGE
    for message in request.messages:
        size += _PER_MESSAGE
        for part in message.parts:
            if part.kind == "tool_call":
                size += len(part.name) + _utf8_len(part.raw_arguments) + _PER_MESSAGE
            elif part.kind == "tool_result":
                size += _utf8_len(part.content) + _PER_MESSAGE
            else:
                size += _utf8_len(part.text)
    if request.output is not None:
        size += request.output.size
    return size + (_TOOLS_PREAMBLE if request.tools else 0) + _PER_MESSAGE
