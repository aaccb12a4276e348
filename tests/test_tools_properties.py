"""Property tests: for any nested parameter shape, the schema offered is the schema enforced.

Shapes are drawn at random (ints, strings, floats, bools, lists, optionals and nested models, a
few levels deep); for each, a tool is built, and:
- its schema is a valid Draft 2020-12 schema, strict on every object, without titles;
- any value of that shape validates and reaches the function as the same typed value;
- a property the model invents, at any depth, is rejected with a path that points at it;
- no input at all (arbitrary JSON or text) makes validation raise.
"""

from __future__ import annotations

import inspect
import itertools
from typing import Any, Optional

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import BaseModel, create_model

from tools import Tool, parse_arguments_text, tool

Shape = tuple[Any, ...]
_names = itertools.count()

leaves = st.sampled_from([("int",), ("str",), ("float",), ("bool",)])
fields = st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=3, unique=True)


def _extend(children: st.SearchStrategy[Shape]) -> st.SearchStrategy[Shape]:
    return st.one_of(
        children.map(lambda s: ("list", s)),
        children.map(lambda s: ("opt", s)),
        fields.flatmap(
            lambda names: st.tuples(*[children for _ in names]).map(
                lambda kids: ("model", tuple(zip(names, kids, strict=True)))
            )
        ),
    )


shapes = st.recursive(leaves, _extend, max_leaves=6)
top_level = fields.flatmap(
    lambda names: st.tuples(*[shapes for _ in names]).map(lambda kids: tuple(zip(names, kids, strict=True)))
)


def annotation(shape: Shape) -> Any:
    kind = shape[0]
    if kind in ("int", "str", "float", "bool"):
        return {"int": int, "str": str, "float": float, "bool": bool}[kind]
    if kind == "list":
        return list[annotation(shape[1])]  # type: ignore[misc]
    if kind == "opt":
        return Optional[annotation(shape[1])]  # noqa: UP045 - built at run time
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        f"M{next(_names)}", **{name: (annotation(sub), ...) for name, sub in shape[1]}
    )
    return model


def values(shape: Shape) -> st.SearchStrategy[Any]:
    kind = shape[0]
    if kind == "int":
        return st.integers(-(10**6), 10**6)
    if kind == "str":
        return st.text(max_size=8)
    if kind == "float":
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    if kind == "bool":
        return st.booleans()
    if kind == "list":
        return st.lists(values(shape[1]), max_size=3)
    if kind == "opt":
        return st.none() | values(shape[1])
    return st.fixed_dictionaries({name: values(sub) for name, sub in shape[1]})


def make_tool(params: tuple[tuple[str, Shape], ...]) -> Tool:
    def fn(**kwargs: Any) -> dict[str, Any]:
        return kwargs

    fn.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=annotation(s)) for n, s in params]
    )
    fn.__annotations__ = {n: annotation(s) for n, s in params}
    fn.__doc__ = "A generated tool."
    return tool(name=f"t{next(_names)}")(fn)


def objects_in(schema: dict[str, Any]) -> list[dict[str, Any]]:
    found = [schema] if schema.get("type") == "object" else []
    for value in schema.values():
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
        found += [o for child in children if isinstance(child, dict) for o in objects_in(child)]
    return found


def plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return {k: plain(v) for k, v in value}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(top_level)
def test_schemas_are_valid_strict_and_untitled(params: tuple[tuple[str, Shape], ...]) -> None:
    schema = make_tool(params).parameters
    Draft202012Validator.check_schema(schema)
    for obj in objects_in(schema):
        if "properties" in obj:
            assert obj["additionalProperties"] is False
    assert all("title" not in o for o in objects_in(schema))


@PROPS
@given(st.data(), top_level)
def test_every_value_of_the_shape_validates_and_arrives_unchanged(
    data: st.DataObject, params: tuple[tuple[str, Shape], ...]
) -> None:
    made = make_tool(params)
    arguments = data.draw(st.fixed_dictionaries({name: values(shape) for name, shape in params}))
    assert made.issues(arguments) == []
    kwargs, issues = made.validated(arguments)
    assert issues == [] and kwargs is not None
    assert {k: plain(v) for k, v in kwargs.items()} == arguments


def _nested_dicts(value: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(value, dict):
        found.append((path, value))
        for k, v in value.items():
            found += _nested_dicts(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _nested_dicts(v, f"{path}[{i}]")
    return found


@PROPS
@given(st.data(), top_level)
def test_an_invented_property_at_any_depth_is_rejected_where_it_is(
    data: st.DataObject, params: tuple[tuple[str, Shape], ...]
) -> None:
    made = make_tool(params)
    arguments = data.draw(st.fixed_dictionaries({name: values(shape) for name, shape in params}))
    path, target = data.draw(st.sampled_from(_nested_dicts(arguments, "$")))
    target["zz_invented"] = 1
    assert f"{path}.zz_invented" in [p for p, _, _ in made.issues(arguments)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=3), kids, max_size=3),
    max_leaves=10,
)


@PROPS
@given(top_level, json_values)
def test_validation_never_raises_on_any_json(params: tuple[tuple[str, Shape], ...], value: Any) -> None:
    issues = make_tool(params).issues(value)
    assert all(path.startswith("$") and rule for path, _, rule in issues)
    if not isinstance(value, dict):
        assert issues


@PROPS
@given(st.text(max_size=40))
def test_argument_text_never_raises(raw: str) -> None:
    value, issues = parse_arguments_text(raw)
    assert isinstance(value, dict) != bool(issues)
