"""JSON text from an encoder built once: `json`'s own text without its per-call set-up.

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

__all__ = ["canonical_json", "json_encoder"]


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
