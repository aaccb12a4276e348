"""The soak, short enough for CI: 200 concurrent runs, three waves, random faults of every kind.

Promises: no run is lost (each is stored with the status its caller saw), nothing escapes the
error tree, no task outlives its wave, memory stays flat from wave to wave, and no request breaks
the APIs' rules. `python -m bench soak` runs the same for minutes (bench/README.md).
"""

from __future__ import annotations

from tests.faults import FAULTS
from tests.soak import soak


async def test_200_concurrent_runs_with_random_faults_lose_nothing_and_leak_nothing() -> None:
    report = await soak(seconds=30, concurrency=200, max_waves=3, rate=0.05)
    assert report.runs == 200 * len(report.wave_s) and len(report.wave_s) >= 2
    assert report.lost == [] and report.untyped == []
    assert report.refused == []
    assert report.tasks == [0] * len(report.wave_s)
    assert report.growth() < 1000, report.objects  # a run that left 5 objects behind would fail this
    assert set(report.faults) == set(FAULTS), report.faults
    assert report.succeeded >= 0.8 * report.runs, report.failed
