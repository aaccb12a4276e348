"""Token usage and cost, per call and summed per worker and per run."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Usage", "UsageLedger"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens, requests and cost of one model call or of a sum of them.

    `input_tokens` counts every prompt token the provider processed, including the cached ones;
    `cache_read_tokens` and `cache_write_tokens` say how many of them were read from or written
    to the prompt cache. `cost_usd` is None when any counted request was to a model without a
    known price: an unknown total is never reported as free. `known_cost_usd` is the priced part.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    requests: int = 0
    retries: int = 0
    known_cost_usd: float = 0.0
    unpriced_requests: int = 0

    @property
    def cost_usd(self) -> float | None:
        """The cost in USD, or None when part of it is unpriced."""
        return None if self.unpriced_requests else self.known_cost_usd

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.requests + other.requests,
            self.retries + other.retries,
            self.known_cost_usd + other.known_cost_usd,
            self.unpriced_requests + other.unpriced_requests,
        )

    def __str__(self) -> str:
        cost = self.cost_usd
        if cost is not None:
            money = f"${cost:.6f}"
        elif self.known_cost_usd:
            money = f"at least ${self.known_cost_usd:.6f} ({self.unpriced_requests} unpriced requests)"
        else:
            money = "unpriced"
        return (
            f"{self.input_tokens} in / {self.output_tokens} out tokens, "
            f"{self.requests} requests ({self.retries} retries), {money}"
        )


@dataclass(slots=True)
class UsageLedger:
    """Usage summed per worker and for the whole run; owned by one run, never shared."""

    by_worker: dict[str, Usage] = field(default_factory=dict)
    total: Usage = field(default_factory=Usage)

    def record(self, worker: str, usage: Usage) -> None:
        """Add one call's usage to its worker's sum and to the run's total."""
        self.by_worker[worker] = self.by_worker.get(worker, _ZERO) + usage
        self.total = self.total + usage


_ZERO = Usage()
