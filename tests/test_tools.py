"""@tool: schemas from signatures, validation that names the path, value and rule, execution."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
import functools
import threading
from collections.abc import Callable
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field, field_validator

from tools import Tool, parse_arguments_text, serialize_result, tool, truncate_result
from tools.errors import ConfigurationError, ToolDefinitionError


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Item(BaseModel):
    sku: str
    qty: int = Field(ge=1)


@tool(risky=True, timeout_s=3, name="refund")
async def issue_refund(
    invoice_id: str,
    amount: Annotated[float, Field(ge=0, le=1000)],
    reason: Literal["duplicate", "other"] = "duplicate",
    items: list[Item] | None = None,
    color: Color = Color.RED,
    note: str | None = None,
) -> str:
    """Refund part or all of an invoice.

    Args:
        invoice_id: The invoice to refund.
        amount (float): How much, in USD.
            Never more than the invoice total.

    Returns:
        A confirmation.
    """
    return f"{invoice_id}:{amount}:{reason}:{items}:{color}:{note}"


def test_name_description_and_options_come_from_the_function() -> None:
    assert (issue_refund.name, issue_refund.risky, issue_refund.timeout_s) == ("refund", True, 3)
    assert issue_refund.description == "Refund part or all of an invoice."
    props = issue_refund.parameters["properties"]
    assert props["invoice_id"]["description"] == "The invoice to refund."
    assert props["amount"]["description"] == "How much, in USD. Never more than the invoice total."


def test_schema_covers_defaults_optional_literal_enum_nested_lists_and_constraints() -> None:
    schema = issue_refund.parameters
    props = schema["properties"]
    assert schema["required"] == ["invoice_id", "amount"]
    assert props["amount"]["minimum"] == 0 and props["amount"]["maximum"] == 1000
    assert props["reason"] == {"default": "duplicate", "enum": ["duplicate", "other"], "type": "string"}
    assert props["note"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert schema["$defs"]["Color"]["enum"] == ["red", "blue"]
    assert schema["$defs"]["Item"]["properties"]["qty"]["minimum"] == 1


def test_every_object_forbids_invented_properties_and_titles_are_gone() -> None:
    schema = issue_refund.parameters
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["Item"]["additionalProperties"] is False
    assert "title" not in str({k: v for k, v in schema.items() if k != "properties"})
    assert all("title" not in p for p in schema["properties"].values())


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"amount": 5}, [("$.invoice_id", None, "is required but missing")]),
        ({"invoice_id": 42, "amount": 5}, [("$.invoice_id", 42, "42 is not of type 'string'")]),
        ({"invoice_id": "1", "amount": -5}, [("$.amount", -5, "-5 is less than the minimum of 0")]),
        (
            {"invoice_id": "1", "amount": 1, "reason": "x"},
            [("$.reason", "x", "'x' is not one of ['duplicate', 'other']")],
        ),
        (
            {"invoice_id": "1", "amount": 1, "items": [{"sku": "a", "qty": 0}]},
            [("$.items[0].qty", 0, "0 is less than the minimum of 1")],
        ),
        ({"invoice_id": "1", "amount": 1, "note": 3}, [("$.note", 3, "3 is not of type 'string' or 'null'")]),
    ],
)
def test_each_invalid_argument_is_named_by_path_value_and_rule(
    arguments: dict[str, object], expected: list[object]
) -> None:
    assert issue_refund.issues(arguments) == expected


def test_an_invented_parameter_is_rejected_with_the_allowed_ones() -> None:
    ((path, value, rule),) = issue_refund.issues({"invoice_id": "1", "amount": 1, "force": True})
    assert (path, value) == ("$.force", True)
    assert "unknown property 'force' is not allowed" in rule and "amount, color, invoice_id" in rule


def test_arguments_that_are_not_a_json_object() -> None:
    assert parse_arguments_text('{"a": 1')[1][0][0] == "$"
    assert "not valid JSON" in parse_arguments_text('{"a": 1')[1][0][2]
    assert parse_arguments_text("[1, 2]")[1] == [("$", [1, 2], "[1, 2] is not of type 'object'")]
    assert parse_arguments_text("") == ({}, [])


async def test_valid_arguments_reach_the_function_typed() -> None:
    kwargs, issues = issue_refund.validated(
        {"invoice_id": "42", "amount": 3, "items": [{"sku": "a", "qty": 2}], "color": "blue"}
    )
    assert issues == [] and kwargs is not None
    assert kwargs["items"] == [Item(sku="a", qty=2)] and kwargs["color"] is Color.BLUE
    assert await issue_refund.invoke(kwargs) == "42:3.0:duplicate:[Item(sku='a', qty=2)]:Color.BLUE:None"


async def test_sync_tools_run_in_a_thread_and_async_tools_on_the_loop() -> None:
    @tool
    def where() -> int:
        """Which thread."""
        return threading.get_ident()

    assert await where.invoke({}) != threading.get_ident()


def test_parameter_names_that_clash_with_pydantic_still_work() -> None:
    @tool
    def describe(schema: str, json: int = 1) -> str:
        """Uses awkward names."""
        return f"{schema}{json}"

    assert set(describe.parameters["properties"]) == {"schema", "json"}
    assert describe.validated({"schema": "s", "json": 2}) == ({"schema": "s", "json": 2}, [])


async def test_a_parameter_named_with_a_leading_underscore_is_offered_and_passed() -> None:
    # pydantic makes such a name private: the parameter vanished from the schema, and a call crashed
    @tool
    def lookup(_id: int, id_: int = 0) -> str:
        """Look up a record."""
        return f"record {_id} {id_}"

    assert lookup.parameters["properties"].keys() == {"_id", "id_"}
    assert lookup.parameters["required"] == ["_id"]
    kwargs, issues = lookup.validated({"_id": 7})
    assert issues == [] and kwargs == {"_id": 7, "id_": 0}
    assert await lookup.invoke(kwargs) == "record 7 0"
    assert lookup.validated({}) == (None, [("$._id", None, "is required but missing")])


async def test_an_async_tool_behind_a_plain_decorator_is_awaited() -> None:
    # A functools.wraps wrapper is a sync function returning the coroutine: it was run in a
    # thread and the coroutine's repr went to the model as the result.
    ran: list[str] = []

    def logged(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        return wrapper

    @tool
    @logged
    async def fetch(invoice_id: str) -> dict[str, str]:
        """Fetch an invoice."""
        ran.append(invoice_id)
        return {"invoice_id": invoice_id}

    class Later:  # a callable object whose __call__ returns a coroutine
        async def _go(self) -> str:
            return "later"

        def __call__(self) -> Any:
            return self._go()

    def facade(fn: Any) -> Any:  # async_to_sync: a sync function running its own event loop
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            return asyncio.run(fn(*args, **kwargs))

        return run

    @tool
    @facade
    async def convert(amount: int) -> str:
        """Convert."""
        return f"{amount} EUR"

    later = Tool.from_schema(Later(), name="later", description="", parameters={"type": "object"})
    assert await fetch.invoke({"invoice_id": "42"}) == {"invoice_id": "42"} and ran == ["42"]
    assert await later.invoke({}) == "later"
    assert convert.is_sync and await convert.invoke({"amount": 30}) == "30 EUR"  # still in its thread


async def test_a_tool_from_an_explicit_json_schema() -> None:
    async def search(query: str, limit: int = 5) -> list[str]:
        return [query] * limit

    explicit = Tool.from_schema(
        search,
        name="search",
        description="Search the docs.",
        parameters={
            "type": "object",
            "properties": {"query": {"type": "string", "minLength": 2}},
            "required": ["query"],
        },
    )
    assert explicit.issues({"query": "a"}) == [("$.query", "a", "'a' is too short")]
    kwargs, _ = explicit.validated({"query": "ab", "limit": 2})
    assert kwargs is not None and await explicit.invoke(kwargs) == ["ab", "ab"]
    assert explicit.validated([1]) == (None, [("$", [1], "[1] is not of type 'object'")])
    with pytest.raises(ToolDefinitionError, match="invalid JSON Schema"):
        Tool.from_schema(search, name="bad", description="", parameters={"type": "object", "properties": 3})


def _untyped(x):  # type: ignore[no-untyped-def]
    return x


def _star(*args: int) -> None:
    return None


class _Connection:  # a class of the user's own, which no JSON Schema describes
    pass


def _with_callback(query: str, on_done: Callable[[int], None]) -> None:
    return None


def _with_connection(conn: _Connection, query: str) -> None:
    return None


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (_untyped, "has no type annotation"),
        (_star, "must be a plain named parameter"),
        (42, "needs a function"),
        # pydantic's own errors, naming neither the tool nor the parameter, came through
        (_with_callback, "tool '_with_callback': parameter 'on_done' has a type no JSON Schema"),
        (
            _with_connection,
            "tool '_with_connection': parameter 'conn' has a type no JSON Schema can describe",
        ),
    ],
)
def test_functions_that_cannot_be_tools_fail_when_decorated(fn: object, message: str) -> None:
    with pytest.raises(ToolDefinitionError, match=message) as caught:
        tool(fn)  # type: ignore[arg-type]
    assert isinstance(caught.value, ConfigurationError)


def test_bad_names_and_timeouts_are_definition_errors() -> None:
    with pytest.raises(ToolDefinitionError, match="must match"):
        tool(name="has space")(lambda: None)
    for flag in ("risky", "idempotent"):  # risky="no" is a non-empty string: it made the tool risky
        with pytest.raises(ToolDefinitionError, match=f"{flag} must be True or False, got 'no'"):
            tool(name="f", **{flag: "no"})(lambda: None)
    for bad in (0, -1, float("nan"), "5", True):  # nan timed out at once; "5" was a TypeError
        with pytest.raises(ToolDefinitionError, match="timeout_s must be a positive number"):

            @tool(timeout_s=bad)  # type: ignore[arg-type]
            def f() -> None:
                """x"""


@dataclasses.dataclass
class Point:
    x: int
    y: int


def test_results_serialise_deterministically() -> None:
    assert (
        serialize_result({"b": 1, "a": [Item(sku="s", qty=1)]}) == '{"a": [{"qty": 1, "sku": "s"}], "b": 1}'
    )
    assert serialize_result(Item(sku="s", qty=1)) == '{"sku":"s","qty":1}'
    assert serialize_result(Point(1, 2)) == '{"x": 1, "y": 2}'
    assert serialize_result("plain") == "plain" and serialize_result(None) == "null"
    assert serialize_result({"c": Color.RED, "s": {3, 1}}) == '{"c": "red", "s": [1, 3]}'


def test_long_results_are_truncated_with_a_visible_marker() -> None:
    text = truncate_result("x" * 120, 100)
    assert text.startswith("x" * 100) and text.endswith("[truncated: 20 of 120 characters removed]")
    assert truncate_result("short", 100) == "short" and truncate_result("y" * 500, None) == "y" * 500


def test_the_validator_is_compiled_once_per_tool() -> None:
    @tool
    def f(a: int) -> int:
        """x"""
        return a

    f.issues({"a": 1})
    compiled = f._validator
    f.issues({"a": "x"})
    assert f._validator is compiled is not None


async def test_tools_run_concurrently_when_called_together() -> None:
    @tool
    async def slow(n: int) -> int:
        """Sleep a little."""
        await asyncio.sleep(0.2)
        return n

    started = asyncio.get_running_loop().time()
    assert await asyncio.gather(slow.invoke({"n": 1}), slow.invoke({"n": 2})) == [1, 2]
    assert asyncio.get_running_loop().time() - started < 0.35


def test_an_invented_property_inside_an_optional_model_is_named() -> None:
    # Found by the property tests: the error sits at the object's own path inside anyOf.
    @tool
    def f(item: Item | None = None) -> None:
        """x"""

    assert f.issues({"item": {"sku": "a", "qty": 1, "zz": 2}}) == [
        ("$.item.zz", 2, "unknown property 'zz' is not allowed (allowed: qty, sku)")
    ]
    assert f.issues({"item": 5}) == [("$.item", 5, "5 is not of type 'object' or 'null'")]


async def test_a_decorated_function_can_still_be_called_from_code() -> None:
    # `@tool` returned an object that could not be called: add(1, 2) was a TypeError.
    @tool
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    assert add(1, 2) == 3 and await issue_refund("42", 5.0) == "42:5.0:duplicate:None:Color.RED:None"
    with pytest.raises(ToolDefinitionError, match="is already a tool"):
        tool(add)


class Card(BaseModel):
    kind: Literal["card"]
    number: str


class Bank(BaseModel):
    kind: Literal["bank"]
    iban: str


def test_a_union_of_models_is_explained_by_the_member_whose_kind_matches() -> None:
    # The deepest member was chosen, whatever its kind: a bank payment was told of the card's
    # `number`, and a card with a bad number was told of the bank's `iban`.
    @tool
    def pay(method: Card | Bank) -> str:
        """Pay."""
        return "ok"

    assert pay.validated({"method": {"kind": "bank"}})[1] == [
        ("$.method.iban", None, "is required but missing")
    ]
    assert pay.validated({"method": {"kind": "card", "number": 5}})[1] == [
        ("$.method.number", 5, "5 is not of type 'string'")
    ]


class Positive(BaseModel):
    x: int

    @field_validator("x")
    @classmethod
    def positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be positive")
        return value


def test_what_only_pydantic_checks_is_named_by_a_json_path_and_the_value() -> None:
    # The value was left out, and a union member's name stood in the path ($.thing.A.x).
    @tool
    def book(when: datetime.date, thing: Positive) -> str:
        """Book."""
        return "ok"

    _, issues = book.validated({"when": "next tuesday", "thing": {"x": -1}})
    paths = {path: rule for path, _, rule in issues}
    assert paths["$.when"].endswith("(got next tuesday)")
    assert paths["$.thing.x"] == "Value error, must be positive (got -1)"


def test_parameter_descriptions_come_from_rest_and_numpy_docstrings_and_a_field_wins() -> None:
    # Only Google style was read: the others went whole into the description; and the
    # docstring's text replaced an explicit Field(description=...).
    @tool
    def rest(a: int, b: int = 0) -> int:
        """Add.

        :param a: The first number,
            on two lines.
        :param int b: The second.
        :returns: The sum.
        """
        return a + b

    @tool
    def numpy(a: int, b: Annotated[int, Field(description="From the field.")] = 0) -> int:
        """Add.

        Parameters
        ----------
        a : int
            The first number.
        b : int, optional
            From the docstring.

        Returns
        -------
        int
        """
        return a + b

    for made in (rest, numpy):
        assert made.description == "Add."
    assert rest.parameters["properties"]["a"]["description"] == "The first number, on two lines."
    assert rest.parameters["properties"]["b"]["description"] == "The second."
    assert numpy.parameters["properties"]["a"]["description"] == "The first number."
    assert numpy.parameters["properties"]["b"]["description"] == "From the field."
