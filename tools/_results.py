"""Tool results as the text the model reads: deterministic, and bounded in size."""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any

from ._jsontext import json_encoder

__all__ = ["DEFAULT_MAX_RESULT_CHARS", "serialize_result", "truncate_result"]

DEFAULT_MAX_RESULT_CHARS = 20_000


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump") and hasattr(type(value), "model_fields"):  # a pydantic model
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return str(value)


_SORTED = json_encoder(sort_keys=True, ensure_ascii=False, default=_plain, separators=(", ", ": "))


def serialize_result(value: Any) -> str:
    """The same value always gives the same text: strings as they are, the rest as sorted JSON."""
    if isinstance(value, str):
        return value
    if hasattr(value, "model_dump_json") and hasattr(type(value), "model_fields"):  # a pydantic model
        return str(value.model_dump_json())
    try:
        return _SORTED(value)
    # Keys that cannot be sorted (mixed types), values JSON cannot hold, a value inside itself.
    except (TypeError, ValueError, RecursionError):
        try:
            return json.dumps(value, ensure_ascii=False, default=_plain, separators=(", ", ": "))
        except (TypeError, ValueError):
            return repr(value)


def truncate_result(text: str, limit: int | None = DEFAULT_MAX_RESULT_CHARS) -> str:
    """Cut `text` to `limit` characters with a visible marker saying how much was removed."""
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}\n[truncated: {len(text) - limit} of {len(text)} characters removed]"
