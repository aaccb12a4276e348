"""A function's signature becomes an argument model (pydantic) and the JSON Schema offered to the model.

The schema is made strict on the way: every object schema forbids properties it does not list,
so a parameter the model invents is an error rather than silently dropped, and pydantic's titles
are removed because they cost tokens and say nothing the property names do not.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any

from ._errors_base import json_path
from .errors import ToolDefinitionError, excerpt

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["json_path", "ArgumentModel", "function_schema", "in_value", "parse_docstring", "strict_schema"]

_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Returns|Return|Raises|Yields|Examples?|Notes?|Attributes):\s*$"
)
_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
# Keywords whose value is a map of name -> schema, a schema, or a list of schemas.
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a docstring into (description, {parameter: description}): Google style ("Args:"),
    reST (":param name: ...") or NumPy ("Parameters" underlined)."""
    if _REST_FIELD.search(doc):
        return _parse_rest(doc)
    numpy = _NUMPY_SECTION.search(doc)
    if numpy:
        return _parse_numpy(doc, numpy)
    summary: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    indent = 0
    for line in doc.splitlines():
        header = _SECTION.match(line.strip())
        if header and not line.startswith((" ", "\t")):
            section, current = header.group(1), None
            continue
        if section is None:
            summary.append(line)
        elif section in ("Args", "Arguments", "Parameters") and line.strip():
            this_indent = len(line) - len(line.lstrip())
            match = _ARG_LINE.match(line.strip())
            if match and (current is None or this_indent <= indent):
                current, indent = match.group(1).lstrip("*"), this_indent
                args[current] = match.group(2).strip()
            elif current is not None:
                args[current] = f"{args[current]} {line.strip()}".strip()
    return "\n".join(summary).strip(), args


_REST_FIELD = re.compile(r"^\s*:(param|parameter|arg|argument|type|returns?|raises?|rtype)\b", re.M)
_REST_PARAM = re.compile(r"^:(?:param|parameter|arg|argument)\s+(?:[^:]*\s)?(\*{0,2}\w+)\s*:\s*(.*)$")
_NUMPY_SECTION = re.compile(r"^[ \t]*(\w[\w ]*)\n[ \t]*-{3,}[ \t]*$", re.M)
_NUMPY_ENTRY = re.compile(r"^(\*{0,2}\w+)\s*(?::.*)?$")


def _parse_rest(doc: str) -> tuple[str, dict[str, str]]:
    summary: list[str] = []
    args: dict[str, str] = {}
    current: str | None = None
    for line in doc.splitlines():
        text = line.strip()
        if text.startswith(":"):
            match = _REST_PARAM.match(text)
            current = None
            if match:
                current = match.group(1).lstrip("*")
                args[current] = match.group(2).strip()
        elif current is not None and text:
            args[current] = f"{args[current]} {text}".strip()
        elif current is None and not args:
            summary.append(line)
    return "\n".join(summary).strip(), args


def _parse_numpy(doc: str, first: re.Match[str]) -> tuple[str, dict[str, str]]:
    summary = doc[: first.start()].strip()
    args: dict[str, str] = {}
    sections = list(_NUMPY_SECTION.finditer(doc))
    for i, section in enumerate(sections):
        if section.group(1).strip() not in ("Parameters", "Args", "Arguments", "Other Parameters"):
            continue
        end = sections[i + 1].start() if i + 1 < len(sections) else len(doc)
        current: str | None = None
        base: int | None = None
        for line in doc[section.end() : end].splitlines():
            if not line.strip():
                continue
            indent = len(line) - len(line.lstrip())
            base = indent if base is None else base
            match = _NUMPY_ENTRY.match(line.strip())
            if indent <= base and match:
                current = match.group(1).lstrip("*")
                args[current] = ""
            elif current is not None:
                args[current] = f"{args[current]} {line.strip()}".strip()
    return summary, args


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Forbid unlisted properties on every object schema; drop titles and OpenAPI discriminators.

    Works in place and returns the schema.
    """
    if schema.get("type") == "object" and "properties" in schema:
        schema.setdefault("additionalProperties", False)
    if isinstance(schema.get("title"), str):
        del schema["title"]
    # pydantic's OpenAPI `discriminator` is not JSON Schema: a provider may refuse it, and the
    # `oneOf` branches (each with a `const` tag) already say the same.
    if isinstance(schema.get("discriminator"), dict) and "propertyName" in schema["discriminator"]:
        del schema["discriminator"]
    for sub in _subschemas(schema):
        strict_schema(sub)
    return schema


def _subschemas(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schemas nested in `schema` (not the data in keywords like enum, const or default)."""
    found: list[Any] = []
    for key in _SCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            found.extend(schema[key].values())
    found.extend(schema.get(key) for key in _SCHEMA_ONE)
    for key in _SCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            found.extend(schema[key])
    return [sub for sub in found if isinstance(sub, dict)]


class ArgumentModel:
    """The pydantic model of a function's parameters, and how to call the function with it."""

    __slots__ = ("model", "fields")

    def __init__(self, model: type[BaseModel], fields: Mapping[str, str]) -> None:
        self.model = model
        self.fields = fields  # pydantic field name -> parameter name

    def to_kwargs(
        self, arguments: Mapping[str, Any]
    ) -> tuple[dict[str, Any] | None, list[tuple[str, object, str]]]:
        """Typed keyword arguments (nested models, enums, ...) for the function, or the issues
        pydantic found that the JSON Schema could not express (formats, custom validators)."""
        from pydantic import ValidationError

        try:
            instance = self.model.model_validate(arguments)
        except ValidationError as exc:
            return None, [
                (json_path(in_value(arguments, e["loc"])), e.get("input"), _rule(e)) for e in exc.errors()
            ]
        return {param: getattr(instance, field) for field, param in self.fields.items()}, []


def function_schema(fn: Callable[..., Any], name: str) -> tuple[str, dict[str, Any], ArgumentModel]:
    """(description, JSON Schema, argument model) of a function, from its signature and docstring."""
    from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
    from pydantic.errors import PydanticUserError

    description, arg_docs = parse_docstring(inspect.getdoc(fn) or "")
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # unresolvable forward references and the like
        raise ToolDefinitionError(f"tool {name!r}: cannot read its type hints: {exc}", tool=name) from exc
    fields: dict[str, Any] = {}
    names: dict[str, str] = {}
    parameters = inspect.signature(fn).parameters
    signature_names = set(parameters)
    for param in parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise ToolDefinitionError(
                f"tool {name!r}: parameter {param.name!r} must be a plain named parameter", tool=name
            )
        if param.name not in hints and param.name in ("self", "cls") and next(iter(parameters)) == param.name:
            raise ToolDefinitionError(
                f"tool {name!r}: its first parameter is {param.name!r}: @tool on a method in a class "
                "body gets the plain function, which has no instance to call it on; decorate the "
                "bound method (tool(instance.method)) or a function",
                tool=name,
            )
        if param.name not in hints:
            raise ToolDefinitionError(
                f"tool {name!r}: parameter {param.name!r} has no type annotation", tool=name
            )
        annotation = hints[param.name]
        if param.name in arg_docs and not _described(annotation):  # an explicit Field's stands
            annotation = Annotated[annotation, Field(description=arg_docs[param.name])]
        default = ... if param.default is inspect.Parameter.empty else param.default
        # Names pydantic cannot take as fields (BaseModel's own attributes, a leading underscore,
        # which it makes private) get a field name of their own and the parameter's as alias.
        field = param.name
        if field.startswith("_") or hasattr(BaseModel, field):
            field = f"arg_{field.lstrip('_')}"
            while field in signature_names or field in fields:  # bounded: names are finite
                field += "_"
        if field != param.name:
            annotation = Annotated[annotation, Field(alias=param.name)]
        fields[field] = (annotation, default)
        names[field] = param.name
    config = ConfigDict(extra="forbid", populate_by_name=False)
    try:
        model = create_model(f"{name}_arguments", __config__=config, **fields)
        schema = strict_schema(model.model_json_schema())
    except (TypeError, ValueError, ValidationError, PydanticUserError) as exc:
        raise ToolDefinitionError(
            f"tool {name!r}: {_unsupported(name, fields, names, config)}: {str(exc).splitlines()[0]}",
            tool=name,
        ) from exc
    return description, schema, ArgumentModel(model, names)


def _unsupported(name: str, fields: dict[str, Any], names: dict[str, str], config: Any) -> str:
    """Which parameter has no JSON Schema (a callable, a class of the user's own), found by
    trying each alone: pydantic's own error names neither the tool nor the parameter."""
    from pydantic import ValidationError, create_model
    from pydantic.errors import PydanticUserError

    for field, spec in fields.items():
        try:
            create_model(f"{name}_{field}", __config__=config, **{field: spec}).model_json_schema()
        except (TypeError, ValueError, ValidationError, PydanticUserError):
            return f"parameter {names[field]!r} has a type no JSON Schema can describe"
    return "no JSON Schema for its parameters"


def in_value(value: object, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Pydantic's error location as a path into the arguments: the steps it adds that are no
    key or index of the value (a union member's name, a validator's tag) are left out; the last
    step stays (a missing property is named by it)."""
    path: list[Any] = []
    last = len(loc) - 1
    for i, step in enumerate(loc):
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value):
            value = value[step]
        elif i != last:
            continue
        path.append(step)
    return tuple(path)


def _rule(error: Any) -> str:
    """Pydantic's message with the offending value, as the schema's own messages have it."""
    if error.get("type") == "missing":
        return "is required but missing"
    return f"{excerpt(error['msg'], 300)} (got {excerpt(error.get('input'), 80)})"


def _described(annotation: Any) -> bool:
    """Whether an `Annotated[...]` hint already carries a `Field(description=...)`."""
    return any(getattr(meta, "description", None) for meta in getattr(annotation, "__metadata__", ()))
