"""The compiled check of tool arguments: it never accepts what the JSON Schema rejects, and it
does accept the valid arguments of ordinary tools (else it would save nothing)."""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import BaseModel, Field

from tools import Tool, tool
from tools._fastcheck import compile_check

_TYPES = ["object", "array", "string", "integer", "number", "boolean", "null"]

# Values near the edges the keywords draw (bools beside ints, integral floats, empty strings).
_EDGES = [None, True, False, 0, 1, -1, 2, 3, 1.0, 2.0, 0.5, -1.5, 2.5, float("nan"), "", "a", "red", "abcd"]
json_values = st.recursive(
    st.sampled_from(_EDGES) | st.floats(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), inner, max_size=4)
    ),
    max_leaves=8,
)

scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([1.0, 2.5, "a", "red", ""])


def _schemas(leaf: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    def extend(inner: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
        obj = st.fixed_dictionaries(
            {"type": st.just("object")},
            optional={
                "properties": st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3),
                "required": st.lists(st.sampled_from(["a", "b", "c"]), max_size=2, unique=True),
                "additionalProperties": st.booleans() | inner,
                "title": st.just("T"),
            },
        )
        arr = st.fixed_dictionaries(
            {"type": st.just("array")},
            optional={"items": inner, "minItems": st.integers(0, 2), "maxItems": st.integers(0, 3)},
        )
        return obj | arr | st.builds(lambda opts: {"anyOf": opts}, st.lists(inner, min_size=1, max_size=3))

    return st.recursive(leaf, extend, max_leaves=6)


_CONSTRAINTS: dict[str, st.SearchStrategy[Any]] = {
    "enum": st.lists(scalars, min_size=1, max_size=4),
    "const": scalars,
    "minLength": st.integers(0, 3),
    "maxLength": st.integers(0, 3),
    "minimum": st.integers(-2, 2) | st.sampled_from([0.5, -1.5]),
    "maximum": st.integers(-2, 2),
    "exclusiveMinimum": st.integers(-2, 2),
    "exclusiveMaximum": st.sampled_from([1, 2.5]),
    "description": st.just("d"),
    "format": st.just("email"),
}
_types = st.sampled_from(_TYPES) | st.lists(st.sampled_from(_TYPES), min_size=1, max_size=3, unique=True)
# A leaf is a type, or a constraint or two, or both: few enough keywords that values pass often.
leaf_schemas = st.builds(
    lambda kind, constraints: ({"type": kind} if kind else {}) | dict(constraints),
    st.none() | _types,
    st.lists(
        st.sampled_from(sorted(_CONSTRAINTS)).flatmap(lambda k: st.tuples(st.just(k), _CONSTRAINTS[k])),
        max_size=2,
    ),
)


@settings(max_examples=600, deadline=None)
@given(leaf_schemas | _schemas(leaf_schemas), st.lists(json_values, min_size=1, max_size=8))
def test_the_fast_check_never_accepts_what_the_schema_rejects(
    schema: dict[str, Any], values: list[Any]
) -> None:
    check = compile_check(schema)
    assert check is not None, schema  # every keyword drawn here is in the compiled subset
    validator = Draft202012Validator(schema)
    for value in [*_EDGES, *values]:  # every edge value, then drawn ones (containers)
        if check(value):
            assert validator.is_valid(value), (schema, value)


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str
    number: Annotated[int, Field(ge=1)]
    note: str | None = None


class Node(BaseModel):
    name: str
    children: list[Node] = []


def test_ordinary_tools_valid_arguments_are_accepted_without_jsonschema() -> None:
    @tool
    def ship(
        to: Address,
        colour: Colour,
        mode: Literal["air", "sea"],
        count: Annotated[int, Field(ge=1, le=10)] = 1,
        tags: list[str] | None = None,
        weight: float = 1.0,
        tree: Node | None = None,
    ) -> str:
        """Ship a parcel."""
        return "ok"

    good = {
        "to": {"street": "Main", "number": 4, "note": None},
        "colour": "red",
        "mode": "sea",
        "count": 3,
        "tags": ["x"],
        "weight": 2,
        "tree": {"name": "a", "children": [{"name": "b", "children": []}]},
    }
    assert ship.issues(good) == []
    assert ship._accepts is not None and ship._accepts(good)  # decided by the compiled check
    for bad, path in [
        ({**good, "count": 11}, "$.count"),
        ({**good, "colour": "green"}, "$.colour"),
        ({**good, "to": {"street": "Main", "number": 0}}, "$.to.number"),
        ({**good, "tree": {"name": "a", "children": [{"children": []}]}}, "$.tree.children[0].name"),
        ({**good, "tags": "x"}, "$.tags"),
        ({**good, "extra": 1}, "$.extra"),
    ]:
        assert not ship._accepts(bad)
        issues = ship.issues(bad)  # jsonschema explains, with the path, as before
        assert issues and issues[0][0] == path, issues


def test_a_schema_outside_the_subset_is_left_to_jsonschema() -> None:
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}$"}}}
    assert compile_check(schema) is None
    check = Tool.from_schema(lambda code: code, name="fx", description="Convert.", parameters=schema)
    assert check.issues({"code": "EUR"}) == []
    assert check.issues({"code": "euro"})[0][0] == "$.code"


def test_integral_floats_and_booleans_follow_jsonschema() -> None:
    check = compile_check({"type": "object", "properties": {"n": {"type": "integer", "enum": [1, 2]}}})
    assert check is not None
    assert check({"n": 1})
    assert not check({"n": True})  # a bool is not an integer; jsonschema decides the rest
    assert compile_check({"type": "integer"})(2.0)  # type: ignore[misc]
    assert not compile_check({"type": "number"})(False)  # type: ignore[misc]


class Chain(BaseModel):
    value: int
    child: Chain | None = None


class _IntLevel(enum.IntEnum):
    ONE = 1


def test_values_of_other_types_than_json_parses_to_are_left_to_jsonschema() -> None:
    from collections import OrderedDict
    from decimal import Decimal
    from fractions import Fraction

    class Items(list[Any]):
        pass

    class Text(str):
        pass

    cases: list[tuple[dict[str, Any], object]] = [
        ({"required": ["a"]}, OrderedDict()),
        ({"properties": {"a": {"type": "integer"}}}, OrderedDict(a="x")),
        ({"items": {"type": "integer"}}, Items(["x"])),
        ({"minItems": 2}, Items()),
        ({"minLength": 3}, Text("a")),
        ({"minimum": 5}, _IntLevel.ONE),
        ({"minimum": 5}, Decimal(1)),
        ({"maximum": 0}, Fraction(1, 2)),
    ]
    for schema, value in cases:
        check = compile_check(schema)
        assert check is not None and not check(value), (schema, value)
        assert not Draft202012Validator(schema).is_valid(value)


def test_refs_with_pointer_escapes_and_malformed_keywords_get_no_check() -> None:
    defs = {"a/b": {"type": "string"}, "a": {"b": {"type": "integer"}}, "a b": {"type": "string"}}
    assert compile_check({"$defs": defs, "$ref": "#/$defs/a/b"}) is None
    assert compile_check({"$defs": defs, "$ref": "#/$defs/a%20b"}) is None
    for broken in ({"type": None}, {"anyOf": None}, {"$ref": None}):
        assert compile_check(broken) is None


def test_arguments_nested_deeper_than_the_check_goes_are_decided_by_jsonschema() -> None:
    @tool
    def walk(chain: Chain) -> str:
        """Walk a chain."""
        return "ok"

    deep: dict[str, Any] = {"value": 0}
    for i in range(1, 150):
        deep = {"value": i, "child": deep}
    assert walk.issues({"chain": deep}) == []  # valid, though too deep for the compiled check
