"""Fault injection: whole supervisor runs through the official SDKs against a flaky provider.

The simulated provider (tests/faults.py) answers as a cooperative model and injects one kind of
fault at a time, or all of them at once: 429 storms, 529/503, dropped connections, streams that
break, slow answers, tool arguments cut by max_tokens, malformed JSON, invalid tool arguments,
prompt-too-long refusals. Whatever happens, a run must end in a validated result or a typed
error from the one tree, inside its budget and its deadline, and every request it sent must be
one the real APIs accept (the server checks each with tests/api_rules.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from supervisor import AgentError, Budget, Supervisor
from tests.faults import DESK_PLAN, FAULTS, SimulatedProvider
from tests.provider_server import ProviderServer
from tools import tool
from workers import AnthropicModel, Model, OpenAIModel, RetryPolicy, Worker

KEY = "sk-fault-injection-key"
BUDGET = Budget(max_usd=0.05, max_tokens=60_000, deadline_s=20)


@tool
async def lookup(key: str) -> dict[str, str]:
    """Look a record up."""
    return {"key": key, "status": "ok"}


DESKS = [
    type(f"Desk{i}", (Worker,), {"__doc__": f"Checks part {i}.", "tools": [lookup], "max_turns": 6})
    for i in range(3)
]
APIS = {
    "anthropic": lambda url, stream: AnthropicModel(
        "claude-haiku-4-5", api_key=KEY, base_url=url, timeout_s=0.5, stream=stream
    ),
    "openai": lambda url, stream: OpenAIModel(
        "gpt-4o-mini", api_key=KEY, base_url=url + "/v1", timeout_s=0.5, stream=stream
    ),
}


@pytest.fixture
async def provider() -> AsyncIterator[tuple[ProviderServer, SimulatedProvider]]:
    simulated = SimulatedProvider(plan=DESK_PLAN, tool_args={"lookup": {"key": "k"}}, slow_s=0.8)
    server = ProviderServer(responder=simulated).start()
    yield server, simulated
    for model in server.opened:
        await model.aclose()
    server.stop()


async def run_once(
    server: ProviderServer, model: Model, budget: Budget = BUDGET, *, priced: bool = True
) -> tuple[str, Any]:
    """One supervisor run; ("ok", output) or ("error", the typed error). Anything else fails.

    `priced=False`: some answers may come without their usage (a Chat Completions stream cut
    after its finish but before its usage chunk): their cost is unknown, so the run's cost is
    reported unpriced, never as free, and the budget charged them their worst case."""
    server.opened.append(model)
    policy = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.2)
    async with Supervisor([d(model=model) for d in DESKS], model=model, budget=budget, retry=policy) as sup:
        try:
            result = await sup.run("check every desk")
        except AgentError as error:
            assert error.run_id, f"{type(error).__name__} carries no run id"
            assert type(error).__module__.split(".")[0] == "tools", type(error)
            return "error", error
    assert isinstance(result.output, str) and result.output
    assert (result.usage.cost_usd is not None) == priced
    assert result.usage.known_cost_usd <= budget.max_usd  # type: ignore[operator]
    assert result.usage.input_tokens + result.usage.output_tokens <= budget.max_tokens  # type: ignore[operator]
    return "ok", result.output


# With the fault at the planner's first request and a worker's first request, each kind ends the
# way a careful client would: everything retryable or repairable is absorbed; a body that is not
# JSON is not guessed at; a prompt the provider keeps calling too long cannot be sent.
EXPECTED: dict[str, str] = dict.fromkeys(FAULTS, "ok") | {
    "malformed": "MalformedResponse",
    "too_long": "ContextOverflow",
}
STREAMED: dict[str, str] = {"malformed": "ok"}  # in a stream, a non-SSE body is a broken stream: retried


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(
    ("api", "stream"), [("anthropic", False), ("anthropic", True), ("openai", False), ("openai", True)]
)
async def test_each_fault_ends_as_expected_inside_the_budget_with_only_valid_requests(
    provider: tuple[ProviderServer, SimulatedProvider], fault: str, api: str, stream: bool
) -> None:
    server, simulated = provider
    simulated.faults, simulated.rate, simulated.at = (fault,), 0.0, (0, 4)
    started = time.monotonic()
    cut_before_usage = fault == "mid_stream" and api == "openai" and stream
    outcome, value = await run_once(server, APIS[api](server.url, stream), priced=not cut_before_usage)
    assert time.monotonic() - started < BUDGET.deadline_s  # type: ignore[operator]
    expected = STREAMED.get(fault, EXPECTED[fault]) if stream else EXPECTED[fault]
    served = 2 if expected == "ok" else 1  # a run that fails at the planner meets one fault
    assert simulated.injected[fault] >= served, "the fault was not served: the test would prove nothing"
    assert server.refused == [], f"requests the real API refuses: {server.refused}"
    assert (outcome if outcome == "ok" else type(value).__name__) == expected, value


async def test_every_retryable_kind_in_turn_never_fails_the_run(
    provider: tuple[ProviderServer, SimulatedProvider],
) -> None:
    """Storms, overload, drops, broken streams and slow answers on every other request."""
    server, simulated = provider
    simulated.faults = ("rate_limit", "overloaded", "drop", "mid_stream", "slow")
    simulated.rate, simulated.at = 0.0, tuple(range(0, 40, 2))
    outcomes = [await run_once(server, APIS["anthropic"](server.url, True)) for _ in range(2)]
    assert [o for o, _ in outcomes] == ["ok", "ok"], outcomes
    assert set(simulated.injected) == set(simulated.faults)
    assert server.refused == []


async def test_random_faults_of_every_kind_across_parallel_runs_end_in_results_or_typed_errors(
    provider: tuple[ProviderServer, SimulatedProvider],
) -> None:
    """Every kind at random, 30 runs in parallel: every run ends, the request count stays within
    the retry and repair bounds, and no request breaks the APIs' rules."""
    server, simulated = provider
    simulated.rate, simulated.seed = 0.15, 7
    simulated.__post_init__()
    model = APIS["openai"](server.url, False)
    outcomes = await asyncio.gather(*(run_once(server, model) for _ in range(30)))
    assert len(outcomes) == 30 and sum(simulated.injected.values()) >= 20
    assert [o for o, _ in outcomes].count("ok") >= 10, outcomes
    assert server.refused == []
    # plan + 3 desks x (tool, answer) + synthesis = 8 calls a run; faults add a bounded number
    assert len(server.received) <= 30 * 8 * 4
