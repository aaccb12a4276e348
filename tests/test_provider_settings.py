"""A worker's settings reach the provider as its API takes them, and settings a known model
refuses are found before the first call: the official SDKs against a server on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest

from tests.provider_server import Answer, ProviderServer, anthropic_message, openai_completion
from workers import (
    AnthropicModel,
    ConfigurationError,
    MissingAPIKey,
    ModelRequest,
    OpenAIModel,
    RetryPolicy,
    UserMessage,
    Worker,
    call_model,
)

KEY = "sk-secret-do-not-leak-123"
FAST = RetryPolicy(base_delay_s=0.01, max_delay_s=2.0)


def claude(server: ProviderServer, name: str = "claude-haiku-4-5", **kw: Any) -> AnthropicModel:
    model = AnthropicModel(name, api_key=KEY, base_url=server.url, timeout_s=5, **kw)
    server.opened.append(model)
    return model


def gpt(server: ProviderServer, name: str = "gpt-4o-mini", **kw: Any) -> OpenAIModel:
    model = OpenAIModel(name, api_key=KEY, base_url=server.url + "/v1", timeout_s=5, **kw)
    server.opened.append(model)
    return model


def _text_stream(text: str) -> list[tuple[str, Any]]:
    start = {"type": "message_start", "message": {**anthropic_message(""), "stop_reason": None}}
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
    end = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}
    return [
        ("message_start", start),
        ("content_block_start", block),
        ("content_block_delta", delta),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", end),
        ("message_stop", {"type": "message_stop"}),
    ]


class Careful(Worker):
    """Answers carefully."""

    temperature = 0.5


@pytest.mark.parametrize("stream", [False, True])
async def test_a_workers_temperature_reaches_claude(server: ProviderServer, stream: bool) -> None:
    # The SDK has no `temperature` keyword: every call failed before sending, as an
    # "unreadable response".
    answer = Answer(200, events=_text_stream("fine")) if stream else Answer(200, anthropic_message("fine"))
    server.queue(answer)
    result = await Careful(model=claude(server, stream=stream)).run("hi")
    assert result.output == "fine"
    (sent,) = server.received
    assert sent.body["temperature"] == 0.5


async def test_a_request_the_installed_sdk_refuses_is_a_configuration_error_and_is_not_sent(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers import _anthropic

    wire = _anthropic.to_wire

    def with_unknown_keyword(request: ModelRequest, model: str) -> dict[str, Any]:
        return {**wire(request, model), "temperature": 0.5}  # what this code sent before

    monkeypatch.setattr(_anthropic, "to_wire", with_unknown_keyword)
    ask = ModelRequest(messages=(UserMessage.of("hi"),), max_tokens=32)
    with pytest.raises(ConfigurationError, match="anthropic SDK .* refused the request") as caught:
        await call_model(claude(server), ask, policy=FAST)
    assert "unexpected keyword argument 'temperature'" in str(caught.value)
    assert "unreadable response" not in str(caught.value)
    assert server.received == []


async def test_missing_credentials_are_still_named_as_such(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    model = AnthropicModel("claude-haiku-4-5", base_url=server.url)
    server.opened.append(model)
    with pytest.raises(MissingAPIKey):
        await call_model(model, ModelRequest(messages=(UserMessage.of("hi"),), max_tokens=8), policy=FAST)


@pytest.mark.parametrize(
    ("make", "name", "temperature", "rule"),
    [
        ("gpt", "o3", 0.2, "openai:o3 takes no temperature"),
        ("gpt", "o4-mini-2025-04-16", 0.7, "takes no temperature"),
        ("claude", "claude-opus-4-7", 0.2, "anthropic:claude-opus-4-7 takes no temperature"),
        ("claude", "claude-haiku-4-5", 1.5, "takes a temperature from 0 to 1, got 1.5"),
    ],
)
async def test_a_temperature_the_model_refuses_is_a_configuration_error_before_any_call(
    server: ProviderServer, make: str, name: str, temperature: float, rule: str
) -> None:
    model = gpt(server, name) if make == "gpt" else claude(server, name)

    class Tuned(Worker):
        """Tuned."""

    Tuned.temperature = temperature
    with pytest.raises(ConfigurationError, match=rule) as caught:
        await Tuned(model=model).run("hi")
    assert "worker Tuned" in str(caught.value) and server.received == []


async def test_an_openai_reasoning_model_takes_its_default_temperature(server: ProviderServer) -> None:
    """OpenAI's reasoning models refuse any temperature but their default: "Only the default (1)
    value is supported"; 1 was refused before any call."""
    server.queue(Answer(200, openai_completion("thought")))

    class Thinker(Worker):
        """Thinks."""

        temperature = 1.0

    assert (await Thinker(model=gpt(server, "o3-mini")).run("hi")).output == "thought"
    assert server.received[0].body["temperature"] == 1.0


async def test_a_temperature_the_model_takes_is_sent(server: ProviderServer) -> None:
    server.queue(Answer(200, openai_completion("warm")))

    class Hot(Worker):
        """Hot."""

        temperature = 1.5

    assert (await Hot(model=gpt(server)).run("hi")).output == "warm"
    assert server.received[0].body["temperature"] == 1.5


async def test_claude_structured_output_never_sends_keywords_the_api_refuses(server: ProviderServer) -> None:
    # One field the SDK's transform cannot shape (`Any`) sent the whole schema untransformed:
    # `maxLength` and `minimum` reached the API, a 400 on every call. Now such an output goes
    # through the final-answer tool, whose input schema may be any JSON Schema.
    from typing import Any as AnyValue

    from pydantic import BaseModel, Field

    class Refund(BaseModel):
        invoice_id: str = Field(max_length=20)
        amount_cents: int = Field(ge=0)
        extra: AnyValue = None

    class Refunder(Worker):
        """Refunds."""

        output = Refund

    answer = {"invoice_id": "42", "amount_cents": 5, "extra": {"note": [1, 2]}}
    server.queue(Answer(200, anthropic_message("", stop="tool_use", tool=("final_result", answer))))
    result = await Refunder(model=claude(server, native_output=True)).run("refund 42")
    assert result.output == Refund(invoice_id="42", amount_cents=5, extra={"note": [1, 2]})
    assert server.refused == []
    (sent,) = server.received
    assert "output_config" not in sent.body
    (tool,) = sent.body["tools"]
    assert tool["name"] == "final_result"
    assert tool["input_schema"]["properties"]["amount_cents"]["minimum"] == 0


async def test_claude_structured_output_does_not_lose_a_dict_field(server: ProviderServer) -> None:
    """The SDK's transform closes a `dict[str, int]` field into an object with no properties,
    so the model could only ever answer {} for it: the data was lost without an error. Such an
    output goes through the final-answer tool, whose schema keeps the map."""
    from pydantic import BaseModel

    class Scores(BaseModel):
        scores: dict[str, int]

    class Scorer(Worker):
        """Scores."""

        output = Scores

    answer = {"scores": {"alice": 3, "bob": 5}}
    server.queue(Answer(200, anthropic_message("", stop="tool_use", tool=("final_result", answer))))
    result = await Scorer(model=claude(server, native_output=True)).run("score them")
    assert result.output == Scores(scores={"alice": 3, "bob": 5}) and server.refused == []
    (sent,) = server.received
    assert "output_config" not in sent.body
    (tool,) = sent.body["tools"]
    assert tool["input_schema"]["properties"]["scores"]["additionalProperties"] == {"type": "integer"}


async def test_claude_structured_output_is_kept_when_every_field_can_be_shaped(
    server: ProviderServer,
) -> None:
    from pydantic import BaseModel, Field

    class Refund(BaseModel):
        invoice_id: str = Field(max_length=20)
        amount_cents: int = Field(ge=0)

    class Refunder(Worker):
        """Refunds."""

        output = Refund

    server.queue(Answer(200, anthropic_message('{"invoice_id": "42", "amount_cents": 5}')))
    result = await Refunder(model=claude(server, native_output=True)).run("refund 42")
    assert result.output == Refund(invoice_id="42", amount_cents=5) and server.refused == []
    assert "tools" not in server.received[0].body and "output_config" in server.received[0].body


async def test_a_direct_request_with_an_output_schema_claude_cannot_take_is_not_sent(
    server: ProviderServer,
) -> None:
    from workers import OutputSpec

    spec = OutputSpec("Loose", {"type": "object", "properties": {"data": {}}, "required": ["data"]})
    ask = ModelRequest(messages=(UserMessage.of("hi"),), max_tokens=32, output=spec)
    with pytest.raises(ConfigurationError, match="output schema 'Loose' cannot be sent"):
        await call_model(claude(server, native_output=True), ask, policy=FAST)
    assert server.received == []


async def test_max_tokens_above_the_models_known_limit_is_a_configuration_error_before_any_call(
    server: ProviderServer,
) -> None:
    class Big(Worker):
        """Big."""

        max_tokens = 100_000

    with pytest.raises(ConfigurationError, match="max_tokens 100000 is above anthropic:claude-haiku-4-5's"):
        await Big(model=claude(server)).run("hi")
    assert server.received == []


async def test_max_tokens_of_a_model_no_table_knows_is_sent_as_set(server: ProviderServer) -> None:
    class Big(Worker):
        """Big."""

        max_tokens = 50_000

    server.queue(Answer(200, openai_completion("ok")))
    assert (await Big(model=gpt(server, "my-local-llama")).run("hi")).output == "ok"
    assert server.received[0].body["max_completion_tokens"] == 50_000


@pytest.mark.parametrize("name", ["gpt-4o-2024-05-13", "gpt-3.5-turbo", "gpt-3.5-turbo-0125"])
async def test_more_room_after_a_cut_answer_stops_at_the_models_real_limit(
    server: ProviderServer, name: str
) -> None:
    # The retry asked for 8192 tokens from models that take 4096: a 400 instead of the typed
    # "truncated" error.
    from workers import ResponseTruncated

    class Plain(Worker):
        """Plain."""

    server.queue(Answer(200, openai_completion("partial answer, cut", finish="length")))
    with pytest.raises(ResponseTruncated):
        await Plain(model=gpt(server, name)).run("hi")
    assert [r.body["max_completion_tokens"] for r in server.received] == [4096]


async def test_more_room_after_a_cut_answer_grows_up_to_the_limit_and_no_further(
    server: ProviderServer,
) -> None:
    from workers import ResponseTruncated

    class Plain(Worker):
        """Plain."""

    cut = openai_completion("partial answer, cut", finish="length")
    server.queue(Answer(200, cut), Answer(200, cut), Answer(200, openai_completion("whole")))
    with pytest.raises(ResponseTruncated):
        await Plain(model=gpt(server, "gpt-4")).run("hi")  # its limit: 8192
    assert [r.body["max_completion_tokens"] for r in server.received] == [4096, 8192]
