"""Usage and cost: current models priced, snapshots found, unknown models unpriced (never free)."""

from __future__ import annotations

import pytest

from workers import (
    AnthropicModel,
    ModelRequest,
    ModelResponse,
    OpenAIModel,
    Price,
    PriceTable,
    RunContext,
    TextPart,
    Usage,
    UsageLedger,
    UsageSum,
    Worker,
)


@pytest.mark.parametrize(
    ("model_id", "input_per_m", "output_per_m"),
    [
        ("anthropic:claude-haiku-4-5", 1.0, 5.0),
        ("anthropic:claude-sonnet-4-6", 3.0, 15.0),
        ("anthropic:claude-opus-4-6", 5.0, 25.0),
        ("anthropic:claude-sonnet-4-5-20250929", 3.0, 15.0),
        ("anthropic:claude-3-5-haiku-latest", 0.8, 4.0),
        ("openai:gpt-4o", 2.5, 10.0),
        ("openai:gpt-4o-2024-08-06", 2.5, 10.0),
        ("openai:gpt-4o-mini", 0.15, 0.6),
        ("openai:gpt-5", 1.25, 10.0),
    ],
)
def test_current_models_are_priced(model_id: str, input_per_m: float, output_per_m: float) -> None:
    price = PriceTable().lookup(model_id)
    assert price is not None
    assert price.cost(1_000_000, 0) == pytest.approx(input_per_m)
    assert price.cost(0, 1_000_000) == pytest.approx(output_per_m)


def test_unknown_models_are_unpriced_and_their_cost_is_none() -> None:
    assert PriceTable().lookup("openai:my-local-llama") is None
    model = OpenAIModel("my-local-llama")
    assert model.price is None


def test_users_can_register_prices() -> None:
    table = PriceTable()
    table.register("openai:my-local-llama", Price(0.1, 0.2))
    assert OpenAIModel("my-local-llama", prices=table).price == Price(0.1, 0.2)
    assert PriceTable().lookup("openai:my-local-llama") is None  # no hidden shared state
    assert AnthropicModel("x", price=Price(1, 1)).price == Price(1, 1)


def test_cache_reads_and_writes_are_priced_apart() -> None:
    price = Price(input=3, output=15, cache_read=0.3, cache_write=3.75)
    cost = price.cost(input_tokens=1000, output_tokens=100, cache_read_tokens=600, cache_write_tokens=300)
    assert cost == pytest.approx((100 * 3 + 600 * 0.3 + 300 * 3.75 + 100 * 15) / 1e6)


def test_long_prompts_use_the_long_prompt_band() -> None:
    price = PriceTable().lookup("anthropic:claude-haiku-5-5")
    assert price is not None
    assert price.cost(100_000, 0) == pytest.approx(0.01)
    assert price.cost(100_001, 1000) == pytest.approx((100_001 * 0.5 + 1000 * 2.5) / 1e6)


def test_sums_keep_unpriced_calls_visible() -> None:
    priced = Usage(10, 5, requests=1, known_cost_usd=0.002)
    unpriced = Usage(7, 3, requests=1, unpriced_requests=1)
    total = priced + unpriced
    assert (total.input_tokens, total.output_tokens, total.requests) == (17, 8, 2)
    assert total.cost_usd is None and total.known_cost_usd == pytest.approx(0.002)
    assert "at least $0.002000 (1 unpriced requests)" in str(total)
    assert (priced + priced).cost_usd == pytest.approx(0.004)


def test_ledger_sums_per_worker_and_per_run() -> None:
    ledger = UsageLedger()
    ledger.record("Billing", Usage(10, 5, requests=1, known_cost_usd=0.01))
    ledger.record("Orders", Usage(1, 1, requests=1, known_cost_usd=0.02))
    ledger.record("Billing", Usage(2, 2, requests=1, known_cost_usd=0.03))
    assert ledger.by_worker["Billing"].input_tokens == 12
    assert ledger.by_worker["Billing"].cost_usd == pytest.approx(0.04)
    assert ledger.total.cost_usd == pytest.approx(0.06) and ledger.total.requests == 3


def test_usage_sums_every_field_and_a_resumed_ledger_starts_from_what_was_spent() -> None:
    one = Usage(1, 2, 3, 4, 5, 6, 0.25, 1)
    total = UsageSum(one)
    more = Usage(10, 20, 30, 40, 50, 60, 0.5, 0)
    total.add(more)
    assert total.value() == Usage(11, 22, 33, 44, 55, 66, 0.75, 1) == one + more
    assert total.value().cost_usd is None  # an unpriced request keeps the sum unpriced
    ledger = UsageLedger()
    ledger.restore(Usage(100, 10, requests=2), {"Billing": Usage(100, 10, requests=2)})
    ledger.record("Billing", Usage(1, 1, requests=1))
    ledger.by_worker["Billing"] = Usage()  # a copy: the ledger's own sums do not change
    assert ledger.total == Usage(101, 11, requests=3) == ledger.by_worker["Billing"]


class _OwnModel:
    """A user's own model object: it reports tokens, not requests or cost."""

    def __init__(self, provider: str, name: str) -> None:
        self.provider, self.name = provider, name

    async def request(self, request: ModelRequest) -> ModelResponse:
        return ModelResponse((TextPart("hello"),), "end", Usage(input_tokens=1_000_000, output_tokens=0))


async def test_a_users_own_model_is_counted_and_unpriced_never_free() -> None:
    class Local(Worker):
        """Answers."""

    result = await Local(model=_OwnModel("local", "llama-3-70b")).run("hi")
    assert (result.usage.requests, result.usage.unpriced_requests, result.usage.cost_usd) == (1, 1, None)
    assert "unpriced" in str(result.usage)


async def test_a_users_own_model_of_a_known_or_registered_name_is_priced() -> None:
    class Local(Worker):
        """Answers."""

    known = await Local(model=_OwnModel("openai", "gpt-4o")).run("hi")
    assert known.usage.cost_usd == pytest.approx(2.5)
    table = PriceTable()
    table.register("local:llama-3-70b", Price(0.5, 1))
    ctx = RunContext(prices=table)
    registered = await Local(model=_OwnModel("local", "llama-3-70b")).run("hi", context=ctx)
    assert (registered.usage.requests, registered.usage.cost_usd) == (1, pytest.approx(0.5))


async def test_a_users_own_model_with_its_own_price_is_priced_by_it() -> None:
    class Local(Worker):
        """Answers."""

    model = _OwnModel("local", "llama-3-70b")
    model.price = Price(10.0, 10.0)  # type: ignore[attr-defined]
    result = await Local(model=model).run("hi")
    assert result.usage.cost_usd == pytest.approx(10.0)  # a million input tokens at $10


async def test_max_usd_holds_a_users_own_model_at_the_price_its_usage_is_counted_at() -> None:
    """A model object of a known name is charged at the table's price, so the budget reserves at
    it too: a call whose worst case does not fit is not sent (it was taken as unpriced)."""
    from supervisor import Budget, BudgetExceeded, Plan, Step, Supervisor

    class Local(Worker):
        """Answers."""

    model = _OwnModel("openai", "gpt-4o")
    requests: list[ModelRequest] = []
    asked = model.request

    async def request(request: ModelRequest) -> ModelResponse:
        requests.append(request)
        return await asked(request)

    model.request = request  # type: ignore[method-assign]
    sup = Supervisor([Local(model=model)], model=model, budget=Budget(max_usd=0.001))
    with pytest.raises(BudgetExceeded) as caught:  # 256 answer tokens at $10 a million: $0.00256
        await sup.run_plan(Plan(steps=[Step("a", "Local", "hi")]))
    assert caught.value.limit == "max_usd" and requests == []
