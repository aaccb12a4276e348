"""The supervisor workload of the goals: supervisor -> 4 workers, 10 model calls a run.

plan (1 call), 4 workers in parallel each (tool call, output) (8 calls), final answer (1 call).
The model answers instantly, or after a fixed simulated latency; everything else is framework.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from typing import Any

from supervisor import Budget, Supervisor
from tools import tool
from workers import ModelRequest, ModelResponse, Price, RunContext, TextPart, ToolCallPart, Usage, Worker

PRICE = Price(input=1.0, output=5.0)
USAGE = Usage(input_tokens=400, output_tokens=40, requests=1, known_cost_usd=PRICE.cost(400, 40))
PLAN = {
    "reasoning": "each desk checks its part",
    "steps": [
        {"id": f"s{i}", "worker": f"Desk{i}", "input": f"part {i}", "depends_on": [], "reason": "its desk"}
        for i in range(4)
    ],
}


@tool
async def lookup(key: str) -> dict[str, object]:
    """Look a record up."""
    return {"key": key, "status": "ok"}


def _desk(i: int) -> type[Worker]:
    # No model of the class's own: each is given the bench's model when made.
    return type(f"Desk{i}", (Worker,), {"__doc__": f"Desk {i}.", "tools": [lookup]})


DESKS = [_desk(i) for i in range(4)]


class BenchModel:
    """Answers like the workload's model; `latency_s` simulates the provider."""

    provider = "test"
    name = "bench"
    price = PRICE

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self.calls = 0
        call = ToolCallPart("call_1", "lookup", '{"key":"k"}', {"key": "k"})
        self.tool_turn = ModelResponse(parts=(call,), stop_reason="tool_use", usage=USAGE)
        self.answer = ModelResponse(parts=(TextPart("checked: ok"),), stop_reason="end", usage=USAGE)
        plan_call = ToolCallPart("call_p", "final_result", "{}", PLAN)
        self.plan = ModelResponse(parts=(plan_call,), stop_reason="tool_use", usage=USAGE)

    async def request(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if request.tool_results:
            return self.answer
        names = [t.name for t in request.tools]
        if "lookup" in names:
            return self.tool_turn
        if "final_result" in names:
            return self.plan
        return self.answer


def supervisor(model: BenchModel, store: str | None = None) -> Supervisor:
    return Supervisor(
        [d(model=model) for d in DESKS], model=model, budget=Budget(max_usd=10.0, max_steps=8), store=store
    )


def cpu_per_model_call_ms(runs: int = 300, journal: bool = False) -> float:
    """Framework CPU per model call of the 10-call run, one run at a time (every thread's CPU)."""
    return min(_cpu_rounds(runs, 1, 3)[1 if journal else 0])


def journal_cpu_ms(runs: int = 200, concurrency: int = 1, rounds: int = 5) -> tuple[float, float]:
    """CPU per model call without and with the SQLite journal, `concurrency` runs at a time.

    The two are measured in alternating rounds and each is the best of its rounds: on a shared
    machine the noise only ever adds time, and alternating spreads it over both.
    """
    plain, journal = _cpu_rounds(runs, concurrency, rounds)
    return min(plain), min(journal)


def journal_added_ms(concurrency: int) -> float:
    """The CPU per model call that the SQLite journal adds, `concurrency` runs at a time."""
    plain, journal = journal_cpu_ms(concurrency=concurrency)
    return journal - plain


def _cpu_rounds(runs: int, concurrency: int, rounds: int) -> tuple[list[float], list[float]]:
    async def batch(path: str | None) -> float:
        model = BenchModel(0.0)
        sup = supervisor(model, path)
        start = time.process_time()
        for _ in range(runs // concurrency):
            await asyncio.gather(*(sup.run("check every desk") for _ in range(concurrency)))
        await sup.aclose()
        assert model.calls == runs // concurrency * concurrency * 10, model.calls
        return (time.process_time() - start) / model.calls * 1000

    plain: list[float] = []
    journal: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(rounds):
            plain.append(asyncio.run(batch(None)))
            journal.append(asyncio.run(batch(os.path.join(folder, f"runs{i}.db"))))
    return plain, journal


class _Answer(Worker):
    """Answers in one turn, as the planner and the final answer do (no tools)."""


def bookkeeping_ms(runs: int = 300, rounds: int = 5) -> float:
    """The supervisor's own CPU per model call: a supervisor run minus the same model calls
    made by the same workers run alone (4 workers of 2 turns, 2 one-turn answers in place of
    the plan and the final answer) in one shared context. What remains is planning's
    validation, the steps, the budget's reservations, the breakers, the in-memory journal
    and the run's record. Measured in alternating rounds, best of each."""

    async def supervised() -> float:
        model = BenchModel(0.0)
        sup = supervisor(model)
        start = time.process_time()
        for _ in range(runs):
            await sup.run("check every desk")
        spent = time.process_time() - start
        await sup.aclose()
        assert model.calls == runs * 10, model.calls
        return spent

    async def alone() -> float:
        model = BenchModel(0.0)
        desks = [d(model=model) for d in DESKS]
        answer = _Answer(model=model)
        start = time.process_time()
        for _ in range(runs):
            context = RunContext()
            await answer.run("plan", context=context)
            await asyncio.gather(*(desk.run(f"part {i}", context=context) for i, desk in enumerate(desks)))
            await answer.run("answer", context=context)
        spent = time.process_time() - start
        assert model.calls == runs * 10, model.calls
        return spent

    with_supervisor: list[float] = []
    without: list[float] = []
    for _ in range(rounds):
        with_supervisor.append(asyncio.run(supervised()))
        without.append(asyncio.run(alone()))
    return (min(with_supervisor) - min(without)) / (runs * 10) * 1000


def concurrent_wall_over_ideal(runs: int, latency_s: float, rounds: int = 3) -> float:
    """Wall / ideal for `runs` concurrent runs (best of `rounds`); ideal is 4 sequential latencies.

    Best of several because a shared 2-core machine adds noise of its own (about 15%).
    """

    async def many() -> float:
        model = BenchModel(latency_s)
        sup = supervisor(model)
        start = time.perf_counter()
        results: list[Any] = await asyncio.gather(*(sup.run("check every desk") for _ in range(runs)))
        assert len(results) == runs and model.calls == runs * 10
        return time.perf_counter() - start

    return min(asyncio.run(many()) for _ in range(rounds)) / (4 * latency_s)
