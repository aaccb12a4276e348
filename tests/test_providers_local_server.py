"""The official SDKs against a scripted server on 127.0.0.1: the failures real providers produce
but the cassettes do not hold (429 with retry-after, 529, 5xx, dropped connections, broken
streams, malformed bodies, rate-limit headers, timeouts, missing keys)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.provider_server import (
    Answer,
    ProviderServer,
    anthropic_message,
    anthropic_tool_stream,
    everything_shown,
    openai_completion,
)
from tests.recorders import Events
from workers import (
    AnthropicModel,
    MalformedAPIKey,
    MalformedResponse,
    MissingAPIKey,
    ModelRequest,
    ModelRetryEvent,
    OpenAIModel,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
    RateLimits,
    RateLimitWaitEvent,
    RetryPolicy,
    StreamInterrupted,
    UserMessage,
    call_model,
    resolve_model,
)
from workers._provider import redact

ASK = ModelRequest(messages=(UserMessage.of("hi"),), max_tokens=32)
FAST = RetryPolicy(base_delay_s=0.01, max_delay_s=2.0)
KEY = "sk-secret-do-not-leak-123"


def claude(server: ProviderServer, *, stream: bool = False, timeout_s: float = 5) -> AnthropicModel:
    model = AnthropicModel(
        "claude-haiku-4-5", api_key=KEY, base_url=server.url, timeout_s=timeout_s, stream=stream
    )
    server.opened.append(model)
    return model


def gpt(server: ProviderServer) -> OpenAIModel:
    model = OpenAIModel("gpt-4o-mini", api_key=KEY, base_url=server.url + "/v1", timeout_s=5)
    server.opened.append(model)
    return model


async def test_429_with_retry_after_is_waited_out_then_succeeds(server: ProviderServer) -> None:
    server.queue(
        Answer(
            429,
            {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}},
            {"retry-after": "0.3"},
        ),
        Answer(200, anthropic_message("fine")),
    )
    events = Events()
    response = await call_model(claude(server), ASK, policy=FAST, events=events)
    assert response.text == "fine"
    assert (response.usage.requests, response.usage.retries) == (2, 1)
    (retry,) = [e for e in events.seen if isinstance(e, ModelRetryEvent)]
    assert retry.delay_s == pytest.approx(0.3) and retry.status_code == 429
    assert server.received[1].at - server.received[0].at >= 0.29


async def test_retry_after_ms_is_preferred_and_openai_headers_are_read(server: ProviderServer) -> None:
    server.queue(
        Answer(
            429,
            {"error": {"message": "rate", "type": "requests"}},
            {"retry-after-ms": "150", "retry-after": "9"},
        ),
        Answer(
            200,
            openai_completion("hello"),
            {
                "x-ratelimit-remaining-requests": "99",
                "x-ratelimit-reset-tokens": "6m0s",
                "x-request-id": "req_abc",
            },
        ),
    )
    events = Events()
    response = await call_model(gpt(server), ASK, policy=FAST, events=events)
    assert [e.delay_s for e in events.seen if isinstance(e, ModelRetryEvent)] == [pytest.approx(0.15)]
    assert response.request_id == "req_abc"
    assert response.rate_limit is not None
    assert (response.rate_limit.requests_remaining, response.rate_limit.tokens_reset_s) == (99, 360.0)


async def test_anthropic_529_overloaded_is_retried(server: ProviderServer) -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    server.queue(Answer(529, overloaded), Answer(529, overloaded), Answer(200, anthropic_message()))
    response = await call_model(claude(server), ASK, policy=FAST)
    assert response.usage.retries == 2 and len(server.received) == 3


async def test_5xx_retries_are_bounded_and_the_last_error_says_how_many(server: ProviderServer) -> None:
    server.queue(*[Answer(503, {"error": {"message": "unavailable"}}) for _ in range(3)])
    with pytest.raises(ProviderUnavailable) as caught:
        await call_model(claude(server), ASK, policy=RetryPolicy(max_attempts=3, base_delay_s=0.01))
    assert caught.value.attempts == 3 and caught.value.retried
    assert "after 3 attempts" in str(caught.value)
    assert len(server.received) == 3


async def test_a_retry_after_beyond_the_bound_ends_retries_at_once(server: ProviderServer) -> None:
    server.queue(Answer(429, {"error": {"message": "later"}}, {"retry-after": "3600"}))
    with pytest.raises(ProviderRateLimited) as caught:
        await call_model(claude(server), ASK, policy=FAST)
    assert caught.value.retry_after_s == 3600 and caught.value.attempts == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_client_errors_are_never_retried(server: ProviderServer, status: int) -> None:
    server.queue(
        Answer(status, {"type": "error", "error": {"type": "invalid_request_error", "message": "no"}})
    )
    with pytest.raises(ProviderBadRequest.__mro__[1]) as caught:  # ProviderHTTPError
        await call_model(claude(server), ASK, policy=FAST)
    assert caught.value.status_code == status and not caught.value.retryable
    assert len(server.received) == 1


async def test_dropped_connection_is_a_retryable_connection_error(server: ProviderServer) -> None:
    server.queue(Answer(drop=True), Answer(200, openai_completion("back")))
    response = await call_model(gpt(server), ASK, policy=FAST)
    assert response.text == "back" and response.usage.retries == 1


async def test_slow_response_times_out_as_a_typed_error(server: ProviderServer) -> None:
    server.queue(Answer(200, anthropic_message(), delay_s=1.0))
    model = claude(server, timeout_s=0.2)
    with pytest.raises(ProviderConnectionError) as caught:
        await model.request(ASK)
    assert caught.value.timeout and caught.value.retryable


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (b"", "(empty body)"),
        (b"<html>bad gateway</html>", "<html>bad gateway"),
        (b'{"unexpected": true}', "unexpected"),
        (b"[]", "[]"),
    ],
)
async def test_malformed_or_empty_bodies_are_typed_errors_with_an_excerpt(
    server: ProviderServer, body: bytes, shown: str
) -> None:
    server.queue(Answer(200, body), Answer(200, body))
    for model in (claude(server), gpt(server)):
        with pytest.raises(MalformedResponse) as caught:
            await model.request(ASK)
        assert shown in (caught.value.body_excerpt or "")
        assert not caught.value.retryable


async def test_stream_cut_mid_way_is_stream_interrupted_and_retried(server: ProviderServer) -> None:
    events = anthropic_tool_stream(['{"id": ', '"42"}'], stop="tool_use")
    server.queue(Answer(events=events, cut_after=3), Answer(events=events))
    model = claude(server, stream=True)
    with pytest.raises(StreamInterrupted) as caught:
        await model.request(ASK)
    assert "message_start" in (caught.value.body_excerpt or "")
    response = await model.request(ASK)
    assert response.tool_calls[0].arguments == {"id": "42"}


def _error_event(kind: str) -> list[tuple[str, Any]]:
    events = anthropic_tool_stream(['{"id": "1"}'], stop="tool_use")[:2]
    events.append(("error", {"type": "error", "error": {"type": kind, "message": f"a {kind}"}}))
    return events


async def test_an_overloaded_error_event_mid_stream_is_retried(server: ProviderServer) -> None:
    server.queue(
        Answer(events=_error_event("overloaded_error")),
        Answer(events=anthropic_tool_stream(['{"id": "1"}'], stop="tool_use")),
    )
    retried = await call_model(claude(server, stream=True), ASK, policy=FAST)
    assert retried.usage.retries == 1 and retried.tool_calls[0].arguments == {"id": "1"}


async def test_an_invalid_request_error_event_mid_stream_stands_at_once(server: ProviderServer) -> None:
    # Every error event was a retryable StreamInterrupted: a refused request was sent five times.
    server.queue(*[Answer(events=_error_event("invalid_request_error"))] * 3)
    with pytest.raises(ProviderBadRequest) as caught:
        await call_model(claude(server, stream=True), ASK, policy=FAST)
    error = caught.value
    assert (error.status_code, error.error_type, error.attempts) == (400, "invalid_request_error", 1)
    assert len(server.received) == 1


async def test_a_spent_quota_is_not_waited_out(server: ProviderServer) -> None:
    quota = {
        "error": {
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }
    server.queue(*[Answer(429, quota)] * 3)
    with pytest.raises(ProviderRateLimited) as caught:
        await call_model(gpt(server), ASK, policy=FAST)
    assert caught.value.error_type == "insufficient_quota" and not caught.value.retryable
    assert len(server.received) == 1 and "exceeded your current quota" in str(caught.value)


async def test_body_cut_mid_transfer_is_a_connection_error(server: ProviderServer) -> None:
    server.queue(Answer(200, anthropic_message(), short_body=True))
    with pytest.raises((ProviderConnectionError, MalformedResponse)):
        await claude(server).request(ASK)


async def test_tool_arguments_cut_by_max_tokens_are_truncated_not_parsed(server: ProviderServer) -> None:
    server.queue(
        Answer(events=anthropic_tool_stream(['{"invoice_id": "4', '2", "amount": 1'], stop="max_tokens"))
    )
    response = await claude(server, stream=True).request(ASK)
    (call,) = response.tool_calls
    assert response.stop_reason == "max_tokens"
    assert call.truncated and call.arguments is None
    assert call.raw_arguments == '{"invoice_id": "42", "amount": 1'


async def test_openai_tool_arguments_cut_by_length_are_truncated(server: ProviderServer) -> None:
    body = openai_completion("")
    body["choices"][0]["message"]["tool_calls"] = [
        {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "ab'}}
    ]
    body["choices"][0]["finish_reason"] = "length"
    server.queue(Answer(200, body))
    (call,) = (await gpt(server).request(ASK)).tool_calls
    assert call.truncated and call.arguments is None


async def test_rate_limit_headers_pause_the_next_request(server: ProviderServer) -> None:
    server.queue(
        Answer(
            200,
            anthropic_message("first"),
            {"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": "0.4s"},
        ),
        Answer(200, anthropic_message("second")),
    )
    limits, events, model = RateLimits(), Events(), claude(server)
    await call_model(model, ASK, policy=FAST, limits=limits, events=events)
    started = time.monotonic()
    second = await call_model(model, ASK, policy=FAST, limits=limits, events=events)
    assert second.text == "second" and time.monotonic() - started >= 0.35
    assert any(isinstance(e, RateLimitWaitEvent) for e in events.seen)


async def test_a_429_pauses_the_model_for_every_caller_sharing_the_limits(server: ProviderServer) -> None:
    server.queue(
        Answer(429, {"error": {"message": "rate"}}, {"retry-after": "0.3"}),
        Answer(200, anthropic_message("a")),
    )
    limits, model = RateLimits(), claude(server)
    await call_model(model, ASK, policy=FAST, limits=limits)
    assert server.received[1].at - server.received[0].at >= 0.29


@pytest.mark.parametrize(
    ("spec", "env_var"),
    [("anthropic:claude-haiku-4-5", "ANTHROPIC_API_KEY"), ("openai:gpt-4o", "OPENAI_API_KEY")],
)
async def test_missing_api_key_names_the_env_var(
    monkeypatch: pytest.MonkeyPatch, spec: str, env_var: str, tmp_path: object
) -> None:
    for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_AUTH_TOKEN", "OPENAI_ADMIN_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path))  # no profile on disk either
    model = resolve_model(spec)
    with pytest.raises(MissingAPIKey) as caught:
        await model.request(ASK)
    assert caught.value.env_var == env_var and env_var in str(caught.value)


async def test_env_base_url_is_honoured_and_the_key_never_appears_in_errors(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.queue(Answer(401, {"error": {"message": "bad key", "type": "invalid_request_error"}}))
    model = resolve_model("openai:gpt-4o-mini")
    assert isinstance(model, OpenAIModel)
    server.opened.append(model)
    with pytest.raises(Exception) as caught:
        await model.request(ASK)
    assert server.received[0].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in str(caught.value) and KEY not in repr(caught.value.__dict__)


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_a_refusal_that_quotes_the_key_does_not_pass_it_on(
    server: ProviderServer, provider: str
) -> None:
    """The real APIs mask a refused key; a proxy or a compatible server may echo it whole, and
    it reached the error's text, its body excerpt, its cause (so every traceback), the events,
    the store and the trace."""
    message = f"Incorrect API key provided: {KEY}. See https://example.com/account/api-keys."
    if provider == "anthropic":
        refused = {"type": "authentication_error", "message": message}
        server.queue(Answer(401, {"type": "error", "error": refused}))
        model: Any = claude(server)
    else:
        server.queue(Answer(401, {"error": {"message": message, "type": "invalid_request_error"}}))
        model = gpt(server)
    with pytest.raises(ProviderError) as caught:
        await call_model(model, ASK, policy=FAST)
    error = caught.value
    shown = everything_shown(error)
    assert KEY not in shown and KEY[-12:] not in shown
    assert "Incorrect API key provided: [redacted]. See https://example.com/account/api-keys." in str(error)
    assert error.status_code == 401 and error.body_excerpt and "[redacted]" in error.body_excerpt


async def test_a_journaled_run_through_the_real_sdk_keeps_no_key_in_the_store_or_its_trace(
    server: ProviderServer, tmp_path: Path
) -> None:
    from supervisor import Plan, Step, Supervisor
    from supervisor._sqlite import SQLiteStore
    from supervisor._trace import build_trace, render, to_jsonl
    from workers import Worker

    class Writer(Worker):
        """Writes."""

    server.queue(Answer(529, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}))
    server.queue(Answer(200, anthropic_message("written")))
    path = tmp_path / "runs.db"
    async with Supervisor(
        [Writer(model=claude(server))], model=claude(server), store=path, retry=FAST
    ) as sup:
        result = await sup.run_plan(Plan(steps=[Step("w", "Writer", "write")]), run_id="k")
    assert result.output == "written"
    sent = server.received[0].headers
    assert KEY in (sent.get("x-api-key", ""), sent.get("authorization", "").removeprefix("Bearer "))
    for name in ("runs.db", "runs.db-wal"):  # every byte written, committed or not
        if (tmp_path / name).exists():
            assert KEY.encode() not in (tmp_path / name).read_bytes()
    store = SQLiteStore(path)
    tree = build_trace((await store.load("k")), await store.calls("k"), await store.events("k"))  # type: ignore[arg-type]
    await store.aclose()
    assert KEY not in render(tree) and all(KEY not in line for line in to_jsonl(tree))


@pytest.mark.parametrize(
    ("provider", "flaw", "problem"),
    [
        ("anthropic", "\n", "whitespace"),
        ("anthropic", " ", "whitespace"),
        ("openai", "\n", "whitespace"),
        ("openai", "\u2013", "not ASCII"),  # the anthropic SDK sends it: a 401 says so
    ],
)
async def test_a_pasted_key_that_no_header_can_carry_is_named_never_quoted_and_not_retried(
    server: ProviderServer, provider: str, flaw: str, problem: str
) -> None:
    # h11 refuses such a header quoting its value, key included; the error reached the run store.
    bad = KEY + flaw if flaw.isspace() else KEY[:6] + flaw + KEY[6:]
    if provider == "anthropic":
        model: Any = AnthropicModel("claude-haiku-4-5", api_key=bad, base_url=server.url, timeout_s=5)
    else:
        model = OpenAIModel("gpt-4o-mini", api_key=bad, base_url=server.url + "/v1", timeout_s=5)
    server.opened.append(model)
    events = Events()
    with pytest.raises(MalformedAPIKey) as caught:
        await call_model(model, ASK, policy=FAST, events=events)
    error = caught.value
    assert problem in error.problem and error.env_var == f"{provider.upper()}_API_KEY"
    assert server.received == [] and not events.of(ModelRetryEvent)  # nothing to send again
    shown = everything_shown(error)
    assert KEY[8:] not in shown and error.__cause__ is None and error.__context__ is None  # not held


async def test_a_body_that_cannot_be_encoded_is_not_blamed_on_the_key(server: ProviderServer) -> None:
    ask = ModelRequest(messages=(UserMessage.of("file name: report\udcff.txt"),), max_tokens=32)
    with pytest.raises(MalformedResponse):  # a lone surrogate in the text: no fault of the key
        await call_model(gpt(server), ask, policy=FAST)


def test_text_from_a_local_exception_is_cleared_of_the_key_and_of_tokens() -> None:
    text = f"Illegal header value b'Bearer {KEY}\\n' and x-api-key: other-token-1234, api_key='sk-9'"
    cleared = redact(text, KEY + "\n")
    assert KEY not in cleared and "other-token-1234" not in cleared and "sk-9" not in cleared
    assert cleared.startswith("Illegal header value b'Bearer [redacted]")
    assert redact("see https://example.com/api-keys.", None) == "see https://example.com/api-keys."


def _gpt_writer_supervisor(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A supervisor whose planner and one worker are "openai:gpt-4o-mini", resolved from the
    environment, which points at the server; and the plan of one step for it."""
    from supervisor import Plan, Step, Supervisor
    from workers import Worker

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")

    class Writer(Worker):
        """Writes."""

        model = "openai:gpt-4o-mini"

    return Supervisor([Writer()], model="openai:gpt-4o-mini"), Plan(steps=[Step("w", "Writer", "write")])


async def test_runs_of_one_supervisor_share_a_models_client_and_its_connections(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sup, plan = _gpt_writer_supervisor(server, monkeypatch)
    for i in range(3):
        server.queue(Answer(200, openai_completion(f"written {i}")))
    async with sup:
        outputs = [(await sup.run_plan(plan)).output for _ in range(3)]
        assert outputs == ["written 0", "written 1", "written 2"]
        # One client for the three runs: its kept-alive connection carried every request.
        assert len(server.received) == 3 and len(server.connections) == 1


# The supervisor is not closed inside the first loop, so that loop's connection is left to the
# collector, which warns about it; what is checked is that the next loop's runs still work.
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_supervisor_runs_under_one_event_loop_after_another(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import gc

    sup, plan = _gpt_writer_supervisor(server, monkeypatch)
    for i in range(2):  # the first loop's client went with its loop; the second makes its own
        server.queue(Answer(200, openai_completion(f"written {i}")))
        assert asyncio.run(sup.run_plan(plan)).output == f"written {i}"
    asyncio.run(sup.aclose())
    gc.collect()  # the first loop's transports are collected (and warned about) inside this test


async def test_anthropic_native_output_sends_a_schema_structured_outputs_accept(
    server: ProviderServer,
) -> None:
    # The model's own schema was sent: `minimum` and `maxLength` are refused by the API (400).
    from pydantic import BaseModel, Field

    from workers import Worker

    class Refund(BaseModel):
        invoice_id: str = Field(max_length=20)
        amount_cents: int = Field(ge=0)

    model = AnthropicModel("claude-haiku-4-5", api_key=KEY, base_url=server.url, native_output=True)
    server.opened.append(model)

    class Refunder(Worker):
        """Refunds."""

        output = Refund

    server.queue(Answer(200, anthropic_message('{"invoice_id": "42", "amount_cents": -5}')))
    server.queue(Answer(200, anthropic_message('{"invoice_id": "42", "amount_cents": 5}')))
    result = await Refunder(model=model).run("refund 42")
    assert result.output == Refund(invoice_id="42", amount_cents=5)  # the constraint held: repaired
    sent = server.received[0].body["output_config"]["format"]["schema"]
    fields = sent["properties"]
    assert "minimum" not in fields["amount_cents"] and "maxLength" not in fields["invoice_id"]
    assert "{minimum: 0}" in sent["properties"]["amount_cents"]["description"]
