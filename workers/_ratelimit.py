"""Rate limits per provider model, shared by every worker that holds the same `RateLimits`.

Requests per minute go through asyncio-throttle; tokens per minute through a bucket that
reserves the estimated tokens before the call and settles on the real usage afterwards. The
provider's own rate-limit headers and retry-after answers pause the model for everyone.
Every wait is bounded by `RateLimit.max_wait_s`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

from asyncio_throttle.throttler import Throttler

from tools.errors import ProviderRateLimited

from ._model import RateLimitInfo

__all__ = ["RateLimit", "RateLimits", "ModelLimiter"]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Limits for one model.

    Attributes:
        requests_per_minute: At most this many requests in any 60 s window (None: unlimited).
        tokens_per_minute: Tokens (input plus max output) a minute, metered as the providers
            meter them: a bucket that holds this many and refills continuously at this rate, so
            a burst of up to this many goes at once and this many a minute is the sustained rate
            (any 60 s window may see up to twice this: a full bucket, then a minute's refill).
        max_wait_s: The longest a request may wait for capacity before it fails.
    """

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_wait_s: float = 120.0


class _TokenBucket:
    """Holds up to `per_minute` tokens, refilled continuously at `per_minute / 60` a second."""

    __slots__ = ("capacity", "level", "_rate", "_stamp")

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.level = float(per_minute)
        self._rate = per_minute / 60.0
        self._stamp = time.monotonic()

    def refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self._stamp) * self._rate)
        self._stamp = now

    def wait_for(self, tokens: float) -> float:
        """Seconds until `tokens` are available (0 when they are now)."""
        self.refill()
        return 0.0 if self.level >= tokens else (tokens - self.level) / self._rate


class ModelLimiter:
    """The limiter of one model: acquire before each attempt, settle after it."""

    __slots__ = ("model", "limit", "_throttler", "_bucket", "_lock", "_paused_until")

    def __init__(self, model: str, limit: RateLimit) -> None:
        self.model = model
        self.limit = limit
        rpm = limit.requests_per_minute
        self._throttler = Throttler(rate_limit=rpm, period=60.0, retry_interval=0.05) if rpm else None
        self._bucket = _TokenBucket(limit.tokens_per_minute) if limit.tokens_per_minute else None
        self._lock = asyncio.Lock()
        self._paused_until = 0.0

    @property
    def idle(self) -> bool:
        """True when nothing limits this model: the hot path skips all waiting."""
        return self._throttler is None and self._bucket is None and self._paused_until == 0.0

    async def acquire(self, tokens: int) -> tuple[int, float]:
        """Wait for capacity for one request of about `tokens` tokens.

        Returns (tokens reserved, seconds waited). Raises ProviderRateLimited when the wait
        would pass `max_wait_s`.
        """
        if self.idle:
            return 0, 0.0
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.limit.max_wait_s):
                async with self._lock:  # first come, first served
                    pause = self._paused_until - time.monotonic()
                    if pause > 0:
                        await asyncio.sleep(pause)
                    if self._throttler is not None:
                        await self._throttler.acquire()  # type: ignore[no-untyped-call]
                    reserved = 0
                    if self._bucket is not None:
                        reserved = min(tokens, int(self._bucket.capacity))
                        await asyncio.sleep(self._bucket.wait_for(reserved))
                        self._bucket.refill()
                        self._bucket.level -= reserved
        except TimeoutError:
            raise ProviderRateLimited(
                f"local rate limit: no capacity within {self.limit.max_wait_s:g} s",
                provider=self.model.partition(":")[0],
                model=self.model.partition(":")[2],
            ) from None
        return reserved, time.monotonic() - started

    def settle(self, reserved: int, actual: int) -> None:
        """Correct the reservation with the tokens the call really used."""
        if self._bucket is not None and reserved:
            self._bucket.refill()
            self._bucket.level += reserved - actual

    def observe(self, info: RateLimitInfo | None, retry_after_s: float | None = None) -> None:
        """Follow what the provider said: headers of a response, or retry-after of a 429."""
        pause = retry_after_s or 0.0
        if info is not None:
            if info.requests_remaining == 0 and info.requests_reset_s:
                pause = max(pause, info.requests_reset_s)
            if info.tokens_remaining is not None and info.tokens_limit:
                # A limit the user configured stays; headers only lower what is left in it.
                if self._bucket is None:
                    self._bucket = _TokenBucket(info.tokens_limit)
                self._bucket.refill()
                self._bucket.level = min(self._bucket.level, float(info.tokens_remaining))
        if pause > 0:
            self._paused_until = max(self._paused_until, time.monotonic() + pause)


class RateLimits:
    """The limiters of every model a process calls; share one object to share the limits.

    Args:
        limits: Limits by "provider:name", or by "provider" as the default for each of that
            provider's models. Models not named are unlimited until their headers say otherwise.
    """

    __slots__ = ("_limits", "_limiters")

    def __init__(self, limits: Mapping[str, RateLimit] | None = None) -> None:
        self._limits = dict(limits or {})
        self._limiters: dict[str, ModelLimiter] = {}

    def for_model(self, model_id: str) -> ModelLimiter:
        """The limiter of "provider:name", created on first use."""
        limiter = self._limiters.get(model_id)
        if limiter is None:
            limit = self._limits.get(model_id) or self._limits.get(model_id.partition(":")[0]) or RateLimit()
            limiter = self._limiters[model_id] = ModelLimiter(model_id, limit)
        return limiter
