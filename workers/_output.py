"""A worker's output: how it is requested from the model, parsed and validated.

Three modes: "text" for `output = str`; "native" (the provider's structured output, JSON text
matching the schema); "tool" (a final-answer tool whose arguments are the output). Validation
errors are pydantic's (loc, msg, input), sent back to the model as a repair prompt.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, cast

from tools import strict_schema
from tools._jsontext import json_value, refused_number_rule, refused_numbers
from tools._schema import in_value, json_path
from tools.errors import excerpt

from ._model import OutputSpec, ToolSpec

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

__all__ = ["OUTPUT_TOOL", "OutputMode", "OutputPlan", "input_errors", "is_model_class", "repair_prompt"]

OutputMode = Literal["text", "native", "tool"]
OUTPUT_TOOL = "final_result"
Errors = list[dict[str, Any]]


def is_model_class(value: object) -> bool:
    """Whether `value` is a pydantic model class (without importing pydantic to find out)."""
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(value, type) and issubclass(value, pydantic.BaseModel)


def _errors(exc: ValidationError, value: object = None) -> Errors:
    """pydantic's errors, each `loc` a path into `value` (the steps pydantic adds that are no key
    or index, a union member's name, left out) when the value is known."""
    errors = exc.errors()
    return [
        {
            "loc": tuple(e["loc"]) if value is None else in_value(value, tuple(e["loc"])),
            "msg": e["msg"],
            "input": e.get("input"),
            "type": e["type"],
        }
        for e in errors
    ]


class OutputPlan:
    """How one worker class gets its output; built once per class."""

    __slots__ = ("output_type", "mode", "tool_name", "schema", "spec", "tool")

    def __init__(
        self, output_type: type[BaseModel] | type[str], mode: OutputMode, tool_name: str = OUTPUT_TOOL
    ) -> None:
        self.output_type = output_type
        self.mode = mode
        self.tool_name = tool_name
        self.schema: dict[str, Any] | None = None
        if mode != "text":
            self.schema = strict_schema(self._model.model_json_schema())
        # Built once: every run of the worker offers the same request parts.
        self.spec: OutputSpec | None = None
        self.tool: ToolSpec | None = None
        if mode == "native" and self.schema is not None:
            # OpenAI wants [a-zA-Z0-9_-]{1,64}: a generic model is named like "Page[int]"
            name = re.sub(r"[^a-zA-Z0-9_-]", "_", self.output_type.__name__)[:64] or "output"
            self.spec = OutputSpec(name, self.schema)
        if mode == "tool" and self.schema is not None:
            description = (
                f"Deliver the final answer as a {self.output_type.__name__}. Call this once, when done."
            )
            self.tool = ToolSpec(self.tool_name, description, self.schema, is_output=True)

    @property
    def _model(self) -> type[BaseModel]:
        return cast("type[BaseModel]", self.output_type)

    @property
    def instructions(self) -> str:
        """What the system prompt must add so the model knows how to answer."""
        if self.mode == "tool":
            return f"When you have the final answer, call the `{self.tool_name}` tool with it."
        if self.mode == "native":
            return "Answer with JSON that matches the requested schema."
        return ""

    def from_text(self, text: str) -> tuple[Any, Errors]:
        """The output from a final text answer: (value, []) or (None, errors)."""
        if self.mode == "text":
            if text.strip():
                return text, []
            return None, [{"loc": (), "msg": "the answer is empty", "input": text}]
        if self.mode == "tool":
            msg = f"answer by calling the `{self.tool_name}` tool; plain text is not an answer"
            return None, [{"loc": (), "msg": msg, "input": excerpt(text, 200)}]
        from pydantic import ValidationError

        try:
            return self._model.model_validate_json(_strip_fence(text)), []
        except ValidationError as exc:
            return None, _errors(exc, _json_or_none(_strip_fence(text)))

    def from_arguments(self, arguments: Mapping[str, Any] | None, raw: str) -> tuple[Any, Errors]:
        """The output from the final-answer tool's arguments."""
        from pydantic import ValidationError

        if arguments is None:
            refused = refused_numbers(raw)  # NaN, Infinity, 1e999: the provider did not read them
            if refused:
                return None, [{"loc": p, "msg": refused_number_rule(n), "input": n} for p, n in refused]
            return None, [{"loc": (), "msg": "arguments are not a JSON object", "input": excerpt(raw, 200)}]
        try:
            return self._model.model_validate(arguments), []
        except ValidationError as exc:
            return None, _errors(exc, arguments)


def _strip_fence(text: str) -> str:
    """Models sometimes wrap JSON in a ```json fence even when asked not to."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return stripped


def input_errors(exc: ValidationError, task: object) -> Errors:
    """A task's errors (see `_errors`); a task given as JSON text is placed in its value."""
    return _errors(exc, _json_or_none(task) if isinstance(task, str) else task)


def _json_or_none(text: str) -> object:
    """The output text's value, to place pydantic's errors in it (the failure path only)."""
    try:
        return json_value(text)
    except (ValueError, RecursionError):
        return None


def _shown(value: object) -> str:
    try:
        return json.dumps(value, default=str)
    except (ValueError, RecursionError):  # a value inside itself, or nested too deeply
        return excerpt(value)


def repair_prompt(errors: Errors) -> str:
    """The message telling the model what was wrong with its output, one line per problem, at
    JSON paths as for tool arguments ("$.items[0].qty")."""
    lines = []
    for error in errors[:20]:
        path = json_path(error.get("loc", ()))
        if error.get("type") == "missing":  # its input is the whole object around it: no news
            lines.append(f"- {path}: is required but missing")
            continue
        got = _shown(error.get("input"))
        lines.append(f"- {path}: {excerpt(str(error.get('msg')), 300)} (got {excerpt(got, 120)})")
    return "Your answer did not validate:\n" + "\n".join(lines) + "\nCorrect it and answer again."
