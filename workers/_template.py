"""What every request of a worker class starts from, and the limits of its model.

Both are the same for every run of a class with the same settings, so they are built once per
class and kept on the class's plan; a turn only adds its conversation and `max_tokens`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tools.errors import ConfigurationError

from ._handoff import handoff_tools
from ._limits import DEFAULT_OUTPUT_LIMIT, known_output_limit, temperature_problem
from ._model import ModelRequest, ToolSpec
from ._output import OutputPlan
from ._tokens import estimate_prompt_tokens
from ._window import context_window

if TYPE_CHECKING:
    from ._worker import Worker

__all__ = ["model_limits", "request_template"]


def request_template(
    cls: type[Worker], plan: OutputPlan, workers: Mapping[str, Any]
) -> tuple[dict[str, tuple[str, Any]], ModelRequest, int]:
    """A worker's handoff actions, the request every turn starts from, and the estimated
    tokens that request carries besides the conversation.

    Handoffs named by string depend on the run's workers: a class with any is built each time.
    """
    key = (plan, cls.instructions, cls.max_tokens, cls.temperature, tuple(cls.handoffs))
    cached = cls._plan.bases.get(key)
    if cached is not None:
        return cached
    name = cls.__name__
    handoffs = handoff_tools(name, tuple(cls.handoffs), workers)
    clash = sorted(set(handoffs) & set(cls._plan.tools))
    if clash:
        raise ConfigurationError(f"worker {name}: tool {clash[0]!r} has the name of a handoff action")
    handoff_specs = tuple(ToolSpec(t.name, t.description, t.parameters) for _, t in handoffs.values())
    tools = cls._plan.specs + handoff_specs + ((plan.tool,) if plan.tool is not None else ())
    system = "\n\n".join(p for p in (cls.instructions, plan.instructions) if p)
    base = ModelRequest(
        messages=(),
        system=system,
        tools=tools,
        tool_choice="required" if plan.mode == "tool" else "auto",
        output=plan.spec,
        max_tokens=cls.max_tokens,
        temperature=cls.temperature,
    )
    overhead = estimate_prompt_tokens(base) + (base.output.size // 4 if base.output is not None else 0)
    if not any(isinstance(target, str) for target in cls.handoffs):
        cls._plan.bases[key] = (handoffs, base, overhead)
    return handoffs, base, overhead


def model_limits(cls: type[Worker], mid: str) -> tuple[int, int]:
    """The model's output limit (the known one, else at least the worker's max_tokens) and the
    worker's context window on it: looked up by model name once per class and model.

    Raises:
        ConfigurationError: the worker's settings are ones this model is known to refuse (every
            call would be a 400), found before the first call.
    """
    # Settings may change after the class is made: they are part of the key.
    key = (mid, cls.context_window, cls.max_tokens, cls.temperature)
    limits = cls._plan.limits.get(key)
    if limits is None:
        problem = temperature_problem(mid, cls.temperature)
        known = known_output_limit(mid)
        if problem is None and known is not None and cls.max_tokens > known:
            # Refused, not lowered in silence: the worker would run with another setting than
            # the one its author wrote (and sized budgets by); every call would be a 400.
            problem = f"max_tokens {cls.max_tokens} is above {mid}'s output limit of {known}: lower it"
        if problem is not None:
            raise ConfigurationError(f"worker {cls.__name__}: {problem}")
        window = cls.context_window or context_window(mid)
        top = known if known is not None else max(DEFAULT_OUTPUT_LIMIT, cls.max_tokens)
        limits = cls._plan.limits[key] = (top, window)
    return limits
