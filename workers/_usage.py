"""Token usage and cost, per call and summed per worker and per run."""

from __future__ import annotations

from dataclasses import dataclass

from ._records import fast_init

__all__ = ["Usage", "UsageLedger", "UsageSum"]


@fast_init
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


class UsageSum:
    """A running sum of usage, added to in place.

    `Usage` is immutable, and re-making one for every addition cost more than the rest of the
    bookkeeping of a model call; sums grow here and are frozen into a `Usage` when read.
    """

    __slots__ = ("_in", "_out", "_cache_read", "_cache_write", "_requests", "_retries", "_cost", "_unpriced")

    def __init__(self, start: Usage | None = None) -> None:
        self._in = self._out = self._cache_read = self._cache_write = 0
        self._requests = self._retries = self._unpriced = 0
        self._cost = 0.0
        if start is not None:
            self.add(start)

    def add(self, usage: Usage) -> None:
        """Add one call's usage (or another sum's value)."""
        self._in += usage.input_tokens
        self._out += usage.output_tokens
        self._cache_read += usage.cache_read_tokens
        self._cache_write += usage.cache_write_tokens
        self._requests += usage.requests
        self._retries += usage.retries
        self._cost += usage.known_cost_usd
        self._unpriced += usage.unpriced_requests

    def value(self) -> Usage:
        """The sum so far, as a `Usage`."""
        return Usage(
            self._in,
            self._out,
            self._cache_read,
            self._cache_write,
            self._requests,
            self._retries,
            self._cost,
            self._unpriced,
        )


class UsageLedger:
    """Usage summed per worker and for the whole run; owned by one run, never shared."""

    __slots__ = ("_by_worker", "_total")

    def __init__(self) -> None:
        self._by_worker: dict[str, UsageSum] = {}
        self._total = UsageSum()

    @property
    def total(self) -> Usage:
        """The run's usage so far."""
        return self._total.value()

    @property
    def by_worker(self) -> dict[str, Usage]:
        """Each worker's usage so far (a copy)."""
        return {name: total.value() for name, total in self._by_worker.items()}

    def record(self, worker: str, usage: Usage) -> None:
        """Add one call's usage to its worker's sum and to the run's total."""
        own = self._by_worker.get(worker)
        if own is None:
            own = self._by_worker[worker] = UsageSum()
        own.add(usage)
        self._total.add(usage)

    def restore(self, total: Usage, by_worker: dict[str, Usage]) -> None:
        """Start from what a run had spent before it stopped (a resumed run)."""
        self._total = UsageSum(total)
        self._by_worker = {name: UsageSum(usage) for name, usage in by_worker.items()}
