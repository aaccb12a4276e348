"""Handoffs as the model sees them: one typed `transfer_to_<Worker>` action per allowed target.

The action's payload is the target's input (its schema, hoisted so references resolve) plus the
reason for handing over. The worker loop validates the payload and ends the run with a
`Handoff`; the supervisor validates again, records the reason and routes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tools import Tool
from tools.errors import ConfigurationError

from ._output import is_model_class

__all__ = ["Handoff", "HANDOFF_PREFIX", "handoff_tools"]

HANDOFF_PREFIX = "transfer_to_"


@dataclass(frozen=True, slots=True)
class Handoff:
    """A worker handing its task over to another.

    Attributes:
        source: The worker handing over.
        target: The worker asked to take over.
        input: The payload for the target: a string, or a dict of its input model.
        reason: Why, in the model's words (kept for the trace: why the run went where it went).
    """

    source: str
    target: str
    input: Any
    reason: str


def _never_called(**_: Any) -> None:
    raise RuntimeError("a handoff action is routed by the supervisor, never run as a tool")


def _payload_schema(target_input: object) -> dict[str, Any]:
    from tools import strict_schema

    if not is_model_class(target_input):
        return {
            "type": "object",
            "properties": {"reason": {"type": "string"}, "input": {"type": "string"}},
            "required": ["reason", "input"],
            "additionalProperties": False,
        }
    schema = strict_schema(copy.deepcopy(target_input.model_json_schema()))  # type: ignore[attr-defined]
    defs = schema.pop("$defs", None)
    payload: dict[str, Any] = {
        "type": "object",
        "properties": {"reason": {"type": "string"}, "input": schema},
        "required": ["reason", "input"],
        "additionalProperties": False,
    }
    if defs:
        payload["$defs"] = defs  # "#/$defs/..." references resolve from the root
    return payload


def handoff_tools(
    source: str, targets: tuple[Any, ...], workers: Mapping[str, Any]
) -> dict[str, tuple[str, Tool]]:
    """The handoff actions of a worker: {tool name: (target name, tool)}.

    Targets are Worker classes or names of workers in this run (`workers`).
    """
    actions: dict[str, tuple[str, Tool]] = {}
    if not targets:
        return actions
    for target in targets:
        if isinstance(target, str):
            instance = workers.get(target)
            if instance is None:
                raise ConfigurationError(
                    f"worker {source}: handoff target {target!r} is not a worker of this run"
                )
            cls = type(instance)
        else:
            cls = target
        name = cls.__name__
        doc = (cls.__dict__.get("__doc__") or "").strip()
        description = (
            f"Hand this task over to {name}" + (f": {doc}" if doc else ".") + " Say why in `reason`."
        )
        tool = Tool.from_schema(
            _never_called,
            name=f"{HANDOFF_PREFIX}{name}",
            description=description,
            parameters=_payload_schema(cls.input),
        )
        actions[tool.name] = (name, tool)
    return actions
