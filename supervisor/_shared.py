"""What the runs of one supervisor share, and the context each run gets from it.

Retry policy, rate limits, breakers and the deadlines' timer are shared so that concurrent runs
pace and protect one another; models named by strings are resolved once, so that every run
uses the same clients and their kept-alive connections. Each run gets its own sink, usage
ledger and budget guard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workers import (
    Deadlines,
    EventSink,
    Model,
    Price,
    PriceTable,
    RateLimits,
    Redactor,
    RetryPolicy,
    RunContext,
    ToolGate,
    UsageLedger,
    Worker,
    close_models,
    model_id,
)
from workers._resolve import model_price

from ._breaker import CircuitBreakers
from ._budget import Budget, BudgetGuard
from ._journal import JournalSink
from ._store import Store
from ._stream import Both

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Shared"]


class Shared:
    """The parts of a supervisor every run uses (one object per supervisor)."""

    def __init__(
        self,
        *,
        store: Store,
        gate: ToolGate,
        events: EventSink,
        retry: RetryPolicy | None,
        limits: RateLimits | None,
        breakers: CircuitBreakers | None,
        prices: PriceTable | None,
        redact: Redactor | None,
    ) -> None:
        self.store = store
        self.gate = gate
        self.events = events
        self.retry = retry or RetryPolicy()
        self.limits = limits or RateLimits()
        # State changes reach each run's own sink (its trace too), from the call that caused them.
        self.breakers = breakers or CircuitBreakers()
        self.prices = prices or PriceTable()
        self.redact = redact
        self.deadlines = Deadlines()  # one timer per event loop for the long bounds of every run
        self.models: dict[str, Model] = {}  # resolved from strings once, closed by `aclose`
        self._model_prices: dict[str, Price | None] | None = None  # by model id, once resolved
        self._priced: tuple[object, ...] = ()  # the model specs `_model_prices` is for

    def context(
        self,
        run_id: str,
        listener: EventSink | None,
        budget: Budget,
        workers: Mapping[str, Worker],
        planner_model: str | Model,
    ) -> RunContext:
        """A new run's context."""
        events = self.sink(run_id, listener)
        ctx = RunContext(
            run_id=run_id,
            retry=self.retry,
            limits=self.limits,
            prices=self.prices,
            events=events,
            gate=self.gate,
            usage=UsageLedger(),
            breakers=self.breakers,
            max_turns=budget.max_turns_per_worker,
            workers=workers,
            redact=self.redact,
            deadlines=self.deadlines,
            models=self.models,
        )
        specs = [planner_model, *(w.model_spec for w in workers.values())]
        specs += [s for w in workers.values() if (s := type(w).summary_model) is not None]
        key = tuple(spec if isinstance(spec, str) else id(spec) for spec in specs)
        prices = self._model_prices
        if prices is None or key != self._priced:  # the models changed since: price them again
            prices = {}
            for spec in specs:  # at the prices usage is counted at, so that max_usd holds
                model = ctx.model(spec)
                prices[model_id(model)] = model_price(model, self.prices)
            self._model_prices, self._priced = prices, key
        ctx.guard = BudgetGuard(budget, prices, events, run_id)
        return ctx

    def sink(self, run_id: str, listener: EventSink | None) -> EventSink:
        """The run's sink: the user's (and the run's listener), plus the journal when the store
        keeps a trace."""
        events = self.events
        for_run = getattr(events, "for_run", None)  # a sink that keeps state per run (OTelSink)
        if callable(for_run):
            events = for_run(run_id)
        if listener is not None:
            events = Both(events, listener)
        if not getattr(self.store, "keeps_events", True):
            return events  # a NullSink here means no event object is even built
        return JournalSink(events, self.store, run_id)

    async def aclose(self) -> None:
        """Close the connections of the models resolved from strings."""
        await close_models(self.models)
