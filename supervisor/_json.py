"""JSON text of the journal's records, the `json` module's own text at less of its cost.

The journal encodes a few dozen small records per run (call records, usage sums, trace events).
`json.dumps` and `JSONEncoder.encode` build a new C encoder at every call and wrap it in Python
(about a third of the cost of encoding a record); here the C encoders are built once
(`tools._jsontext`). A usage sum of the usual keys and numbers is formatted directly. The text
is always what `json` makes of the same value: the same C encoder, or, for a usage sum, the
same separators and `repr` of each number (anything unusual goes to `json.dumps` itself).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from tools._jsontext import json_encoder
from workers import Usage

__all__ = ["compact", "event_json", "usage_json"]


def _fields(value: Any) -> Any:
    """A dataclass as the dict of its fields (nested ones in turn, by the encoder); else `str`."""
    fields = getattr(type(value), "__dataclass_fields__", None)
    if fields is None:
        return str(value)
    return {name: getattr(value, name) for name in fields}


compact = json_encoder()
"""`json.dumps(value, separators=(",", ":"))`: a call record's JSON."""

event_json = json_encoder(default=_fields)
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
