"""How much a model can read at once, and how many tokens a conversation holds by now.

`CONTEXT_WINDOWS` lists the prompt-plus-answer windows of current models (names match as prices
do: a dated snapshot shares its family's window); `Worker.context_window` overrides it. Unknown
models get `DEFAULT_CONTEXT_WINDOW`.

`Calibration` turns the fast local estimate (about four characters a token) into the provider's
own count: after each call it compares the estimate with the input tokens the provider reported,
per model, so the estimate tightens during a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from tools.errors import ProviderBadRequest, ProviderError

from ._prices import by_model

__all__ = [
    "CONTEXT_WINDOWS",
    "DEFAULT_CONTEXT_WINDOW",
    "Calibration",
    "context_window",
    "prompt_too_long",
]

DEFAULT_CONTEXT_WINDOW = 128_000
CONTEXT_WINDOWS: Mapping[str, int] = MappingProxyType(
    {
        "anthropic:claude-3-haiku": 200_000,
        "anthropic:claude-3-5-haiku": 200_000,
        "anthropic:claude-3-7-sonnet": 200_000,
        "anthropic:claude-sonnet-4": 200_000,
        "anthropic:claude-sonnet-4-0": 200_000,
        "anthropic:claude-sonnet-4-5": 200_000,
        "anthropic:claude-sonnet-4-6": 200_000,
        "anthropic:claude-haiku-4-5": 200_000,
        "anthropic:claude-opus-4": 200_000,
        "anthropic:claude-opus-4-0": 200_000,
        "anthropic:claude-opus-4-1": 200_000,
        "anthropic:claude-opus-4-5": 200_000,
        "anthropic:claude-opus-4-6": 200_000,
        "openai:gpt-4o": 128_000,
        "openai:gpt-4o-mini": 128_000,
        "openai:gpt-4.1": 1_047_576,
        "openai:gpt-4.1-mini": 1_047_576,
        "openai:gpt-4.1-nano": 1_047_576,
        "openai:gpt-5": 400_000,
        "openai:gpt-5-mini": 400_000,
        "openai:gpt-5-nano": 400_000,
        "openai:o3": 200_000,
        "openai:o4-mini": 200_000,
    }
)


def context_window(model_id: str) -> int:
    """The context window of "provider:name" in tokens (the default for unknown models)."""
    window = by_model(CONTEXT_WINDOWS, model_id)
    return window or DEFAULT_CONTEXT_WINDOW


def prompt_too_long(error: ProviderError) -> bool:
    """Whether the provider refused the request because the prompt does not fit its window.

    Anthropic answers 400 "prompt is too long: N tokens > M maximum"; OpenAI answers 400 with
    the code `context_length_exceeded` ("This model's maximum context length is ...").
    """
    if not isinstance(error, ProviderBadRequest):
        return False
    text = f"{error.message} {error.body_excerpt or ''}".lower()
    return any(
        mark in text for mark in ("prompt is too long", "context_length_exceeded", "maximum context length")
    )


class Calibration:
    """Per model: how many real tokens one estimated token turned out to be."""

    __slots__ = ("_ratios",)

    _LOW, _HIGH = 0.25, 4.0  # a count far off is a bad report, not a tokenizer

    def __init__(self) -> None:
        self._ratios: dict[str, float] = {}

    def ratio(self, model_id: str) -> float:
        """Real tokens per estimated token (1.0 until the model has reported a count)."""
        return self._ratios.get(model_id, 1.0)

    def observe(self, model_id: str, estimated: int, reported: int) -> None:
        """Learn from one call: the prompt's estimate and the input tokens the provider counted."""
        if estimated <= 0 or reported <= 0:
            return
        seen = min(max(reported / estimated, self._LOW), self._HIGH)
        old = self._ratios.get(model_id)
        self._ratios[model_id] = seen if old is None else (old + seen) / 2
