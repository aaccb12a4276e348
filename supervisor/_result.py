"""What a supervisor run returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from workers import Handoff, Usage
from workers._records import fast_init

from ._plan import Plan

__all__ = ["RunResult", "StepResult"]


@fast_init
@dataclass(frozen=True, slots=True)
class StepResult:
    """One finished step.

    Attributes:
        step: The step id.
        worker: The worker that produced the output (the last one, after any handoffs).
        output: The validated output.
        usage: Usage of every worker run of this step (retries and handoffs included).
        attempts: How many times the step ran.
        handoffs: The handoffs on the way, in order (each with its reason).
    """

    step: str
    worker: str
    output: Any
    usage: Usage
    attempts: int = 1
    handoffs: Sequence[Handoff] = ()


@fast_init
@dataclass(frozen=True, slots=True)
class RunResult:
    """The result of `Supervisor.run` or `run_plan`.

    Attributes:
        output: The answer to the goal (the supervisor's output model, or text).
        run_id: The run's id.
        usage: Tokens and cost of every model call of the run (`usage.cost_usd`).
        steps: Each finished step by id.
        plan: The plan that ran (the last one, after any re-planning).
        status: "succeeded".
        usage_by_worker: Usage per worker (the planner and the final answer included).
    """

    output: Any
    run_id: str
    usage: Usage
    steps: Mapping[str, StepResult]
    plan: Plan
    status: Literal["succeeded"] = "succeeded"
    usage_by_worker: Mapping[str, Usage] = field(default_factory=dict)
