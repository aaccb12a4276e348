"""A worker class's settings, checked when the class is defined.

Each setting of the wrong kind fails at import, with a `ConfigurationError` naming the worker and
the setting, rather than as a TypeError deep in a run (or, for a model name, after other calls
of the run were paid for). Nothing here imports a provider SDK.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

from tools import Tool
from tools._numbers import is_count
from tools.errors import ConfigurationError, ModelNameError, excerpt

from ._output import is_model_class
from ._resolve import check_model

if TYPE_CHECKING:
    from ._worker import Worker

__all__ = ["check_class", "check_model_of", "listed"]


def listed(cls: type[Worker], attr: str, what: str) -> list[Any]:
    """`tools` or `handoffs` as the list it must be: one tool or class, a string (iterated
    letter by letter), a mapping (iterated by its keys) or None is a mistake, said plainly."""
    value = getattr(cls, attr)
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence | AbstractSet):
        one = getattr(value, "name", None) if isinstance(value, Tool) else getattr(value, "__name__", None)
        hint = f"; write {attr} = [{one}]" if isinstance(value, Tool | type) else ""
        raise ConfigurationError(
            f"worker {cls.__name__}: {attr} must be a list of {what}, got {_quoted(value)}{hint}"
        )
    return list(value)


def check_class(cls: type[Worker]) -> None:
    """Every setting but `tools` (made into tools by the caller) and `handoffs`' entries."""
    _check_numbers(cls)
    _check_types(cls)
    _check_flags(cls)
    if cls.instructions is not None and not isinstance(cls.instructions, str):
        raise ConfigurationError(
            f"worker {cls.__name__}: instructions must be a string, got {_quoted(cls.instructions)}"
        )
    # `model` is checked when the worker is made (`Worker.__init__`): the class's may be a
    # placeholder that every instance replaces.
    if cls.summary_model is not None:
        check_model_of(cls.__name__, "summary_model", cls.summary_model)


def _quoted(value: object) -> str:
    return excerpt(repr(value) if isinstance(value, str) else value, 80)


def _unset(spec: object) -> bool:
    return isinstance(spec, str) and spec == ""


def check_model_of(worker: str, attr: str, spec: object) -> None:
    """Its form only ("provider:name" with a known provider, or a model object): no SDK loads."""
    try:
        check_model(spec)
    except ModelNameError as exc:
        raise ModelNameError(spec, f"{exc.reason} (worker {worker}, {attr})") from None


def _check_numbers(cls: type[Worker]) -> None:
    """The numeric settings, each of its type and range, so that a wrong one fails when the
    class is defined rather than in a run (where "big" as a window failed deep in arithmetic)."""
    name = cls.__name__
    for attr in ("max_turns", "max_tokens", "loop_limit"):
        value = getattr(cls, attr)
        if not is_count(value, 1):
            raise ConfigurationError(f"worker {name}: {attr} must be a positive int, got {value!r}")
    for attr in ("output_repairs", "argument_repairs", "truncation_retries"):
        value = getattr(cls, attr)
        if not is_count(value, 0):
            raise ConfigurationError(f"worker {name}: {attr} must be an int of 0 or more, got {value!r}")
    for attr in ("context_window", "max_result_chars"):
        value = getattr(cls, attr)
        if value is not None and not is_count(value, 1):
            raise ConfigurationError(f"worker {name}: {attr} must be None or a positive int, got {value!r}")
    if cls.context_window is not None and cls.context_window <= cls.max_tokens:
        raise ConfigurationError(
            f"worker {name}: context_window {cls.context_window} leaves no room for a prompt beside "
            f"max_tokens {cls.max_tokens}"
        )
    temperature = cls.temperature
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 2
    ):
        raise ConfigurationError(f"worker {name}: temperature must be None or 0 to 2, got {temperature!r}")


def _check_flags(cls: type[Worker]) -> None:
    # "no" is true: compaction = "no" turned compaction on.
    for attr in ("compaction", "count_tokens"):
        value = getattr(cls, attr)
        if not isinstance(value, bool):
            raise ConfigurationError(
                f"worker {cls.__name__}: {attr} must be True or False, got {_quoted(value)}"
            )


def _check_types(cls: type[Worker]) -> None:
    """`input` and `output` are str or pydantic models; an output model is a JSON object."""
    name = cls.__name__
    for attr in ("output", "input"):
        value = getattr(cls, attr)
        if value is not str and not is_model_class(value):
            raise ConfigurationError(f"worker {name}: {attr} must be str or a pydantic model, got {value!r}")
    if cls.output is not str:
        kind = cls.output.model_json_schema().get("type")  # type: ignore[union-attr]
        if kind != "object":  # both APIs take only objects as tool arguments and structured output
            raise ConfigurationError(
                f"worker {name}: output must be a model with fields (a JSON object), not a {kind or 'root'}"
                " schema; wrap it in a model with one field"
            )
