"""The supervisor's own two workers: the planner, whose output is the plan, and the synthesizer,
which answers the goal from the step outputs.

The planner's instructions describe each worker (name, description, input schema); its output
model ties each step to its worker's input and checks the plan's rules, so a broken plan goes
back to the planner with the exact problems, `max_replans` times, before `PlanError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools.errors import OutputValidationError, PlanError
from workers import Model, RunContext, Worker

from ._plan import Plan, planner_output_model, to_plan
from ._result import StepResult

__all__ = ["answer_goal", "make_plan", "planner_class", "synthesizer_class"]

_PLANNER_RULES = """You plan how a team of workers reaches a goal. Use only these workers:

{workers}

Rules: every step names one worker and gives it an input that matches that worker's input schema.
A step that needs the output of other steps lists their ids in depends_on; steps without
dependencies between them run at the same time. Use as few steps as the goal needs{limit}.
Give each step the reason you chose its worker."""


def planner_class(
    workers: Mapping[str, Worker],
    model: str | Model,
    max_steps: int | None,
    max_replans: int,
    done: Mapping[str, StepResult],
) -> type[Worker]:
    """The planner worker for these workers (and the steps already done, when re-planning)."""
    described = "\n".join(
        f"- {name}: {w.description or 'no description'} Input: {_input_text(w)}"
        for name, w in workers.items()
    )
    left = max_steps - len(done) if max_steps else 0  # the run's budget of steps, not each plan's
    limit = f", and at most {left}" if max_steps else ""
    attrs = {
        "__doc__": "Plans which workers do what.",
        "model": model,
        "instructions": _PLANNER_RULES.format(workers=described, limit=limit),
        "output": planner_output_model(workers, max_steps, done),
        "output_repairs": max_replans,
        "max_turns": max_replans + 2,
    }
    return type("Planner", (Worker,), attrs)


async def make_plan(
    planner: type[Worker], goal: str, ctx: RunContext, done: Mapping[str, StepResult], failure: Any
) -> Plan:
    """Ask the planner for a valid plan (re-planning after `failure` when given)."""
    task = f"Goal: {goal}"
    if done:
        lines = "\n".join(f"- {sid} ({r.worker}): done" for sid, r in done.items())
        task += f"\n\nSteps already finished (their outputs are kept; depend on them by id):\n{lines}"
    if failure is not None:
        failed = f"Step {failure.step.id!r} ({failure.worker}) failed: {failure.error}"
        task += f"\n\n{failed}\nPlan the remaining work."
    try:
        result = await planner().run(task, context=ctx, upstream={sid: r.output for sid, r in done.items()})
    except OutputValidationError as error:
        issues = [_issue(e) for e in error.errors] or [str(error)]
        raise PlanError(issues, error.attempts, run_id=ctx.run_id) from error
    return to_plan(result.output)


def synthesizer_class(model: str | Model, output: type[Any]) -> type[Worker]:
    """The worker that answers the goal from the step outputs (into `output`)."""
    attrs = {
        "__doc__": "Answers the goal from the step outputs.",
        "model": model,
        "instructions": "Answer the goal using only the results of the steps. Do not invent facts.",
        "output": output,
    }
    return type("Synthesizer", (Worker,), attrs)


async def answer_goal(
    synthesizer: type[Worker],
    goal: str | None,
    plan: Plan,
    done: Mapping[str, StepResult],
    ctx: RunContext,
    *,
    plain: bool,
) -> Any:
    """The run's output: answered by the synthesizer, or, for a plan run with no goal and plain
    output, the last step's output (a dict by step id when several steps end the plan)."""
    if goal is None and plain:
        needed = {d for s in plan.steps for d in s.depends_on}
        ends = [s.id for s in plan.steps if s.id not in needed]
        return done[ends[0]].output if len(ends) == 1 else {sid: done[sid].output for sid in ends}
    task = f"Goal: {goal or 'summarise the results'}"
    result = await synthesizer().run(task, context=ctx, upstream={sid: r.output for sid, r in done.items()})
    return result.output


def _issue(error: Mapping[str, Any]) -> str:
    """One validation error of a plan as a line: where, what, and what came."""
    from tools._errors_base import json_path
    from tools.errors import excerpt

    return f"{json_path(error.get('loc', ()))}: {error.get('msg')} (got {excerpt(error.get('input'), 120)})"


def _input_text(worker: Worker) -> str:
    import json

    from tools import strict_schema

    kind = type(worker).input
    if kind is str:
        return "a string (the task in words)."
    schema = strict_schema(kind.model_json_schema())  # type: ignore[union-attr]
    return json.dumps(schema, separators=(",", ":"))
