"""The one retry policy, and the call path every model request takes.

The SDKs' own retries are off; this is the only place a request is sent again. Exponential
backoff with full jitter on retryable errors (429, 408, 409, 5xx, 529, connection errors,
timeouts, broken streams), honouring the provider's retry-after; never on 400, 401, 403, 404,
422. Attempts and total time are both bounded.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from tools.errors import ProviderConnectionError, ProviderError, ProviderRateLimited

from ._deadlines import Deadlines
from ._events import BreakerEvent, EventSink, ModelCallEvent, ModelRetryEvent, NullSink, RateLimitWaitEvent
from ._hooks import ModelCallGuard
from ._model import Model, ModelRequest, ModelResponse
from ._prices import PriceTable
from ._ratelimit import ModelLimiter, RateLimits
from ._resolve import model_id, model_price
from ._tokens import estimate_tokens
from ._usage import Usage

__all__ = ["Breaker", "Breakers", "RetryPolicy", "call_model"]


class Breaker(Protocol):
    """The circuit breaker of one model, as the call path sees it (implemented by the supervisor).

    A breaker with a `state` attribute that reads "closed" is not asked to `check`: calls go
    through while it is closed (the common case, kept cheap).
    """

    def check(self) -> None:
        """Raise (CircuitOpen) when calls must fail fast now."""
        ...

    def record(self, failed: bool, latency_s: float) -> None:
        """One attempt's outcome: a provider failure, or a success and how long it took."""
        ...

    def release(self, probe: object) -> None:
        """The call `check` let through ended without an outcome to `record` (cancelled, out of
        time before it was sent, or refused for a reason that says nothing of the provider's
        health): a probe it was must not hold the next one back. `probe` is the breaker's
        `probe` attribute as read right after that `check` (None when it has none). Optional:
        a breaker without `release` is not told."""
        ...


class Breakers(Protocol):
    """The breakers of every model, shared like rate limits."""

    def for_model(self, model_id: str) -> Breaker:
        """The breaker of "provider:name"."""
        ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry a failed model request.

    Attributes:
        max_attempts: Total sends of one request, the first included.
        base_delay_s: The backoff ceiling of the first retry; it doubles with each retry.
        max_delay_s: The largest single wait, the provider's retry-after included: a provider
            that asks for longer ends the retries instead.
        max_total_s: The longest one call may take with all its attempts and waits.
        rng: The jitter source; pass a seeded `random.Random` for repeatable delays (by
            default the `random` module's own generator).
    """

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 60.0
    max_total_s: float = 300.0
    rng: random.Random | None = field(default=None, compare=False, repr=False)

    def delay(self, retry: int, retry_after_s: float | None) -> float:
        """The wait before retry number `retry` (1-based): full jitter, or the provider's ask."""
        if retry_after_s is not None and not math.isnan(retry_after_s):  # NaN passes every bound
            return max(retry_after_s, 0.0)
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (retry - 1))
        return (self.rng or random).uniform(0.0, ceiling)


_NULL_SINK = NullSink()


def _changed(events: EventSink, mid: str, breaker: Breaker, before: object) -> None:
    """A change of the breaker's state is an event of the run that caused it (its trace shows it)."""
    after = getattr(breaker, "state", None)
    if after != before and type(events) is not NullSink:
        events.emit(BreakerEvent(mid, after, getattr(breaker, "failures", 0)))  # type: ignore[arg-type]


def _check(breaker: Breaker, events: EventSink, mid: str) -> None:
    """Raise (CircuitOpen) when the breaker is open; a probe it lets through is an event."""
    state = getattr(breaker, "state", None)
    try:
        breaker.check()
    finally:
        _changed(events, mid, breaker, state)


async def _acquire(limiter: ModelLimiter, request: ModelRequest, events: EventSink, mid: str) -> int:
    """Wait for room under the rate limits; the tokens reserved."""
    reserved, waited = await limiter.acquire(estimate_tokens(request))
    if waited > 0.001:
        events.emit(RateLimitWaitEvent(mid, waited, "rate limit"))
    return reserved


def _attempted(
    response: ModelResponse, attempt: int, model: Model, prices: PriceTable | None
) -> ModelResponse:
    """The response, its usage counting every attempt (and priced, if its model did not)."""
    usage = response.usage
    if usage.requests:
        if attempt == 1:
            return response
        return replace(response, usage=replace(usage, requests=attempt, retries=attempt - 1))
    return replace(response, usage=_counted(usage, model, prices, attempt))


def _counted(usage: Usage, model: Model, prices: PriceTable | None, attempt: int) -> Usage:
    """The usage of a model object that reported tokens but no request (a user's own model):
    its attempts, priced by the model's own `price` or the table, and unpriced rather than free
    when neither knows it."""
    tokens = (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens)
    if usage.known_cost_usd or usage.unpriced_requests:  # it priced itself
        cost, unpriced = usage.known_cost_usd, usage.unpriced_requests
    else:
        price = model_price(model, prices)
        cost, unpriced = (price.cost(*tokens), 0) if price is not None else (0.0, 1)
    return Usage(
        *tokens, requests=attempt, retries=attempt - 1, known_cost_usd=cost, unpriced_requests=unpriced
    )


def _emit_call(events: EventSink, mid: str, response: ModelResponse, worker: str, scope: str) -> None:
    if type(events) is NullSink or getattr(events, "drops_model_calls", False):  # nobody listens
        return
    event = ModelCallEvent(
        mid,
        response.usage,
        response.stop_reason,
        response.latency_s,
        response.first_token_s,
        response.request_id,
        worker,
        scope,
    )
    events.emit(event)


def _retry_delay(error: ProviderError, attempt: int, policy: RetryPolicy, elapsed: float) -> float | None:
    """How long to wait before sending again, or None when the error must stand."""
    if not error.retryable or attempt >= policy.max_attempts:
        return None
    delay = policy.delay(attempt, error.retry_after_s)
    if delay > policy.max_delay_s or elapsed + delay > policy.max_total_s:
        return None
    return delay


def _record(
    error: ProviderError | None,
    response: ModelResponse | None,
    breaker: Breaker | None,
    limiter: ModelLimiter | None,
    reserved: int,
    events: EventSink,
    mid: str,
    latency_s: float,
) -> None:
    """Tell the breaker and the limiter how an attempt went: `error`, or answered with `response`."""
    if breaker is not None and (error is None or error.retryable):  # a 400 says nothing of health
        # A 429 is a healthy provider pacing us (the limits and retry-after handle it):
        # it ends a run of failures rather than adding to one.
        state = getattr(breaker, "state", None)
        breaker.record(error is not None and not isinstance(error, ProviderRateLimited), latency_s)
        if getattr(breaker, "state", None) != state:
            _changed(events, mid, breaker, state)
    if limiter is None:
        return
    if response is not None:
        limiter.settle(reserved, response.usage.input_tokens + response.usage.output_tokens)
        limiter.observe(response.rate_limit)
    else:
        limiter.settle(reserved, 0)
        limiter.observe(None, error.retry_after_s if error is not None else None)


def _abandoned(
    probe: tuple[Breaker, object] | None,
    guard: ModelCallGuard | None,
    name: str,
    mid: str,
    request: ModelRequest,
) -> None:
    """A call that ends in an error: its probe, if it was one, and its reservation are released."""
    if probe is not None:
        release = getattr(probe[0], "release", None)  # optional for a breaker of the user's own
        if release is not None:
            release(probe[1])
    if guard is not None:
        guard.after_model_call(name, mid, request, None)


async def call_model(
    model: Model,
    request: ModelRequest,
    *,
    policy: RetryPolicy,
    limits: RateLimits | None = None,
    events: EventSink = _NULL_SINK,
    breakers: Breakers | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    worker: str = "",
    scope: str = "",
    deadlines: Deadlines | None = None,
    guard: ModelCallGuard | None = None,
    guard_as: str = "",
    prices: PriceTable | None = None,
) -> ModelResponse:
    """Send `request` to `model` through the rate limiter, retrying as `policy` allows.

    The response's usage counts every attempt (`requests`) and the retries among them. A model
    that reports tokens only (no `requests`) is priced here from `prices` (the built-in prices
    by default); without a known price its call is counted as unpriced, never as free.
    `deadlines` keeps the policy's total-time bound on a shared timer (see `Deadlines`).
    `guard` reserves the call before it is sent (as `guard_as`, `worker` by default) and
    settles it once it answered or failed; a call the guard refuses is not sent.

    Raises:
        ProviderError: the last error, with `attempts` set, when it was not retryable or the
            attempts or total time ran out.
    """
    mid = model_id(model)
    limiter = limits.for_model(mid) if limits is not None else None
    breaker = breakers.for_model(mid) if breakers is not None else None
    name = guard_as or worker
    if guard is not None:
        request = await guard.before_model_call(name, mid, request)
    started = time.monotonic()
    attempt = 0
    # A breaker not closed let this attempt through (as its probe, perhaps): it is owed an outcome.
    probe: tuple[Breaker, object] | None = None
    try:
        while True:
            attempt += 1
            if (
                breaker is not None and getattr(breaker, "state", None) != "closed"
            ):  # closed: nothing to check
                _check(breaker, events, mid)
                probe = (breaker, getattr(breaker, "probe", None))
            reserved = 0
            if limiter is not None and not limiter.idle:
                reserved = await _acquire(limiter, request, events, mid)
            sent = time.monotonic()
            # The attempt is cut off when the policy's total time runs out (awaited here, not in a
            # helper coroutine: a thousand runs in flight hold one frame less each).
            left = max(policy.max_total_s - (sent - started), 0.0)
            deadline = asyncio.timeout(left) if deadlines is None else deadlines.bound(left)
            try:
                try:
                    async with deadline:
                        response = await model.request(request)
                except TimeoutError:
                    if not deadline.expired():
                        raise
                    raise ProviderConnectionError(
                        "no answer within the retry policy's max_total_s",
                        provider=model.provider,
                        model=model.name,
                        timeout=True,
                        attempts=attempt,
                    ) from None
            except ProviderError as error:
                error.attempts = attempt
                _record(error, None, breaker, limiter, reserved, events, mid, time.monotonic() - sent)
                probe = None if error.retryable else probe  # a retryable error was the outcome
                delay = _retry_delay(error, attempt, policy, time.monotonic() - started)
                if delay is None:
                    raise
                events.emit(ModelRetryEvent(mid, attempt, delay, str(error), error.status_code))
                await sleep(delay)
                continue
            _record(None, response, breaker, limiter, reserved, events, mid, time.monotonic() - sent)
            probe = None
            response = _attempted(response, attempt, model, prices)
            _emit_call(events, mid, response, worker, scope)
            break
    except BaseException:
        _abandoned(probe, guard, name, mid, request)
        raise
    if guard is not None:  # outside the try: an error of the settling stands, nothing is released
        guard.after_model_call(name, mid, request, response)
    return response
