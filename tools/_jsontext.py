"""JSON text from an encoder built once: `json`'s own text without its per-call set-up; and
JSON text read as JSON defines it (`json_value`).

`json.dumps` with options, and `JSONEncoder.encode` alike, build a new C encoder at every call
and wrap it in Python: for the small values the framework encodes on every tool call and
journal record (canonical arguments, tool results, call records) that set-up costs about as
much as the encoding. `json_encoder` builds the json module's C encoder once, with the same
arguments `JSONEncoder` would pass it, so the text is the same.

Without a circular-reference check (the C encoder's markers): a value that contains itself
raises `RecursionError` instead of `ValueError`; callers that encode values from users catch it.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any

__all__ = [
    "NotJSONNumber",
    "canonical_json",
    "json_encoder",
    "json_value",
    "refused_number_rule",
    "refused_numbers",
]


def json_encoder(
    *,
    default: Callable[[Any], Any] | None = None,
    sort_keys: bool = False,
    ensure_ascii: bool = True,
    separators: tuple[str, str] = (",", ":"),
) -> Callable[[Any], str]:
    """`lambda value: json.dumps(value, ..., check_circular=False)` with these options, faster."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without the json module's C speedups
        options = dict(default=default, sort_keys=sort_keys, ensure_ascii=ensure_ascii, separators=separators)
        return json.JSONEncoder(check_circular=False, **options).encode  # type: ignore[arg-type]
    strings = json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
    item_separator, key_separator = separators
    refuse = _refuse if default is None else default
    # (markers, default, encoder, indent, key_separator, item_separator, sort_keys, skipkeys, allow_nan)
    encode = make(None, refuse, strings, None, key_separator, item_separator, sort_keys, False, True)
    join = "".join
    return lambda value: join(encode(value, 0))


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


canonical_json = json_encoder(sort_keys=True, default=str)
"""Sorted, compact JSON, anything else as its `str`: the same text for equal values (tool
arguments compared, a handoff's task seen again)."""


class NotJSONNumber(ValueError):
    """NaN, Infinity, -Infinity, or a number too large for a float (1e999): Python's `json`
    reads them (as nan and inf), JSON has none of them."""

    def __init__(self, literal: str) -> None:
        super().__init__(refused_number_rule(literal))
        self.literal = literal


def refused_number_rule(literal: str) -> str:
    """What is wrong with a number literal JSON does not have, for the model to repair."""
    return f"{literal} is not valid JSON (JSON numbers are finite: no NaN, no Infinity, none past 1.8e308)"


def _refuse_constant(literal: str) -> Any:
    raise NotJSONNumber(literal)


def _finite(literal: str) -> float:
    value = float(literal)
    if value - value != 0.0:  # inf - inf is nan: the literal overflowed
        raise NotJSONNumber(literal)
    return value


json_value: Callable[[str], Any] = json.JSONDecoder(
    parse_float=_finite, parse_constant=_refuse_constant
).decode
"""`json.loads` for text from outside (a model's tool arguments), refusing the numbers JSON has
not with `NotJSONNumber`: a nan compares false with every bound, so `amount <= 100` let it
through. Built once, it costs no more than `json.loads` (which builds nothing only without
options): the check runs for float literals alone. Raises ValueError, and RecursionError for
text nested deeper than the decoder recurses."""


class _Refused(str):
    """A refused number literal, left where it stood so that its path can be found."""


def _mark(literal: str) -> Any:
    value = float(literal)
    return value if value - value == 0.0 else _Refused(literal)


_MARKED = json.JSONDecoder(parse_float=_mark, parse_constant=_Refused).decode


def refused_numbers(text: str) -> list[tuple[tuple[str | int, ...], str]]:
    """Where `text` has numbers JSON has not, as (path, literal) in document order: the
    failure path of `json_value`, which stops at the first and cannot say where it stood."""
    try:
        value = _MARKED(text)
    except (ValueError, RecursionError):
        return []
    found: list[tuple[tuple[str | int, ...], str]] = []
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:  # bounded: every node of the decoded value is visited once
        path, node = stack.pop()
        if type(node) is _Refused:
            found.append((path, str(node)))
        elif type(node) is dict:
            stack.extend(((*path, key), item) for key, item in reversed(node.items()))
        elif type(node) is list:
            stack.extend(((*path, index), item) for index, item in reversed(list(enumerate(node))))
    return found
