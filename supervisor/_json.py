"""JSON text of the journal's records, the `json` module's own text at less of its cost.

The journal encodes a few dozen small records per run (call records, usage sums, trace events).
`json.dumps` and `JSONEncoder.encode` build a new C encoder at every call and wrap it in Python
(about a third of the cost of encoding a record); here the C encoders are built once. A usage
sum of the usual keys and numbers is formatted directly. The text is always what `json` makes
of the same value: the same C encoder, or, for a usage sum, the same separators and `repr` of
each number (anything unusual goes to `json.dumps` itself).
"""

from __future__ import annotations

import dataclasses
import json
import json.encoder
from collections.abc import Callable, Mapping
from typing import Any

from workers import Usage

__all__ = ["compact", "event_json", "usage_json"]


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _fields(value: Any) -> Any:
    """A dataclass as the dict of its fields (nested ones in turn, by the encoder); else `str`."""
    fields = getattr(type(value), "__dataclass_fields__", None)
    if fields is None:
        return str(value)
    return {name: getattr(value, name) for name in fields}


def _encoder(default: Callable[[Any], Any]) -> Callable[[Any], str]:
    """`json.dumps(value, separators=(",", ":"), default=default)`, its encoder built once."""
    make = getattr(json.encoder, "c_make_encoder", None)  # the C encoder `JSONEncoder` builds per call
    if make is None:  # a Python without the json module's C speedups
        return json.JSONEncoder(separators=(",", ":"), default=default).encode
    # No circular check (markers None): records are trees. The rest as JSONEncoder passes it.
    strings = json.encoder.encode_basestring_ascii
    encode = make(None, default, strings, None, ":", ",", False, False, True)
    join = "".join
    return lambda value: join(encode(value, 0))


compact = _encoder(_refuse)
"""`json.dumps(value, separators=(",", ":"))`: a call record's JSON."""

event_json = _encoder(_fields)
"""A trace event (a dataclass) as the JSON object of its fields, in order; nested dataclasses
become objects too, tuples arrays, and anything else its `str`."""

_USAGE_KEYS = tuple(f.name for f in dataclasses.fields(Usage))  # in the order usage_data writes them


def _template(keys: tuple[str, ...]) -> str:
    return "{" + ", ".join(f'"{key}": %r' for key in keys) + "}"


# By the dict's keys, in order: a step's usage, and a run's (with its running time).
_USAGE_TEMPLATES = {
    _USAGE_KEYS: _template(_USAGE_KEYS),
    (*_USAGE_KEYS, "active_s"): _template((*_USAGE_KEYS, "active_s")),
}
_NUMBERS = frozenset((int, float))
_INF = float("inf")


def usage_json(usage: Mapping[str, Any]) -> str:
    """`json.dumps(dict(usage))`: the same text, formatted directly for the usual keys and numbers."""
    if type(usage) is dict:
        template = _USAGE_TEMPLATES.get(tuple(usage))
        if template is not None:
            values = tuple(usage.values())
            # Numbers only, all finite (a sum of finite numbers that overflows just takes `json`'s path).
            if _NUMBERS.issuperset(map(type, values)) and -_INF < sum(values) < _INF:
                return template % values
    return json.dumps(dict(usage))
