"""What one run needs, carried explicitly: no module-level state, no global clients."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._deadlines import Deadlines
from ._events import EventSink, NullSink
from ._hooks import DenyAllGate, ModelCallGuard, NoGuard, ToolGate
from ._model import Model, ModelRequest, ModelResponse
from ._prices import PriceTable
from ._ratelimit import RateLimits
from ._replay import CallJournal
from ._resolve import resolve_model
from ._retry import Breakers, RetryPolicy, call_model
from ._usage import UsageLedger
from ._window import Calibration

__all__ = ["Redactor", "RunContext", "close_models"]

# redact(tool, "arguments" or "result", text) -> the text to show in events and traces.
Redactor = Callable[[str, str, str], str]


@dataclass(slots=True)
class RunContext:
    """The settings and shared state of one run; the supervisor builds one per run.

    Attributes:
        run_id: The run's id (None for a worker run alone).
        retry: The retry policy of every model call.
        limits: Rate limits; pass one object to several contexts to share the limits.
        prices: The price table models are priced from.
        events: Where events go.
        guard: Sees every model call (the supervisor's budget).
        gate: Decides on risky tool calls (the approval queue).
        usage: Usage per worker and for the run.
        breakers: Circuit breakers per model (None: no breaker).
        max_turns: A cap on every worker's `max_turns` (the budget's max_turns_per_worker).
        workers: The workers of the run by name, for handoffs named by string.
        journal: Records model and tool calls so a resumed run replays them (None: not kept).
        scope: Where in the run the worker runs (plan version, step, attempt, handoff); the
            journal's keys start with it.
        redact: Rewrites tool arguments and results before events and traces show them (the
            journal keeps the values resume needs).
        calibration: Real tokens per estimated token, per model, learnt from each call.
        models: The models resolved from strings by `model()`, by spec; pass one dict to
            several contexts to share their clients (`aclose()` closes what is in it: leave
            that to whoever made the dict).
        deadlines: Keeps the long bounds of model calls (the retry policy's total time) on one
            timer per event loop; share one object between contexts to share the timer.
        final: The run ends once this context's worker has answered: its answer is committed
            with the run's end rather than on its own (a repair turn commits it first, so no
            model call is sent before it is in the journal).
    """

    run_id: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limits: RateLimits | None = field(default_factory=RateLimits)
    prices: PriceTable = field(default_factory=PriceTable)
    events: EventSink = field(default_factory=NullSink)
    guard: ModelCallGuard = field(default_factory=NoGuard)
    gate: ToolGate = field(default_factory=DenyAllGate)
    usage: UsageLedger = field(default_factory=UsageLedger)
    breakers: Breakers | None = None
    max_turns: int | None = None
    workers: Mapping[str, Any] = field(default_factory=dict)
    journal: CallJournal | None = None
    scope: str = ""
    redact: Redactor | None = None
    calibration: Calibration = field(default_factory=Calibration)
    deadlines: Deadlines = field(default_factory=Deadlines)
    models: dict[str, Model] = field(default_factory=dict, repr=False)
    final: bool = False

    def at(self, scope: str, *, final: bool = False) -> RunContext:
        """This context for another place in the run: everything shared, but the scope (and
        whether the run ends with the answer given there, `final`).

        Copied field by field, written out: `dataclasses.replace` runs the generated __init__
        again and a loop over the slots costs as much, on every step attempt (a test checks
        that every field is copied)."""
        other = object.__new__(RunContext)
        other.run_id = self.run_id
        other.retry = self.retry
        other.limits = self.limits
        other.prices = self.prices
        other.events = self.events
        other.guard = self.guard
        other.gate = self.gate
        other.usage = self.usage
        other.breakers = self.breakers
        other.max_turns = self.max_turns
        other.workers = self.workers
        other.journal = self.journal
        other.scope = scope
        other.redact = self.redact
        other.calibration = self.calibration
        other.deadlines = self.deadlines
        other.models = self.models
        other.final = final
        return other

    def model(self, spec: str | Model) -> Model:
        """The model for a spec; strings resolve once per context, so workers share a client."""
        if not isinstance(spec, str):
            return resolve_model(spec)
        model = self.models.get(spec)
        if model is None:
            model = self.models[spec] = resolve_model(spec, prices=self.prices)
        return model

    def call(
        self, model: Model, mid: str, request: ModelRequest, *, worker: str, guard_as: str | None = None
    ) -> Coroutine[Any, Any, ModelResponse]:
        """One model call of this run: reserved with the guard (as `guard_as`, the worker by
        default), sent under the run's retry policy, limits and breakers, then settled.

        The call itself (`call_model`) is what the caller awaits: a thousand runs waiting on
        their models hold one frame less each than with a wrapper coroutine here.
        """
        return call_model(
            model,
            request,
            policy=self.retry,
            limits=self.limits,
            events=self.events,
            breakers=self.breakers,
            worker=worker,
            scope=self.scope,
            deadlines=self.deadlines,
            guard=None if type(self.guard) is NoGuard else self.guard,
            guard_as=guard_as or worker,
            prices=self.prices,
        )

    async def aclose(self) -> None:
        """Close the clients of the models this context resolved from strings."""
        await close_models(self.models)


async def close_models(models: dict[str, Model]) -> None:
    """Close the clients of these models (those that have any) and forget them."""
    closing = list(models.values())
    models.clear()
    for model in closing:
        close = getattr(model, "aclose", None)
        if close is not None:
            await close()
