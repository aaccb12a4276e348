"""`Budget`: hard limits of one run, enforced before every model call.

Before each call the worst case is reserved: an upper bound of the prompt's tokens plus the
call's max_tokens, at the model's price. The check and the reservation happen with no `await`
in between, so concurrent workers cannot both take the last of the budget: overshoot is zero.
After the call the reservation is replaced by what the call really used (a call that reported
no usage keeps its reservation: see `BudgetGuard.after_model_call`). A call that does not fit is
not sent, or its max_tokens is lowered when what remains still leaves a useful answer.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace

from tools._numbers import is_amount, is_count
from tools.errors import BudgetExceeded, ConfigurationError
from workers import (
    BudgetEvent,
    EventSink,
    ModelRequest,
    ModelResponse,
    NullSink,
    Price,
    worst_case_prompt_tokens,
)

__all__ = ["Budget", "BudgetGuard"]

_log = logging.getLogger("supervisor.budget")


@dataclass(frozen=True, slots=True)
class Budget:
    """Hard limits of one run. None means no limit.

    Attributes:
        max_usd: Total cost of every model call of the run. A call whose provider reported no
            usage counts at its worst case (its prompt's upper bound plus max_tokens).
        max_tokens: Total input plus output tokens of every model call.
        max_steps: Steps in the run, across its re-plans (a failed step counts: it ran).
        max_turns_per_worker: A cap on every worker's `max_turns`.
        max_handoffs: Handoffs in one run.
        deadline_s: Wall time of the run; calls in flight are cancelled when it passes.
        min_answer_tokens: A call whose max_tokens would have to drop below this is refused
            rather than sent with too little room to answer.
    """

    max_usd: float | None = None
    max_tokens: int | None = None
    max_steps: int | None = None
    max_turns_per_worker: int | None = None
    max_handoffs: int | None = None
    deadline_s: float | None = None
    min_answer_tokens: int = 256

    def __post_init__(self) -> None:
        """Each limit of its type and range, so that a wrong one fails here rather than in a run
        (deadline_s="10" failed inside it; max_turns_per_worker=0 was ignored)."""
        for name, least in _WHOLE.items():
            value = getattr(self, name)
            optional = name != "min_answer_tokens"
            if value is None and optional:
                continue
            if type(value) is float and value.is_integer():  # max_tokens=2e5 means 200000
                value = int(value)
                object.__setattr__(self, name, value)
            if not is_count(value, least):
                kind = ("None or " if optional else "") + (
                    "a positive int" if least else "an int of 0 or more"
                )
                raise ConfigurationError(f"Budget {name} must be {kind}, got {value!r}")
        for name in ("max_usd", "deadline_s"):
            value = getattr(self, name)
            positive = name == "deadline_s"
            if value is not None and not is_amount(value, positive=positive):
                kind = "a positive number of seconds" if positive else "a number of dollars, 0 or more"
                raise ConfigurationError(f"Budget {name} must be None or {kind}, got {value!r}")


_WHOLE = {
    "max_tokens": 1,
    "max_steps": 1,
    "max_turns_per_worker": 1,
    "max_handoffs": 0,
    "min_answer_tokens": 1,
}


def _band(price: Price, prompt_tokens: int) -> Price:
    """The price a request with this many prompt tokens is billed at (see `Price.long_prompt`)."""
    # Bounded: bands nest finitely (a frozen Price cannot contain itself).
    while price.long_prompt is not None and price.long_prompt_over is not None:
        if prompt_tokens <= price.long_prompt_over:
            break
        price = price.long_prompt
    return price


class BudgetGuard:
    """The budget of one run, as the workers' model-call guard."""

    __slots__ = (
        "_open",
        "_settled",
        "_warned",
        "budget",
        "events",
        "prices",
        "reserved_tokens",
        "reserved_usd",
        "run_id",
        "spent_tokens",
        "spent_usd",
    )

    def __init__(
        self, budget: Budget, prices: dict[str, Price | None], events: EventSink, run_id: str | None
    ) -> None:
        self.budget = budget
        self.prices = prices  # by model id, filled as models are resolved
        self.events = events
        self.run_id = run_id
        self.spent_usd = 0.0
        self.spent_tokens = 0
        self.reserved_usd = 0.0
        self.reserved_tokens = 0
        self._open: dict[int, tuple[float, int]] = {}
        self._settled = asyncio.Event()
        self._warned: set[str] = set()

    async def before_model_call(self, worker: str, model: str, request: ModelRequest) -> ModelRequest:
        """Reserve the worst case of this call, lowering max_tokens to fit, or refuse it.

        A call that would fit once the calls in flight settle (they rarely use their whole
        reservation) waits for them instead of being refused.
        """
        while True:
            reserved = self._reserve(worker, model, request, refuse=not self._open)
            if reserved is not None:
                return reserved
            self._settled.clear()
            await self._settled.wait()  # bounded: every open reservation settles or is cancelled

    def _reserve(
        self, worker: str, model: str, request: ModelRequest, *, refuse: bool
    ) -> ModelRequest | None:
        # No await in here: check and reserve are one step for the event loop.
        budget, price = self.budget, self.prices.get(model)
        prompt = worst_case_prompt_tokens(request)
        answer = request.max_tokens
        if price is None and budget.max_usd is not None and model not in self._warned:
            self._warned.add(model)
            _log.warning("model %s has no price: it counts against max_tokens only", model)
            self.events.emit(BudgetEvent(worker, model, "unpriced", "counts against max_tokens only"))
        room = answer
        if budget.max_tokens is not None:
            room = min(room, budget.max_tokens - self.spent_tokens - self.reserved_tokens - prompt)
        # The request is billed at one band, by its prompt's length: its answer is priced there.
        band = _band(price, prompt) if price is not None else None
        prompt_usd = band.cost(prompt, 0) if band is not None else 0.0
        if budget.max_usd is not None and band is not None:
            left = budget.max_usd - self.spent_usd - self.reserved_usd - prompt_usd
            room = min(room, int(left * 1_000_000 / band.output) if band.output else answer)
        if room < min(answer, budget.min_answer_tokens):
            if not refuse:
                return None
            self._refuse(worker, model, prompt, answer, price)
        if room < answer:
            self.events.emit(BudgetEvent(worker, model, "lowered", f"max_tokens {answer} -> {room}"))
            request = replace(request, max_tokens=room)
        usd = prompt_usd + request.max_tokens * band.output / 1_000_000 if band is not None else 0.0
        tokens = prompt + request.max_tokens
        self.reserved_usd += usd
        self.reserved_tokens += tokens
        self._open[id(request)] = (usd, tokens)
        events = self.events
        if type(events) is not NullSink and not getattr(events, "drops_model_calls", False):
            self.events.emit(BudgetEvent(worker, model, "reserved", f"{tokens} tokens, ${usd:.6f}"))
        return request

    def after_model_call(
        self, worker: str, model: str, request: ModelRequest, response: ModelResponse | None
    ) -> None:
        """Release the reservation and count what the call really used.

        A call that came back without a count of its prompt (a server that ignores
        `include_usage`, a body without usage: the provider reports it unpriced, with no input
        tokens) is charged what was reserved for it, its worst case: what it cost is unknown,
        and a hard limit must not count it as free."""
        usd, tokens = self._open.pop(id(request), (0.0, 0))
        self.reserved_usd -= usd
        self.reserved_tokens -= tokens
        self._settled.set()
        if response is None:
            return
        usage = response.usage
        if usage.unpriced_requests and not usage.input_tokens:
            self.spent_usd += usd
            self.spent_tokens += max(tokens, usage.output_tokens)
        else:
            self.spent_usd += usage.known_cost_usd
            self.spent_tokens += usage.input_tokens + usage.output_tokens

    def _refuse(self, worker: str, model: str, prompt: int, answer: int, price: Price | None) -> None:
        budget = self.budget
        used_tokens = self.spent_tokens + self.reserved_tokens
        if (
            budget.max_tokens is not None
            and used_tokens + prompt + min(answer, budget.min_answer_tokens) > budget.max_tokens
        ):
            error = BudgetExceeded(
                "max_tokens", budget.max_tokens, used_tokens, prompt + answer, run_id=self.run_id
            )
        else:
            assert budget.max_usd is not None and price is not None  # the only other limit that refuses
            need = price.cost(prompt, answer)
            error = BudgetExceeded(
                "max_usd", budget.max_usd, self.spent_usd + self.reserved_usd, need, run_id=self.run_id
            )
        self.events.emit(BudgetEvent(worker, model, "refused", str(error)))
        raise error
