"""The soak: waves of concurrent supervisor runs against the simulated provider with random faults.

Each wave starts `concurrency` runs at once through the official SDK (Anthropic, streamed) and
the SQLite store, and waits for all of them. Between waves it measures what must stay flat: the
process's resident memory after a full collection, the asyncio tasks alive, and the server's
threads. At the end every run it started must be in the store with the status its caller saw:
succeeded for a result, failed for a typed error; none lost, none left running.

Bounded both ways: at most `max_waves` waves, and no wave starts after `seconds`. Used by
tests/test_soak.py (short, in CI) and `python -m bench soak` (minutes, for the README).
"""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from supervisor import AgentError, BreakerSettings, Budget, CircuitBreakers, Supervisor
from tests.faults import DESK_PLAN, SimulatedProvider
from tests.provider_server import ProviderServer
from tools import tool
from workers import AnthropicModel, RetryPolicy, Worker

__all__ = ["SoakReport", "soak"]


@tool(idempotent=True)
async def lookup(key: str) -> dict[str, str]:
    """Look a record up."""
    return {"key": key, "status": "ok"}


DESKS = [
    type(f"Desk{i}", (Worker,), {"__doc__": f"Checks part {i}.", "tools": [lookup], "max_turns": 6})
    for i in range(3)
]


@dataclass
class SoakReport:
    """What a soak saw, wave by wave."""

    runs: int = 0
    succeeded: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)  # started, but not stored as their caller saw
    untyped: list[str] = field(default_factory=list)  # exceptions outside the error tree
    rss_mb: list[float] = field(default_factory=list)  # after each wave, after a full collection
    objects: list[int] = field(default_factory=list)  # objects the collector tracks, after each wave
    tasks: list[int] = field(default_factory=list)  # asyncio tasks alive after each wave
    wave_s: list[float] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    refused: list[str] = field(default_factory=list)  # requests the real APIs would refuse

    def growth(self) -> int:
        """Objects alive after the last wave beyond those after the second (the first warms
        caches up). Counted rather than weighed: resident memory also moves with the
        allocator's arenas and the test server's threads, a count of live objects does not."""
        return self.objects[-1] - self.objects[min(1, len(self.objects) - 1)]


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def soak(
    seconds: float, concurrency: int = 200, max_waves: int = 50, rate: float = 0.05, seed: int = 1
) -> SoakReport:
    report = SoakReport()
    simulated = SimulatedProvider(
        plan=DESK_PLAN, tool_args={"lookup": {"key": "k"}}, rate=rate, seed=seed, slow_s=3.5
    )
    server = ProviderServer(responder=simulated).start()
    model = AnthropicModel(
        "claude-haiku-4-5", api_key="sk-soak", base_url=server.url, timeout_s=3.0, stream=True
    )
    seen: dict[str, str] = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            sup = Supervisor(
                [d(model=model) for d in DESKS],
                model=model,
                budget=Budget(max_usd=0.05, deadline_s=60),
                store=os.path.join(folder, "soak.db"),
                retry=RetryPolicy(max_attempts=5, base_delay_s=0.05, max_delay_s=1.0),
                # 200 calls in flight on a loaded machine: a row of timeouts is load, not an outage
                breakers=CircuitBreakers(BreakerSettings(failures=100, cooldown_s=2.0)),
            )
            baseline = len(asyncio.all_tasks())
            ends = time.monotonic() + seconds
            while len(report.wave_s) < max_waves and time.monotonic() < ends:
                started = time.monotonic()
                ids = [f"soak-{len(report.wave_s)}-{i}" for i in range(concurrency)]
                outcomes = await asyncio.gather(*(_one(sup, run_id) for run_id in ids))
                report.wave_s.append(time.monotonic() - started)
                for run_id, outcome in zip(ids, outcomes, strict=True):
                    seen[run_id] = outcome
                report.requests += len(server.received)
                server.received.clear()  # the harness's own record, not the framework's memory
                gc.collect()
                report.rss_mb.append(_rss_mb())
                report.objects.append(len(gc.get_objects()))
                report.tasks.append(len(asyncio.all_tasks()) - baseline)
            await _tally(sup, seen, report)
            await sup.aclose()
    finally:
        await model.aclose()
        server.stop()
    report.faults = dict(simulated.injected)
    report.refused = list(server.refused)
    return report


async def _one(sup: Supervisor, run_id: str) -> str:
    try:
        await sup.run("check every desk", run_id=run_id)
    except AgentError as error:
        return type(error).__name__
    except Exception as error:
        return f"untyped:{type(error).__name__}: {error}"
    return "ok"


async def _tally(sup: Supervisor, seen: dict[str, str], report: SoakReport) -> None:
    stored: dict[str, Any] = {r.run_id: r for r in await sup._store.runs()}
    for run_id, outcome in seen.items():
        report.runs += 1
        record = stored.get(run_id)
        if outcome.startswith("untyped:"):
            report.untyped.append(outcome)
        elif outcome == "ok":
            report.succeeded += 1
        else:
            report.failed[outcome] = report.failed.get(outcome, 0) + 1
        expected = "succeeded" if outcome == "ok" else "failed"
        if record is None or record.status != expected:
            report.lost.append(f"{run_id}: caller saw {outcome}, store has {record and record.status}")
