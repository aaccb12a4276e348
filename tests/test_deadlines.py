"""Long bounds on one shared timer: they end blocks as `asyncio.timeout` does, never early and at
most one tick late, leave nothing scheduled behind, and a model call's total-time bound uses them."""

from __future__ import annotations

import asyncio
import time

import pytest

from tools.errors import ProviderConnectionError
from workers import Deadlines, ModelRequest, RetryPolicy, UserMessage, call_model
from workers.testing import FunctionModel

TICK = 0.05


def coarse() -> Deadlines:
    return Deadlines(resolution_s=TICK, precise_below_s=0.0)  # every bound on the shared timer


async def test_a_bound_that_runs_out_raises_timeout_never_early_and_at_most_a_tick_late() -> None:
    deadlines = coarse()
    bound = deadlines.bound(0.12)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with bound:
            await asyncio.sleep(5)
    took = time.monotonic() - started
    assert bound.expired()
    assert 0.12 <= took < 0.12 + TICK + 0.1  # the last term: a loaded machine's scheduling


async def test_the_blocks_own_timeout_and_an_outside_cancel_are_not_the_bounds() -> None:
    deadlines = coarse()
    bound = deadlines.bound(10)
    with pytest.raises(TimeoutError, match="inner"):
        async with bound:
            raise TimeoutError("inner")
    assert not bound.expired()

    async def waits() -> None:
        async with deadlines.bound(10):
            await asyncio.sleep(5)

    task = asyncio.create_task(waits())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_many_bounds_end_each_on_time_and_leave_no_timer_behind() -> None:
    deadlines = coarse()

    async def one(i: int) -> str:
        try:
            async with deadlines.bound(0.1 if i % 2 else 1.0):
                await asyncio.sleep(0.3)
        except TimeoutError:
            return "timed out"
        return "finished"

    outcomes = await asyncio.gather(*(one(i) for i in range(1000)))
    assert outcomes.count("timed out") == 500 and outcomes.count("finished") == 500
    assert outcomes[1::2] == ["timed out"] * 500
    await asyncio.sleep(TICK * 2)  # the next tick finds nothing bounded and does not re-arm
    assert deadlines._buckets == {} and deadlines._timer is None


def test_one_deadlines_object_serves_one_event_loop_after_another() -> None:
    deadlines = coarse()

    async def bounded() -> bool:
        bound = deadlines.bound(0.06)
        try:
            async with bound:
                await asyncio.sleep(2)
        except TimeoutError:
            return bound.expired()
        return False

    assert asyncio.run(bounded()) and asyncio.run(bounded())


async def test_short_bounds_stay_precise() -> None:
    assert isinstance(Deadlines().bound(5), asyncio.Timeout)
    assert isinstance(Deadlines().bound(None), asyncio.Timeout)
    assert not isinstance(Deadlines().bound(300), asyncio.Timeout)


async def test_a_model_calls_total_time_is_bounded_on_the_shared_timer() -> None:
    async def slow(request: ModelRequest) -> str:
        await asyncio.sleep(5)
        return "late"

    request = ModelRequest(messages=(UserMessage.of("hi"),))
    started = time.monotonic()
    with pytest.raises(ProviderConnectionError, match="max_total_s") as caught:
        await call_model(
            FunctionModel(slow),
            request,
            policy=RetryPolicy(max_attempts=1, max_total_s=0.1),
            deadlines=coarse(),
        )
    assert caught.value.timeout and time.monotonic() - started < 1.0


def test_two_event_loops_at_once_each_get_their_bounds_kept() -> None:
    deadlines = coarse()
    loops = [asyncio.new_event_loop(), asyncio.new_event_loop()]

    async def bounded(seconds: float) -> str:
        try:
            async with deadlines.bound(seconds):
                await asyncio.sleep(1)
        except TimeoutError:
            return "timed out"
        return "finished"

    try:
        # The first loop's bound is registered, then the second loop runs while it is pending.
        first = loops[0].create_task(bounded(0.1))
        loops[0].run_until_complete(asyncio.sleep(0.01))
        assert loops[1].run_until_complete(bounded(0.1)) == "timed out"
        assert loops[0].run_until_complete(first) == "timed out"
    finally:
        for loop in loops:
            loop.close()


async def test_a_bound_is_entered_once() -> None:
    bound = coarse().bound(10)
    async with bound:
        pass
    with pytest.raises(RuntimeError, match="one block"):
        async with bound:
            pass
