"""Both providers, through the official SDKs, on real recorded traffic (cassettes/).

Each test replays a recording and checks the promise a user relies on: the right normalised
response (text, tool calls with parsed arguments, stop reason, usage, cost, request id) or the
right typed error; and, where the recording has a second turn, that what we send back (tool
results) is in the shape the real API accepted.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Recording
from workers import (
    AnthropicModel,
    AssistantMessage,
    ModelNotFound,
    ModelRequest,
    ModelResponse,
    OpenAIModel,
    OutputSpec,
    ProviderAuthError,
    ProviderBadRequest,
    ToolResultPart,
    ToolSpec,
    UserMessage,
)

WEATHER = ToolSpec(
    "get_weather",
    "Get the weather for a location.",
    {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
)
ASK = ModelRequest(messages=(UserMessage.of("hello"),), max_tokens=64)


def sent_bodies(cassette: Recording) -> list[dict[str, Any]]:
    return cassette.sent


async def ask(model: AnthropicModel | OpenAIModel, request: ModelRequest = ASK) -> ModelResponse:
    return await model.request(request)


# --- Anthropic -----------------------------------------------------------------------------


@pytest.mark.cassette("anthropic/crewai__test_anthropic_async_basic_call.yaml")
async def test_anthropic_plain_text_is_normalised_and_priced(cassette: Recording) -> None:
    response = await ask(AnthropicModel("claude-sonnet-4-6"))
    assert response.stop_reason == "end"
    assert response.text.startswith("Hello! It's nice to meet you.")
    assert response.tool_calls == ()
    assert (response.usage.input_tokens, response.usage.output_tokens) == (9, 18)
    # claude-sonnet-4-6 costs $3 in and $15 out per million tokens
    assert response.usage.cost_usd == pytest.approx((9 * 3 + 18 * 15) / 1e6)
    assert response.provider == "anthropic"
    body = sent_bodies(cassette)[0]
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
    assert body["max_tokens"] == 64 and "tools" not in body


@pytest.mark.cassette("anthropic/crewai__test_anthropic_function_calling.yaml")
async def test_anthropic_tool_use_round_trip_sends_results_the_api_accepts(cassette: Recording) -> None:
    model = AnthropicModel("claude-sonnet-4-6")
    request = ModelRequest(messages=(UserMessage.of("Weather in Tokyo?"),), tools=(WEATHER,))
    first = await model.request(request)
    assert first.stop_reason == "tool_use"
    (call,) = first.tool_calls
    assert (call.name, call.arguments, call.truncated) == ("get_weather", {"location": "Tokyo, Japan"}, False)
    assert json.loads(call.raw_arguments) == {"location": "Tokyo, Japan"}

    result = UserMessage((ToolResultPart(call.id, call.name, "Sunny, 22 C"),))
    second = await model.request(
        ModelRequest(messages=(*request.messages, first.message, result), tools=(WEATHER,))
    )
    assert second.stop_reason == "end" and second.text

    body = sent_bodies(cassette)[1]
    assert body["tools"][0] == {
        "name": "get_weather",
        "description": WEATHER.description,
        "input_schema": dict(WEATHER.parameters),
    }
    assert body["messages"][1]["content"][-1] == {
        "type": "tool_use",
        "id": call.id,
        "name": "get_weather",
        "input": {"location": "Tokyo, Japan"},
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 22 C"}],
    }


@pytest.mark.cassette("anthropic/pydantic-ai__test_multiple_parallel_tool_calls.yaml")
async def test_anthropic_parallel_tool_calls_keep_their_order(cassette: Recording) -> None:
    response = await ask(AnthropicModel("claude-haiku-4-5"))
    assert response.stop_reason == "tool_use"
    assert [c.arguments for c in response.tool_calls] == [
        {"name": "Alice"},
        {"name": "Bob"},
        {"name": "Charlie"},
        {"name": "Daisy"},
    ]
    assert len({c.id for c in response.tool_calls}) == 4
    assert response.text.startswith("I'll help you find out who is the youngest")


@pytest.mark.cassette(
    "anthropic/crewai__TestAnthropicToolCallStreaming.test_anthropic_streaming_emits_tool_call_events.yaml"
)
async def test_anthropic_streamed_tool_call_ends_in_the_same_response(cassette: Recording) -> None:
    response = await ask(AnthropicModel("claude-haiku-4-5", stream=True))
    assert response.stop_reason == "tool_use"
    (call,) = response.tool_calls
    assert (call.name, call.arguments) == ("get_current_temperature", {"city": "San Francisco"})
    assert response.text.startswith("I'll help you find out the current temperature")
    assert response.first_token_s is not None and response.first_token_s <= response.latency_s
    assert (response.usage.input_tokens, response.usage.output_tokens) == (351, 85)
    assert sent_bodies(cassette)[0]["stream"] is True


@pytest.mark.cassette("anthropic/mirascope__test_call_with_tools__anthropic_claude_sonnet_4_0__stream.yaml")
async def test_anthropic_streamed_parallel_tool_calls_and_rate_limit_headers(cassette: Recording) -> None:
    response = await ask(AnthropicModel("claude-sonnet-4-6", stream=True))
    assert [(c.name, c.arguments) for c in response.tool_calls] == [
        ("secret_retrieval_tool", {"password": "mellon"}),
        ("secret_retrieval_tool", {"password": "radiance"}),
    ]
    assert response.request_id == "req_011CWF2TpdUb3CxBYz61BPNn"
    assert response.rate_limit is not None
    assert (response.rate_limit.requests_limit, response.rate_limit.tokens_limit) == (4000, 2_400_000)


@pytest.mark.cassette("anthropic/mirascope__test_max_tokens__anthropic_claude_sonnet_4_0__stream.yaml")
async def test_anthropic_streamed_max_tokens(cassette: Recording) -> None:
    response = await ask(AnthropicModel("claude-sonnet-4-6", stream=True))
    assert response.stop_reason == "max_tokens" and response.raw_stop_reason == "max_tokens"
    assert response.usage.output_tokens == 50
    assert response.text.startswith("Here are all 50 U.S. states")


@pytest.mark.cassette("anthropic/crewai__test_anthropic_async_with_max_tokens.yaml")
async def test_anthropic_max_tokens(cassette: Recording) -> None:
    response = await ask(AnthropicModel("claude-sonnet-4-6"))
    assert response.stop_reason == "max_tokens"
    assert response.usage.output_tokens == 10


@pytest.mark.cassette("anthropic/crewai__test_anthropic_cached_prompt_tokens.yaml")
async def test_anthropic_cache_reads_are_counted_and_priced_as_cache_reads(cassette: Recording) -> None:
    response = await ask(AnthropicModel("claude-sonnet-4-6-20260101"))
    usage = response.usage
    assert usage.cache_read_tokens == 1217
    assert usage.input_tokens == 1217 + usage.cache_write_tokens + 3
    uncached = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
    expected = (uncached * 3 + usage.cache_read_tokens * 0.3 + usage.cache_write_tokens * 3.75 + 5 * 15) / 1e6
    assert usage.output_tokens == 5
    assert usage.cost_usd == pytest.approx(expected)


@pytest.mark.cassette("anthropic/pydantic-ai__test_anthropic_model_thinking_part_stream.yaml")
async def test_anthropic_thinking_blocks_stay_out_of_the_answer(cassette: Recording) -> None:
    response = await ask(AnthropicModel("claude-sonnet-4-6", stream=True))
    assert response.stop_reason == "end"
    assert response.text.startswith("Here are the basic steps for safely crossing the s")
    assert all(p.kind == "text" for p in response.parts)


@pytest.mark.cassette("anthropic/llm-anthropic__test_opus_46_schema.yaml")
async def test_anthropic_native_structured_output_streamed(cassette: Recording) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    request = ModelRequest(messages=(UserMessage.of("a dog"),), output=OutputSpec("Dog", schema))
    response = await AnthropicModel("claude-opus-4-6", stream=True).request(request)
    assert response.stop_reason == "end"
    assert isinstance(json.loads(response.text), dict)
    sent = {"type": "json_schema", "schema": {**schema, "additionalProperties": False}}  # as recorded
    assert sent_bodies(cassette)[0]["output_config"] == {"format": sent}


@pytest.mark.cassette("anthropic/mirascope__test_authentication_error__anthropic_claude_sonnet_4_0.yaml")
async def test_anthropic_401_is_a_typed_auth_error(cassette: Recording) -> None:
    with pytest.raises(ProviderAuthError) as caught:
        await ask(AnthropicModel("claude-sonnet-4-6"))
    error = caught.value
    assert (error.status_code, error.provider, error.model) == (401, "anthropic", "claude-sonnet-4-6")
    assert error.request_id == "req_011CWdMEehrhsdujMyQ9pChP"
    assert not error.retryable and not error.retried
    assert "invalid x-api-key" in str(error) and "401" in str(error)


@pytest.mark.cassette("anthropic/mirascope__test_model_not_found__anthropic_claude_sonnet_4_0.yaml")
async def test_anthropic_unknown_model_is_model_not_found(cassette: Recording) -> None:
    with pytest.raises(ModelNotFound) as caught:
        await ask(AnthropicModel("this-model-does-not-exist-12345"))
    assert caught.value.status_code == 404 and not caught.value.retryable
    assert "this-model-does-not-exist-12345" in str(caught.value)


@pytest.mark.cassette(
    "anthropic/pydantic-ai__test_anthropic_explicit_effort_xhigh_unsupported_model_errors.yaml"
)
async def test_anthropic_400_is_a_typed_bad_request(cassette: Recording) -> None:
    with pytest.raises(ProviderBadRequest) as caught:
        await ask(AnthropicModel("claude-opus-4-6"))
    assert caught.value.status_code == 400
    assert "does not support effort level" in str(caught.value)


# --- OpenAI ----------------------------------------------------------------------------------


@pytest.mark.cassette("openai/crewai__test_openai_completion_call_returns_usage_metrics.yaml")
async def test_openai_plain_text_usage_cost_and_headers(cassette: Recording) -> None:
    request = ModelRequest(system="You are terse.", messages=(UserMessage.of("hi"),), max_tokens=200)
    response = await OpenAIModel("gpt-4o").request(request)
    assert response.stop_reason == "end"
    assert response.text.startswith("Thought: I now can give a great answer")
    assert (response.usage.input_tokens, response.usage.output_tokens) == (173, 116)
    assert response.usage.cost_usd == pytest.approx((173 * 2.5 + 116 * 10) / 1e6)
    assert response.request_id == "req_3676b4edd10244929526ceb64a623a88"
    assert response.rate_limit is not None and response.rate_limit.tokens_remaining == 29_999_798
    body = sent_bodies(cassette)[0]
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hi"},
    ]
    assert body["max_completion_tokens"] == 200


@pytest.mark.cassette(
    "openai/crewai__TestOpenAINativeToolCalling.test_openai_parallel_native_tool_calling_test_agent_kickoff.yaml"
)
async def test_openai_parallel_tool_calls_and_results_round_trip(cassette: Recording) -> None:
    model = OpenAIModel("gpt-4o-mini")
    request = ModelRequest(messages=(UserMessage.of("search"),), tools=(WEATHER,))
    first = await model.request(request)
    assert first.stop_reason == "tool_use"
    assert [c.name for c in first.tool_calls] == [
        "parallel_local_search_one",
        "parallel_local_search_two",
        "parallel_local_search_three",
    ]
    assert first.tool_calls[0].arguments == {"query": "latest OpenAI model release notes"}
    results = UserMessage(
        tuple(ToolResultPart(c.id, c.name, f"result {i}") for i, c in enumerate(first.tool_calls))
    )
    second = await model.request(
        ModelRequest(messages=(*request.messages, first.message, results), tools=(WEATHER,))
    )
    assert second.stop_reason == "end" and second.text

    body = sent_bodies(cassette)[1]
    assistant, *tool_messages = body["messages"][1:]
    assert [c["id"] for c in assistant["tool_calls"]] == [c.id for c in first.tool_calls]
    assert tool_messages == [
        {"role": "tool", "tool_call_id": c.id, "content": f"result {i}"}
        for i, c in enumerate(first.tool_calls)
    ]
    assert body["tools"][0]["function"]["name"] == "get_weather"


@pytest.mark.cassette(
    "openai/crewai__TestOpenAIToolCallStreaming.test_openai_streaming_emits_tool_call_events.yaml"
)
async def test_openai_streamed_tool_call_with_usage_chunk(cassette: Recording) -> None:
    response = await ask(OpenAIModel("gpt-4o-mini", stream=True))
    assert response.stop_reason == "tool_use"
    (call,) = response.tool_calls
    assert (call.name, call.arguments) == ("get_current_temperature", {"city": "San Francisco"})
    assert (response.usage.input_tokens, response.usage.output_tokens) == (66, 16)
    body = sent_bodies(cassette)[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


@pytest.mark.cassette("openai/mirascope__test_call_with_tools__openai_gpt_4o_completions__stream.yaml")
async def test_openai_streamed_parallel_tool_calls(cassette: Recording) -> None:
    response = await ask(OpenAIModel("gpt-4o", stream=True))
    assert [c.arguments for c in response.tool_calls] == [{"password": "mellon"}, {"password": "radiance"}]
    assert response.first_token_s is not None


@pytest.mark.cassette("openai/mirascope__test_max_tokens__openai_gpt_4o_completions__stream.yaml")
async def test_openai_streamed_length_is_max_tokens(cassette: Recording) -> None:
    response = await ask(OpenAIModel("gpt-4o", stream=True))
    assert response.stop_reason == "max_tokens" and response.raw_stop_reason == "length"
    assert response.usage.output_tokens == 50


@pytest.mark.cassette("openai/crewai__test_openai_async_with_max_tokens.yaml")
async def test_openai_length_is_max_tokens(cassette: Recording) -> None:
    response = await ask(OpenAIModel("gpt-4o-mini"))
    assert response.stop_reason == "max_tokens" and response.usage.output_tokens == 10


@pytest.mark.cassette("openai/mirascope__test_max_tokens__openai_gpt_4o_completions__sync.yaml")
async def test_openai_gzip_body_is_read(cassette: Recording) -> None:
    response = await ask(OpenAIModel("gpt-4o"))
    assert response.stop_reason == "max_tokens" and response.text.startswith("Certainly!")


@pytest.mark.cassette("openai/mirascope__test_refusal__openai_gpt_4o_completions__stream.yaml")
async def test_openai_streamed_refusal(cassette: Recording) -> None:
    response = await ask(OpenAIModel("gpt-4o", stream=True))
    assert response.stop_reason == "refusal"
    assert response.refusal and response.refusal.startswith("I'm very sorry")


@pytest.mark.cassette("openai/crewai__test_openai_response_format_with_pydantic_model.yaml")
async def test_openai_native_structured_output(cassette: Recording) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    request = ModelRequest(messages=(UserMessage.of("capital?"),), output=OutputSpec("Answer", schema))
    response = await OpenAIModel("gpt-4o").request(request)
    assert json.loads(response.text) == {"answer": "Paris", "confidence": 0.99}
    assert sent_bodies(cassette)[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Answer", "schema": schema, "strict": False},
    }


@pytest.mark.cassette("openai/pydantic-ai__test_openai_native_output.yaml")
async def test_openai_tool_call_with_empty_arguments(cassette: Recording) -> None:
    response = await ask(OpenAIModel("gpt-4o"))
    (call,) = response.tool_calls
    assert (call.name, call.arguments) == ("get_user_country", {})


@pytest.mark.cassette("openai/crewai__test_llm_call_with_error.yaml")
async def test_openai_unknown_model_is_model_not_found(cassette: Recording) -> None:
    with pytest.raises(ModelNotFound) as caught:
        await ask(OpenAIModel("non-existent-model"))
    assert caught.value.request_id == "req_9441b7808a504cc8abfc6276fd5c7721"
    assert "non-existent-model" in str(caught.value)


@pytest.mark.cassette("openai/mirascope__test_authentication_error__openai_gpt_4o_completions.yaml")
async def test_openai_401_is_a_typed_auth_error(cassette: Recording) -> None:
    with pytest.raises(ProviderAuthError) as caught:
        await ask(OpenAIModel("gpt-4o"))
    assert caught.value.status_code == 401 and caught.value.provider == "openai"
    assert "test-openai-key" not in str(caught.value)


@pytest.mark.cassette("openai/pydantic-ai__test_openai_o1_mini_system_role[developer].yaml")
async def test_openai_400_is_a_typed_bad_request(cassette: Recording) -> None:
    with pytest.raises(ProviderBadRequest) as caught:
        await ask(OpenAIModel("o1-mini"))
    assert caught.value.status_code == 400 and "developer" in str(caught.value)


def test_assistant_message_of_a_response_is_what_gets_sent_back() -> None:
    response = ModelResponse(parts=(), stop_reason="end")
    assert response.message == AssistantMessage(())
