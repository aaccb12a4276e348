"""A call whose provider reports no usage is never counted as a free call: it is reported
unpriced, and the budget charges it its worst case, so max_usd still holds. The official SDKs
against a scripted server on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest

from supervisor import Budget, BudgetExceeded, Plan, Step, Supervisor
from tests.provider_server import Answer, ProviderServer, anthropic_message, openai_completion
from workers import AnthropicModel, ModelRequest, OpenAIModel, RetryPolicy, UserMessage, Worker, call_model

KEY = "sk-secret-do-not-leak-123"
ASK = ModelRequest(messages=(UserMessage.of("hi"),), max_tokens=32)
ONCE = RetryPolicy(max_attempts=1)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [choice],
    }


def _stream_without_usage(path: str, body: dict[str, Any]) -> Answer:
    """A compatible server that ignores stream_options.include_usage."""
    events = [
        ("", _chunk({"role": "assistant", "content": "done " * 50})),
        ("", _chunk({}, "stop")),
        ("", "[DONE]"),
    ]
    return Answer(200, events=events)


def gpt(server: ProviderServer, *, stream: bool = False) -> OpenAIModel:
    model = OpenAIModel("gpt-4o-mini", api_key=KEY, base_url=server.url + "/v1", stream=stream, timeout_s=5)
    server.opened.append(model)
    return model


async def test_a_stream_without_a_usage_chunk_is_unpriced_not_free(server: ProviderServer) -> None:
    server.responder = _stream_without_usage
    usage = (await call_model(gpt(server, stream=True), ASK, policy=ONCE)).usage
    assert usage.cost_usd is None and usage.unpriced_requests == 1 and usage.requests == 1


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_a_body_without_usage_is_unpriced_not_free(server: ProviderServer, provider: str) -> None:
    model: Any
    if provider == "anthropic":
        body = anthropic_message("hi")
        model = AnthropicModel("claude-haiku-4-5", api_key=KEY, base_url=server.url, timeout_s=5)
        server.opened.append(model)
    else:
        body, model = openai_completion("hi"), gpt(server)
    body.pop("usage")
    server.queue(Answer(200, body))
    usage = (await call_model(model, ASK, policy=ONCE)).usage
    assert usage.cost_usd is None and usage.unpriced_requests == 1


async def test_a_body_with_usage_is_still_priced(server: ProviderServer) -> None:
    server.queue(Answer(200, openai_completion("hi")))
    usage = (await call_model(gpt(server), ASK, policy=ONCE)).usage
    assert usage.unpriced_requests == 0 and usage.cost_usd == pytest.approx((10 * 0.15 + 5 * 0.6) / 1e6)


async def test_max_usd_holds_when_the_server_reports_no_usage(server: ProviderServer) -> None:
    # Every call counted as $0: eight steps ran and the $0.01 budget never tripped.
    server.responder = _stream_without_usage
    model = gpt(server, stream=True)

    class W(Worker):
        """Writes."""

    plan = Plan(steps=[Step(f"s{i}", "W", "go " * 2000) for i in range(8)])
    async with Supervisor([W(model=model)], model=model, budget=Budget(max_usd=0.01)) as sup:
        with pytest.raises(BudgetExceeded) as caught:
            await sup.run_plan(plan)
    assert caught.value.limit == "max_usd"
    assert 1 <= len(server.received) < 8


async def test_a_claude_stream_whose_start_has_null_usage_is_read_and_unpriced(
    server: ProviderServer,
) -> None:
    # message_delta's usage was added to the null: the whole answer was lost as a broken stream.
    start = {**anthropic_message(""), "stop_reason": None, "usage": None}
    text = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}
    end = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}
    events = [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        ("content_block_delta", text),
        ("message_delta", end),
        ("message_stop", {"type": "message_stop"}),
    ]
    server.queue(Answer(200, events=events))
    model = AnthropicModel("claude-haiku-4-5", api_key=KEY, base_url=server.url, stream=True, timeout_s=5)
    server.opened.append(model)
    response = await call_model(model, ASK, policy=ONCE)
    assert response.text == "hi" and response.usage.cost_usd is None and response.usage.output_tokens == 3
