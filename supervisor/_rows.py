"""The rows both SQL stores write and read: SQLite and PostgreSQL keep the same columns in the
same order (a PostgreSQL run exports into a SQLite file as it is), so one codec serves both."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._calls import CallRecord, call_json
from ._json import event_json
from ._store import RunRecord, StepRecord

__all__ = ["call_item", "call_row", "event_row", "run_from_row"]


def event_row(item: tuple[str, Any, float]) -> tuple[Any, ...]:
    """An `events` row of (run id, event, when)."""
    run_id, event, at = item
    return (run_id, event.kind, at, event_json(event))


def call_row(run_id: str, record: CallRecord, at: float) -> tuple[Any, ...]:
    """A `calls` row of a journal record."""
    kind, body = call_json(record.value)
    return (run_id, record.key, kind, body, at)


def call_item(item: tuple[str, CallRecord, float]) -> tuple[Any, ...]:
    """`call_row` of one buffered (run id, record, when)."""
    return call_row(*item)


def run_from_row(row: tuple[Any, ...], steps: Mapping[str, StepRecord]) -> RunRecord:
    """The run of a `runs` row, with its finished steps."""
    run_id, goal, status, plan, workers, usage, output, error, created, updated, owner, aborted_by = row
    return RunRecord(
        run_id=run_id,
        goal=goal,
        status=status,
        plan=json.loads(plan) if plan else None,
        workers=tuple(json.loads(workers)),
        usage=json.loads(usage),
        output_json=output,
        error=error,
        steps=steps,
        created_at=created,
        updated_at=updated,
        owner=owner,
        aborted_by=aborted_by,
    )
