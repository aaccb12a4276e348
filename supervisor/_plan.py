"""Plans: `Plan` and `Step`, the rules a plan must keep, and the planner's output schema.

One set of rules serves plans written in Python (`run_plan`) and plans from the planner model:
known workers, inputs that validate against each worker's `input`, dependencies that exist and
form a DAG, unique ids, and a length within `max_steps`. For the planner the rules are also built
into its output model, so a broken plan goes back to it with the exact problems (re-planning).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tools._errors_base import json_path
from tools.errors import PlanError, WorkerInputError, excerpt
from workers import Worker
from workers._records import fast_init

__all__ = ["Plan", "Step", "check_plan", "planner_output_model"]


@fast_init
@dataclass(frozen=True, slots=True)
class Step:
    """One step of a plan: a worker, its input, and the steps it waits for.

    Attributes:
        id: Unique within the plan.
        worker: The worker's name (its class name).
        input: A string, the worker's input model, or a dict of it.
        depends_on: Ids of the steps whose outputs this step needs.
        reason: Why this worker does this step (the planner's words, kept for the trace).
    """

    id: str
    worker: str
    input: Any = ""
    depends_on: Sequence[str] = ()
    reason: str = ""

    def __post_init__(self) -> None:
        depends_on: Any = self.depends_on
        if type(depends_on) is not tuple or (depends_on and not all(type(d) is str for d in depends_on)):
            object.__setattr__(self, "depends_on", _ids(self.id, depends_on))
        if type(self.id) is not str or not self.id or type(self.worker) is not str or not self.worker:
            for name in ("id", "worker"):
                value = getattr(self, name)
                if not isinstance(value, str) or not value:
                    raise PlanError(
                        [f"step {excerpt(self.id)}: {name} must be a non-empty string, got {excerpt(value)}"],
                        0,
                    )


def _ids(step: object, depends_on: Any) -> tuple[str, ...]:
    """The ids a step depends on, as a tuple: one id for a string ("a" means ["a"], not its
    letters), none for None, a list or a set of them; anything else is a PlanError."""
    if isinstance(depends_on, str):
        return (depends_on,)
    if depends_on is None:
        return ()
    ids = (
        tuple(depends_on)
        if isinstance(depends_on, Iterable) and not isinstance(depends_on, Mapping)
        else None
    )
    if ids is None or not all(isinstance(d, str) for d in ids):
        raise PlanError(
            [f"step {step!r}: depends_on must be a list of step ids, got {excerpt(depends_on)}"], 0
        )
    return ids


@fast_init
@dataclass(frozen=True, slots=True)
class Plan:
    """Steps to run; a step starts as soon as the steps it depends on are done."""

    steps: Sequence[Step] = field(default_factory=tuple)
    reasoning: str = ""

    def __post_init__(self) -> None:
        """Steps are kept as a tuple (a generator would be used up by the check, leaving nothing
        to run); a dict is read as a step's fields, as the planner writes them."""
        steps = self.steps
        if type(steps) is tuple and all(type(s) is Step for s in steps):  # the usual case: as it is
            return
        if isinstance(steps, (str, bytes, Mapping)) or not isinstance(steps, Iterable):
            raise PlanError([f"steps must be a list of Step, got {excerpt(steps)}"], 0)
        object.__setattr__(self, "steps", tuple(_step(i, item) for i, item in enumerate(steps)))


def _step(index: int, item: object) -> Step:
    if isinstance(item, Step):
        return item
    if isinstance(item, Mapping):
        try:
            return Step(**item)
        except TypeError as exc:  # a field missing, or one Step does not have
            raise PlanError([f"step {index}: {exc} (got {excerpt(item)})"], 0) from None
    raise PlanError([f"step {index}: not a Step, got {excerpt(item)}"], 0)


def _cycle(steps: Sequence[Step], done: set[str]) -> list[str] | None:
    """A dependency cycle among `steps`, as a list of ids, or None."""
    graph = {s.id: [d for d in s.depends_on if d not in done] for s in steps}
    state: dict[str, int] = {}  # 1: on the current path, 2: finished

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
            if nxt in graph and state.get(nxt) is None:
                found = visit(nxt, [*path, nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for start in graph:
        if state.get(start) is None:
            found = visit(start, [start])
            if found:
                return found
    return None


def check_plan(
    plan: Plan, workers: Mapping[str, Worker], max_steps: int | None, done: Mapping[str, object] | None = None
) -> list[str]:
    """Every way `plan` breaks the rules, as readable lines (empty when it is valid).

    `done` holds the ids of steps already finished (when re-planning), which steps may depend on.
    """
    finished = set(done or ())
    steps = list(plan.steps)
    issues: list[str] = []
    if not steps:
        return ["the plan has no steps"]
    if max_steps is not None and len(steps) + len(finished) > max_steps:  # a run's steps, not a plan's
        if finished:
            issues.append(
                f"the plan has {len(steps)} new steps and {len(finished)} are finished; the run may "
                f"take {max(max_steps - len(finished), 0)} more"
            )
        else:
            issues.append(f"the plan has {len(steps)} steps; at most {max_steps} are allowed")
    ids = [s.id for s in steps]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        issues.append(f"step id {dup!r} is used more than once")
    for reused in sorted(set(ids) & finished):
        issues.append(f"step id {reused!r} is already a finished step")
    known = set(ids) | finished
    for step in steps:
        issues.extend(_step_issues(step, workers, known))
    cycle = _cycle([s for s in steps if all(d in known for d in s.depends_on)], finished)
    if cycle:
        issues.append(f"steps {' -> '.join(cycle)} form a cycle")
    return issues


def _step_issues(step: Step, workers: Mapping[str, Worker], known: set[str]) -> list[str]:
    """What is wrong with one step on its own: its worker, its input, its dependencies."""
    issues: list[str] = []
    worker = workers.get(step.worker)
    if worker is None:
        issues.append(
            f"step {step.id!r}: unknown worker {step.worker!r} (workers: {', '.join(sorted(workers))})"
        )
    elif type(worker).prepare is Worker.prepare:  # an overridden prepare builds the input at run time
        try:
            worker.task_text(step.input)
        except WorkerInputError as exc:
            first = exc.errors[0] if exc.errors else {}
            loc = json_path(first.get("loc", ()))
            got = excerpt(repr(first.get("input", step.input)), 80)
            issues.append(
                f"step {step.id!r}: input for {step.worker} does not validate: {loc}: {first.get('msg')} "
                f"(got {got})"
            )
    for dep in step.depends_on:
        if dep == step.id:
            issues.append(f"step {step.id!r} depends on itself")
        elif dep not in known:
            issues.append(f"step {step.id!r} depends on unknown step {dep!r}")
    return issues


def planner_output_model(
    workers: Mapping[str, Worker], max_steps: int | None, done: Mapping[str, object]
) -> type:
    """The pydantic model the planner must answer with.

    Each step is tied to its worker: `worker` is one of the names, and `input` is that worker's
    input model (a discriminated union), so the JSON Schema offered to the planner is exact. The
    rules a schema cannot say (dependencies, cycles, length) run as a validator, so their
    failures reach the planner as repair prompts too.
    """
    from typing import Annotated, Literal

    from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, create_model, model_validator

    variants = []
    for name, worker in workers.items():
        kind = type(worker).input
        variants.append(
            create_model(
                f"{name}Step",
                __config__=ConfigDict(extra="forbid"),
                id=(str, Field(min_length=1, description="A short unique id, like 'lookup'")),
                worker=(Literal[name], ...),  # type: ignore[arg-type]
                input=(kind, Field(description=f"The task for {name}")),
                depends_on=(
                    list[str],
                    Field(default_factory=list, description="Ids of steps whose output this needs"),
                ),
                reason=(str, Field(description=f"Why {name} does this step")),
            )
        )
    union = functools.reduce(operator.or_, variants)
    step_type = variants[0] if len(variants) == 1 else Annotated[union, Field(discriminator="worker")]

    class PlanOutput(BaseModel):
        model_config = ConfigDict(extra="forbid")
        reasoning: str = Field(description="How the steps reach the goal")
        steps: list[step_type]  # type: ignore[valid-type]
        _plan: Plan | None = PrivateAttr(default=None)  # the checked plan, built once

        @model_validator(mode="after")
        def _rules(self) -> PlanOutput:
            try:
                plan = to_plan(self)
            except PlanError as exc:  # a rule a step checks itself: told to the planner as the rest
                raise ValueError("; ".join(exc.issues)) from None
            issues = check_plan(plan, workers, max_steps, done)
            if issues:
                raise ValueError("; ".join(issues))
            self._plan = plan
            return self

    return PlanOutput


def to_plan(output: Any) -> Plan:
    """The `Plan` of a planner output."""
    checked = getattr(output, "_plan", None)
    if checked is not None:
        return checked  # type: ignore[no-any-return]
    steps = tuple(Step(s.id, s.worker, s.input, tuple(s.depends_on), s.reason) for s in output.steps)
    return Plan(steps, output.reasoning)
