"""The most output tokens current models accept in one answer (max_tokens above this is a 400).

Used to cap "retry with more room" after an answer was cut off. Names match as prices do: a
dated snapshot or -latest alias shares its family's limit. Unknown models are capped by
`DEFAULT_OUTPUT_LIMIT` (a server that allows less answers 400, a typed error).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ._prices import by_model

__all__ = ["DEFAULT_OUTPUT_LIMIT", "OUTPUT_LIMITS", "output_limit"]

DEFAULT_OUTPUT_LIMIT = 16_384
OUTPUT_LIMITS: Mapping[str, int] = MappingProxyType(
    {
        "anthropic:claude-3-haiku": 4_096,
        "anthropic:claude-3-5-haiku": 8_192,
        "anthropic:claude-3-7-sonnet": 64_000,
        "anthropic:claude-sonnet-4": 64_000,
        "anthropic:claude-sonnet-4-0": 64_000,
        "anthropic:claude-sonnet-4-5": 64_000,
        "anthropic:claude-sonnet-4-6": 64_000,
        "anthropic:claude-haiku-4-5": 64_000,
        "anthropic:claude-opus-4": 32_000,
        "anthropic:claude-opus-4-0": 32_000,
        "anthropic:claude-opus-4-1": 32_000,
        "anthropic:claude-opus-4-5": 64_000,
        "anthropic:claude-opus-4-6": 64_000,
        "openai:gpt-4o": 16_384,
        "openai:gpt-4o-mini": 16_384,
        "openai:gpt-4.1": 32_768,
        "openai:gpt-4.1-mini": 32_768,
        "openai:gpt-4.1-nano": 32_768,
        "openai:gpt-5": 128_000,
        "openai:gpt-5-mini": 128_000,
        "openai:gpt-5-nano": 128_000,
        "openai:o3": 100_000,
        "openai:o4-mini": 100_000,
    }
)


def output_limit(model_id: str) -> int:
    """The most output tokens "provider:name" accepts (the default for unknown models)."""
    limit = by_model(OUTPUT_LIMITS, model_id)
    return limit or DEFAULT_OUTPUT_LIMIT
