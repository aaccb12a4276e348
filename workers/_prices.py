"""Prices of the current Anthropic and OpenAI models, and the cost of a call.

Prices are USD per million tokens. A model that is not in the table has no price: its calls are
reported as unpriced, never as free. Users add prices for other models (a local server, a fine
tune) with `PriceTable.register`; the table is an object the run carries, not a global.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

__all__ = ["BUILTIN_PRICES", "Price", "PriceTable", "by_model", "model_family"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens for one model.

    Attributes:
        input: Uncached prompt tokens.
        output: Generated tokens (reasoning tokens included, as providers bill them).
        cache_read: Prompt tokens read from the cache; defaults to `input`.
        cache_write: Prompt tokens written to the cache; defaults to `input`.
        long_prompt_over: For models priced in two bands: a prompt longer than this many tokens
            is billed at `long_prompt` on every token of the request.
        long_prompt: The price of such a request.
    """

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    long_prompt_over: int | None = None
    long_prompt: Price | None = None

    def cost(
        self, input_tokens: int, output_tokens: int, cache_read_tokens: int = 0, cache_write_tokens: int = 0
    ) -> float:
        """The cost in USD of one request; `input_tokens` includes the cached tokens."""
        if self.long_prompt is not None and self.long_prompt_over is not None:
            if input_tokens > self.long_prompt_over:
                return self.long_prompt.cost(
                    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens
                )
        uncached = max(input_tokens - cache_read_tokens - cache_write_tokens, 0)
        read = self.input if self.cache_read is None else self.cache_read
        write = self.input if self.cache_write is None else self.cache_write
        total = uncached * self.input + output_tokens * self.output
        return (total + cache_read_tokens * read + cache_write_tokens * write) / 1_000_000


def _p(i: float, o: float, read: float, write: float | None = None) -> Price:
    return Price(i, o, read, write)


# Anthropic: base input, output, cache hits, 5-minute cache writes (the default cache lifetime).
# OpenAI: input, output, cached input; OpenAI bills cache writes as ordinary input.
BUILTIN_PRICES: Mapping[str, Price] = MappingProxyType(
    {
        "anthropic:claude-fable-5-1": _p(10, 50, 0.25, 12.5),
        "anthropic:claude-fable-5": _p(10, 50, 1, 12.5),
        "anthropic:claude-opus-5-5": _p(4, 20, 0.2, 5),
        "anthropic:claude-opus-5": _p(5, 25, 0.5, 6.25),
        "anthropic:claude-opus-4-8": _p(5, 25, 0.5, 6.25),
        "anthropic:claude-opus-4-7": _p(5, 25, 0.5, 6.25),
        "anthropic:claude-opus-4-6": _p(5, 25, 0.5, 6.25),
        "anthropic:claude-opus-4-5": _p(5, 25, 0.5, 6.25),
        "anthropic:claude-opus-4-1": _p(15, 75, 1.5, 18.75),
        "anthropic:claude-opus-4-0": _p(15, 75, 1.5, 18.75),
        "anthropic:claude-opus-4": _p(15, 75, 1.5, 18.75),
        "anthropic:claude-sonnet-5-5": _p(2, 10, 0.1, 2.5),
        "anthropic:claude-sonnet-5": _p(2, 10, 0.2, 2.5),
        "anthropic:claude-sonnet-4-6": _p(3, 15, 0.3, 3.75),
        "anthropic:claude-sonnet-4-5": _p(3, 15, 0.3, 3.75),
        "anthropic:claude-sonnet-4-0": _p(3, 15, 0.3, 3.75),
        "anthropic:claude-sonnet-4": _p(3, 15, 0.3, 3.75),
        "anthropic:claude-3-7-sonnet": _p(3, 15, 0.3, 3.75),
        "anthropic:claude-haiku-5-5": Price(
            0.1, 0.5, 0.01, 0.125, long_prompt_over=100_000, long_prompt=_p(0.5, 2.5, 0.05, 0.625)
        ),
        "anthropic:claude-haiku-4-5": _p(1, 5, 0.1, 1.25),
        "anthropic:claude-3-5-haiku": _p(0.8, 4, 0.08, 1),
        "anthropic:claude-3-haiku": _p(0.25, 1.25, 0.03, 0.3),
        "openai:gpt-5.5": _p(5, 30, 0.5),
        "openai:gpt-5.4": _p(2.5, 15, 0.25),
        "openai:gpt-5.4-mini": _p(0.75, 4.5, 0.075),
        "openai:gpt-5.4-nano": _p(0.2, 1.25, 0.02),
        "openai:gpt-5.1": _p(1.25, 10, 0.125),
        "openai:gpt-5": _p(1.25, 10, 0.125),
        "openai:gpt-5-mini": _p(0.25, 2, 0.025),
        "openai:gpt-5-nano": _p(0.05, 0.4, 0.005),
        "openai:gpt-4.1": _p(2, 8, 0.5),
        "openai:gpt-4.1-mini": _p(0.4, 1.6, 0.1),
        "openai:gpt-4.1-nano": _p(0.1, 0.4, 0.025),
        "openai:gpt-4o": _p(2.5, 10, 1.25),
        "openai:gpt-4o-mini": _p(0.15, 0.6, 0.075),
        "openai:o4-mini": _p(1.1, 4.4, 0.275),
        "openai:o3": _p(2, 8, 0.5),
        "openai:o3-mini": _p(1.1, 4.4, 0.55),
        "openai:o1": _p(15, 60, 7.5),
        "openai:o1-mini": _p(1.1, 4.4, 0.55),
    }
)

# Dated snapshots and aliases share their family's price: claude-sonnet-4-5-20250929,
# gpt-4o-2024-08-06, claude-3-5-haiku-latest.
_SNAPSHOT = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2}|latest)$")


def model_family(model_id: str) -> str:
    """The id without a date or -latest suffix: tables keyed by family find snapshots too."""
    return _SNAPSHOT.sub("", model_id)


def by_model(table: Mapping[str, T], model_id: str) -> T | None:
    """The entry of "provider:name" in a table keyed by model: its own, else its family's."""
    found = table.get(model_id)
    return found if found is not None else table.get(model_family(model_id))


class PriceTable:
    """The prices a run uses: the built-in table plus what the user registers."""

    __slots__ = ("_registered",)

    def __init__(self, extra: Mapping[str, Price] | None = None) -> None:
        # Only what the user adds is stored: a table per run costs nothing to make.
        self._registered: dict[str, Price] = dict(extra or {})

    def register(self, model_id: str, price: Price) -> None:
        """Set the price of `model_id` ("provider:name"), for example a self-hosted model."""
        self._registered[model_id] = price

    def _get(self, model_id: str) -> Price | None:
        return self._registered.get(model_id) or BUILTIN_PRICES.get(model_id)

    def lookup(self, model_id: str) -> Price | None:
        """The price of "provider:name", trying the name without a date or -latest suffix."""
        price = self._get(model_id)
        if price is None:
            base = model_family(model_id)
            if base != model_id:
                price = self._get(base)
        return price
