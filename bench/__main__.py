"""`python -m bench`: the framework's own costs, measured on this machine.

CPU is measured with `time.process_time` over many iterations, so model and network time are
excluded by construction: the providers' conversion runs on recorded bodies, and `call_model`
runs against a model that returns a ready response.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.memory_journal import journal_write_ms, memory_per_run_kb
from bench.supervisor_runs import (
    bookkeeping_ms,
    concurrent_wall_over_ideal,
    cpu_per_model_call_ms,
    journal_added_ms,
)
from tools import tool
from workers import (
    AnthropicModel,
    ModelRequest,
    ModelResponse,
    OpenAIModel,
    RateLimit,
    RateLimits,
    RetryPolicy,
    RunContext,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    ToolSpec,
    Usage,
    UserMessage,
    Worker,
    call_model,
)
from workers._anthropic import to_wire as anthropic_wire
from workers._openai import to_wire as openai_wire

HERE = Path(__file__).resolve().parent
TOOL = ToolSpec(
    "lookup_invoice", "Fetch an invoice by id.", {"type": "object", "properties": {"id": {"type": "string"}}}
)
CALL = ToolCallPart("toolu_1", "lookup_invoice", '{"id":"42"}', {"id": "42"})
REQUEST = ModelRequest(
    system="You handle billing.",
    messages=(
        UserMessage.of("Refund invoice 42 if it was charged twice"),
        ModelResponse(parts=(TextPart("Looking it up."), CALL), stop_reason="tool_use").message,
        UserMessage((ToolResultPart("toolu_1", "lookup_invoice", '{"id": "42", "charges": 2}'),)),
    ),
    tools=(TOOL,),
)
ANTHROPIC_BODY: dict[str, Any] = {
    "id": "msg_1",
    "model": "claude-haiku-4-5",
    "content": [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_2", "name": "lookup_invoice", "input": {"id": "42"}},
    ],
    "stop_reason": "tool_use",
    "usage": {"input_tokens": 412, "output_tokens": 37, "cache_read_input_tokens": 0},
}
OPENAI_BODY: dict[str, Any] = {
    "id": "chatcmpl-1",
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup_invoice", "arguments": '{"id":"42"}'},
                    }
                ],
            },
        }
    ],
    "usage": {"prompt_tokens": 412, "completion_tokens": 37},
}
HEADERS = {"request-id": "req_1", "x-request-id": "req_1", "anthropic-ratelimit-requests-remaining": "3999"}


def cpu_per_call_ms(fn: Callable[[], object], n: int = 20_000) -> float:
    """Median over 5 rounds of the CPU milliseconds one call of `fn` costs."""
    rounds = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(n):
            fn()
        rounds.append((time.process_time() - start) / n * 1000)
    return statistics.median(rounds)


# The provider models' usage, counted where they answer (`make_usage`): a model that reports
# tokens only is counted and priced in call_model instead (a few microseconds more a call).
_USAGE = Usage(400, 40, requests=1, unpriced_requests=1)


class _Ready:
    """A model that answers instantly with a ready response: what remains is framework CPU."""

    provider = "test"
    name = "ready"

    def __init__(self, response: ModelResponse) -> None:
        self.response = response

    async def request(self, request: ModelRequest) -> ModelResponse:
        return self.response


def call_model_ms(limits: RateLimits | None, n: int = 20_000) -> float:
    model = _Ready(ModelResponse(parts=(TextPart("ok"),), stop_reason="end", usage=_USAGE))
    policy = RetryPolicy()

    async def loop() -> float:
        start = time.process_time()
        for _ in range(n):
            await call_model(model, REQUEST, policy=policy, limits=limits)
        return (time.process_time() - start) / n * 1000

    return statistics.median(asyncio.run(loop()) for _ in range(5))


@tool
async def lookup(invoice_id: str) -> dict[str, object]:
    """Fetch an invoice."""
    return {"invoice_id": invoice_id, "charges": 2}


class _Billing(Worker):
    """Bench worker."""

    model = "test:ready"
    tools = [lookup]


class _TwoTurns:
    """Answers a tool call, then text: a worker run of exactly two turns with no model time."""

    provider = "test"
    name = "two-turns"

    def __init__(self) -> None:
        call = ToolCallPart("call_1", "lookup", '{"invoice_id":"42"}', {"invoice_id": "42"})
        self.calling = ModelResponse(parts=(call,), stop_reason="tool_use", usage=_USAGE)
        self.answer = ModelResponse(parts=(TextPart("Charged twice."),), stop_reason="end", usage=_USAGE)

    async def request(self, request: ModelRequest) -> ModelResponse:
        return self.answer if request.tool_results else self.calling


def worker_turn_ms(runs: int = 3_000) -> float:
    """CPU per model turn of the worker loop (one tool call turn, one answer turn)."""
    worker = _Billing(model=_TwoTurns())

    async def loop() -> float:
        start = time.process_time()
        for _ in range(runs):
            await worker.run("Was invoice 42 charged twice?", context=RunContext())
        return (time.process_time() - start) / (runs * 2) * 1000

    return statistics.median(asyncio.run(loop()) for _ in range(5))


def import_seconds() -> float:
    code = (
        "import time\n"
        "t = time.perf_counter()\n"
        "import supervisor, workers, tools\n"
        "print(time.perf_counter() - t)"
    )
    runs = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(7)
    ]
    return statistics.median(runs)


def compaction_check_ms(history_messages: int) -> float:
    """CPU of the per-turn check "does the conversation still fit?" with a history this long.

    The check measures only what the turn added, so it costs the same at 50 or 5,000 messages.
    """
    from workers import AssistantMessage, ToolCallPart, ToolResultPart
    from workers._compact import History

    def turns(n: int, start: int) -> list[Any]:
        out: list[Any] = []
        for i in range(start, start + n):
            out.append(AssistantMessage((ToolCallPart(f"c{i}", "t", '{"a":1}', {"a": 1}),)))
            out.append(UserMessage((ToolResultPart(f"c{i}", "t", "x" * 2000),)))
        return out

    rounds = []
    for _ in range(5):
        messages: list[Any] = [UserMessage.of("task"), *turns(history_messages // 2, 0)]
        history = History()
        history.tokens(messages)
        new = turns(2000, history_messages)
        start = time.process_time()
        for i in range(0, len(new), 2):
            messages += new[i : i + 2]
            history.tokens(messages)
        rounds.append((time.process_time() - start) / (len(new) // 2) * 1000)
    return statistics.median(rounds)


def soak(seconds: float) -> None:
    """`python -m bench soak [SECONDS]`: 200 concurrent runs in waves against the simulated
    provider with random faults, for SECONDS (default 180); prints what each wave left behind."""
    from tests.soak import soak as run_soak

    report = asyncio.run(run_soak(seconds, concurrency=200, max_waves=1000))
    print(f"waves: {len(report.wave_s)} of 200 runs; runs: {report.runs}; succeeded: {report.succeeded}")
    print(f"typed failures: {report.failed}; lost: {len(report.lost)}; untyped: {len(report.untyped)}")
    print(f"faults served: {report.faults}; requests: {report.requests}; refused: {len(report.refused)}")
    print(f"wave seconds: {[round(w, 1) for w in report.wave_s]}")
    print(f"tasks left after each wave: {report.tasks}")
    print(f"live objects after each wave: {report.objects} (growth after wave 2: {report.growth()})")
    print(f"resident MB after each wave: {[round(m) for m in report.rss_mb]}")


def main() -> None:
    if sys.argv[1:2] == ["soak"]:
        soak(float(sys.argv[2]) if len(sys.argv) > 2 else 180.0)
        return
    if sys.argv[1:2] == ["instructions"]:
        from bench.instructions import rows as instruction_rows

        _table(instruction_rows(), "instructions-results.json")
        return
    if sys.argv[1:2] == ["dbos"]:
        from bench.dbos_runs import dbos_rows

        _table(dbos_rows(), "dbos-results.json")
        return
    anthropic = AnthropicModel("claude-haiku-4-5")
    openai = OpenAIModel("gpt-4o-mini")
    rows = [
        (
            "anthropic: request to wire + body to response (ms CPU/call)",
            0.1,
            cpu_per_call_ms(
                lambda: (
                    anthropic_wire(REQUEST, "m"),
                    anthropic._from_body(ANTHROPIC_BODY, HEADERS, 0.0, None),
                )
            ),
        ),
        (
            "openai: request to wire + body to response (ms CPU/call)",
            0.1,
            cpu_per_call_ms(
                lambda: (openai_wire(REQUEST, "m"), openai._from_body(OPENAI_BODY, HEADERS, 0.0, None))
            ),
        ),
        ("call_model, no limits: retry loop + events (ms CPU/call)", 0.1, call_model_ms(None)),
        (
            "call_model, RPM and TPM limits on (ms CPU/call)",
            0.1,
            call_model_ms(
                RateLimits({"test": RateLimit(requests_per_minute=10**9, tokens_per_minute=10**12)})
            ),
        ),
        ("worker loop per turn, one tool call (ms CPU/turn)", 0.2, worker_turn_ms()),
        ("supervisor run, 4 workers, 10 calls (ms CPU/model call)", 0.3, cpu_per_model_call_ms()),
        ("  of which the supervisor's own bookkeeping (ms CPU/model call)", 0.1, bookkeeping_ms()),
        ("  added by the SQLite journal, 50 runs at once (ms CPU/model call)", 0.1, journal_added_ms(50)),
        ("  added by the SQLite journal, one run at a time (ms CPU/model call)", 0.1, journal_added_ms(1)),
        ("SQLite journal: one committed write, alone (ms CPU)", 0.1, journal_write_ms(1)),
        ("SQLite journal: one committed write, 50 writers at once (ms CPU)", 0.1, journal_write_ms(50)),
        ("compaction check per turn, 50-message history (ms CPU)", 0.01, compaction_check_ms(50)),
        ("compaction check per turn, 5000-message history (ms CPU)", 0.01, compaction_check_ms(5000)),
        ("1000 concurrent runs, 1 s latency (wall / ideal)", 1.2, concurrent_wall_over_ideal(1000, 1.0)),
        (
            "1000 concurrent runs, 50 ms latency (wall / ideal)",
            6.0,
            concurrent_wall_over_ideal(1000, 0.05),
        ),
        ("peak memory per concurrent run, 1000 runs (KB)", 30, memory_per_run_kb()),
        ("import supervisor, workers, tools (s wall)", 0.3, import_seconds()),
    ]
    _table(rows, "results.json")


def _table(rows: list[tuple[str, float | None, float]], file: str) -> None:
    """Print the rows as the README's table and write them to bench/`file`."""
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure'.ljust(width)} | goal | measured |")
    print(f"|{'-' * (width + 2)}|------|----------|")
    for name, goal, value in rows:
        shown = f"{value:,.0f}" if value >= 1000 else f"{value:.4f}"
        print(f"| {name.ljust(width)} | {'-' if goal is None else f'{goal:g}'} | {shown} |")
    results = {name: {"goal": goal, "value": value} for name, goal, value in rows}
    (HERE / file).write_text(json.dumps({"python": sys.version.split()[0], "results": results}, indent=2))


if __name__ == "__main__":
    main()
