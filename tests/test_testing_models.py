"""workers.testing: the deterministic models users test their own agents with."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tools import tool
from tools.errors import ConfigurationError, ProviderConnectionError, ProviderRateLimited, ScriptError
from workers import (
    ModelRequest,
    ModelResponse,
    OutputSpec,
    Price,
    TextPart,
    ToolResultPart,
    ToolSpec,
    Usage,
    UserMessage,
    Worker,
)
from workers.testing import FunctionModel, ScriptedModel, reply

Check = Callable[[Any], Any]
ASK = ModelRequest(messages=(UserMessage.of("Refund invoice 42"),))


class Refund(BaseModel):
    invoice_id: str
    refunded: bool


async def test_scripted_model_answers_in_order_and_keeps_requests() -> None:
    model = ScriptedModel([reply.tool_call("lookup_invoice", invoice_id="42"), reply.text("done")])
    first = await model.request(ASK)
    assert first.stop_reason == "tool_use"
    (call,) = first.tool_calls
    assert (call.name, call.arguments, call.raw_arguments) == (
        "lookup_invoice",
        {"invoice_id": "42"},
        '{"invoice_id":"42"}',
    )
    second = await model.request(ASK)
    assert (second.text, second.stop_reason) == ("done", "end")
    assert model.requests == [ASK, ASK]
    model.assert_done()


async def test_scripted_model_fails_on_an_extra_call() -> None:
    model = ScriptedModel([reply.text("only one")])
    await model.request(ASK)
    with pytest.raises(ScriptError, match="unexpected model call #2"):
        await model.request(ASK)


async def test_scripted_model_reports_unused_replies() -> None:
    with (
        pytest.raises(ScriptError) as caught,
        ScriptedModel([reply.text("a"), reply.text("b")], allow_unused=True) as model,
    ):
        await model.request(ASK)
    assert caught.value.unused == 1 and "reply.text(b)" in str(caught.value)


async def test_parallel_tool_calls_get_distinct_ids_in_order() -> None:
    model = ScriptedModel([reply.tool_calls([("a", {"x": 1}), ("b", {"y": 2})])])
    response = await model.request(ASK)
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("call_1", "a", {"x": 1}),
        ("call_2", "b", {"y": 2}),
    ]


async def test_output_reply_follows_the_requests_output_mode() -> None:
    value = Refund(invoice_id="42", refunded=True)
    native = ModelRequest(messages=ASK.messages, output=OutputSpec("Refund", Refund.model_json_schema()))
    response = await ScriptedModel([reply.output(value)]).request(native)
    assert response.stop_reason == "end" and Refund.model_validate_json(response.text) == value

    final_tool = ToolSpec("final_result", "Deliver the answer", Refund.model_json_schema(), is_output=True)
    by_tool = ModelRequest(messages=ASK.messages, tools=(final_tool,))
    response = await ScriptedModel([reply.output({"invoice_id": "42", "refunded": True})]).request(by_tool)
    (call,) = response.tool_calls
    assert (call.name, call.arguments) == ("final_result", {"invoice_id": "42", "refunded": True})


async def test_function_model_sync_and_async_see_the_latest_tool_results() -> None:
    def decide(request: ModelRequest) -> object:
        if request.tool_results:
            return reply.text(f"got {request.tool_results[0].content}")
        return reply.tool_call("lookup", id="1")

    async def decide_async(request: ModelRequest) -> object:
        return decide(request)

    for fn in (decide, decide_async):
        model = FunctionModel(fn)  # type: ignore[arg-type]
        first = await model.request(ASK)
        call = first.tool_calls[0]
        results = UserMessage((ToolResultPart(call.id, call.name, "invoice 42"),))
        second = await model.request(ModelRequest(messages=(*ASK.messages, first.message, results)))
        assert second.text == "got invoice 42"


async def test_usage_is_estimated_deterministically_or_taken_as_given_and_priced() -> None:
    priced = ScriptedModel(
        [reply.text("hello"), reply.text("x", usage=Usage(input_tokens=1000, output_tokens=500))],
        price=Price(input=1.0, output=5.0),
    )
    estimated = await priced.request(ASK)
    assert estimated.usage.input_tokens > 0 and estimated.usage.output_tokens > 0
    again = await ScriptedModel([reply.text("hello")]).request(ASK)
    assert (again.usage.input_tokens, again.usage.output_tokens) == (
        estimated.usage.input_tokens,
        estimated.usage.output_tokens,
    )
    given = await priced.request(ASK)
    assert (given.usage.input_tokens, given.usage.output_tokens) == (1000, 500)
    assert given.usage.cost_usd == pytest.approx((1000 * 1 + 500 * 5) / 1e6)
    assert again.usage.cost_usd is None  # a test model without a price is unpriced, not free


async def test_error_replies_raise_what_a_provider_would() -> None:
    model = ScriptedModel([reply.error(429, retry_after_s=2.5), reply.disconnect()])
    with pytest.raises(ProviderRateLimited) as caught:
        await model.request(ASK)
    assert caught.value.retry_after_s == 2.5 and caught.value.retryable
    with pytest.raises(ProviderConnectionError):
        await model.request(ASK)


async def test_refusal_and_raw_and_truncated_tool_calls() -> None:
    model = ScriptedModel(
        [
            reply.refusal("no"),
            reply.raw_tool_call("t", "{not json"),
            reply.raw_tool_call("t", '{"a": 1', truncated=True),
        ]
    )
    refused = await model.request(ASK)
    assert (refused.stop_reason, refused.refusal) == ("refusal", "no")
    bad = (await model.request(ASK)).tool_calls[0]
    assert bad.arguments is None and not bad.truncated
    cut = await model.request(ASK)
    assert cut.stop_reason == "max_tokens" and cut.tool_calls[0].truncated


async def test_a_function_returning_something_else_is_a_clear_error() -> None:
    model = FunctionModel(lambda request: 42)  # type: ignore[arg-type,return-value]
    with pytest.raises(ScriptError, match="must answer with a reply, not 42"):
        await model.request(ASK)


async def test_a_ready_made_response_and_a_plain_string_are_accepted() -> None:
    ready = ModelResponse(parts=(TextPart("as is"),), stop_reason="end")
    model = ScriptedModel([ready, "plain"])
    assert (await model.request(ASK)) is ready
    assert (await model.request(ASK)).text == "plain"


async def test_answers_stop_at_max_tokens_as_a_real_provider_does() -> None:
    request = ModelRequest(messages=ASK.messages, max_tokens=10)
    response = await ScriptedModel([reply.text("y" * 400), reply.text("short")], allow_unused=True).request(
        request
    )
    assert (response.stop_reason, response.usage.output_tokens) == ("max_tokens", 10)
    given = await ScriptedModel([reply.text("z", usage=Usage(input_tokens=5, output_tokens=50))]).request(
        request
    )
    assert given.usage.output_tokens == 10 and given.stop_reason == "max_tokens"
    assert response.request_id == "req_1"


def test_a_test_that_leaves_scripted_replies_unused_fails(tmp_path: Path) -> None:
    # "fails on an extra or unused call": the unused half needed assert_done(); the plugin this
    # package registers (entry point pytest11) fails the test when it ends.
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            '''
            import asyncio
            from workers import Worker
            from workers.testing import ScriptedModel, reply

            class W(Worker):
                """w"""

            def test_leaves_one():
                model = ScriptedModel([reply.text("used"), reply.text("never asked for")])
                assert asyncio.run(W(model=model).run("go")).output == "used"

            def test_allowed():
                model = ScriptedModel([reply.text("used"), reply.text("spare")], allow_unused=True)
                asyncio.run(W(model=model).run("go"))

            def test_a_script_over_two_runs():
                model = ScriptedModel([reply.text("one"), reply.text("two")])
                asyncio.run(W(model=model).run("go"))
                asyncio.run(W(model=model).run("again"))
            '''
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "3 passed, 1 error" in done.stdout, done.stdout  # the error: at the teardown of the first
    assert "ERROR test_user.py::test_leaves_one" in done.stdout
    assert "scripted: 1 unused: [reply.text(never asked for)]" in done.stdout


@tool
async def record(usage: str) -> str:
    """Record a usage note."""
    return f"noted {usage}"


class Recorder(Worker):
    """Records."""

    model = "openai:gpt-4o"
    tools = [record]


async def test_a_tool_argument_named_usage_is_scripted_as_a_mapping(checked: Check) -> None:
    """`usage=` is the reply's token usage: a tool parameter of that name failed deep in the run."""
    model = checked(ScriptedModel([reply.tool_call("record", {"usage": "heavy"}), reply.text("done")]))
    await Recorder(model=model).run("go")
    assert [r.content for r in model.requests[1].tool_results] == ["noted heavy"]
    with pytest.raises(
        ConfigurationError, match=r"pass the arguments as a mapping: reply.tool_call\('record'"
    ):
        reply.tool_call("record", usage="heavy")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="as a mapping or as keywords, not both"):
        reply.tool_call("record", {"usage": "a"}, note="b")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: reply.tool_call(5), "reply.tool_call: the tool name must be a string, got 5"),
        (lambda: reply.tool_calls([("lookup",)]), r"a \(name, arguments\) pair, got \('lookup',\)"),
        (lambda: reply.tool_calls([("lookup", None)]), "arguments of 'lookup' must be a mapping, got None"),
        (lambda: reply.tool_calls("lookup"), "takes a list of \\(name, arguments\\), got 'lookup'"),
        (lambda: reply.text(5), "reply.text: text must be a string, got 5"),
        (lambda: reply.text("hi", usage=3), "usage= must be a Usage or None, got 3"),
        (lambda: ScriptedModel("abc"), "ScriptedModel takes a list of replies, got 'abc'"),
        (lambda: ScriptedModel(None), "ScriptedModel takes a list of replies, got None"),
    ],
)  # fmt: skip
def test_a_script_of_the_wrong_shape_fails_where_it_is_written_naming_the_value(
    make: Callable[[], object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make()
