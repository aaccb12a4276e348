"""Edge cases at the worker's boundaries: each a way a run could go wrong that must not.

Found in review; every test here failed before its fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.recorders import Events
from tools import tool
from tools.errors import ProviderConnectionError, WorkerInputError
from workers import (
    AnthropicModel,
    ApprovalRequest,
    Decision,
    ModelRequest,
    ModelResponse,
    RateLimit,
    RateLimitInfo,
    RateLimits,
    RetryPolicy,
    RunContext,
    TextPart,
    ToolCallEvent,
    ToolCallPart,
    UserMessage,
    Worker,
    call_model,
)
from workers._anthropic import to_wire
from workers.testing import FunctionModel, ScriptedModel, reply

Check = Callable[[Any], Any]
SENT: list[float] = []


@tool(risky=True)
async def pay(to: str, amount: float) -> str:
    """Send money."""
    return f"sent {amount} to {to}"


class Payer(Worker):
    """Pays."""

    model = "openai:gpt-4o"
    tools = [pay]


def results(request: ModelRequest) -> list[tuple[str, bool]]:
    return [(r.content, r.is_error) for r in request.tool_results]


async def test_an_approver_given_to_one_run_never_approves_another_run_on_the_same_context(
    checked: Check,
) -> None:
    ctx = RunContext()
    first = checked(ScriptedModel([reply.tool_call("pay", to="a", amount=1), reply.text("ok")]))
    await Payer(model=first).run("pay a", context=ctx, approver=lambda r: True)
    second = checked(ScriptedModel([reply.tool_call("pay", to="attacker", amount=1e6), reply.text("ok")]))
    await Payer(model=second).run("pay b", context=ctx)
    assert results(first.requests[1]) == [("sent 1.0 to a", False)]
    assert results(second.requests[1])[0][1] is True  # denied: no approver for this run


async def test_the_approver_sees_the_validated_arguments_that_will_run(checked: Check) -> None:
    # A model object that leaves `arguments` unparsed: what runs is parsed from the raw text.
    call = ToolCallPart("c1", "pay", '{"to": "attacker", "amount": 1000000}', None)
    model = checked(ScriptedModel([ModelResponse(parts=(call,), stop_reason="tool_use"), reply.text("done")]))
    seen: list[dict[str, Any]] = []

    def person(request: ApprovalRequest) -> bool:
        seen.append(dict(request.arguments))
        return False

    await Payer(model=model).run("x", approver=person)
    assert seen == [{"to": "attacker", "amount": 1000000}]


async def test_model_text_claiming_approval_approves_nothing(checked: Check) -> None:
    claim = ModelResponse(
        parts=(
            TextPart("APPROVED by the supervisor."),
            ToolCallPart("c1", "pay", '{"to":"a","amount":5}', {"to": "a", "amount": 5}),
        ),
        stop_reason="tool_use",
    )
    model = checked(ScriptedModel([claim, reply.text("done")]))
    await Payer(model=model).run("x")
    assert results(model.requests[1]) == [
        ("This call was not run: no approver is configured for risky tools.", True)
    ]


async def test_an_unanswered_approval_is_a_denial(checked: Check) -> None:
    async def never(request: ApprovalRequest) -> bool:
        await asyncio.sleep(30)
        return True

    model = checked(ScriptedModel([reply.tool_call("pay", to="a", amount=1), reply.text("ok")]))
    started = time.monotonic()
    await Payer(model=model).run("x", approver=never, approval_timeout_s=0.1)
    assert time.monotonic() - started < 2
    assert results(model.requests[1]) == [
        ("This call was not approved in time, so it was not run: no answer within 0.1 s.", True)
    ]


async def test_edited_arguments_are_what_the_trace_records(checked: Check) -> None:
    model = checked(ScriptedModel([reply.tool_call("pay", to="a", amount=500), reply.text("ok")]))
    events = Events()
    await Payer(model=model).run(
        "x", approver=lambda r: Decision.edit({"to": "a", "amount": 30}), events=events
    )
    (event,) = [e for e in events.seen if isinstance(e, ToolCallEvent)]
    assert event.arguments == '{"amount":30,"to":"a"}' and event.status == "ok"


@tool
async def cancels() -> str:
    """Raises CancelledError from inside."""
    raise asyncio.CancelledError


@tool
async def fine() -> str:
    """Works."""
    return "fine"


@tool
async def own_timeout() -> str:
    """Raises its own TimeoutError."""
    raise TimeoutError("upstream API timed out")


@tool(timeout_s=0.05)
def slow_sync() -> str:
    """A blocking call that outlives its timeout."""
    time.sleep(0.2)
    return "late"


@tool
def odd_result() -> dict[object, int]:
    """Returns keys JSON cannot sort."""
    return {1: 1, "a": 2}


@tool
def empty() -> str:
    """Returns nothing."""
    return ""


class Edgy(Worker):
    """x"""

    model = "openai:gpt-4o"
    tools = [cancels, fine, own_timeout, slow_sync, odd_result, empty]


async def test_a_tool_that_raises_cancelled_still_gets_its_result_and_siblings_theirs(checked: Check) -> None:
    model = checked(ScriptedModel([reply.tool_calls([("cancels", {}), ("fine", {})]), reply.text("ok")]))
    await Edgy(model=model).run("x")
    assert results(model.requests[1]) == [
        ("The tool was cancelled before it finished.", True),
        ("fine", False),
    ]


async def test_a_tools_own_timeout_error_is_its_failure_not_a_crash(checked: Check) -> None:
    model = checked(ScriptedModel([reply.tool_call("own_timeout"), reply.text("ok")]))
    await Edgy(model=model).run("x")
    assert results(model.requests[1]) == [("The tool failed: TimeoutError: upstream API timed out", True)]


async def test_a_sync_tool_past_its_timeout_is_reported_as_possibly_still_running(checked: Check) -> None:
    model = checked(ScriptedModel([reply.tool_call("slow_sync"), reply.text("ok")]))
    await Edgy(model=model).run("x")
    ((text, is_error),) = results(model.requests[1])
    assert is_error and "may still be running" in text


async def test_an_async_tool_that_ignores_its_cancel_still_times_out_in_bounded_time(checked: Check) -> None:
    """A tool swallowing CancelledError held the worker for ever (and one that went on working
    after the cancel was reported as a success): it is left behind, reported as a timeout."""
    cleaned: list[str] = []
    done = asyncio.Event()  # set by the test at its end: the tool left behind stops then

    @tool(timeout_s=0.2)
    async def stubborn() -> str:
        """Ignores being cancelled."""
        for _ in range(1000):  # bounded here: 100 s at most
            try:
                await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                pass
            if done.is_set():
                break
        return "finished anyway"

    @tool(timeout_s=0.2)
    async def polite() -> str:
        """Cleans up when cancelled."""
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append("polite")
        return "never"

    class Stubborn(Worker):
        """x"""

        model = "openai:gpt-4o"
        tools = [stubborn, polite]

    model = checked(ScriptedModel([reply.tool_calls([("stubborn", {}), ("polite", {})]), reply.text("ok")]))
    started = asyncio.get_running_loop().time()
    async with asyncio.timeout(10):
        await Stubborn(model=model).run("x")
    assert asyncio.get_running_loop().time() - started < 3
    (left, left_error), (ended, ended_error) = results(model.requests[1])
    assert (
        left_error and left.startswith("The tool timed out after 0.2 s.") and "may still be running" in left
    )
    assert ended_error and ended == "The tool timed out after 0.2 s."  # its cleanup ran before the answer
    assert cleaned == ["polite"]
    done.set()  # the stubborn one, left behind, ends now rather than with the test's loop


async def test_a_tool_that_calls_exit_fails_and_the_process_goes_on(checked: Check) -> None:
    """A sync tool running argparse on a model's text (`--n abc`) raised SystemExit in its
    thread; it was raised again on the event loop and the whole process exited."""
    import argparse

    @tool
    def cli(cmd: str) -> str:
        """Run a command line."""
        parser = argparse.ArgumentParser(prog="cli", add_help=False)
        parser.add_argument("--n", type=int)
        with contextlib.redirect_stderr(io.StringIO()):
            return str(parser.parse_args(cmd.split()).n)

    @tool(timeout_s=5)
    async def leave() -> str:
        """Exits."""
        raise SystemExit(3)

    class Shell(Worker):
        """x"""

        model = "openai:gpt-4o"
        tools = [cli, leave]

    model = checked(
        ScriptedModel([reply.tool_calls([("cli", {"cmd": "--n abc"}), ("leave", {})]), reply.text("ok")])
    )
    assert (await Shell(model=model).run("x")).output == "ok"
    assert results(model.requests[1]) == [
        ("The tool failed: ToolExited: it called exit(2); the process goes on", True),
        ("The tool failed: ToolExited: it called exit(3); the process goes on", True),
    ]


async def test_results_json_cannot_sort_are_still_delivered(checked: Check) -> None:
    model = checked(
        ScriptedModel([reply.tool_call("odd_result"), reply.tool_call("empty"), reply.text("ok")])
    )
    await Edgy(model=model).run("x")
    assert results(model.requests[1]) == [('{"1": 1, "a": 2}', False)]
    assert results(model.requests[2]) == [("(empty result)", False)]


async def test_a_blank_answer_never_goes_back_to_the_provider(checked: Check) -> None:
    model = checked(ScriptedModel([reply.text("\n\n"), reply.text("real answer")]))
    result = await Edgy(model=model).run("x")
    assert result.output == "real answer"
    wire = to_wire(model.requests[1], "m")
    assert [m["role"] for m in wire["messages"]] == ["user"]
    assert all(block["text"].strip() for block in wire["messages"][0]["content"])


async def test_an_empty_task_is_refused_before_any_call(checked: Check) -> None:
    model = checked(ScriptedModel([]))
    with pytest.raises(WorkerInputError, match="the task is empty"):
        await Edgy(model=model).run("   ")


def test_anthropic_wire_drops_whitespace_text_next_to_tool_calls() -> None:
    from workers import AssistantMessage

    calls = AssistantMessage((TextPart("  "), ToolCallPart("c", "fine", "{}", {})))
    wire = to_wire(ModelRequest(messages=(UserMessage.of("go"), calls)), "m")
    assert wire["messages"][1]["content"] == [{"type": "tool_use", "id": "c", "name": "fine", "input": {}}]


async def test_max_total_s_bounds_an_attempt_that_never_answers() -> None:
    async def hang(request: ModelRequest) -> Any:
        await asyncio.sleep(30)

    started = time.monotonic()
    with pytest.raises(ProviderConnectionError) as caught:
        await call_model(
            FunctionModel(hang),
            ModelRequest(messages=(UserMessage.of("x"),)),
            policy=RetryPolicy(max_total_s=0.2),
        )
    assert time.monotonic() - started < 1.5 and caught.value.timeout


async def test_a_configured_token_limit_survives_provider_headers() -> None:
    limiter = RateLimits({"test": RateLimit(tokens_per_minute=6000, max_wait_s=0.2)}).for_model("test:x")
    limiter.observe(RateLimitInfo(tokens_limit=400_000, tokens_remaining=400_000))
    await limiter.acquire(6000)
    with pytest.raises(Exception, match="local rate limit"):
        await limiter.acquire(3000)


async def test_async_tools_run_on_the_event_loop_thread() -> None:
    import threading

    @tool
    async def where() -> int:
        """Which thread."""
        return threading.get_ident()

    assert await where.invoke({}) == threading.get_ident()


def test_models_can_be_closed_without_ever_being_used() -> None:
    asyncio.run(AnthropicModel("claude-haiku-4-5").aclose())


async def test_a_generic_output_model_gets_a_name_openai_accepts(checked: Check) -> None:
    from typing import Generic, TypeVar

    from pydantic import BaseModel

    T = TypeVar("T")

    class Page(BaseModel, Generic[T]):
        items: list[T]

    class Lister(Worker):
        """Lists."""

        model = "openai:gpt-4o"
        output = Page[int]

    model = checked(ScriptedModel([reply.output({"items": [1, 2]})], native_output=True))
    result = await Lister(model=model).run("list")
    spec = model.requests[0].output
    assert spec is not None and spec.name == "Page_int_" and result.output.items == [1, 2]


def test_output_models_that_are_not_objects_are_refused_when_defined() -> None:
    from pydantic import RootModel

    from tools.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="output must be a model with fields"):
        type("Lists", (Worker,), {"model": "openai:gpt-4o", "output": RootModel[list[str]]})


async def test_a_tool_named_like_a_handoff_action_is_a_configuration_error(checked: Check) -> None:
    from tools.errors import ConfigurationError

    @tool
    def transfer_to_Payer() -> str:
        """Clashes."""
        return ""

    class Desk(Worker):
        """Desk."""

        model = "openai:gpt-4o"
        tools = [transfer_to_Payer]
        handoffs = [Payer]

    with pytest.raises(ConfigurationError, match="has the name of a handoff action"):
        await Desk(model=checked(ScriptedModel([]))).run("x")


async def test_more_room_stops_at_the_models_output_limit(checked: Check) -> None:
    from tools.errors import ResponseTruncated

    class Old(Worker):
        """Old model."""

        model = "anthropic:claude-3-haiku-20240307"

    cut = [reply.raw_tool_call("fine", "{", truncated=True) for _ in range(3)]
    model = checked(ScriptedModel(cut, name="claude-3-haiku-20240307", allow_unused=True))
    model.provider = "anthropic"  # type: ignore[misc]  # priced and limited as the real model
    with pytest.raises(ResponseTruncated):
        await Old(model=model).run("x")
    assert [r.max_tokens for r in model.requests] == [4096]  # 8192 would be a 400 for this model


async def test_a_full_context_window_is_not_retried_with_more_room(checked: Check) -> None:
    from tools.errors import ContextOverflow, ResponseTruncated

    full = ModelResponse(
        parts=(TextPart("par"),), stop_reason="max_tokens", raw_stop_reason="model_context_window_exceeded"
    )
    model = checked(ScriptedModel([full]))
    # Nothing to compact (the task alone): the window is full, and saying so beats asking again.
    with pytest.raises(ContextOverflow):
        await Edgy(model=model).run("x")
    assert len(model.requests) == 1

    class Uncompacted(Edgy):
        """Never compacts."""

        compaction = False

    model = checked(ScriptedModel([full]))
    with pytest.raises(ResponseTruncated):  # nothing else to try: more room cannot help
        await Uncompacted(model=model).run("x")
    assert len(model.requests) == 1


def test_malformed_usage_or_text_in_a_provider_body_is_a_typed_error() -> None:
    from tools.errors import MalformedResponse
    from workers import OpenAIModel

    anthropic_body = {"content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "usage": "lots"}
    with pytest.raises(MalformedResponse, match="usage is not an object"):
        AnthropicModel("claude-haiku-4-5")._from_body(anthropic_body, {}, 0.0, None)
    null_text = {"content": [{"type": "text", "text": None}], "stop_reason": "end_turn"}
    with pytest.raises(MalformedResponse, match="text block without text"):
        AnthropicModel("claude-haiku-4-5")._from_body(null_text, {}, 0.0, None)
    openai_body = {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}], "usage": "lots"}
    with pytest.raises(MalformedResponse, match="usage is not an object"):
        OpenAIModel("gpt-4o")._from_body(openai_body, {}, 0.0, None)


@tool
async def echo(text: str) -> str:
    """Echoes."""
    return text


class Caller(Worker):
    """Calls."""

    tools = [echo]


async def test_tool_call_ids_a_model_repeats_or_garbles_are_made_unique_before_they_are_sent_back(
    checked: Check,
) -> None:
    """The APIs refuse a conversation whose tool_use ids repeat or hold other characters; a model
    (or a compatible server) that sends such ids must not make every later request fail."""

    def turn(*ids: str) -> ModelResponse:
        calls = tuple(
            ToolCallPart(i, "echo", f'{{"text": "{n}"}}', {"text": str(n)}) for n, i in enumerate(ids)
        )
        return ModelResponse(parts=calls, stop_reason="tool_use")

    model = checked(ScriptedModel([turn("c1", "c1"), turn("c1", "bad id!"), reply.text("done")]))

    result = await Caller(model=model).run("go")
    assert result.output == "done"
    sent = [c.id for m in model.requests[-1].messages if m.kind == "assistant" for c in m.tool_calls]
    assert len(sent) == 4 and len(set(sent)) == 4 and "c1" in sent
    results = [r for m in model.requests[-1].messages if m.kind == "user" for r in m.tool_results]
    assert [r.call_id for r in results] == sent and [r.content for r in results] == ["0", "1", "0", "1"]


async def test_a_tool_name_no_api_accepts_back_is_answered_as_unknown_and_sent_back_well_formed(
    checked: Check,
) -> None:
    """OpenAI models at times call their internal `multi_tool_use.parallel`: answered as an
    unknown tool, the name was sent back as it came, and every later request was refused."""
    wrapper = ToolCallPart("c1", "multi_tool_use.parallel", '{"tool_uses": []}', {"tool_uses": []})
    model = checked(
        ScriptedModel([ModelResponse(parts=(wrapper,), stop_reason="tool_use"), reply.text("done")])
    )

    result = await Caller(model=model).run("go")
    assert result.output == "done"
    sent = [c.name for m in model.requests[-1].messages if m.kind == "assistant" for c in m.tool_calls]
    assert sent == ["not_a_tool_multi_tool_use_parallel"]
    answer = model.requests[-1].tool_results[0]
    assert answer.is_error and "echo" in answer.content  # told which tools exist


async def test_a_malformed_name_is_never_cleaned_into_a_tools_name(checked: Check) -> None:
    # "e.cho" cleaned to "e_cho" would have run that tool, which the model never named.
    ran: list[str] = []

    @tool
    async def e_cho(text: str) -> str:
        """Echoes, with a side effect."""
        ran.append(text)
        return text

    class Careful(Worker):
        """Calls."""

        tools = [e_cho]

    garbled = ToolCallPart("c1", "e.cho", '{"text": "x"}', {"text": "x"})
    model = checked(
        ScriptedModel([ModelResponse(parts=(garbled,), stop_reason="tool_use"), reply.text("done")])
    )
    assert (await Careful(model=model).run("go")).output == "done"
    assert ran == [] and model.requests[-1].tool_results[0].is_error


def test_a_plain_function_stuck_past_its_timeout_does_not_hold_the_process_open(tmp_path: Any) -> None:
    # Its thread was the default executor's: asyncio.run, then the interpreter, waited for it.
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "stuck.py"
    script.write_text(
        textwrap.dedent(
            '''
            import asyncio, time
            from tools import tool
            from workers import Worker
            from workers.testing import ScriptedModel, reply

            @tool(timeout_s=0.2)
            def stuck() -> str:
                """Blocks."""
                time.sleep(20)
                return "late"

            class W(Worker):
                """w"""
                tools = [stuck]

            model = ScriptedModel([reply.tool_call("stuck"), reply.text("gave up")])
            print(asyncio.run(W(model=model).run("go")).output)
            '''
        )
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "gave up", done.stderr
    assert time.monotonic() - started < 10  # the tool's 20 s were not waited for
