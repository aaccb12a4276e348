"""One retry policy and per-model rate limits, checked offline with the test models."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from tests.recorders import Events
from tools.errors import BudgetExceeded, ProviderBadRequest, ProviderRateLimited, ProviderUnavailable
from workers import (
    ModelRequest,
    ModelRetryEvent,
    RateLimit,
    RateLimitInfo,
    RateLimits,
    RetryPolicy,
    Usage,
    UserMessage,
    call_model,
    estimate_tokens,
)
from workers._provider import retry_after_s
from workers.testing import ScriptedModel, reply

ASK = ModelRequest(messages=(UserMessage.of("hi"),), max_tokens=10)


class Sleeps:
    """Records the waits instead of sleeping, so backoff is checked without waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 529])
async def test_retryable_statuses_are_retried_and_counted_in_usage(status: int) -> None:
    model = ScriptedModel([reply.error(status), reply.text("ok")])
    events, sleeps = Events(), Sleeps()
    response = await call_model(model, ASK, policy=RetryPolicy(), events=events, sleep=sleeps)
    assert response.text == "ok"
    assert (response.usage.requests, response.usage.retries) == (2, 1)
    retries = [e for e in events.seen if isinstance(e, ModelRetryEvent)]
    assert [(e.attempt, e.status_code) for e in retries] == [(1, status)]
    assert len(sleeps.waits) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_client_errors_fail_at_once(status: int) -> None:
    model = ScriptedModel([reply.error(status)])
    sleeps = Sleeps()
    with pytest.raises(Exception) as caught:
        await call_model(model, ASK, policy=RetryPolicy(), sleep=sleeps)
    assert getattr(caught.value, "status_code", None) == status and sleeps.waits == []


async def test_backoff_is_exponential_with_full_jitter_and_attempts_are_bounded() -> None:
    model = ScriptedModel([reply.error(503) for _ in range(5)])
    policy = RetryPolicy(max_attempts=5, base_delay_s=1.0, max_delay_s=60, rng=random.Random(7))
    sleeps = Sleeps()
    with pytest.raises(ProviderUnavailable) as caught:
        await call_model(model, ASK, policy=policy, sleep=sleeps)
    assert caught.value.attempts == 5 and len(sleeps.waits) == 4
    for retry, wait in enumerate(sleeps.waits, start=1):
        assert 0 <= wait <= 2 ** (retry - 1)
    expected = RetryPolicy(base_delay_s=1.0, rng=random.Random(7))
    assert sleeps.waits == [expected.delay(r, None) for r in range(1, 5)]  # repeatable with a seed


async def test_retry_after_is_honoured_exactly() -> None:
    model = ScriptedModel([reply.error(429, retry_after_s=7.5), reply.text("ok")])
    sleeps = Sleeps()
    await call_model(model, ASK, policy=RetryPolicy(), sleep=sleeps)
    assert sleeps.waits == [7.5]


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "nan"}, None),
        ({"retry-after-ms": "NaN"}, None),
        ({"retry-after-ms": "nan", "retry-after": "2"}, 2.0),
    ],
)
def test_a_retry_after_that_is_no_number_counts_as_not_said(
    headers: dict[str, str], seconds: float | None
) -> None:
    """NaN passes every bound (each comparison with it is false): a call would sleep forever."""
    assert retry_after_s(headers) == seconds


async def test_a_nan_retry_after_from_a_model_object_waits_the_backoff_instead() -> None:
    model = ScriptedModel([reply.error(429, retry_after_s=float("nan")), reply.text("ok")])
    sleeps = Sleeps()
    await call_model(model, ASK, policy=RetryPolicy(base_delay_s=1.0), sleep=sleeps)
    assert len(sleeps.waits) == 1 and 0.0 <= sleeps.waits[0] <= 1.0


async def test_total_time_is_bounded() -> None:
    model = ScriptedModel([reply.error(429, retry_after_s=40), reply.text("never sent")], allow_unused=True)
    with pytest.raises(ProviderRateLimited):
        await call_model(model, ASK, policy=RetryPolicy(max_total_s=30), sleep=Sleeps())
    assert len(model.requests) == 1


async def test_connection_drops_are_retried() -> None:
    model = ScriptedModel([reply.disconnect(), reply.disconnect(), reply.text("ok")])
    response = await call_model(model, ASK, policy=RetryPolicy(), sleep=Sleeps())
    assert response.usage.retries == 2


async def test_non_retryable_error_after_retries_keeps_its_attempt_count() -> None:
    model = ScriptedModel([reply.error(503), reply.error(400)])
    with pytest.raises(ProviderBadRequest) as caught:
        await call_model(model, ASK, policy=RetryPolicy(), sleep=Sleeps())
    assert caught.value.attempts == 2 and "after 2 attempts" in str(caught.value)


async def test_requests_per_minute_limit_holds_the_next_request_back() -> None:
    limits = RateLimits({"test:scripted": RateLimit(requests_per_minute=2, max_wait_s=0.3)})
    model = ScriptedModel([reply.text("1"), reply.text("2"), reply.text("3")], allow_unused=True)
    await call_model(model, ASK, policy=RetryPolicy(), limits=limits)
    await call_model(model, ASK, policy=RetryPolicy(), limits=limits)
    started = time.monotonic()
    with pytest.raises(ProviderRateLimited, match="local rate limit"):
        await call_model(model, ASK, policy=RetryPolicy(), limits=limits)
    assert 0.25 <= time.monotonic() - started < 2
    assert len(model.requests) == 2  # the third was never sent


async def test_token_bucket_reserves_before_and_settles_on_real_usage() -> None:
    limit = RateLimit(tokens_per_minute=6000, max_wait_s=5)  # refills 100 tokens a second
    limiter = RateLimits({"test": limit}).for_model("test:scripted")
    reserved, waited = await limiter.acquire(5000)
    assert reserved == 5000 and waited < 0.05
    limiter.settle(reserved, 200)  # the call used far less: 4800 come back
    started = time.monotonic()
    await limiter.acquire(5000)
    assert time.monotonic() - started < 0.2


async def test_token_bucket_waits_when_empty() -> None:
    limiter = RateLimits({"test": RateLimit(tokens_per_minute=6000, max_wait_s=5)}).for_model("test:x")
    await limiter.acquire(6000)
    started = time.monotonic()
    await limiter.acquire(30)  # needs 0.3 s of refill at 100 tokens a second
    assert 0.25 <= time.monotonic() - started < 1.5


async def test_limits_are_shared_by_every_caller_holding_the_same_object() -> None:
    limits = RateLimits({"test": RateLimit(requests_per_minute=3, max_wait_s=0.2)})
    models = [ScriptedModel([reply.text("ok")], allow_unused=True) for _ in range(4)]  # one is refused
    outcomes = await asyncio.gather(
        *(call_model(m, ASK, policy=RetryPolicy(), limits=limits) for m in models), return_exceptions=True
    )
    assert sum(isinstance(o, ProviderRateLimited) for o in outcomes) == 1
    other = RateLimits({"test": RateLimit(requests_per_minute=3, max_wait_s=0.2)})
    await call_model(ScriptedModel([reply.text("ok")]), ASK, policy=RetryPolicy(), limits=other)


async def test_provider_headers_create_and_sync_a_token_bucket() -> None:
    limiter = RateLimits().for_model("anthropic:claude-haiku-4-5")
    assert limiter.idle
    limiter.observe(RateLimitInfo(tokens_limit=60_000, tokens_remaining=0))
    assert not limiter.idle
    started = time.monotonic()
    await limiter.acquire(100)  # 1000 tokens a second refill: about 0.1 s
    assert 0.05 <= time.monotonic() - started < 1


async def test_usage_of_a_retried_call_counts_tokens_once() -> None:
    model = ScriptedModel([reply.error(500), reply.text("x", usage=Usage(input_tokens=10, output_tokens=2))])
    response = await call_model(model, ASK, policy=RetryPolicy(), sleep=Sleeps())
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.requests) == (10, 2, 2)


def test_worst_case_estimate_includes_max_tokens() -> None:
    assert estimate_tokens(ASK) > ASK.max_tokens


class Ledger:
    """A model-call guard that records what it reserved and settled, and may refuse."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.seen: list[tuple[str, str, int, bool | None]] = []

    async def before_model_call(self, worker: str, model: str, request: ModelRequest) -> ModelRequest:
        if self.refuse:
            raise BudgetExceeded("max_tokens", 10, 10, request.max_tokens)
        lowered = ModelRequest(messages=request.messages, max_tokens=5)
        self.seen.append(("reserve", worker, lowered.max_tokens, None))
        return lowered

    def after_model_call(
        self, worker: str, model: str, request: ModelRequest, response: object | None
    ) -> None:
        self.seen.append(("settle", worker, request.max_tokens, response is not None))


async def test_a_guarded_call_is_reserved_once_and_settled_once_with_the_request_it_sent() -> None:
    model = ScriptedModel([reply.error(503), reply.text("ok")])
    guard = Ledger()
    await call_model(model, ASK, policy=RetryPolicy(), sleep=Sleeps(), guard=guard, worker="w")
    # one reservation for the call, retries included; the lowered request is what was sent
    assert guard.seen == [("reserve", "w", 5, None), ("settle", "w", 5, True)]
    assert [r.max_tokens for r in model.requests] == [5, 5]


async def test_a_failed_guarded_call_releases_its_reservation() -> None:
    model = ScriptedModel([reply.error(400)])
    guard = Ledger()
    with pytest.raises(ProviderBadRequest):
        await call_model(model, ASK, policy=RetryPolicy(), guard=guard, worker="w", guard_as="w (summary)")
    assert guard.seen == [("reserve", "w (summary)", 5, None), ("settle", "w (summary)", 5, False)]


async def test_a_call_the_guard_refuses_is_never_sent() -> None:
    model = ScriptedModel([reply.text("never")], allow_unused=True)
    with pytest.raises(BudgetExceeded):
        await call_model(model, ASK, policy=RetryPolicy(), guard=Ledger(refuse=True))
    assert model.requests == []


async def test_a_guard_whose_settling_raises_is_not_released_as_well() -> None:
    """A guard may stop a run from its settling (a run that overspent); the call it settled is
    not then released as if it had failed."""

    class Strict(Ledger):
        def after_model_call(
            self, worker: str, model: str, request: ModelRequest, response: object | None
        ) -> None:
            super().after_model_call(worker, model, request, response)
            if response is not None:
                raise RuntimeError("over budget")

    guard = Strict()
    with pytest.raises(RuntimeError, match="over budget"):
        await call_model(ScriptedModel([reply.text("x")]), ASK, policy=RetryPolicy(), guard=guard, worker="w")
    assert [entry[0] for entry in guard.seen] == ["reserve", "settle"]
    assert guard.seen[-1][3] is True
