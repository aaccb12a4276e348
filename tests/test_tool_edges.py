"""Bad input at the tool and worker boundaries: arguments, results, outputs and error texts.

Found in review; every test here failed before its fix.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from tools import parse_arguments_text, serialize_result, tool
from workers import ModelRequest, Usage, Worker
from workers._provider import parse_arguments
from workers.testing import ScriptedModel, reply

Check = Callable[[Any], Any]
TOO_DEEP = "arguments are nested too deeply; send a flatter value"
SMALL = Usage(10, 10)  # a scripted reply of a huge text would otherwise count as cut by max_tokens


def results(request: ModelRequest) -> list[tuple[str, bool]]:
    return [(r.content, r.is_error) for r in request.tool_results]


class Node(BaseModel):
    name: str
    children: list[Node] = []


RAN: list[str] = []


@tool
async def save_tree(root: Node) -> str:
    """Save a tree."""
    RAN.append(root.name)
    return "saved"


@tool
async def lookup(invoice_id: str) -> str:
    """Look up an invoice."""
    RAN.append(invoice_id)
    return "found"


class Keeper(Worker):
    """Keeps things."""

    model = "anthropic:claude-haiku-4-5"
    tools = [save_tree, lookup]


def nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"name": "leaf", "children": []}
    for i in range(depth):
        node = {"name": f"n{i}", "children": [node]}
    return node


DEEP_TEXT = '{"invoice_id": ' + "[" * 100_000 + "]" * 100_000 + "}"


def test_argument_text_nested_too_deeply_to_read_is_an_issue_at_the_root_not_a_crash() -> None:
    assert parse_arguments_text(DEEP_TEXT) == (None, [("$", DEEP_TEXT, TOO_DEEP)])
    # A provider leaves such arguments unparsed; the worker then reports them as above.
    assert parse_arguments(DEEP_TEXT, False) == (None, False)


async def test_the_model_is_told_its_deeply_nested_arguments_are_too_deep_and_may_repair_them(
    checked: Check,
) -> None:
    RAN.clear()
    model = checked(
        ScriptedModel(
            [
                reply.raw_tool_call("lookup", DEEP_TEXT, usage=SMALL),
                reply.tool_call("lookup", invoice_id="42"),
                reply.text("done"),
            ]
        )
    )
    result = await Keeper(model=model).run("go")
    assert result.output == "done" and RAN == ["42"]
    ((text, is_error),) = results(model.requests[1])
    assert is_error and f"- $: {TOO_DEEP}" in text


async def test_a_recursive_model_deeper_than_validation_recurses_is_refused_at_the_root(
    checked: Check,
) -> None:
    import json

    RAN.clear()
    deep = json.dumps({"root": nested(400)})
    shallow = {"root": nested(3)}
    kwargs, issues = save_tree.validated(json.loads(deep))
    assert kwargs is None and [(path, rule) for path, _, rule in issues] == [("$", TOO_DEEP)]
    model = checked(
        ScriptedModel(
            [
                reply.raw_tool_call("save_tree", deep, usage=SMALL),
                reply.tool_call("save_tree", **shallow),
                reply.text("done"),
            ]
        )
    )
    await Keeper(model=model).run("go")
    assert RAN == ["n2"]
    text = f"Invalid arguments for tool 'save_tree':\n- $: {TOO_DEEP}\n"
    text += "Fix the arguments and call the tool again."
    assert results(model.requests[1]) == [(text, True)]


def test_a_recorded_call_with_arguments_too_deep_to_read_is_read_back_as_unparsed_on_resume() -> None:
    from supervisor._calls import call_from_json, call_json
    from workers import ModelResponse, ToolCallPart

    response = ModelResponse(parts=(ToolCallPart("c1", "lookup", DEEP_TEXT, None),), stop_reason="tool_use")
    assert call_from_json(*call_json(response)) == response  # the run refuses it again, as it did live


class Unshowable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_an_error_message_can_quote_a_value_whose_repr_fails_or_recurses_too_deeply() -> None:
    from tools.errors import excerpt

    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    assert excerpt(Unshowable()) == "<Unshowable that cannot be shown>"
    assert excerpt(deep) == "<list that cannot be shown>"


def test_a_provider_body_nested_too_deeply_is_a_malformed_response_not_a_crash() -> None:
    import pytest

    from tools.errors import MalformedResponse
    from workers._provider import json_body

    with pytest.raises(MalformedResponse, match="nested too deeply"):
        json_body("[" * 100_000 + "]" * 100_000, "openai", "gpt-4o")


class Handle:
    """A connection handle: no JSON, and pydantic cannot serialise it."""


class Opened(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    handle: Handle
    name: str


class NoText:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


def deep_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@tool
async def open_conn() -> Opened:
    """Open a connection."""
    return Opened(handle=Handle(), name="db")


@tool
async def transfer(amount: float) -> str:
    """Move money (takes a moment)."""
    RAN.append("transfer started")
    await asyncio.sleep(0.05)
    RAN.append("transfer finished")
    return "moved"


@tool
def deep_result() -> list[Any]:
    """Returns a list nested 3000 deep."""
    return deep_list(3000)


@tool
def unshowable() -> dict[str, Any]:
    """Returns a value with neither str nor repr."""
    return {"a": NoText()}


class Connector(Worker):
    """Connects."""

    model = "anthropic:claude-haiku-4-5"
    tools = [open_conn, transfer, deep_result, unshowable]
    max_result_chars = 1000


def test_a_result_that_json_cannot_hold_is_shown_as_text_never_raised() -> None:
    assert serialize_result(Opened(handle=Handle(), name="db")).startswith('{"handle":"<')
    assert (
        serialize_result(deep_list(3000)) == "(the result, a list, cannot be shown as text: RecursionError)"
    )
    assert serialize_result({"a": NoText()}) == "(the result, a dict, cannot be shown as text: RuntimeError)"


async def test_a_result_that_cannot_be_serialised_reaches_the_model_and_the_run_goes_on(
    checked: Check,
) -> None:
    model = checked(
        ScriptedModel(
            [reply.tool_call("open_conn"), reply.tool_call("deep_result"), reply.tool_call("unshowable")]
            + [reply.text("done")]
        )
    )
    assert (await Connector(model=model).run("go")).output == "done"
    shown = [results(request)[0] for request in model.requests[1:]]
    assert shown[0][0].startswith('{"handle":"<') and shown[0][0].endswith('"name":"db"}')
    assert shown[1:] == [
        ("(the result, a list, cannot be shown as text: RecursionError)", False),
        ("(the result, a dict, cannot be shown as text: RuntimeError)", False),
    ]


async def test_a_result_that_cannot_be_serialised_never_cancels_a_parallel_call(checked: Check) -> None:
    RAN.clear()
    calls = [("open_conn", {}), ("transfer", {"amount": 5})]
    model = checked(ScriptedModel([reply.tool_calls(calls), reply.text("done")]))
    assert (await Connector(model=model).run("go")).output == "done"
    assert RAN == ["transfer started", "transfer finished"]
    assert results(model.requests[1])[1] == ("moved", False)


@tool
async def set_qty(qty: int, sku: str) -> str:
    """Set a quantity."""
    return "set"


@tool
def explodes() -> str:
    """Raises with a huge message."""
    raise ValueError("x" * 200_000)


class Stocker(Worker):
    """Keeps stock."""

    model = "anthropic:claude-haiku-4-5"
    tools = [set_qty, explodes]
    max_result_chars = 1000


def within_limit(text: str, limit: int = 1000) -> bool:
    return len(text) <= limit + len("\n[truncated: 199999 of 200000 characters removed]")


async def test_an_invalid_huge_argument_is_excerpted_in_what_the_model_and_the_error_say(
    checked: Check,
) -> None:
    from tools.errors import ToolArgumentsError

    big = "9" * 100_000
    model = checked(ScriptedModel([reply.tool_call("set_qty", qty=big, sku="a", usage=SMALL)] * 3))
    events: list[Any] = []
    with pytest.raises(ToolArgumentsError) as caught:
        await Stocker(model=model).run("go", events=events.append)
    ((text, is_error),) = results(model.requests[1])
    assert is_error and len(text) < 300
    assert f"- $.qty: '{'9' * 79}... (100002 chars) is not of type 'integer'" in text
    error = caught.value
    assert (error.path, error.value) == ("$.qty", big)  # the field keeps the value itself
    assert len(str(error)) < 300 and error.rule.endswith("(100002 chars) is not of type 'integer'")


async def test_a_tool_error_with_a_huge_message_is_cut_to_the_workers_result_limit(checked: Check) -> None:
    from workers import ToolCallEvent

    model = checked(ScriptedModel([reply.tool_call("explodes"), reply.text("done")]))
    events: list[Any] = []
    await Stocker(model=model).run("go", events=events.append)
    ((text, is_error),) = results(model.requests[1])
    assert is_error and text.startswith("The tool failed: ValueError: xxx") and within_limit(text)
    assert text.endswith("[truncated: 199029 of 200029 characters removed]")
    (event,) = [e for e in events if isinstance(e, ToolCallEvent)]
    assert len(event.detail) < 400


async def test_a_tool_error_that_cannot_say_itself_still_reaches_the_model(checked: Check) -> None:
    """An exception whose __str__ raises escaped the tool call and ended the run."""

    class Mute(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no words")

    @tool
    async def mumbles() -> str:
        """Fails oddly."""
        raise Mute

    class Mumbler(Worker):
        """x"""

        model = "openai:gpt-4o"
        tools = [mumbles]

    model = checked(ScriptedModel([reply.tool_call("mumbles"), reply.text("done")]))
    assert (await Mumbler(model=model).run("go")).output == "done"
    assert results(model.requests[1]) == [
        ("The tool failed: Mute: (its message cannot be shown: RuntimeError)", True)
    ]


CHARGED: list[float] = []


@tool
async def charge(amount: float) -> str:
    """Charge an amount."""
    CHARGED.append(amount)
    return "charged"


class Till(Worker):
    """Charges."""

    model = "anthropic:claude-haiku-4-5"
    tools = [charge]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
async def test_nan_and_infinity_are_not_json_so_the_tool_never_gets_them(
    checked: Check, literal: str
) -> None:
    CHARGED.clear()
    raw = f'{{"amount": {literal}}}'
    assert parse_arguments(raw, False) == (None, False)  # as a provider reads them
    model = checked(
        ScriptedModel(
            [reply.raw_tool_call("charge", raw), reply.tool_call("charge", amount=5), reply.text("ok")]
        )
    )
    await Till(model=model).run("go")
    assert CHARGED == [5]
    ((text, is_error),) = results(model.requests[1])
    assert is_error and f"- $.amount: {literal} is not valid JSON (JSON numbers are finite" in text


def test_every_number_json_has_not_is_named_at_its_path() -> None:
    value, issues = parse_arguments_text('{"a": [1.5, NaN, {"b": 1e400}], "c": "NaN", "d": 2e10}')
    assert value is None and [(path, bad) for path, bad, _ in issues] == [
        ("$.a[1]", "NaN"),
        ("$.a[2].b", "1e400"),
    ]


async def test_a_final_answer_with_nan_is_refused_at_its_path(checked: Check) -> None:
    class Total(BaseModel):
        amount: float

    class Adder(Worker):
        """Adds."""

        model = "anthropic:claude-haiku-4-5"
        output = Total
        output_mode = "tool"

    model = checked(
        ScriptedModel([reply.raw_tool_call("final_result", '{"amount": NaN}'), reply.output({"amount": 2.5})])
    )
    assert (await Adder(model=model).run("add")).output == Total(amount=2.5)
    ((text, _),) = results(model.requests[1])
    assert "NaN is not valid JSON" in text and "arguments are not a JSON object" not in text


class Item(BaseModel):
    sku: str
    qty: int


class Order(BaseModel):
    items: list[Item]
    note: str | None = None


class Orders(Worker):
    """Takes orders."""

    model = "anthropic:claude-haiku-4-5"
    input = Order
    output = Order


@pytest.mark.parametrize(
    "task", [{"items": [{"sku": "a", "qty": "many"}]}, '{"items": [{"sku": "a", "qty": "many"}]}']
)
async def test_a_task_that_does_not_validate_says_where_as_a_json_path_with_the_bad_value(
    task: object,
) -> None:
    from tools.errors import WorkerInputError

    with pytest.raises(WorkerInputError) as caught:
        await Orders(model=ScriptedModel([], allow_unused=True)).run(task)
    assert str(caught.value) == (
        "Orders: input does not validate: $.items[0].qty: Input should be a valid integer, "
        "unable to parse string as an integer (got 'many')"
    )
    assert caught.value.path == "$.items[0].qty"


async def test_an_output_that_never_validates_says_where_as_a_json_path_with_the_bad_value(
    checked: Check,
) -> None:
    from tools.errors import OutputValidationError

    bad = {"items": [{"sku": "a", "qty": "many"}], "note": "x" * 10_000}
    model = checked(ScriptedModel([reply.output(bad)] * 3))
    with pytest.raises(OutputValidationError) as caught:
        await Orders(model=model).run({"items": []})
    assert str(caught.value) == (
        "Orders: output invalid after 3 attempts: $.items[0].qty: Input should be a valid integer, "
        "unable to parse string as an integer (got 'many')"
    )
    assert caught.value.path == "$.items[0].qty"
    ((text, _),) = results(model.requests[1])
    assert "- $.items[0].qty: Input should be a valid integer" in text


async def test_a_missing_output_field_is_named_as_missing_as_for_tool_arguments(checked: Check) -> None:
    from tools.errors import OutputValidationError

    model = checked(ScriptedModel([reply.output({"note": "n"})] * 3))
    with pytest.raises(OutputValidationError, match=r"\$\.items: is required but missing$"):
        await Orders(model=model).run({"items": []})
