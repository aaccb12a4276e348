"""What known models refuse, checked before a worker's first call rather than met as a 400.

`OUTPUT_LIMITS`: the most output tokens a model accepts in one answer (max_tokens above this is
a 400). A worker whose max_tokens is above its model's known limit fails before its first call;
"retry with more room" after an answer was cut off stops at the limit. Names match as prices
do: a dated snapshot or -latest alias shares its family's limit unless it has its own entry.
Unknown models are capped by `DEFAULT_OUTPUT_LIMIT` or the worker's max_tokens, whichever is
more (a server that allows less answers 400, a typed error).

`NO_TEMPERATURE`: models that sample at a fixed setting and refuse any `temperature`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ._prices import by_model, model_family

__all__ = [
    "DEFAULT_OUTPUT_LIMIT",
    "NO_TEMPERATURE",
    "OUTPUT_LIMITS",
    "known_output_limit",
    "temperature_problem",
]

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
        "anthropic:claude-3-opus": 4_096,
        "anthropic:claude-3-5-sonnet": 8_192,
        "openai:gpt-3.5-turbo": 4_096,  # its snapshots end in four digits, not a date
        "openai:gpt-3.5-turbo-0125": 4_096,
        "openai:gpt-3.5-turbo-1106": 4_096,
        "openai:gpt-4": 8_192,
        "openai:gpt-4-turbo": 4_096,
        "openai:gpt-4o": 16_384,
        "openai:gpt-4o-2024-05-13": 4_096,  # the first snapshot: less than its family
        "openai:gpt-4o-mini": 16_384,
        "openai:gpt-4.1": 32_768,
        "openai:gpt-4.1-mini": 32_768,
        "openai:gpt-4.1-nano": 32_768,
        "openai:gpt-5": 128_000,
        "openai:gpt-5-mini": 128_000,
        "openai:gpt-5-nano": 128_000,
        "openai:gpt-5.1": 128_000,
        "openai:o1": 100_000,
        "openai:o1-mini": 65_536,
        "openai:o3": 100_000,
        "openai:o3-mini": 100_000,
        "openai:o4-mini": 100_000,
    }
)


def known_output_limit(model_id: str) -> int | None:
    """The output limit of "provider:name" when the table knows it; None for other models
    (a local server may allow more than the default)."""
    return by_model(OUTPUT_LIMITS, model_id)


# OpenAI's reasoning models answer 400 "Unsupported value: 'temperature' does not support 0.2
# with this model"; Claude from 4.7 on answers 400 "`temperature` is deprecated for this model".
NO_TEMPERATURE: frozenset[str] = frozenset(
    {
        "anthropic:claude-opus-4-7",
        "anthropic:claude-opus-4-8",
        "anthropic:claude-opus-5",
        "anthropic:claude-opus-5-5",
        "anthropic:claude-sonnet-5",
        "anthropic:claude-sonnet-5-5",
        "anthropic:claude-haiku-5-5",
        "anthropic:claude-fable-5",
        "anthropic:claude-fable-5-1",
        "openai:o1",
        "openai:o1-mini",
        "openai:o3",
        "openai:o3-mini",
        "openai:o4-mini",
        "openai:gpt-5",
        "openai:gpt-5-mini",
        "openai:gpt-5-nano",
    }
)
_MAX_TEMPERATURE = {"anthropic": 1.0}  # OpenAI's 0 to 2 is the Worker's own bound


def temperature_problem(model_id: str, temperature: float | None) -> str | None:
    """Why "provider:name" would refuse this temperature, or None when it is fine (or unknown)."""
    if temperature is None:
        return None
    if model_id in NO_TEMPERATURE or model_family(model_id) in NO_TEMPERATURE:
        if model_id.startswith("openai:") and temperature == 1:
            return None  # "Only the default (1) value is supported": 1 is taken
        return f"{model_id} takes no temperature (it samples at a fixed setting): set temperature = None"
    top = _MAX_TEMPERATURE.get(model_id.partition(":")[0])
    if top is not None and temperature > top:
        return f"{model_id} takes a temperature from 0 to {top:g}, got {temperature!r}"
    return None
