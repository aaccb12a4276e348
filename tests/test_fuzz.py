"""Fuzzing with hypothesis: whatever a planner, a model or a provider sends, the framework ends in
a validated value or a typed error from the one tree, and its invariants hold.

- plans: any JSON the planner produces, at any nesting, runs only if every rule holds (known
  workers, inputs valid for their worker, a DAG of existing steps, within max_steps);
- provider bodies: any Messages or Chat Completions body becomes a `ModelResponse` or a
  `ProviderError`, never another exception;
- model turns: any sequence of text, tool calls (unknown tools, duplicate ids, arguments that are
  not JSON) and outputs ends in the worker's validated output or a typed error, and every request
  the worker sent is one the APIs accept.

Histories for compaction are fuzzed in tests/test_compaction.py, tool arguments in
tests/test_tools_properties.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from supervisor import AgentError, Budget, Supervisor
from tests.conversation_rules import assert_valid_request
from tools import ProviderError, tool
from workers import (
    AnthropicModel,
    ModelRequest,
    ModelResponse,
    OpenAIModel,
    TextPart,
    ToolCallPart,
    Usage,
    Worker,
)
from workers.testing import FunctionModel, reply

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


# --- plans ----------------------------------------------------------------------------------


class Order(BaseModel):
    order_id: str
    qty: int


class Writer(Worker):
    """Writes a short text."""


class Orders(Worker):
    """Looks orders up."""

    input = Order


step_ids = st.sampled_from(["a", "b", "c", "d", ""])
steps = st.fixed_dictionaries(
    {
        "id": step_ids | json_values,
        "worker": st.sampled_from(["Writer", "Orders", "Ghost", "", "Planner"]) | json_values,
        "input": st.text(max_size=8)
        | st.fixed_dictionaries({"order_id": st.text(max_size=3), "qty": st.integers(-2, 5)})
        | json_values,
        "depends_on": st.lists(step_ids, max_size=3) | json_values,
        "reason": st.text(max_size=5),
    },
    optional={"extra": json_values},
)
good_steps = st.one_of(
    st.fixed_dictionaries({"worker": st.just("Writer"), "input": st.text(max_size=8)}),
    st.fixed_dictionaries(
        {
            "worker": st.just("Orders"),
            "input": st.builds(dict, order_id=st.text(max_size=3), qty=st.integers(0, 9)),
        }
    ),
)


@st.composite
def likely_plans(draw: st.DrawFn) -> dict[str, Any]:
    """Plans that are mostly right: unique ids, known workers and valid inputs, with random
    dependencies (some missing, some cycles) and now and then one step from `steps`."""
    chosen = draw(st.lists(good_steps, min_size=1, max_size=5))
    ids = ["a", "b", "c", "d", "e"][: len(chosen)]
    out = []
    for sid, step in zip(ids, chosen, strict=False):
        deps = draw(st.lists(st.sampled_from([*ids, "zz"]), max_size=2, unique=True))
        out.append({"id": sid, **step, "depends_on": deps, "reason": "r"})
    if draw(st.booleans()) and draw(st.booleans()):
        out[draw(st.integers(0, len(out) - 1))] = draw(steps)
    return {"reasoning": "", "steps": out}


plans = st.one_of(
    likely_plans(),
    likely_plans(),
    st.fixed_dictionaries({"reasoning": st.text(max_size=5), "steps": st.lists(steps, max_size=6)}),
    json_values,
)


@FUZZ
@given(attempts=st.lists(plans, min_size=3, max_size=3))
def test_any_planner_output_runs_only_as_a_valid_plan(attempts: list[Any]) -> None:
    answers = iter(attempts)
    ran: list[tuple[str, str]] = []

    def planner(request: ModelRequest) -> Any:
        if not (request.system or "").startswith("You plan how"):
            return reply.text("the answer")  # the supervisor's final answer, from the step outputs
        attempt = next(answers, None)  # re-planning after a failed step may ask again
        return reply.text("no plan") if attempt is None else reply.output(attempt)

    def work(request: ModelRequest) -> Any:
        ran.append((request.system or "", str(request.messages[0].parts[0])))
        return reply.text("done")

    async def go() -> Any:
        sup = Supervisor(
            [Writer(model=FunctionModel(work)), Orders(model=FunctionModel(work))],
            model=FunctionModel(planner, name="planner"),
            budget=Budget(max_steps=4),
        )
        try:
            return await sup.run("do it")
        except AgentError as error:
            return error

    outcome = asyncio.run(go())
    if isinstance(outcome, AgentError):
        assert type(outcome).__name__ in {"PlanError", "ScriptError"}, repr(outcome)
        return
    plan = outcome.plan
    ids = [s.id for s in plan.steps]
    assert 0 < len(ids) <= 4 and len(set(ids)) == len(ids)
    assert all(s.worker in ("Writer", "Orders") for s in plan.steps)
    assert all(d in ids and d != s.id for s in plan.steps for d in s.depends_on)
    assert set(outcome.steps) == set(ids) and len(ran) == len(ids)  # every step ran, once
    assert outcome.output == "the answer"
    for s in plan.steps:
        if s.worker == "Orders":
            Order.model_validate(s.input if isinstance(s.input, dict) else s.input.model_dump())


# --- provider bodies --------------------------------------------------------------------------

anthropic_blocks = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=8) | json_values}),
    st.fixed_dictionaries(
        {
            "type": st.just("tool_use"),
            "id": st.text(max_size=6) | json_values,
            "name": st.text(max_size=6) | json_values,
            "input": json_values,
        }
    ),
    st.fixed_dictionaries({"type": st.sampled_from(["thinking", "redacted_thinking", "image", "bogus"])}),
    json_values,
)
usage_shapes = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "input_tokens": st.integers(-5, 10**7) | json_values,
            "output_tokens": st.integers(-5, 10**7) | json_values,
        },
        optional={"cache_read_input_tokens": json_values, "cache_creation_input_tokens": json_values},
    ),
)
anthropic_bodies = json_values | st.fixed_dictionaries(
    {
        "content": st.lists(anthropic_blocks, max_size=4) | json_values,
        "stop_reason": st.sampled_from(["end_turn", "tool_use", "max_tokens", "refusal", "pause_turn", "x"])
        | json_values,
        "usage": usage_shapes,
    },
    optional={"model": json_values, "id": json_values},
)
openai_calls = st.fixed_dictionaries(
    {
        "id": st.text(max_size=6) | json_values,
        "type": st.just("function") | json_values,
        "function": st.fixed_dictionaries(
            {"name": st.text(max_size=6) | json_values, "arguments": st.text(max_size=12) | json_values}
        )
        | json_values,
    }
)
openai_bodies = json_values | st.fixed_dictionaries(
    {
        "choices": st.lists(
            st.fixed_dictionaries(
                {
                    "message": st.fixed_dictionaries(
                        {"content": st.text(max_size=8) | json_values},
                        optional={
                            "tool_calls": st.lists(openai_calls, max_size=3) | json_values,
                            "refusal": json_values,
                        },
                    )
                    | json_values,
                    "finish_reason": st.sampled_from(["stop", "tool_calls", "length", "content_filter", "x"])
                    | json_values,
                }
            )
            | json_values,
            max_size=2,
        )
        | json_values,
        "usage": json_values
        | st.fixed_dictionaries(
            {
                "prompt_tokens": st.integers(-5, 10**7) | json_values,
                "completion_tokens": st.integers(-5, 10**7) | json_values,
            },
            optional={"prompt_tokens_details": json_values},
        ),
    }
)


def _check_response(response: ModelResponse) -> None:
    for part in response.parts:
        if isinstance(part, ToolCallPart):
            assert part.arguments is None or isinstance(part.arguments, dict)
            assert isinstance(part.name, str) and isinstance(part.raw_arguments, str)
    usage = response.usage
    assert isinstance(usage.input_tokens, int) and usage.input_tokens >= 0
    assert isinstance(usage.output_tokens, int) and usage.output_tokens >= 0
    assert usage.cost_usd is None or usage.cost_usd >= 0


@FUZZ
@given(body=anthropic_bodies)
def test_any_messages_body_is_a_response_or_a_provider_error(body: Any) -> None:
    model = AnthropicModel("claude-haiku-4-5", api_key="k")
    try:
        response = model._from_body(body, {}, 0.01, None)
    except ProviderError:
        return
    _check_response(response)


@FUZZ
@given(body=openai_bodies)
def test_any_chat_completions_body_is_a_response_or_a_provider_error(body: Any) -> None:
    model = OpenAIModel("gpt-4o-mini", api_key="k")
    try:
        response = model._from_body(body, {}, 0.01, None)
    except ProviderError:
        return
    _check_response(response)


# --- model turns through the worker loop -------------------------------------------------------


class Answer(BaseModel):
    value: int


@tool
async def lookup(key: str) -> str:
    """Look a key up."""
    return f"value of {key}"


class Finder(Worker):
    """Finds a value."""

    tools = [lookup]
    output = Answer
    max_turns = 4


tool_calls = st.builds(
    lambda call_id, name, raw: ToolCallPart(call_id, name, raw, _parsed(raw)),
    st.sampled_from(["c1", "c2", "c3"]),
    st.sampled_from(["lookup", "final_result", "missing", ""]),
    st.sampled_from(['{"key": "k"}', '{"value": 3}', '{"value": "x"}', "{}", "[]", "not json", '{"key": 1}'])
    | json_values.map(json.dumps),
)
turns = st.builds(
    lambda parts, stop: ModelResponse(
        parts=tuple(parts), stop_reason=stop, usage=Usage(input_tokens=5, output_tokens=5)
    ),
    st.lists(st.one_of(st.builds(TextPart, st.text(max_size=10)), tool_calls), max_size=3),
    st.sampled_from(["end", "tool_use", "max_tokens", "refusal"]),
)


def _parsed(raw: str) -> Any:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@FUZZ
@given(script=st.lists(turns, min_size=1, max_size=8))
def test_any_model_turns_end_in_a_validated_output_or_a_typed_error(script: list[ModelResponse]) -> None:
    answers = itertools.chain(
        script, itertools.repeat(ModelResponse(parts=(TextPart("no"),), stop_reason="end"))
    )
    model = FunctionModel(lambda request: next(answers))
    try:
        result = asyncio.run(Finder(model=model).run("find the value"))
    except AgentError as error:
        assert str(error)
    else:
        assert isinstance(result.output, Answer)
    assert len(model.requests) <= 16  # turns and repairs are bounded
    for request in model.requests:
        assert_valid_request(request)
