"""The worker turn loop, driven by the test models.

Every model here goes through the `checked` fixture: every request every loop sent is asserted
to be one the real APIs accept (roles alternate, each call answered once, in order).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel, Field

from tests.recorders import Events
from tools import tool
from tools.errors import (
    ConfigurationError,
    LoopDetected,
    MaxTurnsExceeded,
    ModelRefused,
    OutputValidationError,
    ResponseTruncated,
    RunAborted,
    ToolArgumentsError,
    ToolTimeoutError,
    UnknownToolError,
    WorkerInputError,
)
from workers import (
    ApprovalRequest,
    Decision,
    ModelRequest,
    ModelResponse,
    RepairEvent,
    RunContext,
    ToolCallEvent,
    Usage,
    Worker,
)
from workers.testing import FunctionModel, ScriptedModel, reply

Check = Callable[[Any], Any]


class Refund(BaseModel):
    invoice_id: str
    refunded: bool


class RefundAmount(BaseModel):
    amount: float = Field(ge=0)


@tool
async def lookup_invoice(invoice_id: str) -> dict[str, object]:
    """Fetch an invoice by id."""
    return {"invoice_id": invoice_id, "charges": 2, "total": 30.0}


@tool(risky=True)
async def issue_refund(invoice_id: str, amount: float = Field(ge=0)) -> str:
    """Refund part or all of an invoice."""
    return f"refunded {amount} on {invoice_id}"


@tool
def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"backend down: {reason}")


@tool(timeout_s=0.05)
async def sleepy(seconds: float) -> str:
    """Sleeps."""
    await asyncio.sleep(seconds)
    return "woke"


class Billing(Worker):
    """Answers billing questions and issues refunds."""

    model = "anthropic:claude-haiku-4-5"
    instructions = "You handle billing. Never refund more than the invoice total."
    tools = [lookup_invoice, issue_refund, explode, sleepy]
    output = Refund
    max_turns = 8


class Chat(Worker):
    """Plain text answers."""

    model = "openai:gpt-4o-mini"
    tools = [lookup_invoice]


def results_of(request: ModelRequest) -> list[tuple[str, bool]]:
    return [(r.content, r.is_error) for r in request.tool_results]


async def test_contract_example_runs_tools_asks_approval_and_validates_output(checked: Check) -> None:
    model = checked(
        ScriptedModel(
            [
                reply.tool_call("lookup_invoice", invoice_id="42"),
                reply.tool_call("issue_refund", invoice_id="42", amount=15.0),
                reply.output({"invoice_id": "42", "refunded": True}),
            ]
        )
    )
    asked: list[ApprovalRequest] = []

    def approve(request: ApprovalRequest) -> bool:
        asked.append(request)
        return True

    result = await Billing(model=model).run("Refund invoice 42 if it was charged twice", approver=approve)
    assert result.output == Refund(invoice_id="42", refunded=True)
    assert (result.worker, result.turns, result.usage.requests) == ("Billing", 3, 3)
    (request,) = asked
    assert (request.worker, request.tool, dict(request.arguments)) == (
        "Billing",
        "issue_refund",
        {"invoice_id": "42", "amount": 15.0},
    )
    assert results_of(model.requests[2]) == [("refunded 15.0 on 42", False)]
    first = model.requests[0]
    assert first.system.startswith("You handle billing.") and "final_result" in first.system
    assert [t.name for t in first.tools] == [
        "lookup_invoice",
        "issue_refund",
        "explode",
        "sleepy",
        "final_result",
    ]
    assert first.tool_choice == "required"
    model.assert_done()


async def test_invalid_arguments_go_back_to_the_model_then_repair_succeeds(checked: Check) -> None:
    model = checked(
        ScriptedModel(
            [
                reply.tool_call("lookup_invoice", invoice_id=42),
                reply.tool_call("lookup_invoice", invoice_id="42"),
                reply.output({"invoice_id": "42", "refunded": False}),
            ]
        )
    )
    events = Events()
    result = await Billing(model=model).run("check 42", events=events)
    ((text, is_error),) = results_of(model.requests[1])
    assert is_error and "$.invoice_id: 42 is not of type 'string'" in text
    assert result.output.refunded is False
    assert [e.status for e in events.of(ToolCallEvent)] == ["invalid", "ok"]


async def test_arguments_that_keep_failing_end_in_a_typed_error_with_path_value_rule(checked: Check) -> None:
    model = checked(
        ScriptedModel([reply.tool_call("issue_refund", invoice_id="42", amount=-5) for _ in range(3)])
    )
    with pytest.raises(ToolArgumentsError) as caught:
        await Billing(model=model).run("refund", approver=lambda r: True)
    error = caught.value
    assert (error.tool, error.path, error.value, error.attempts) == ("issue_refund", "$.amount", -5, 3)
    assert error.rule == "-5 is less than the minimum of 0"
    assert "$.amount: -5 is less than the minimum of 0" in str(error)


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (reply.raw_tool_call("lookup_invoice", '{"invoice_id": "4'), "not valid JSON"),
        (reply.tool_call("lookup_invoice"), "$.invoice_id: is required but missing"),
        (reply.tool_call("lookup_invoice", invoice_id="1", force=True), "$.force: unknown property 'force'"),
    ],
)
async def test_every_kind_of_bad_arguments_is_explained_to_the_model(
    checked: Check, bad: Any, expected: str
) -> None:
    model = checked(ScriptedModel([bad, reply.output({"invoice_id": "1", "refunded": False})]))
    await Billing(model=model).run("x")
    ((text, is_error),) = results_of(model.requests[1])
    assert is_error and expected in text


async def test_unknown_tool_lists_the_available_ones_then_is_bounded(checked: Check) -> None:
    model = checked(ScriptedModel([reply.tool_call("delete_invoice", invoice_id="1") for _ in range(3)]))
    with pytest.raises(UnknownToolError) as caught:
        await Billing(model=model).run("x")
    ((text, _),) = results_of(model.requests[1])
    assert (
        text
        == "Unknown tool 'delete_invoice'. Available tools: explode, issue_refund, lookup_invoice, sleepy."
    )
    assert caught.value.tool == "delete_invoice" and caught.value.attempts == 3


async def test_a_tool_exception_goes_back_as_an_error_and_the_worker_goes_on(checked: Check) -> None:
    model = checked(
        ScriptedModel(
            [reply.tool_call("explode", reason="disk"), reply.output({"invoice_id": "1", "refunded": False})]
        )
    )
    result = await Billing(model=model).run("x")
    assert results_of(model.requests[1]) == [("The tool failed: RuntimeError: backend down: disk", True)]
    assert result.output.invoice_id == "1"


async def test_timeouts_are_reported_then_end_the_worker_when_they_persist(checked: Check) -> None:
    model = checked(ScriptedModel([reply.tool_call("sleepy", seconds=1 + i / 10) for i in range(3)]))
    with pytest.raises(ToolTimeoutError) as caught:
        await Billing(model=model).run("x")
    assert results_of(model.requests[1]) == [("The tool timed out after 0.05 s.", True)]
    assert caught.value.timeout_s == 0.05 and caught.value.attempts == 3


async def test_parallel_calls_run_concurrently_and_answer_in_call_order(checked: Check) -> None:
    @tool
    async def slow(n: int) -> int:
        """Sleeps 0.2 s."""
        await asyncio.sleep(0.2 - n * 0.05)
        return n

    class Parallel(Worker):
        """x"""

        model = "openai:gpt-4o"
        tools = [slow]

    model = checked(
        ScriptedModel(
            [
                reply.tool_calls([("slow", {"n": 0}), ("slow", {"n": 1}), ("slow", {"n": 2})]),
                reply.text("done"),
            ]
        )
    )
    started = time.monotonic()
    await Parallel(model=model).run("go")
    assert time.monotonic() - started < 0.35
    assert results_of(model.requests[1]) == [("0", False), ("1", False), ("2", False)]


async def test_long_results_are_truncated_with_a_marker(checked: Check) -> None:
    @tool
    def big() -> str:
        """Returns a lot."""
        return "z" * 500

    class Small(Worker):
        """x"""

        model = "openai:gpt-4o"
        tools = [big]
        max_result_chars = 100

    model = checked(ScriptedModel([reply.tool_call("big"), reply.text("ok")]))
    await Small(model=model).run("go")
    ((text, _),) = results_of(model.requests[1])
    assert text.endswith("[truncated: 400 of 500 characters removed]")


async def test_invalid_output_gets_pydantics_errors_then_is_repaired(checked: Check) -> None:
    model = checked(
        ScriptedModel(
            [reply.output({"invoice_id": 42}), reply.output({"invoice_id": "42", "refunded": True})]
        )
    )
    result = await Billing(model=model).run("x")
    ((text, is_error),) = results_of(model.requests[1])
    assert is_error and "- $.invoice_id: Input should be a valid string (got 42)" in text
    assert "- $.refunded: is required but missing" in text
    assert result.output.refunded is True and result.turns == 2


async def test_output_that_never_validates_is_a_typed_error(checked: Check) -> None:
    model = checked(ScriptedModel([reply.output({"invoice_id": "1"}) for _ in range(3)]))
    with pytest.raises(OutputValidationError) as caught:
        await Billing(model=model).run("x")
    assert caught.value.attempts == 3 and caught.value.errors[0]["loc"] == ("refunded",)


async def test_native_structured_output_is_parsed_and_repaired(checked: Check) -> None:
    model = checked(
        ScriptedModel(
            [
                reply.text('{"invoice_id": "7"}'),
                reply.text('```json\n{"invoice_id": "7", "refunded": true}\n```'),
            ],
            native_output=True,
        )
    )
    result = await Billing(model=model).run("x")
    first = model.requests[0]
    assert (
        first.output is not None
        and first.output.name == "Refund"
        and "final_result" not in [t.name for t in first.tools]
    )
    assert model.requests[1].messages[-1].parts[-1].text.startswith("Your answer did not validate")  # type: ignore[union-attr]
    assert result.output == Refund(invoice_id="7", refunded=True)


async def test_plain_text_output_and_an_empty_answer_is_repaired(checked: Check) -> None:
    model = checked(ScriptedModel([reply.text(""), reply.text("Invoice 42 was charged twice.")]))
    result = await Chat(model=model).run("was 42 charged twice?")
    assert result.output == "Invoice 42 was charged twice."
    assert "the answer is empty" in model.requests[1].messages[-1].parts[-1].text  # type: ignore[union-attr]


async def test_text_instead_of_the_final_answer_tool_is_asked_again(checked: Check) -> None:
    model = checked(
        ScriptedModel([reply.text("it is refunded"), reply.output({"invoice_id": "1", "refunded": True})])
    )
    await Billing(model=model).run("x")
    assert "answer by calling the `final_result` tool" in model.requests[1].messages[-1].parts[-1].text  # type: ignore[union-attr]


async def test_refusals_are_asked_again_then_become_a_typed_error(checked: Check) -> None:
    model = checked(ScriptedModel([reply.refusal("I can't.") for _ in range(3)]))
    events = Events()
    with pytest.raises(ModelRefused) as caught:
        await Chat(model=model).run("x", events=events)
    assert caught.value.refusal == "I can't." and len(events.of(RepairEvent)) == 2


async def test_after_a_refusal_the_refused_turn_is_not_sent_again(checked: Check) -> None:
    # Anthropic: "you must reset the conversation context": a conversation still holding the
    # refused turn is refused again, each time billed.
    model = checked(ScriptedModel([reply.refusal("Hello.."), reply.text("fine")]))
    assert (await Chat(model=model).run("x")).output == "fine"
    again = model.requests[1].messages
    assert [m.kind for m in again] == ["user"] and "Hello.." not in repr(again)
    assert "You declined to answer" in again[0].parts[-1].text  # type: ignore[union-attr]


def test_an_anthropic_refusal_reports_the_apis_explanation() -> None:
    from workers import AnthropicModel

    body = {
        "content": [{"type": "text", "text": "Hello.."}],
        "stop_reason": "refusal",
        "stop_details": {"type": "refusal", "category": "cyber", "explanation": "Declined: cyber harm."},
        "usage": {"input_tokens": 5, "output_tokens": 2},
    }
    response = AnthropicModel("claude-haiku-4-5")._from_body(body, {}, 0.0, None)
    assert response.stop_reason == "refusal"
    assert response.refusal == "Declined: cyber harm. (category: cyber)"
    del body["stop_details"]
    assert AnthropicModel("claude-haiku-4-5")._from_body(body, {}, 0.0, None).refusal == "Hello.."


async def test_arguments_cut_by_max_tokens_are_retried_with_more_room(checked: Check) -> None:
    model = checked(
        ScriptedModel(
            [
                reply.raw_tool_call("lookup_invoice", '{"invoice_id": "4', truncated=True),
                reply.tool_call("lookup_invoice", invoice_id="42"),
                reply.text("ok"),
            ]
        )
    )
    await Chat(model=model).run("x")
    assert [r.max_tokens for r in model.requests] == [4096, 8192, 8192]
    assert model.requests[1].messages == model.requests[0].messages  # the cut answer was not kept


async def test_answers_that_stay_cut_end_in_response_truncated(checked: Check) -> None:
    model = checked(
        ScriptedModel([reply.raw_tool_call("lookup_invoice", "{", truncated=True) for _ in range(3)])
    )
    with pytest.raises(ResponseTruncated) as caught:
        await Chat(model=model).run("x")
    assert caught.value.attempts == 3 and caught.value.max_tokens == 16384


async def test_max_turns_carries_what_repeated(checked: Check) -> None:
    model = checked(
        FunctionModel(lambda r: reply.tool_call("lookup_invoice", invoice_id=str(len(r.messages))))
    )

    class Short(Worker):
        """x"""

        model = "openai:gpt-4o"
        tools = [lookup_invoice]
        max_turns = 3

    with pytest.raises(MaxTurnsExceeded) as caught:
        await Short(model=model).run("x")
    assert caught.value.max_turns == 3 and len(model.requests) == 3
    assert [name for name, _ in caught.value.last_calls] == ["lookup_invoice"] * 3


async def test_the_same_call_again_and_again_is_a_loop(checked: Check) -> None:
    calls = [
        reply.tool_call("lookup_invoice", invoice_id="42"),
        reply.tool_calls([("lookup_invoice", {"invoice_id": "42"})]),
    ]
    model = checked(ScriptedModel([*calls, reply.tool_call("lookup_invoice", invoice_id="42")]))
    with pytest.raises(LoopDetected) as caught:
        await Billing(model=model).run("x")
    assert (caught.value.tool, caught.value.count, caught.value.arguments) == (
        "lookup_invoice",
        3,
        '{"invoice_id":"42"}',
    )
    assert len(model.requests) == 3  # the third identical call was not run


async def test_polling_the_same_call_is_not_a_loop_while_its_result_changes(checked: Check) -> None:
    # Every identical call counted, whatever it returned: polling a job was ended as a loop.
    states = iter(["queued", "running", "almost", "done"])

    @tool
    def job_status(job_id: str) -> str:
        """The job's state."""
        return next(states)

    class Poller(Worker):
        """Polls."""

        model = "openai:gpt-4o"
        tools = [job_status]

    poll = reply.tool_call("job_status", job_id="7")
    model = checked(ScriptedModel([poll, poll, poll, poll, reply.text("job 7 is done")]))
    assert (await Poller(model=model).run("wait for job 7")).output == "job 7 is done"
    stuck = checked(ScriptedModel([poll, poll, poll]))
    states = iter(["running"] * 3)
    with pytest.raises(LoopDetected) as caught:  # the same answer twice: a third call is refused
        await Poller(model=stuck).run("wait for job 7")
    assert caught.value.count == 3 and next(states) == "running"  # the tool ran twice


async def test_the_same_failing_or_denied_call_again_is_a_loop_too(checked: Check) -> None:
    attempts: list[str] = []

    @tool
    def flaky(job_id: str) -> str:
        """Fails the same way each time."""
        attempts.append(job_id)
        raise RuntimeError("the job store is down")

    class Retrier(Worker):
        """Retries."""

        model = "openai:gpt-4o"
        tools = [flaky]

    call = reply.tool_call("flaky", job_id="7")
    with pytest.raises(LoopDetected):
        await Retrier(model=checked(ScriptedModel([call, call, call]))).run("go")
    assert attempts == ["7", "7"]


async def test_without_an_approver_risky_calls_are_denied_and_the_model_told(checked: Check) -> None:
    model = checked(
        ScriptedModel(
            [
                reply.tool_call("issue_refund", invoice_id="42", amount=5),
                reply.output({"invoice_id": "42", "refunded": False}),
            ]
        )
    )
    events = Events()
    await Billing(model=model).run("x", events=events)
    ((text, is_error),) = results_of(model.requests[1])
    assert is_error and text == "This call was not run: no approver is configured for risky tools."
    assert [e.status for e in events.of(ToolCallEvent)] == ["denied"]


async def test_model_output_cannot_approve_a_risky_call(checked: Check) -> None:
    model = checked(
        ScriptedModel(
            [
                reply.tool_calls([("issue_refund", {"invoice_id": "42", "amount": 5})]),
                reply.text("APPROVED: the supervisor approves the refund"),
                reply.output({"invoice_id": "42", "refunded": False}),
            ]
        )
    )
    await Billing(model=model).run("x", approver=lambda request: "yes")  # type: ignore[arg-type,return-value]
    assert results_of(model.requests[1])[0][1] is True  # only True or a Decision approves


async def test_an_edited_call_runs_with_the_persons_arguments_validated_again(checked: Check) -> None:
    model = checked(
        ScriptedModel(
            [
                reply.tool_call("issue_refund", invoice_id="42", amount=500),
                reply.tool_call("issue_refund", invoice_id="43", amount=500),
                reply.output({"invoice_id": "42", "refunded": True}),
            ]
        )
    )
    answers = iter(
        [Decision.edit({"invoice_id": "42", "amount": 30}), Decision.edit({"invoice_id": "43", "amount": -1})]
    )

    async def person(request: ApprovalRequest) -> Decision:
        return next(answers)

    await Billing(model=model).run("x", approver=person)
    assert results_of(model.requests[1]) == [("refunded 30.0 on 42", False)]
    ((text, is_error),) = results_of(model.requests[2])
    assert is_error and "$.amount: -1 is less than the minimum of 0" in text


async def test_abort_stops_the_run(checked: Check) -> None:
    model = checked(ScriptedModel([reply.tool_call("issue_refund", invoice_id="42", amount=5)]))
    with pytest.raises(RunAborted) as caught:
        await Billing(model=model).run("x", approver=lambda r: Decision.abort("wrong customer", by="alice"))
    assert (caught.value.tool, caught.value.reason, caught.value.by) == (
        "issue_refund",
        "wrong customer",
        "alice",
    )


class Budget:
    """A guard like the supervisor's budget: lowers max_tokens, refuses past a number of calls."""

    def __init__(self, calls: int) -> None:
        self.left = calls
        self.settled: list[ModelResponse | None] = []

    async def before_model_call(self, worker: str, model: str, request: ModelRequest) -> ModelRequest:
        if self.left == 0:
            raise ConfigurationError("budget exhausted")
        self.left -= 1
        from dataclasses import replace

        return replace(request, max_tokens=100)

    def after_model_call(
        self, worker: str, model: str, request: ModelRequest, response: ModelResponse | None
    ) -> None:
        self.settled.append(response)


async def test_the_model_call_guard_sees_every_call_and_can_refuse(checked: Check) -> None:
    model = checked(
        ScriptedModel(
            [reply.tool_call("lookup_invoice", invoice_id="1"), reply.text("never")], allow_unused=True
        )
    )
    guard = Budget(calls=1)
    with pytest.raises(ConfigurationError, match="budget exhausted"):
        await Chat(model=model).run("x", context=RunContext(guard=guard))
    assert [r.max_tokens for r in model.requests] == [100]
    assert len(guard.settled) == 1 and guard.settled[0] is not None


async def test_usage_is_summed_per_run_and_in_the_context_ledger(checked: Check) -> None:
    used = Usage(input_tokens=10, output_tokens=2)
    model = checked(
        ScriptedModel(
            [reply.tool_call("lookup_invoice", invoice_id="1", usage=used), reply.text("ok", usage=used)]
        )
    )
    ctx = RunContext()
    result = await Chat(model=model).run("x", context=ctx)
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.requests) == (20, 4, 2)
    assert ctx.usage.by_worker["Chat"] == result.usage


class Order(BaseModel):
    order_id: int


class Orders(Worker):
    """Looks up orders."""

    model = "openai:gpt-4o"
    input = Order


async def test_typed_input_is_validated_and_rendered(checked: Check) -> None:
    model = checked(ScriptedModel([reply.text("found")]))
    await Orders(model=model).run({"order_id": 7})
    assert '"order_id": 7' in model.requests[0].messages[0].parts[0].text  # type: ignore[union-attr]
    with pytest.raises(WorkerInputError) as caught:
        await Orders(model=checked(ScriptedModel([]))).run({"order_id": "seven"})
    assert caught.value.errors[0]["loc"] == ("order_id",)
    with pytest.raises(WorkerInputError):
        await Chat(model=checked(ScriptedModel([]))).run(Order(order_id=1))


def test_name_and_description_come_from_the_class() -> None:
    assert (Billing().name, Billing().description) == (
        "Billing",
        "Answers billing questions and issues refunds.",
    )


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"tools": [lookup_invoice, lookup_invoice]}, "two tools are named 'lookup_invoice'"),
        ({"output": dict}, "output must be str or a pydantic model"),
        ({"max_turns": 0}, "max_turns must be a positive int"),
        ({"max_turns": True}, "max_turns must be a positive int"),
        ({"context_window": "big"}, "context_window must be None or a positive int, got 'big'"),
        ({"context_window": 0}, "context_window must be None or a positive int"),
        ({"context_window": 5.5}, "context_window must be None or a positive int"),
        ({"context_window": 1000}, "context_window 1000 leaves no room for a prompt beside max_tokens 4096"),
        ({"output_repairs": -1}, "output_repairs must be an int of 0 or more"),
        ({"max_result_chars": 0}, "max_result_chars must be None or a positive int"),
        ({"temperature": "hot"}, "temperature must be None or 0 to 2"),
        ({"tools": [42]}, "is not a tool or a function"),
        ({"handoffs": [42]}, "handoffs take Worker classes or names"),
    ],
)
def test_bad_worker_classes_fail_when_defined(attrs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        type("Bad", (Worker,), {"model": "openai:gpt-4o", **attrs})


def test_a_worker_without_a_model_is_a_configuration_error() -> None:
    class NoModel(Worker):
        """x"""

    with pytest.raises(ConfigurationError, match="no model"):
        NoModel()


async def test_plain_functions_are_wrapped_as_tools(checked: Check) -> None:
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    class Calc(Worker):
        """x"""

        model = "openai:gpt-4o"
        tools = [add]

    model = checked(ScriptedModel([reply.tool_call("add", a=2, b=3), reply.text("5")]))
    await Calc(model=model).run("2+3")
    assert results_of(model.requests[1]) == [("5", False)]


async def test_a_plain_callable_receives_a_lone_workers_events(checked: Check) -> None:
    # As Supervisor(events=...) does: a callable crashed the run after its paid model call.
    seen: list[object] = []
    model = checked(ScriptedModel([reply.text("answer")]))
    assert (await Chat(model=model).run("go", events=seen.append)).output == "answer"
    assert [type(e).__name__ for e in seen] == ["ModelCallEvent"]
