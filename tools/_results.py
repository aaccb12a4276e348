"""Tool results as the text the model reads: deterministic, and bounded in size."""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any

from ._errors_base import excerpt
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


def _excerpt(value: Any) -> str:
    return excerpt(value, 200)


_SORTED = json_encoder(sort_keys=True, ensure_ascii=False, default=_plain, separators=(", ", ": "))


def serialize_result(value: Any) -> str:
    """The same value always gives the same text: strings as they are, the rest as sorted JSON.

    Never raises: a tool has already run when its result is shown, so a result that is no JSON
    is shown as its `repr` (cut to the worker's limit by the caller), and one that cannot be
    shown at all is said to be so, rather than ending the run or cancelling parallel calls.
    """
    if isinstance(value, str):
        return value
    try:
        if hasattr(value, "model_dump_json") and hasattr(type(value), "model_fields"):  # a pydantic model
            return str(value.model_dump_json())
        return _SORTED(value)
    # Anything, on the failure path only: keys that cannot be sorted (mixed types), values JSON
    # cannot hold, a value inside itself or nested deeper than the encoder recurses, a pydantic
    # field of a type it cannot serialise, a `__str__` that raises.
    except Exception:
        return _unsorted(value)


def _unsorted(value: Any) -> str:
    if hasattr(value, "model_dump_json") and hasattr(type(value), "model_fields"):
        try:  # the fields it can serialise as JSON, the others as their repr (pydantic >= 2.11)
            return str(value.model_dump_json(fallback=_excerpt))
        except Exception:
            pass
    try:
        return json.dumps(value, ensure_ascii=False, default=_plain, separators=(", ", ": "))
    except Exception:
        pass
    try:
        return repr(value)
    except Exception as exc:  # nested deeper than repr recurses, or a __repr__ that raises
        return f"(the result, a {type(value).__name__}, cannot be shown as text: {type(exc).__name__})"


def truncate_result(text: str, limit: int | None = DEFAULT_MAX_RESULT_CHARS) -> str:
    """Cut `text` to `limit` characters with a visible marker saying how much was removed."""
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}\n[truncated: {len(text) - limit} of {len(text)} characters removed]"
