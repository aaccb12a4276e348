"""A fast acceptance check for tool arguments, compiled once per tool from its JSON Schema.

`jsonschema` is the authority on tool arguments, and it costs more per call than everything
else a tool call does. Most schemas are plain (objects of typed properties, enums, lists,
Optional, nested models through `$ref`), and most arguments are valid, so a check compiled
from those keywords decides the common case: it answers True only when `jsonschema` would
report no error. It answers False when in doubt, and `jsonschema` then decides and explains.
A schema with any keyword outside the subset below gets no check at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["compile_check"]

Check = Callable[[object], bool]

# Keywords that never reject anything (annotations), and those compiled below.
_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$schema", "$defs", "format", "deprecated",
     "readOnly", "writeOnly", "$comment"}
)  # fmt: skip
_COMPILED = frozenset(
    {"type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
     "enum", "const", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
     "exclusiveMaximum", "anyOf", "$ref"}
)  # fmt: skip


class _Unsupported(Exception):
    """The schema uses something the compiled check does not cover."""


def compile_check(schema: object) -> Check | None:
    """A check that is True only for instances `schema` accepts; None when it cannot be built."""
    if not isinstance(schema, Mapping):
        return None
    defs = schema.get("$defs")
    try:
        return _Compiler(defs if isinstance(defs, Mapping) else {}).compile(schema)
    except (_Unsupported, RecursionError):
        return None


def _is_integer(value: object) -> bool:
    kind = type(value)
    return kind is int or (kind is float and value.is_integer())  # type: ignore[attr-defined]


def _is_number(value: object) -> bool:
    kind = type(value)
    return kind is int or kind is float


# JSON Schema's types as jsonschema checks them: a bool is neither an integer nor a number.
_TYPES: dict[str, Check] = {
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
    "string": lambda v: type(v) is str,
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
}


# Keywords that apply to one type pass other values; only values of the exact JSON types do
# here (a subclass, a Decimal, an OrderedDict is left to jsonschema, whose rules are isinstance).
_JSON = frozenset({dict, list, str, int, float, bool, type(None)})
_OTHER_JSON = {
    "object": _JSON - {dict},
    "array": _JSON - {list},
    "string": _JSON - {str},
    "number": _JSON - {int, float},
}


class _Compiler:
    def __init__(self, defs: Mapping[str, Any]) -> None:
        self.defs = defs
        self.refs: dict[str, Check] = {}

    def compile(self, schema: object) -> Check:
        if schema is True or schema == {}:
            return lambda v: True
        if not isinstance(schema, Mapping) or not set(schema) <= _ANNOTATIONS | _COMPILED:
            raise _Unsupported
        checks = [c for c in (self._type(schema), self._ref(schema), self._any_of(schema)) if c]
        checks += self._object(schema) + self._array(schema) + self._values(schema)
        if not checks:
            return lambda v: True
        if len(checks) == 1:
            return checks[0]
        return lambda v: all(check(v) for check in checks)

    def _type(self, schema: Mapping[str, Any]) -> Check | None:
        if "type" not in schema:
            return None
        kind = schema["type"]
        names = [kind] if isinstance(kind, str) else kind
        if not isinstance(names, list) or not names or any(n not in _TYPES for n in names):
            raise _Unsupported
        tests = [_TYPES[n] for n in names]
        if len(tests) == 1:
            return tests[0]
        return lambda v: any(test(v) for test in tests)

    def _ref(self, schema: Mapping[str, Any]) -> Check | None:
        if "$ref" not in schema:
            return None
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
            raise _Unsupported
        name = ref[8:]
        if name not in self.defs or any(c in name for c in "/~%"):  # pointer escapes: jsonschema's
            raise _Unsupported
        if name not in self.refs:  # a placeholder first, so that a recursive model compiles
            box: list[Check] = []
            self.refs[name] = lambda v: box[0](v)
            box.append(self.compile(self.defs[name]))
        return self.refs[name]

    def _any_of(self, schema: Mapping[str, Any]) -> Check | None:
        if "anyOf" not in schema:
            return None
        options = schema["anyOf"]
        if not isinstance(options, list) or not options:
            raise _Unsupported
        tests = [self.compile(option) for option in options]
        return lambda v: any(test(v) for test in tests)

    def _object(self, schema: Mapping[str, Any]) -> list[Check]:
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        extra = schema.get("additionalProperties", True)
        if not isinstance(properties, Mapping) or not isinstance(required, list):
            raise _Unsupported
        if not all(isinstance(r, str) for r in required):
            raise _Unsupported
        compiled = {name: self.compile(sub) for name, sub in properties.items()}
        extra_check = None if extra is True else self.compile(extra) if extra is not False else None
        closed = extra is False
        if not compiled and not required and extra is True:
            return []

        def check(value: object) -> bool:
            if type(value) is not dict:  # these keywords apply to objects only
                return type(value) in _OTHER_JSON["object"]
            for name in required:
                if name not in value:
                    return False
            for name, item in value.items():
                test = compiled.get(name)
                if test is not None:
                    if not test(item):
                        return False
                elif closed or (extra_check is not None and not extra_check(item)):
                    return False
            return True

        return [check]

    def _array(self, schema: Mapping[str, Any]) -> list[Check]:
        checks: list[Check] = []
        if "items" in schema:
            test = self.compile(schema["items"])
            checks.append(lambda v: all(map(test, v)) if type(v) is list else type(v) in _OTHER_JSON["array"])
        low, high = _bound(schema, "minItems"), _bound(schema, "maxItems")
        if low is not None:
            checks.append(lambda v: len(v) >= low if type(v) is list else type(v) in _OTHER_JSON["array"])
        if high is not None:
            checks.append(lambda v: len(v) <= high if type(v) is list else type(v) in _OTHER_JSON["array"])
        return checks

    def _values(self, schema: Mapping[str, Any]) -> list[Check]:
        checks: list[Check] = []
        for key in ("enum", "const"):
            if key in schema:
                allowed = schema[key] if key == "enum" else [schema[key]]
                if not isinstance(allowed, list):
                    raise _Unsupported
                checks.append(_one_of(allowed))
        low, high = _bound(schema, "minLength"), _bound(schema, "maxLength")
        if low is not None:
            checks.append(lambda v: len(v) >= low if type(v) is str else type(v) in _OTHER_JSON["string"])
        if high is not None:
            checks.append(lambda v: len(v) <= high if type(v) is str else type(v) in _OTHER_JSON["string"])
        for key, test in _LIMITS.items():
            if key in schema:
                limit = schema[key]
                if not _is_number(limit):
                    raise _Unsupported
                checks.append(_within(test, limit))
        return checks


_LIMITS: dict[str, Callable[[Any, Any], bool]] = {
    "minimum": lambda v, limit: v >= limit,
    "maximum": lambda v, limit: v <= limit,
    "exclusiveMinimum": lambda v, limit: v > limit,
    "exclusiveMaximum": lambda v, limit: v < limit,
}


def _within(test: Callable[[Any, Any], bool], limit: object) -> Check:
    return lambda v: test(v, limit) if _is_number(v) else type(v) in _OTHER_JSON["number"]


def _bound(schema: Mapping[str, Any], key: str) -> int | None:
    value = schema.get(key)
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise _Unsupported
    return value


def _one_of(allowed: list[Any]) -> Check:
    """Membership in an enum, for strings, None and ints only; anything else is left to jsonschema
    (which tells True from 1 and treats 1.0 as 1)."""
    strings = {a for a in allowed if type(a) is str}
    ints = {a for a in allowed if type(a) is int}
    none = any(a is None for a in allowed)

    def check(value: object) -> bool:
        kind = type(value)
        if kind is str:
            return value in strings
        if kind is int:
            return value in ints
        return value is None and none

    return check
