"""The JSON the framework writes (canonical tool arguments, tool results, journal records) comes
from encoders built once; these tests hold them to the text `json.dumps` makes of the same value."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tools import serialize_result
from tools._jsontext import json_encoder

_KEYS = st.text(max_size=8)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)
_OPTIONS: list[dict[str, Any]] = [
    {},
    {"sort_keys": True, "default": str},
    {"sort_keys": True, "ensure_ascii": False, "separators": (", ", ": ")},
    {"separators": (",", ":")},
]


@given(_VALUES)
def test_an_encoder_built_once_writes_what_json_dumps_writes(value: Any) -> None:
    for options in _OPTIONS:
        separators = options.get("separators", (",", ":"))
        expected = json.dumps(value, **{**options, "separators": separators})
        assert json_encoder(**options)(value) == expected


def test_values_json_cannot_hold_go_to_default_or_fail_as_json_does() -> None:
    assert json_encoder(default=str)({"when": {1, 2}}) == json.dumps(
        {"when": {1, 2}}, default=str, separators=(",", ":")
    )
    try:
        json_encoder()({"x": object()})
    except TypeError as error:
        assert "is not JSON serializable" in str(error)
    else:
        raise AssertionError("an object JSON cannot hold was encoded")


def test_a_tool_result_that_contains_itself_is_still_given_to_the_model_as_text() -> None:
    loop: dict[str, Any] = {"name": "loop"}
    loop["self"] = loop
    text = serialize_result(loop)
    assert text.startswith("{") and "loop" in text  # repr's "{...}", not a crash
