"""Peak memory per concurrent run, and the SQLite journal's CPU per write.

Memory: 1000 runs of the goals' workload alive at once (the model answers after 0.2 s, so every
run holds its state at the same time); tracemalloc's peak over the baseline, per run.

Journal: one model response written and committed, every thread's CPU counted (the writer
thread encodes and inserts). Alone, each write is its own transaction; with 50 writers at once
the writer thread commits them together, as it does for a busy process.
"""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
import time
import tracemalloc

from bench.supervisor_runs import USAGE, BenchModel, supervisor
from supervisor._calls import RunJournal
from supervisor._sqlite import SQLiteStore
from supervisor._store import RunRecord, open_store
from workers import ModelResponse, TextPart, ToolCallPart

__all__ = ["journal_write_ms", "memory_per_run_kb"]


def memory_per_run_kb(runs: int = 1000, latency_s: float = 0.2) -> float:
    """Peak Python heap per concurrent run, in KB."""

    async def many() -> float:
        model = BenchModel(latency_s)
        sup = supervisor(model)
        await sup.run("warm up")  # imports, caches and the SDK-free path, before measuring
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        await asyncio.gather(*(sup.run("check every desk") for _ in range(runs)))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        await sup.aclose()
        return (peak - base) / runs / 1024

    return asyncio.run(many())


def journal_write_ms(writers: int, writes: int = 2000, url: str | None = None) -> float:
    """CPU per committed response write, `writers` runs writing at once (median of 3 rounds);
    SQLite, or the PostgreSQL database at `url` (the client's CPU: the server's is not counted)."""
    call = ToolCallPart("toolu_01", "lookup", '{"key":"k"}', {"key": "k"})
    response = ModelResponse(
        parts=(TextPart("Looking it up."), call), stop_reason="tool_use", usage=USAGE, request_id="req_1"
    )

    async def write(folder: str, round_: int) -> float:
        store = open_store(url) if url else SQLiteStore(os.path.join(folder, f"j{round_}.db"))
        journals = []
        for w in range(writers):
            await store.start(RunRecord(f"r{round_}-{w}", "goal", workers=("Desk0",)))
            journals.append(RunJournal(store, f"r{round_}-{w}"))

        async def one(journal: RunJournal, n: int) -> None:
            for i in range(n):
                await journal.save_response(f"plan/Desk0/{i}", response)

        start = time.process_time()
        await asyncio.gather(*(one(j, writes // writers) for j in journals))
        spent = time.process_time() - start
        await store.aclose()
        return spent / (writes // writers * writers) * 1000

    with tempfile.TemporaryDirectory() as folder:
        rounds = sorted(asyncio.run(write(folder, r)) for r in range(3))
    return rounds[1]
