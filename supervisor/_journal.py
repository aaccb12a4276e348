"""Between a run and its store: plans, steps and usage to and from records, typed again on load.

A resumed run gets back typed values: each step's output is validated again against the output
model of the worker that produced it, and each plan input against its worker's input model. A
record that names a worker this supervisor does not have cannot be resumed (`ResumeError`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from tools import serialize_result
from tools.errors import ResumeError
from workers import BudgetEvent, Event, EventSink, NullSink, StepEvent, ToolCallEvent, Worker

from ._calls import usage_data, usage_from
from ._plan import Plan, Step
from ._result import RunResult, StepResult
from ._store import RunRecord, StepRecord, Store

__all__ = [
    "JournalSink",
    "plan_shape",
    "plan_data",
    "restore_plan",
    "restore_steps",
    "step_record",
    "stored_result",
    "usage_data",
    "usage_from",
]


def _plain(value: Any) -> Any:
    return json.loads(value.model_dump_json()) if hasattr(value, "model_dump_json") else value


def plan_data(plan: Plan, version: int = 1, given: bool = False) -> dict[str, Any]:
    """A plan as JSON-able data; `version` counts the plans of the run (1, then one per re-plan);
    `given`: the user wrote it (`run_plan`), so a failed step is never re-planned."""
    steps = [
        {
            "id": s.id,
            "worker": s.worker,
            "input": _plain(s.input),
            "depends_on": list(s.depends_on),
            "reason": s.reason,
        }
        for s in plan.steps
    ]
    data = {"reasoning": plan.reasoning, "steps": steps, "version": version}
    if given:
        data["given"] = True
    return data


def _typed(kind: Any, value: Any, load_json: bool) -> Any:
    if kind is str or not hasattr(kind, "model_validate"):
        return value
    return kind.model_validate_json(value) if load_json else kind.model_validate(value)


def _worker(run_id: str, workers: Mapping[str, Worker], name: str) -> Worker:
    worker = workers.get(name)
    if worker is None:
        raise ResumeError(run_id, f"it used worker {name!r}, which this supervisor does not have")
    return worker


def restore_plan(run_id: str, data: Mapping[str, Any], workers: Mapping[str, Worker]) -> Plan:
    """The stored plan, with inputs typed by their workers' input models."""
    steps = []
    for s in data.get("steps", []):
        kind = type(_worker(run_id, workers, s["worker"])).input
        try:
            task = _typed(kind, s["input"], False)
        except ValueError as exc:  # pydantic's ValidationError: the input model changed since
            raise ResumeError(
                run_id, f"step {s['id']!r} no longer matches {s['worker']}'s input: {exc}"
            ) from None
        if kind is str and not isinstance(task, str):  # it took a model, and takes text now
            raise ResumeError(run_id, f"step {s['id']!r} no longer matches {s['worker']}'s input: text")
        steps.append(Step(s["id"], s["worker"], task, tuple(s["depends_on"]), s["reason"]))
    return Plan(tuple(steps), data.get("reasoning", ""))


def step_record(result: StepResult) -> StepRecord:
    """A finished step as a record (its output as text: JSON for models)."""
    return StepRecord(
        result.step, result.worker, serialize_result(result.output), usage_data(result.usage), result.attempts
    )


def restore_steps(
    run_id: str, records: Mapping[str, StepRecord], workers: Mapping[str, Worker]
) -> dict[str, StepResult]:
    """Finished steps, their outputs typed again by the workers that produced them."""
    restored = {}
    for step_id, record in records.items():
        kind = type(_worker(run_id, workers, record.worker)).output
        try:
            output = _typed(kind, record.output_json, True)
        except ValueError as exc:  # pydantic's ValidationError: the output model changed since
            raise ResumeError(
                run_id, f"step {step_id!r} no longer matches {record.worker}'s output: {exc}"
            ) from None
        restored[step_id] = StepResult(
            step_id, record.worker, output, usage_from(record.usage), record.attempts
        )
    return restored


_JOURNALED = frozenset({"ok", "error", "timeout", "denied"})  # the call journal has these calls
_STEP_KEPT_ELSEWHERE = frozenset({"started", "finished"})  # call keys name attempts; a step row its end


class JournalSink:
    """Forwards every event to the user's sink and hands it, as it is, to the store's trace."""

    __slots__ = ("_inner", "_store", "_run_id")

    def __init__(self, inner: EventSink, store: Store, run_id: str) -> None:
        self._inner = inner
        self._store = store
        self._run_id = run_id

    @property
    def drops_model_calls(self) -> bool:
        """True when nobody but the trace listens: the trace keeps no model-call event."""
        return type(self._inner) is NullSink

    def emit(self, event: Event) -> None:
        """Pass the event on, and journal it (the store serialises it off the event loop).

        Nothing is stored twice: the call journal keeps each model response (usage, latency,
        stop reason, request id) and each tool call that ran (arguments, result, status,
        duration) under a key naming the plan version, the step, the attempt and the worker; a
        finished step has its row (worker, attempts, when), and the run's row its start and end
        (goal, status, error, when). So model-call, finished-tool, run and step start and finish
        events are not kept (a step's retries and failures are, with their errors).
        """
        self._inner.emit(event)
        kind = event.kind
        if kind == "model_call" or kind == "run":
            return
        if isinstance(event, ToolCallEvent) and event.status in _JOURNALED:
            return
        if isinstance(event, StepEvent) and event.status in _STEP_KEPT_ELSEWHERE:
            return
        if isinstance(event, BudgetEvent) and event.action == "reserved":  # one per call: live sinks only
            return
        self._store.add_events(self._run_id, ((event, time.time()),))


def plan_shape(plan: Plan) -> list[tuple[str, str, tuple[str, ...]]]:
    """What must not change for a run to resume: each step's id, worker and dependencies."""
    return [(s.id, s.worker, tuple(s.depends_on)) for s in plan.steps]


def stored_result(record: RunRecord, workers: Mapping[str, Worker], output_type: Any) -> RunResult:
    """The result of a finished run, as stored: asking again returns it and runs nothing."""
    run_id = record.run_id
    output: Any = record.output_json
    if output_type is not str and output is not None:
        output = output_type.model_validate_json(output)
    steps = restore_steps(run_id, record.steps, workers)
    plan = restore_plan(run_id, record.plan, workers) if record.plan else Plan()
    return RunResult(output, run_id, usage_from(record.usage), steps, plan, "succeeded")
