"""Streams that fail after their 200: an error the provider sends inside the stream keeps its
type, status and the request id, a hopeless one is not retried, and a stall says it timed out.
The official SDKs against a scripted server on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest

from tests.provider_server import Answer, ProviderServer, anthropic_message, everything_shown
from workers import (
    AnthropicModel,
    ModelRequest,
    OpenAIModel,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
    RetryPolicy,
    StreamInterrupted,
    UserMessage,
    call_model,
)
from workers._window import prompt_too_long

KEY = "sk-secret-do-not-leak-123"
ASK = ModelRequest(messages=(UserMessage.of("hi"),), max_tokens=32)
THREE = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=1.0)
OPENAI_ID = {"x-request-id": "req_oai_1"}
ANTHROPIC_ID = {"request-id": "req_ant_1"}


def gpt(server: ProviderServer, timeout_s: float = 5) -> OpenAIModel:
    model = OpenAIModel(
        "gpt-4o-mini", api_key=KEY, base_url=server.url + "/v1", stream=True, timeout_s=timeout_s
    )
    server.opened.append(model)
    return model


def claude(server: ProviderServer, timeout_s: float = 5) -> AnthropicModel:
    model = AnthropicModel(
        "claude-haiku-4-5", api_key=KEY, base_url=server.url, stream=True, timeout_s=timeout_s
    )
    server.opened.append(model)
    return model


def _chunk(delta: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }


def _openai_error(error: dict[str, Any]) -> Answer:
    return Answer(
        200,
        events=[("", _chunk({"role": "assistant", "content": "Hel"})), ("", {"error": error})],
        headers=OPENAI_ID,
    )


_START = (
    "message_start",
    {"type": "message_start", "message": {**anthropic_message(""), "stop_reason": None}},
)
_TEXT = [
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
    ),
]


def _anthropic_error(kind: str) -> Answer:
    event = ("error", {"type": "error", "error": {"type": kind, "message": f"{kind} happened"}})
    return Answer(200, events=[_START, *_TEXT, event], headers=ANTHROPIC_ID)


async def test_an_openai_prompt_too_long_inside_the_stream_reaches_compaction_and_is_not_retried(
    server: ProviderServer,
) -> None:
    too_long = {
        "message": "This model's maximum context length is 128000 tokens.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
    server.queue(*[_openai_error(too_long)] * 3)
    with pytest.raises(ProviderBadRequest) as caught:
        await call_model(gpt(server), ASK, policy=THREE)
    error = caught.value
    assert (error.status_code, error.request_id, error.attempts) == (400, "req_oai_1", 1)
    assert prompt_too_long(error)  # the worker compacts harder and sends again
    assert len(server.received) == 1


@pytest.mark.parametrize(
    ("error", "kind", "status", "sent"),
    [
        (
            {"message": "The server had an error.", "type": "server_error", "code": None},
            ProviderUnavailable,
            500,
            3,
        ),
        (
            {
                "message": "You exceeded your quota",
                "type": "insufficient_quota",
                "code": "insufficient_quota",
            },
            ProviderRateLimited,
            429,
            1,
        ),
    ],
)
async def test_an_openai_error_chunk_keeps_its_type_and_is_retried_only_when_waiting_helps(
    server: ProviderServer, error: dict[str, Any], kind: type[ProviderError], status: int, sent: int
) -> None:
    server.queue(*[_openai_error(error)] * 3)
    with pytest.raises(kind) as caught:
        await call_model(gpt(server), ASK, policy=THREE)
    assert (caught.value.status_code, caught.value.request_id) == (status, "req_oai_1")
    assert len(server.received) == sent


@pytest.mark.parametrize(
    ("kind", "error", "status", "sent"),
    [
        ("billing_error", ProviderBadRequest, 402, 1),  # a spent account: waiting does not help
        ("timeout_error", ProviderUnavailable, 504, 3),
        ("overloaded_error", ProviderUnavailable, 529, 3),
    ],
)
async def test_an_anthropic_error_event_keeps_its_type_status_and_request_id(
    server: ProviderServer, kind: str, error: type[ProviderError], status: int, sent: int
) -> None:
    server.queue(*[_anthropic_error(kind)] * 3)
    with pytest.raises(error) as caught:
        await call_model(claude(server), ASK, policy=THREE)
    found = caught.value
    assert (found.status_code, found.error_type, found.request_id) == (status, kind, "req_ant_1")
    assert len(server.received) == sent


async def test_a_cut_stream_carries_the_request_id_of_its_200(server: ProviderServer) -> None:
    server.queue(Answer(200, events=[_START, *_TEXT], headers=ANTHROPIC_ID))
    with pytest.raises(StreamInterrupted) as caught:
        await call_model(claude(server), ASK, policy=RetryPolicy(max_attempts=1))
    assert caught.value.request_id == "req_ant_1"
    server.queue(
        Answer(200, events=[("", _chunk({"role": "assistant", "content": "Hel"}))], headers=OPENAI_ID)
    )
    with pytest.raises(StreamInterrupted) as caught:
        await call_model(gpt(server), ASK, policy=RetryPolicy(max_attempts=1))
    assert caught.value.request_id == "req_oai_1"


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_a_stalled_stream_says_it_timed_out(server: ProviderServer, provider: str) -> None:
    if provider == "anthropic":
        model: Any = claude(server, timeout_s=0.3)
        server.queue(Answer(200, events=[_START], headers=ANTHROPIC_ID, stall_s=1.0))
    else:
        model = gpt(server, timeout_s=0.3)
        server.queue(
            Answer(
                200,
                events=[("", _chunk({"role": "assistant", "content": "Hel"}))],
                headers=OPENAI_ID,
                stall_s=1.0,
            )
        )
    with pytest.raises(StreamInterrupted, match=r"stream timed out: nothing arrived for 0.3s") as caught:
        await call_model(model, ASK, policy=RetryPolicy(max_attempts=1))
    assert caught.value.request_id in ("req_ant_1", "req_oai_1") and caught.value.retryable


async def test_a_streamed_tool_call_whose_input_comes_whole_at_block_start_keeps_its_arguments(
    server: ProviderServer,
) -> None:
    # No input_json_delta followed the block's start: the call reached the tool with `{}`.
    tool = {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"invoice_id": "42"}}
    end = {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 7}}
    events = [
        _START,
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": tool}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", end),
        ("message_stop", {"type": "message_stop"}),
    ]
    server.queue(Answer(200, events=events))
    (call,) = (await call_model(claude(server), ASK, policy=THREE)).tool_calls
    assert (call.name, call.arguments, call.truncated) == ("lookup", {"invoice_id": "42"}, False)


async def test_streamed_input_deltas_still_replace_the_empty_start_input(server: ProviderServer) -> None:
    from tests.provider_server import anthropic_tool_stream

    server.queue(Answer(200, events=anthropic_tool_stream(['{"invoice', '_id": "7"}'], stop="tool_use")))
    (call,) = (await call_model(claude(server), ASK, policy=THREE)).tool_calls
    assert call.arguments == {"invoice_id": "7"} and call.raw_arguments == '{"invoice_id": "7"}'


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_an_error_event_that_quotes_the_key_does_not_pass_it_on(
    server: ProviderServer, provider: str
) -> None:
    # As a refusal over HTTP: a proxy may echo the key; neither the error nor its cause keeps it.

    message = f"Incorrect API key provided: {KEY}."
    if provider == "anthropic":
        event = ("error", {"type": "error", "error": {"type": "authentication_error", "message": message}})
        server.queue(Answer(200, events=[_START, event], headers=ANTHROPIC_ID))
        model: Any = claude(server)
    else:
        server.queue(
            _openai_error({"message": message, "type": "invalid_request_error", "code": "invalid_api_key"})
        )
        model = gpt(server)
    with pytest.raises(ProviderError) as caught:
        await call_model(model, ASK, policy=THREE)
    error = caught.value
    shown = everything_shown(error)
    assert KEY not in shown and KEY[-12:] not in shown
    assert error.status_code == 401 and "[redacted]" in str(error) and len(server.received) == 1
