"""The supervisor: plan, validate the plan, run it as a DAG, hand off, answer, stay in budget."""

from __future__ import annotations

import asyncio
import contextvars
import random
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel, field_validator

from supervisor import (
    Budget,
    BudgetExceeded,
    CircuitOpen,
    ConfigurationError,
    HandoffError,
    HandoffLoop,
    MaxTurnsExceeded,
    ModelNotFound,
    Plan,
    PlanError,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    RunAborted,
    Step,
    StepFailed,
    Supervisor,
    TerminalApprover,
    WorkerInputError,
)
from supervisor._breaker import BreakerSettings, CircuitBreakers
from tests.recorders import Events
from tools import tool
from workers import (
    BudgetEvent,
    Handoff,
    HandoffEvent,
    ModelCallEvent,
    ModelRequest,
    PlanEvent,
    Price,
    RateLimit,
    RateLimits,
    RetryPolicy,
    StepEvent,
    Usage,
    UserMessage,
    Worker,
    WorkerResult,
    call_model,
)
from workers.testing import FunctionModel, ScriptedModel, reply

Check = Callable[[Any], Any]
ASK = ModelRequest(messages=(UserMessage.of("hi"),), max_tokens=32)


class Refund(BaseModel):
    invoice_id: str
    refunded: bool


class Order(BaseModel):
    order_id: int


@tool
async def lookup_invoice(invoice_id: str) -> dict[str, object]:
    """Fetch an invoice by id."""
    return {"invoice_id": invoice_id, "charges": 2}


class Billing(Worker):
    """Answers billing questions and issues refunds."""

    model = "anthropic:claude-haiku-4-5"
    tools = [lookup_invoice]
    output = Refund


class Orders(Worker):
    """Looks up orders."""

    model = "openai:gpt-4o-mini"
    input = Order


class Writer(Worker):
    """Writes summaries."""

    model = "openai:gpt-4o-mini"


def step(
    id: str, worker: str, input: Any, depends_on: list[str] | None = None, reason: str = "fits"
) -> dict[str, Any]:
    return {"id": id, "worker": worker, "input": input, "depends_on": depends_on or [], "reason": reason}


def plan_reply(*steps: dict[str, Any]) -> Any:
    return reply.output({"reasoning": "because", "steps": list(steps)})


async def test_goal_to_plan_to_parallel_steps_to_answer(checked: Check) -> None:
    planner = checked(
        ScriptedModel(
            [
                plan_reply(
                    step("bill", "Billing", "Check invoice 42"),
                    step("order", "Orders", {"order_id": 7}, ["bill"]),
                ),
                reply.text("Invoice 42 was charged twice; order 7 is fine."),
            ]
        )
    )
    billing = checked(
        ScriptedModel(
            [
                reply.tool_call("lookup_invoice", invoice_id="42"),
                reply.output({"invoice_id": "42", "refunded": True}),
            ]
        )
    )
    orders = checked(ScriptedModel([reply.text("order 7 shipped")]))
    events = Events()
    sup = Supervisor([Billing(model=billing), Orders(model=orders)], model=planner, events=events)
    result = await sup.run("Refund invoice 42 if it was charged twice")

    assert result.output == "Invoice 42 was charged twice; order 7 is fine."
    assert result.steps["bill"].output == Refund(invoice_id="42", refunded=True)
    assert result.steps["order"].output == "order 7 shipped"
    assert [s.id for s in result.plan.steps] == ["bill", "order"]
    assert result.usage.requests == 5 and set(result.usage_by_worker) == {
        "Planner",
        "Billing",
        "Orders",
        "Synthesizer",
    }
    assert len(result.run_id) == 32 and result.status == "succeeded"
    # the dependent step saw the typed output of its dependency
    assert '- bill: {"invoice_id":"42","refunded":true}' in orders.requests[0].messages[0].parts[0].text  # type: ignore[union-attr]
    (plan_event,) = events.of(PlanEvent)
    assert plan_event.steps[0] == ("bill", "Billing", (), "fits")
    assert [(e.step, e.status) for e in events.of(StepEvent)] == [
        ("bill", "started"),
        ("bill", "finished"),
        ("order", "started"),
        ("order", "finished"),
    ]


async def test_the_planner_is_given_workers_inputs_and_the_plan_schema(checked: Check) -> None:
    planner = checked(ScriptedModel([plan_reply(step("w", "Writer", "hi")), reply.text("done")]))
    sup = Supervisor(
        [Billing(), Orders(), Writer(model=checked(ScriptedModel([reply.text("x")])))], model=planner
    )
    await sup.run("say hi")
    request = planner.requests[0]
    assert "- Billing: Answers billing questions and issues refunds." in request.system
    assert '"order_id":{"type":"integer"}' in request.system.replace(" ", "")
    (final,) = [t for t in request.tools if t.is_output]
    items = final.parameters["properties"]["steps"]["items"]
    assert items == {"oneOf": [{"$ref": f"#/$defs/{name}Step"} for name in ("Billing", "Orders", "Writer")]}
    assert "discriminator" not in str(final.parameters)  # OpenAPI only: providers may refuse it
    assert final.parameters["$defs"]["OrdersStep"]["properties"]["worker"] == {
        "const": "Orders",
        "type": "string",
    }
    assert final.parameters["$defs"]["OrdersStep"]["properties"]["input"] == {
        "$ref": "#/$defs/Order",
        "description": "The task for Orders",
    }


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (plan_reply(step("a", "Payroll", "x")), "Input tag 'Payroll' found using 'worker' does not match"),
        (plan_reply(step("a", "Orders", {"order_id": "seven"})), "Input should be a valid integer"),
        (plan_reply(step("a", "Writer", "x", ["b"]), step("b", "Writer", "y", ["a"])), "form a cycle"),
        (plan_reply(step("a", "Writer", "x", ["zz"])), "depends on unknown step 'zz'"),
        (plan_reply(), "the plan has no steps"),
        (plan_reply(*[step(f"s{i}", "Writer", "x") for i in range(4)]), "the plan has 4 steps; at most 3"),
        (
            plan_reply(step("a", "Writer", "x"), step("a", "Writer", "y")),
            "step id 'a' is used more than once",
        ),
    ],
)
async def test_each_invalid_plan_goes_back_with_its_problem_then_a_valid_one_runs(
    checked: Check, bad: Any, problem: str
) -> None:
    planner = checked(ScriptedModel([bad, plan_reply(step("w", "Writer", "hi")), reply.text("done")]))
    writer = checked(ScriptedModel([reply.text("written")]))
    sup = Supervisor([Orders(), Writer(model=writer)], model=planner, budget=Budget(max_steps=3))
    result = await sup.run("goal")
    assert result.steps["w"].output == "written"
    repair = [r.content for r in planner.requests[1].tool_results]
    assert problem in repair[0]


async def test_a_planner_that_never_plans_validly_ends_in_plan_error_and_nothing_runs(checked: Check) -> None:
    planner = checked(ScriptedModel([plan_reply(step("a", "Payroll", "x")) for _ in range(3)]))
    writer = checked(ScriptedModel([]))
    sup = Supervisor([Writer(model=writer)], model=planner, max_replans=2)
    with pytest.raises(PlanError) as caught:
        await sup.run("goal", run_id="run-1")
    assert caught.value.attempts == 3 and caught.value.run_id == "run-1"
    assert "$.steps[0].worker: Input should be 'Writer'" in str(caught.value) and "Payroll" in str(
        caught.value
    )
    assert writer.requests == []


async def test_run_plan_runs_a_python_plan_without_a_planner(checked: Check) -> None:
    writer = checked(ScriptedModel([reply.text("a"), reply.text("b")]))
    never = checked(ScriptedModel([]))
    sup = Supervisor([Writer(model=writer)], model=never)
    plan = Plan(
        steps=[
            Step(id="one", worker="Writer", input="first"),
            Step(id="two", worker="Writer", input="second", depends_on=["one"]),
        ]
    )
    result = await sup.run_plan(plan)
    assert result.output == "b" and never.requests == []
    with pytest.raises(PlanError, match="unknown worker 'Nope'"):
        await sup.run_plan(Plan(steps=[Step(id="x", worker="Nope", input="x")]))


async def test_a_plan_built_loosely_is_read_or_refused_as_a_plan_error(checked: Check) -> None:
    """Steps as a generator ran nothing and 'succeeded' (the check used them up); dicts and
    depends_on=None failed with AttributeError and TypeError."""
    writer = checked(ScriptedModel([reply.text("a"), reply.text("b"), reply.text("c")]))
    sup = Supervisor([Writer(model=writer)], model=checked(ScriptedModel([])))
    ran = await sup.run_plan(Plan(steps=(s for s in [Step("a", "Writer", "first")])))
    assert list(ran.steps) == ["a"]
    as_dicts = Plan(steps=[{"id": "b", "worker": "Writer", "input": "second", "depends_on": None}])  # type: ignore[list-item]
    assert as_dicts.steps == (Step("b", "Writer", "second"),)
    assert (await sup.run_plan(as_dicts)).output == "b"
    assert Step("c", "Writer", "x", None).depends_on == ()  # type: ignore[arg-type]
    assert Step("c", "Writer", "x", {"a"}).depends_on == ("a",)  # type: ignore[arg-type]
    assert (await sup.run_plan(Plan([Step("c", "Writer", "x", None)]))).output == "c"  # type: ignore[arg-type]
    refused = {
        "not a step": lambda: Plan(steps=["a"]),  # type: ignore[list-item]
        "a field Step does not have": lambda: Plan(steps=[{"id": "a", "worker": "Writer", "agent": "x"}]),  # type: ignore[list-item]
        "not a list": lambda: Plan(steps="ab"),
        "depends_on of numbers": lambda: Step("a", "Writer", "x", [1]),  # type: ignore[list-item]
        "no worker": lambda: Step("a", None, "x"),  # type: ignore[arg-type]
    }
    for why, build in refused.items():
        with pytest.raises(PlanError) as caught:
            build()
        assert str(caught.value).startswith("the plan given is invalid: "), why


async def test_independent_steps_run_at_the_same_time(checked: Check) -> None:
    async def slow(request: ModelRequest) -> Any:
        await asyncio.sleep(0.2)
        return reply.text("done")

    sup = Supervisor([Writer(model=checked(FunctionModel(slow)))], model=checked(ScriptedModel([])))
    plan = Plan(steps=[Step(id=f"s{i}", worker="Writer", input=f"part {i}") for i in range(4)])
    started = time.monotonic()
    result = await sup.run_plan(plan)
    assert time.monotonic() - started < 0.5
    assert result.output == {f"s{i}": "done" for i in range(4)}


class Summary(BaseModel):
    text: str
    refunded: bool


class Summarise(Worker):
    """Summarises a refund (typed input built from the upstream step)."""

    model = "openai:gpt-4o"
    input = Summary

    def prepare(self, task: object, upstream: dict[str, Any]) -> object:  # type: ignore[override]
        refund = upstream["bill"]
        return Summary(text=str(task), refunded=refund.refunded)


async def test_dependency_outputs_arrive_as_typed_data(checked: Check) -> None:
    billing = checked(ScriptedModel([reply.output({"invoice_id": "42", "refunded": True})]))
    summarise = checked(ScriptedModel([reply.text("ok")]))
    sup = Supervisor([Billing(model=billing), Summarise(model=summarise)], model=checked(ScriptedModel([])))
    await sup.run_plan(
        Plan(steps=[Step("bill", "Billing", "42"), Step("sum", "Summarise", "summary", ["bill"])])
    )
    assert '"refunded": true' in summarise.requests[0].messages[0].parts[0].text  # type: ignore[union-attr]


async def test_a_failing_step_is_retried_then_replanned_with_the_reason(checked: Check) -> None:
    planner = checked(
        ScriptedModel(
            [
                plan_reply(step("w", "Writer", "write")),
                plan_reply(step("o", "Orders", {"order_id": 1})),
                reply.text("answered"),
            ]
        )
    )
    writer = checked(
        ScriptedModel(
            [reply.text(""), reply.text(""), reply.text(""), reply.text(""), reply.text(""), reply.text("")]
        )
    )
    orders = checked(ScriptedModel([reply.text("order ok")]))
    events = Events()
    sup = Supervisor(
        [Writer(model=writer), Orders(model=orders)], model=planner, events=events, step_retries=1
    )
    result = await sup.run("goal")
    assert result.output == "answered" and result.steps["o"].output == "order ok"
    assert [e.status for e in events.of(StepEvent) if e.step == "w"] == [
        "started",
        "retrying",
        "started",
        "failed",
    ]
    assert "Step 'w' (Writer) failed" in planner.requests[1].messages[0].parts[0].text  # type: ignore[union-attr]


async def test_a_planners_step_without_an_id_goes_back_to_it(checked: Check) -> None:
    """An empty id ended the run as 'the plan given is invalid', with no repair turn."""
    planner = checked(
        ScriptedModel(
            [plan_reply(step("", "Writer", "x")), plan_reply(step("w", "Writer", "x")), reply.text("ok")]
        )
    )
    sup = Supervisor([Writer(model=checked(ScriptedModel([reply.text("written")])))], model=planner)
    assert (await sup.run("write")).output == "ok"
    assert "String should have at least 1 character" in planner.requests[1].tool_results[0].content


async def test_max_steps_bounds_the_runs_steps_across_re_plans(checked: Check) -> None:
    # It bounded each plan: with max_steps=2, re-plans ran six steps. Failed steps count: they ran.
    planner = checked(
        ScriptedModel(
            [
                plan_reply(step("a", "Writer", "first"), step("b", "Writer", "second", ["a"])),
                plan_reply(step("c", "Writer", "third", ["a"]), step("d", "Writer", "fourth", ["c"])),
                plan_reply(step("c", "Writer", "third", ["a"])),
                reply.text("done"),
            ]
        )
    )
    writer = checked(ScriptedModel([reply.text("a done"), reply.text(""), reply.text("c done")]))
    writer_class = type("Writer", (Writer,), {"output_repairs": 0})
    sup = Supervisor([writer_class(model=writer)], model=planner, budget=Budget(max_steps=3), step_retries=0)
    result = await sup.run("goal")
    assert list(result.steps) == ["a", "c"] and len(writer.requests) == 3  # a, b (failed), c
    assert "2 new steps and 1 are finished; the run may take 1 more" in repr(planner.requests[2].messages[-1])


async def test_max_steps_counts_every_step_that_failed_in_parallel(checked: Check) -> None:
    """Two parallel steps fail: both ran, so with max_steps=3 the re-plan may take one more, not two."""
    planner = checked(
        ScriptedModel(
            [
                plan_reply(step("a", "Writer", "first"), step("b", "Writer", "second")),
                plan_reply(step("c", "Writer", "third"), step("d", "Writer", "fourth")),
                plan_reply(step("c", "Writer", "third")),
                reply.text("done"),
            ]
        )
    )
    writer = checked(ScriptedModel([reply.text(""), reply.text(""), reply.text("c done")]))
    writer_class = type("Writer", (Writer,), {"output_repairs": 0})
    sup = Supervisor([writer_class(model=writer)], model=planner, budget=Budget(max_steps=3), step_retries=0)
    result = await sup.run("goal")
    assert list(result.steps) == ["c"] and len(writer.requests) == 3  # a, b (failed), c
    assert "the plan has 2 steps; at most 1 are allowed" in repr(planner.requests[2].messages[-1])


async def test_no_re_plan_once_the_run_has_used_its_steps(checked: Check) -> None:
    writer_class = type("Writer", (Writer,), {"output_repairs": 0})
    planner2 = checked(ScriptedModel([plan_reply(step("a", "Writer", "first"))]))
    writer2 = checked(ScriptedModel([reply.text("")]))
    sup2 = Supervisor(
        [writer_class(model=writer2)], model=planner2, budget=Budget(max_steps=1), step_retries=0
    )
    with pytest.raises(StepFailed):
        await sup2.run("goal")
    assert len(planner2.requests) == 1  # asked once: no step left for a re-plan


async def test_a_step_that_keeps_failing_without_a_planner_is_step_failed(checked: Check) -> None:
    writer = checked(ScriptedModel([reply.text("") for _ in range(6)]))
    sup = Supervisor([Writer(model=writer)], model=checked(ScriptedModel([])), step_retries=1)
    with pytest.raises(StepFailed) as caught:
        await sup.run_plan(Plan(steps=[Step("w", "Writer", "x")]), run_id="r9")
    assert (caught.value.step, caught.value.attempts, caught.value.run_id) == ("w", 2, "r9")


async def test_a_users_plan_with_a_goal_is_never_replaced_by_a_planners(
    checked: Check, tmp_path: Any
) -> None:
    # run_plan(plan, goal=...) asked the planner when a step failed, and ran its plan instead.
    writer = checked(ScriptedModel([reply.text("") for _ in range(6)]))
    never = checked(ScriptedModel([]))
    sup = Supervisor([Writer(model=writer)], model=never, step_retries=1, store=tmp_path / "runs.db")
    plan = Plan(steps=[Step("w", "Writer", "x")])
    with pytest.raises(StepFailed) as caught:
        await sup.run_plan(plan, goal="the goal", run_id="given")
    assert caught.value.step == "w" and never.requests == []
    with pytest.raises(StepFailed):  # resumed without the plan (as `resume` does): still the user's
        await sup.run("the goal", run_id="given")
    assert never.requests == []
    await sup.aclose()


async def test_a_failed_run_keeps_the_steps_it_finished(checked: Check) -> None:
    writer = checked(ScriptedModel([reply.text("first done")] + [reply.text("") for _ in range(3)]))
    sup = Supervisor([Writer(model=writer)], model=checked(ScriptedModel([])), step_retries=0)
    plan = Plan(steps=[Step("a", "Writer", "x"), Step("b", "Writer", "y", ["a"])])
    with pytest.raises(StepFailed) as caught:
        await sup.run_plan(plan)
    assert list(caught.value.completed) == ["a"] and caught.value.completed["a"].output == "first done"


def test_more_than_four_workers_or_duplicates_are_configuration_errors() -> None:
    classes = [type(f"W{i}", (Worker,), {"model": "openai:gpt-4o"}) for i in range(5)]
    with pytest.raises(ConfigurationError, match="at most 4"):
        Supervisor([c() for c in classes], model="openai:gpt-4o")
    with pytest.raises(ConfigurationError, match="two workers are named 'Writer'"):
        Supervisor([Writer(), Writer()], model="openai:gpt-4o")
    with pytest.raises(ConfigurationError, match="is not a store: it has no load"):
        Supervisor([Writer()], model="openai:gpt-4o", store=42)  # type: ignore[arg-type]


async def test_bad_goals_plans_and_stores_get_errors_that_say_what_was_wrong(
    checked: Check, tmp_path: Any
) -> None:
    from supervisor import StoreError

    sup = Supervisor([Orders(model=checked(ScriptedModel([])))], model=checked(ScriptedModel([])))
    for goal in (None, "", 42):
        with pytest.raises(ConfigurationError, match="the goal must be a non-empty string"):
            await sup.run(goal)  # type: ignore[arg-type]
    for goal in ("  ", 42):
        with pytest.raises(ConfigurationError, match="the goal must be a non-empty string"):
            sup.stream(goal)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="the goal must be a non-empty string"):
            await sup.run_plan(Plan(steps=[Step("o", "Orders", {"order_id": 1})]), goal=goal)  # type: ignore[arg-type]
    with pytest.raises(PlanError) as caught:  # was "no valid plan after 1 attempts", without the value
        await sup.run_plan(Plan(steps=[Step("o", "Orders", {"order_id": "seven"})]))
    assert str(caught.value).startswith("the plan given is invalid: step 'o': input for Orders")
    assert "(got 'seven')" in str(caught.value) and caught.value.attempts == 0
    assert Step("b", "Orders", "x", depends_on="a").depends_on == ("a",)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="its folder .* does not exist"):  # was sqlite3's own error
        Supervisor([Writer()], model="openai:gpt-4o", store=tmp_path / "missing" / "runs.db")
    in_memory = Supervisor(
        [Writer(model=checked(ScriptedModel([reply.text("ok")])))], model="openai:gpt-4o", store=":memory:"
    )
    assert (await in_memory.run_plan(Plan(steps=[Step("w", "Writer", "x")]))).output == "ok"


def test_a_mistyped_model_or_handoff_fails_when_the_supervisor_is_made_not_in_a_run() -> None:
    # Each failed a run only after the planner had been paid; the model name also kept the run
    # id taken for the rest of the process.
    from workers import ModelNameError

    with pytest.raises(ModelNameError, match="bad model gpt-4o"):
        Supervisor([Writer()], model="gpt-4o")
    with pytest.raises(ModelNameError, match="unknown provider 'gemini'"):
        Supervisor([Writer(model="gemini:pro")], model="openai:gpt-4o")

    class Elsewhere(Worker):
        """Not one of the supervisor's."""

        model = "openai:gpt-4o"

    class Router(Worker):
        """Hands off."""

        model = "openai:gpt-4o"
        handoffs = [Elsewhere, "Writer"]

    with pytest.raises(ConfigurationError, match="handoff target 'Elsewhere' is not a worker of this"):
        Supervisor([Router(), Writer()], model="openai:gpt-4o")
    Supervisor([Router(), Writer(), Elsewhere()], model="openai:gpt-4o")  # every target is one


async def _async_listener(event: object) -> None:
    return None


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"events": 42}, "events must be a sink"),
        ({"events": _async_listener}, "is async: events are emitted as they happen"),  # every event was lost
        ({"events": Events}, "give an instance, events=Events()"),
        ({"approver": True}, "approver must be TerminalApprover"),  # each risky call failed instead
        ({"approver": TerminalApprover}, "got the class TerminalApprover"),
        ({"redact": 42}, "redact must be a function"),
        ({"budget": {"max_usd": 1}}, "budget must be a Budget"),
        ({"step_retries": "1"}, "step_retries must be an int of 0 or more"),
        ({"max_replans": -1}, "max_replans must be an int of 0 or more"),
    ],
)
def test_a_setting_of_the_wrong_kind_fails_when_the_supervisor_is_made(
    setting: dict[str, Any], message: str, tmp_path: Any
) -> None:
    """Each failed inside a run (TypeError, AttributeError) or at every risky call; none leaves
    a store file behind."""
    path = tmp_path / "runs.db"
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        Supervisor([Writer()], model="openai:gpt-4o", store=path, **setting)
    assert not path.exists()


PRICE = Price(input=1.0, output=1.0)  # $1 per million tokens either way: cost = tokens / 1e6


async def test_a_call_that_cannot_fit_the_budget_is_not_sent(checked: Check) -> None:
    writer = checked(
        ScriptedModel([reply.text("x" * 1000), reply.text("never sent")], price=PRICE, allow_unused=True)
    )
    sup = Supervisor([Writer(model=writer)], model=checked(ScriptedModel([])), budget=Budget(max_tokens=300))
    with pytest.raises(BudgetExceeded) as caught:
        await sup.run_plan(Plan(steps=[Step("a", "Writer", "x"), Step("b", "Writer", "y", ["a"])]))
    assert len(writer.requests) == 1 and caught.value.limit == "max_tokens"
    assert caught.value.used + caught.value.requested > 300


async def test_budget_exceeded_carries_the_numbers(checked: Check) -> None:
    writer = checked(ScriptedModel([], price=PRICE))
    sup = Supervisor([Writer(model=writer)], model=checked(ScriptedModel([])), budget=Budget(max_usd=0.0001))
    with pytest.raises(BudgetExceeded) as caught:
        await sup.run_plan(Plan(steps=[Step("a", "Writer", "x")]))
    error = caught.value
    assert (error.limit, error.maximum) == ("max_usd", 0.0001) and error.requested > error.maximum
    assert writer.requests == [] and error.run_id


@pytest.mark.parametrize(
    "limits",
    [
        {"max_tokens": "1000"},
        {"max_usd": "0.5"},
        {"max_usd": float("nan")},
        {"max_usd": -1},
        {"max_steps": 0},
        {"max_turns_per_worker": 0},
        {"max_handoffs": -1},
        {"deadline_s": "10"},
        {"deadline_s": 0},
        {"min_answer_tokens": None},
        {"max_tokens": True},
    ],
)
def test_a_budget_limit_of_the_wrong_type_or_range_fails_when_the_budget_is_made(
    limits: dict[str, Any],
) -> None:
    """deadline_s="10" failed inside the run with a TypeError; max_turns_per_worker=0 was ignored."""
    ((name, value),) = limits.items()
    with pytest.raises(ConfigurationError, match=f"Budget {name} must be .*, got {re.escape(repr(value))}"):
        Budget(**limits)


def test_budget_limits_of_the_right_kind_are_kept() -> None:
    budget = Budget(
        max_usd=0, max_tokens=1, max_steps=1, max_handoffs=0, deadline_s=0.5, max_turns_per_worker=1
    )
    assert (budget.max_usd, budget.max_handoffs, budget.deadline_s) == (0, 0, 0.5)
    assert Budget(max_tokens=2e5).max_tokens == 200_000  # type: ignore[arg-type]  # a whole number
    with pytest.raises(ConfigurationError, match="Budget max_tokens must be None or a positive int, got 2.5"):
        Budget(max_tokens=2.5)  # type: ignore[arg-type]


async def test_max_tokens_is_lowered_to_fit_when_a_useful_answer_remains(checked: Check) -> None:
    writer = checked(ScriptedModel([reply.text("short")], price=PRICE))
    events = Events()
    sup = Supervisor(
        [Writer(model=writer)],
        model=checked(ScriptedModel([])),
        budget=Budget(max_tokens=2000),
        events=events,
    )
    await sup.run_plan(Plan(steps=[Step("a", "Writer", "x")]))
    assert 256 <= writer.requests[0].max_tokens < 4096
    assert [e.action for e in events.of(BudgetEvent)] == ["lowered", "reserved"]
    assert events.of(BudgetEvent)[1].detail == "2000 tokens, $0.002000"  # all the budget allowed


async def test_unpriced_models_count_against_tokens_only_with_a_warning(
    checked: Check, caplog: pytest.LogCaptureFixture
) -> None:
    writer = checked(ScriptedModel([reply.text("ok")]))  # no price
    events = Events()
    sup = Supervisor(
        [Writer(model=writer)], model=checked(ScriptedModel([])), budget=Budget(max_usd=0.01), events=events
    )
    result = await sup.run_plan(Plan(steps=[Step("a", "Writer", "x")]))
    assert result.usage.cost_usd is None
    assert [e.action for e in events.of(BudgetEvent)] == ["unpriced", "reserved"]
    assert "has no price" in caplog.text


@pytest.mark.parametrize("seed", range(12))
async def test_parallel_workers_never_overshoot_the_budget(checked: Check, seed: int) -> None:
    rng = random.Random(seed)

    async def answer(request: ModelRequest) -> Any:
        await asyncio.sleep(rng.random() / 100)  # a different interleaving for every seed
        return reply.text("y" * rng.randint(10, 2000))

    limit = rng.randint(3000, 9000)
    events = Events()
    writer = checked(FunctionModel(answer, price=PRICE))
    budget = Budget(max_tokens=limit, max_usd=limit / 1e6)
    sup = Supervisor(
        [Writer(model=writer)], model=checked(ScriptedModel([])), budget=budget, events=events, step_retries=0
    )
    plan = Plan(steps=[Step(f"s{i}", "Writer", "t" * rng.randint(1, 3000)) for i in range(8)])
    try:
        await sup.run_plan(plan)
    except (BudgetExceeded, StepFailed) as error:
        assert error.run_id
    calls = [e.usage for e in events.of(ModelCallEvent)]
    assert calls, "some calls fit the budget"
    assert sum(u.input_tokens + u.output_tokens for u in calls) <= limit
    assert sum(u.known_cost_usd for u in calls) <= limit / 1e6 + 1e-12


async def test_the_deadline_cancels_calls_in_flight(checked: Check) -> None:
    async def hang(request: ModelRequest) -> Any:
        await asyncio.sleep(30)

    sup = Supervisor(
        [Writer(model=checked(FunctionModel(hang)))],
        model=checked(ScriptedModel([])),
        budget=Budget(deadline_s=0.2),
    )
    before = len(asyncio.all_tasks())
    started = time.monotonic()
    with pytest.raises(BudgetExceeded) as caught:
        await sup.run_plan(Plan(steps=[Step("a", "Writer", "x")]))
    assert caught.value.limit == "deadline_s" and time.monotonic() - started < 1.5
    assert str(caught.value).startswith("budget deadline_s=0.2 passed: the run was stopped after 0.2 s")
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before


async def test_the_breaker_opens_after_repeated_failures_and_fails_fast(checked: Check) -> None:
    breakers = CircuitBreakers(BreakerSettings(failures=2, cooldown_s=60))
    writer = checked(ScriptedModel([reply.error(503), reply.error(503)]))
    sup = Supervisor(
        [Writer(model=writer)], model=checked(ScriptedModel([])), breakers=breakers, step_retries=0
    )
    with pytest.raises(CircuitOpen) as caught:
        await sup.run_plan(Plan(steps=[Step("a", "Writer", "x")]))
    assert caught.value.model == "test:scripted" and len(writer.requests) == 2


async def test_a_429_storm_paces_the_calls_without_opening_the_breaker(checked: Check) -> None:
    """A provider answering 429 is alive: only real failures open the breaker."""
    breakers = CircuitBreakers(BreakerSettings(failures=2, cooldown_s=60))
    storm = [reply.error(429, retry_after_s=0.01) for _ in range(3)]
    writer = checked(ScriptedModel([*storm, reply.text("written")]))
    sup = Supervisor(
        [Writer(model=writer)],
        model=checked(ScriptedModel([])),
        breakers=breakers,
        step_retries=0,
        retry=RetryPolicy(max_attempts=5, base_delay_s=0.001),
    )
    result = await sup.run_plan(Plan(steps=[Step("a", "Writer", "x")]))
    assert result.output == "written" and breakers.for_model("test:scripted").state == "closed"


async def test_a_half_open_breaker_lets_one_probe_through_and_closes_on_success() -> None:
    breakers = CircuitBreakers(BreakerSettings(failures=1, cooldown_s=0.05))
    breaker = breakers.for_model("test:m")
    breaker.record(True, 0.1)
    with pytest.raises(CircuitOpen):
        breaker.check()
    await asyncio.sleep(0.06)
    breaker.check()  # the probe
    with pytest.raises(CircuitOpen):
        breaker.check()  # only one probe at a time
    breaker.record(False, 0.1)
    assert breaker.state == "closed"
    breaker.check()


async def _opened(breakers: CircuitBreakers, model: FunctionModel) -> None:
    """Open the model's breaker with one failure and let its cooldown pass."""
    with pytest.raises(ProviderError):
        await call_model(model, ASK, policy=RetryPolicy(max_attempts=1), breakers=breakers)
    assert breakers.for_model("test:function").state == "open"
    await asyncio.sleep(0.06)


async def test_a_probe_cancelled_by_its_caller_lets_the_next_call_probe() -> None:
    """A run's deadline or abort cancels the probe: the breaker must not stay half-open for good."""
    answers = iter([reply.error(503), None, reply.text("fine")])

    async def provider(request: ModelRequest) -> Any:
        answer = next(answers)
        if answer is None:
            await asyncio.sleep(10)
        return answer

    breakers = CircuitBreakers(BreakerSettings(failures=1, cooldown_s=0.05))
    model = FunctionModel(provider)
    await _opened(breakers, model)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await call_model(model, ASK, policy=RetryPolicy(max_attempts=1), breakers=breakers)
    response = await call_model(model, ASK, policy=RetryPolicy(max_attempts=1), breakers=breakers)
    assert response.text == "fine" and breakers.for_model("test:function").state == "closed"


@pytest.mark.parametrize("refusal", ["bad request", "local rate limit"])
async def test_a_probe_refused_for_a_reason_that_says_nothing_of_health_lets_the_next_call_probe(
    refusal: str,
) -> None:
    """A 400, or a probe that found no room under the local rate limit, was no test of the
    provider: the breaker stays half-open and the next call probes."""
    answers = iter([reply.error(503), reply.error(400), reply.text("fine")])
    breakers = CircuitBreakers(BreakerSettings(failures=1, cooldown_s=0.05))
    model = FunctionModel(lambda request: next(answers))
    await _opened(breakers, model)
    if refusal == "bad request":
        with pytest.raises(ProviderError) as caught:
            await call_model(model, ASK, policy=RetryPolicy(max_attempts=1), breakers=breakers)
        assert caught.value.status_code == 400
    else:
        next(answers)  # the 400 is not asked for: the probe is not sent
        limits = RateLimits({"test:function": RateLimit(requests_per_minute=1, max_wait_s=0.01)})
        await limits.for_model("test:function").acquire(1)  # the minute's one request is taken
        with pytest.raises(ProviderRateLimited):
            await call_model(model, ASK, policy=RetryPolicy(max_attempts=1), breakers=breakers, limits=limits)
    assert breakers.for_model("test:function").state == "half_open"
    response = await call_model(model, ASK, policy=RetryPolicy(max_attempts=1), breakers=breakers)
    assert response.text == "fine" and breakers.for_model("test:function").state == "closed"


async def test_a_call_let_through_earlier_does_not_release_the_probe_out_now() -> None:
    """X probes; the breaker opens again and Z probes after the cooldown; X, cancelled then,
    released Z's probe, and a fourth call went through as a second probe at once."""
    breakers = CircuitBreakers(BreakerSettings(failures=1, cooldown_s=0.05))
    breaker = breakers.for_model("test:m")
    breaker.record(True, 0.1)
    await asyncio.sleep(0.06)
    breaker.check()  # X's probe
    x = breaker.probe
    breaker.record(True, 0.1)  # another call fails: open again
    await asyncio.sleep(0.06)
    breaker.check()  # Z's probe
    breaker.release(x)  # X ends with no outcome
    with pytest.raises(CircuitOpen):
        breaker.check()  # Z's probe is still out
    breaker.release(breaker.probe)
    breaker.check()  # Z's released: the next call probes


async def test_a_breaker_of_the_users_own_without_release_is_not_asked_to() -> None:
    class Plain:
        state = "half_open"

        def check(self) -> None:
            return None

        def record(self, failed: bool, latency_s: float) -> None:
            return None

    class Mine:
        def for_model(self, model_id: str) -> Plain:
            return Plain()

    model = ScriptedModel([reply.error(400)])
    with pytest.raises(ProviderError) as caught:  # an AttributeError hid it
        await call_model(model, ASK, policy=RetryPolicy(max_attempts=1), breakers=Mine())
    assert caught.value.status_code == 400


async def test_slow_calls_count_as_failures() -> None:
    breaker = CircuitBreakers(BreakerSettings(failures=2, slow_call_s=1.0)).for_model("test:m")
    breaker.record(False, 5.0)
    breaker.record(False, 5.0)
    assert breaker.state == "open"


class Triage(Worker):
    """Sends each request to the right desk."""

    model = "openai:gpt-4o"
    handoffs = ["Orders", "Writer"]


async def test_a_handoff_routes_to_the_target_with_its_typed_input_and_reason(checked: Check) -> None:
    triage = checked(
        ScriptedModel(
            [reply.tool_call("transfer_to_Orders", reason="it is about an order", input={"order_id": 5})]
        )
    )
    orders = checked(ScriptedModel([reply.text("order 5 shipped")]))
    events = Events()
    sup = Supervisor(
        [Triage(model=triage), Orders(model=orders), Writer()],
        model=checked(ScriptedModel([])),
        events=events,
    )
    result = await sup.run_plan(Plan(steps=[Step("t", "Triage", "where is order 5?")]))
    assert result.output == "order 5 shipped" and result.steps["t"].worker == "Orders"
    (handoff,) = events.of(HandoffEvent)
    assert (handoff.source, handoff.target, handoff.reason) == ("Triage", "Orders", "it is about an order")
    tool = next(t for t in triage.requests[0].tools if t.name == "transfer_to_Orders")
    assert tool.parameters["properties"]["input"]["properties"] == {"order_id": {"type": "integer"}}


async def test_an_invalid_handoff_payload_goes_back_to_the_model(checked: Check) -> None:
    triage = checked(
        ScriptedModel(
            [
                reply.tool_call("transfer_to_Orders", reason="order", input={"order_id": "five"}),
                reply.tool_call("transfer_to_Orders", reason="order", input={"order_id": 5}),
            ]
        )
    )
    orders = checked(ScriptedModel([reply.text("ok")]))
    sup = Supervisor([Triage(model=triage), Orders(model=orders), Writer()], model=checked(ScriptedModel([])))
    await sup.run_plan(Plan(steps=[Step("t", "Triage", "x")]))
    assert "$.input.order_id: 'five' is not of type 'integer'" in triage.requests[1].tool_results[0].content


class Positive(BaseModel):
    order_id: int

    @field_validator("order_id")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("order ids are positive")
        return value


class Shipping(Worker):
    """Ships orders."""

    model = "openai:gpt-4o-mini"
    input = Positive


class ToShipping(Worker):
    """Sends orders to shipping."""

    model = "openai:gpt-4o"
    handoffs = ["Shipping"]


async def test_a_payload_the_targets_own_checks_reject_goes_back_to_the_model(checked: Check) -> None:
    """The schema holds but a validator of the target's input fails: the model is told and fixes
    it, as for a schema violation (the step used to end with HandoffError)."""
    triage = checked(
        ScriptedModel(
            [
                reply.tool_call("transfer_to_Shipping", reason="ship it", input={"order_id": -7}),
                reply.tool_call("transfer_to_Shipping", reason="ship it", input={"order_id": 7}),
            ]
        )
    )
    shipping = checked(ScriptedModel([reply.text("order 7 shipped")]))
    sup = Supervisor([ToShipping(model=triage), Shipping(model=shipping)], model=checked(ScriptedModel([])))
    result = await sup.run_plan(Plan(steps=[Step("t", "ToShipping", "ship order 7")]))
    assert result.output == "order 7 shipped"
    told = triage.requests[1].tool_results[0]
    assert told.is_error and "$.input.order_id: Value error, order ids are positive" in told.content


async def test_a_refused_handoff_carries_its_payload_and_why(checked: Check) -> None:
    """A worker whose own `run` hands over a payload the target rejects: the error names the
    payload and keeps the target's input error as its cause."""

    class Hasty(Worker):
        """Hands every order to shipping at once."""

        model = "openai:gpt-4o"
        handoffs = ["Shipping"]

        async def run(self, task: object, **kwargs: Any) -> WorkerResult:
            handoff = Handoff("Hasty", "Shipping", {"order_id": -7}, "no time")
            return WorkerResult("Hasty", None, Usage(), 0, (), handoff)

    sup = Supervisor([Hasty(), Shipping()], model=checked(ScriptedModel([])))
    with pytest.raises(HandoffError) as caught:
        await sup.run_plan(Plan(steps=[Step("h", "Hasty", "ship order 7")]))
    error = caught.value
    assert error.value == {"order_id": -7} and "(payload {'order_id': -7})" in str(error)
    assert isinstance(error.__cause__, WorkerInputError) and error.__cause__.value == {"order_id": -7}


async def test_turns_spent_on_invalid_handoffs_are_reported_with_them(checked: Check) -> None:
    # MaxTurnsExceeded said "last calls: no tool calls" after turns of refused handoffs.
    bad = reply.tool_call("transfer_to_Orders", reason="order", input={"order_id": "five"})
    limited = type("Triage", (Triage,), {"max_turns": 2, "output_repairs": 5})
    triage = checked(ScriptedModel([bad, bad]))
    sup = Supervisor(
        [limited(model=triage), Orders(), Writer()], model=checked(ScriptedModel([])), step_retries=0
    )
    with pytest.raises(StepFailed) as caught:
        await sup.run_plan(Plan(steps=[Step("t", "Triage", "x")]))
    error = caught.value.cause
    assert isinstance(error, MaxTurnsExceeded)
    assert [name for name, _ in error.last_calls] == ["transfer_to_Orders"] * 2


class PingA(Worker):
    """A."""

    model = "openai:gpt-4o"
    handoffs = ["PingB"]


class PingB(Worker):
    """B."""

    model = "openai:gpt-4o"
    handoffs = ["PingA"]


async def test_a_handoff_cycle_that_brings_nothing_new_is_a_loop(checked: Check) -> None:
    a = checked(ScriptedModel([reply.tool_call("transfer_to_PingB", reason="b knows", input="same task")]))
    b = checked(ScriptedModel([reply.tool_call("transfer_to_PingA", reason="a knows", input="same task")]))
    sup = Supervisor([PingA(model=a), PingB(model=b)], model=checked(ScriptedModel([])))
    with pytest.raises(HandoffLoop) as caught:
        await sup.run_plan(Plan(steps=[Step("p", "PingA", "same task")]))
    assert caught.value.chain == ["PingA", "PingB", "PingA"]


async def test_handoffs_are_bounded_by_the_budget(checked: Check) -> None:
    a = checked(
        FunctionModel(
            lambda r: reply.tool_call(
                "transfer_to_PingB", reason="go", input=f"task {len(r.messages)}{random.random()}"
            )
        )
    )
    b = checked(
        FunctionModel(
            lambda r: reply.tool_call("transfer_to_PingA", reason="go", input=f"task {random.random()}")
        )
    )
    sup = Supervisor(
        [PingA(model=a), PingB(model=b)], model=checked(ScriptedModel([])), budget=Budget(max_handoffs=3)
    )
    with pytest.raises(HandoffLoop, match="more than 3 handoffs"):
        await sup.run_plan(Plan(steps=[Step("p", "PingA", "x")]))


async def test_a_target_not_in_the_list_is_never_run(checked: Check) -> None:
    triage = checked(
        ScriptedModel([reply.tool_call("transfer_to_Billing", reason="x", input="y"), reply.text("fine")])
    )
    billing = checked(ScriptedModel([]))
    sup = Supervisor(
        [Triage(model=triage), Billing(model=billing), Orders(), Writer()], model=checked(ScriptedModel([]))
    )
    await sup.run_plan(Plan(steps=[Step("t", "Triage", "x")]))
    assert billing.requests == []
    assert "Unknown tool 'transfer_to_Billing'" in triage.requests[1].tool_results[0].content


async def test_cancelling_a_run_stops_work_in_flight_and_leaves_no_task(checked: Check) -> None:
    started = asyncio.Event()

    async def hang(request: ModelRequest) -> Any:
        started.set()
        await asyncio.sleep(30)

    sup = Supervisor([Writer(model=checked(FunctionModel(hang)))], model=checked(ScriptedModel([])))
    before = len(asyncio.all_tasks())
    run = asyncio.create_task(sup.run_plan(Plan(steps=[Step(f"s{i}", "Writer", "x") for i in range(3)])))
    await started.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before


async def test_abort_by_run_id_raises_run_aborted(checked: Check) -> None:
    started = asyncio.Event()

    async def hang(request: ModelRequest) -> Any:
        started.set()
        await asyncio.sleep(30)

    sup = Supervisor([Writer(model=checked(FunctionModel(hang)))], model=checked(ScriptedModel([])))
    run = asyncio.create_task(sup.run_plan(Plan(steps=[Step("a", "Writer", "x")]), run_id="r1"))
    await started.wait()
    assert sup.abort("r1", "wrong customer") and not sup.abort("nope")
    with pytest.raises(RunAborted) as caught:
        await run
    assert caught.value.run_id == "r1" and "wrong customer" in str(caught.value)


async def test_fifty_concurrent_runs(checked: Check) -> None:
    async def answer(request: ModelRequest) -> Any:
        await asyncio.sleep(0.01)
        return reply.text(request.messages[0].parts[0].text.upper())  # type: ignore[union-attr]

    sup = Supervisor([Writer(model=checked(FunctionModel(answer)))], model=checked(ScriptedModel([])))
    results = await asyncio.gather(
        *(sup.run_plan(Plan(steps=[Step("a", "Writer", f"run {i}")])) for i in range(50))
    )
    assert [r.output for r in results] == [f"RUN {i}" for i in range(50)]
    assert len({r.run_id for r in results}) == 50


async def test_max_turns_per_worker_caps_every_worker(checked: Check) -> None:
    looping = checked(
        FunctionModel(lambda r: reply.tool_call("lookup_invoice", invoice_id=str(len(r.messages))))
    )
    sup = Supervisor(
        [Billing(model=looping)],
        model=checked(ScriptedModel([])),
        budget=Budget(max_turns_per_worker=2),
        step_retries=0,
    )
    with pytest.raises(StepFailed, match="no valid output after 2 turns"):
        await sup.run_plan(Plan(steps=[Step("b", "Billing", "x")]))
    assert len(looping.requests) == 2


async def test_the_terminal_approver_takes_a_persons_answers(checked: Check) -> None:
    import io

    from supervisor import TerminalApprover

    @tool(risky=True)
    async def refund(invoice_id: str, amount: float) -> str:
        """Refund."""
        return f"refunded {amount} on {invoice_id}"

    class Payer(Worker):
        """Pays."""

        model = "openai:gpt-4o"
        tools = [refund]

    answers = iter(["what?", "e", "not json", "e", '{"invoice_id": "42", "amount": 5}', "n", "too much"])
    screen = io.StringIO()
    approver = TerminalApprover(input=lambda prompt: next(answers), output=screen, who="alice")
    model = checked(
        ScriptedModel(
            [
                reply.tool_call("refund", invoice_id="42", amount=50),
                reply.tool_call("refund", invoice_id="42", amount=40),
                reply.text("done"),
            ]
        )
    )
    sup = Supervisor([Payer(model=model)], model=checked(ScriptedModel([])), approver=approver)
    await sup.run_plan(Plan(steps=[Step("p", "Payer", "refund 42")]))
    assert [r.content for r in model.requests[1].tool_results] == ["refunded 5.0 on 42"]
    assert [r.content for r in model.requests[2].tool_results] == ["A person denied this call: too much."]
    assert '"amount": 50' in screen.getvalue() and "Please answer one of" in screen.getvalue()


_MARK: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="unset")


@tool
async def mark_and_peek(value: str) -> str:
    """Set the context variable, after saying what it was."""
    seen = _MARK.get()
    _MARK.set(value)
    return seen


class Marker(Worker):
    """Marks."""

    tools = [mark_and_peek]


async def test_a_step_does_not_see_context_variables_its_dependency_set(checked: Check) -> None:
    marker = checked(
        ScriptedModel(
            [
                reply.tool_call("mark_and_peek", value="set by a"),
                reply.text("a done"),
                reply.tool_call("mark_and_peek", value="set by b"),
                reply.text("b done"),
            ]
        )
    )
    sup = Supervisor([Marker(model=marker)], model=checked(ScriptedModel([])))
    await sup.run_plan(Plan(steps=[Step("a", "Marker", "x"), Step("b", "Marker", "y", ["a"])]))
    results = [r.tool_results[0].content for r in marker.requests if r.tool_results]
    assert results == ["unset", "unset"]  # b starts from the run's context, not from a's


async def test_a_long_prompt_priced_in_its_own_band_is_lowered_to_fit_at_that_band() -> None:
    """The room left for the answer is counted at the price the request is billed at: a model
    priced higher above a prompt length must not get an answer sized at its lower price."""
    from supervisor import BudgetGuard
    from workers import NullSink, UserMessage, worst_case_prompt_tokens

    band = Price(input=2.0, output=100.0)
    price = Price(input=1.0, output=1.0, long_prompt_over=10, long_prompt=band)
    request = ModelRequest(messages=(UserMessage.of("x" * 400),), max_tokens=4000)
    prompt = worst_case_prompt_tokens(request)
    assert prompt > 10  # billed in the long-prompt band
    limit = band.cost(prompt, 1000)  # room for 1000 answer tokens at the band's price
    guard = BudgetGuard(Budget(max_usd=limit, min_answer_tokens=10), {"test:m": price}, NullSink(), None)
    sent = await guard.before_model_call("W", "test:m", request)
    assert sent.max_tokens <= 1000
    assert guard.reserved_usd <= limit


async def test_a_run_method_set_on_a_worker_object_is_what_the_supervisor_calls() -> None:
    """A wrapper set on the instance (instrumentation, mock.patch.object) is not bypassed."""
    worker = Writer(model=ScriptedModel([reply.text("done")]))
    original, seen = worker.run, []

    async def wrapped(task: object, **options: Any) -> Any:
        seen.append(task)
        return await original(task, **options)

    worker.run = wrapped  # type: ignore[method-assign]
    await Supervisor([worker], model=ScriptedModel([])).run_plan(Plan(steps=[Step("a", "Writer", "go")]))
    assert seen == ["go"]


@pytest.mark.parametrize(
    "refusal",
    [
        ModelNotFound(
            "model `gpt-4o-typo` does not exist", provider="openai", model="gpt-4o-typo", status_code=404
        ),
        ProviderAuthError("invalid x-api-key", provider="anthropic", model="m", status_code=401),
        ProviderRateLimited(
            "quota spent", provider="openai", model="m", status_code=429, error_type="insufficient_quota"
        ),
        ProviderBadRequest(  # an Anthropic account out of credit, sent inside a stream
            "credit balance too low",
            provider="anthropic",
            model="m",
            status_code=402,
            error_type="billing_error",
        ),
    ],
)
async def test_a_refusal_no_attempt_can_change_ends_the_run_without_retries_or_re_plans(
    checked: Check, refusal: Exception
) -> None:
    """A misspelt model name was sent again by every step retry and every re-plan (three plans,
    six worker calls), each refused the same way; the finished steps are kept."""
    calls: list[str] = []

    def refuse(request: Any) -> Any:
        calls.append("orders")
        raise refusal

    planner = checked(
        ScriptedModel([plan_reply(step("w", "Writer", "write"), step("o", "Orders", {"order_id": 1}, ["w"]))])
    )
    writer = checked(ScriptedModel([reply.text("written")]))
    sup = Supervisor(
        [Writer(model=writer), Orders(model=checked(FunctionModel(refuse)))], model=planner, step_retries=2
    )
    with pytest.raises(type(refusal)) as caught:
        await sup.run("goal")
    assert calls == ["orders"] and len(planner.requests) == 1
    assert caught.value.completed["w"].output == "written"
