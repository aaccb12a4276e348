"""The SQLite store's writes made cheap, with the same text and the same order.

Promises: the journal's JSON is the json module's own text for every value; a write buffered
until the next checkpoint is committed by it, and a later value of the same row replaces an
earlier one still buffered; a checkpoint with no statement commits what came before it; new run
ids are UUIDs of version 7, sorting in the order they were made; the trace tells a step's
attempts apart by its retries, with or without the step starts older stores kept.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
import types
import uuid
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor._json import compact, event_json, usage_json
from supervisor._sqlite import SQLiteStore
from supervisor._store import RunRecord, StepRecord, new_run_id
from supervisor._trace import _Builder
from workers import (
    ApprovalEvent,
    HandoffEvent,
    ModelCallEvent,
    PlanEvent,
    RunEvent,
    StepEvent,
    ToolCallEvent,
    Usage,
)

_SCALARS = (str, int, float, bool, type(None))


def _reference(value: Any) -> Any:
    """An event as data, as the store encoded it before: field by field, tuples as lists."""
    fields = getattr(type(value), "__dataclass_fields__", None)
    if fields is not None:
        return {name: _reference(getattr(value, name)) for name in fields}
    if isinstance(value, tuple | list):
        return [v if v.__class__ in _SCALARS else _reference(v) for v in value]
    return value


EVENTS = [
    RunEvent("r1", "started", "Refund invoice 42 — twice?"),
    StepEvent("s0", "Desk0", "retrying", 2, 'bad "quote"\n'),
    PlanEvent(1, (("a", "Billing", (), "why"), ("b", "Orders", ("a",), "then")), "reasoning ü"),
    ModelCallEvent("test:m", Usage(1, 2, 3, 4, 5, 6, 0.1 + 0.2, 7), "end", math.inf, None, None, "W", "1/a"),
    ToolCallEvent("W", "lookup", "c1", '{"id":"42"}', "ok", float("nan"), 12),
    ApprovalEvent("W", "refund", "c2", "approve", "alice", "", -0.0),
    HandoffEvent("a", "Triage", "Billing", "it is about an invoice"),
]


def test_an_events_json_is_the_text_the_json_module_makes_of_its_fields() -> None:
    for event in EVENTS:
        expected = json.dumps(_reference(event), separators=(",", ":"), default=str)
        assert event_json(event) == expected
    records = [[1, "x", None, True, 0.5, [1, 2]], {"a": [float("inf")]}, ("t", -1)]
    for record in records:
        assert compact(record) == json.dumps(record, separators=(",", ":"))


USAGE = {
    "input_tokens": 400,
    "output_tokens": 40,
    "cache_read_tokens": 0,
    "cache_write_tokens": 0,
    "requests": 1,
    "retries": 0,
    "known_cost_usd": 0.0006,
    "unpriced_requests": 0,
}


def test_a_usage_sum_is_the_text_json_dumps_makes_of_it_whatever_it_holds() -> None:
    odd: list[Any] = [
        USAGE,
        {**USAGE, "active_s": 1.25},
        {**USAGE, "requests": True},  # not a number here: json writes true
        {**USAGE, "known_cost_usd": float("inf")},
        {**USAGE, "known_cost_usd": float("nan")},
        {**USAGE, "known_cost_usd": 1e308, "active_s": 1e308},  # finite, their sum is not
        {**USAGE, "extra": 1},
        {"requests": 1},
        types.MappingProxyType(USAGE),
        {},
    ]
    for usage in odd:
        assert usage_json(usage) == json.dumps(dict(usage))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(), st.floats(), st.booleans(), st.none()), min_size=9, max_size=9))
def test_any_usage_values_give_json_dumps_text(values: list[Any]) -> None:
    usage = dict(zip([*USAGE, "active_s"], values, strict=True))
    assert usage_json(usage) == json.dumps(usage)
    del usage["active_s"]
    assert usage_json(usage) == json.dumps(usage)


async def test_buffered_rows_are_committed_by_the_next_checkpoint_the_last_value_of_a_row_winning(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.db"
    store = SQLiteStore(path)
    assert await store.start(RunRecord("r", "goal", workers=("W",)))
    await store.save_plan("r", {"steps": [], "version": 1})
    await store.save_plan("r", {"steps": [], "version": 2})  # a re-plan: the later plan is kept
    for i, step in enumerate(("a", "b")):
        record = StepRecord(step, "W", '"out"', {**USAGE, "requests": i + 1})
        await store.save_step("r", record, {**USAGE, "requests": i + 10, "active_s": 0.5})
    await store.commit_calls()  # a checkpoint with no statement of its own
    with sqlite3.connect(path) as db:
        plan, usage = db.execute("SELECT plan, usage FROM runs").fetchone()
        steps = db.execute("SELECT step_id, usage FROM steps ORDER BY step_id").fetchall()
    assert json.loads(plan)["version"] == 2
    assert json.loads(usage) == {**USAGE, "requests": 11, "active_s": 0.5}
    assert [(s, json.loads(u)["requests"]) for s, u in steps] == [("a", 1), ("b", 2)]
    loaded = await store.load("r")
    assert loaded is not None and set(loaded.steps) == {"a", "b"}
    await store.aclose()


async def test_a_buffered_row_and_a_checkpoint_that_follows_it_are_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    store = SQLiteStore(path)
    assert await store.start(RunRecord("r", "goal", workers=("W",)))
    await store.save_step("r", StepRecord("a", "W", '"out"', USAGE), USAGE)
    await store.finish("r", "succeeded", {**USAGE, "requests": 2}, '"done"', None)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT status, usage FROM runs").fetchone() == (
            "succeeded",
            json.dumps({**USAGE, "requests": 2}),  # the end's usage: after the step's, not before
        )
        assert db.execute("SELECT count(*) FROM steps").fetchone() == (1,)
    await store.aclose()


async def test_a_read_sees_what_this_process_buffered_and_a_take_up_compares_with_it(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    assert await store.start(RunRecord("r", "goal", workers=("W",), owner="h:1"))
    await store.save_step("r", StepRecord("a", "W", '"out"', USAGE), {**USAGE, "active_s": 0.5})
    loaded = await store.load("r")  # the step and the usage are still buffered: committed first
    assert loaded is not None and set(loaded.steps) == {"a"} and loaded.usage["active_s"] == 0.5
    assert await store.start(RunRecord("r", "goal", workers=("W",), owner="h:2"), loaded)
    await store.aclose()


def test_a_new_run_id_is_a_uuid7_and_ids_sort_in_the_order_they_were_made() -> None:
    first = new_run_id()
    time.sleep(0.002)
    ids = [new_run_id() for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(len(i) == 32 and i == i.lower() for i in ids)
    parsed = uuid.UUID(first)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert abs((parsed.int >> 80) / 1000 - time.time()) < 5  # its first 48 bits: the time in ms
    assert all(first < i for i in ids)


def _attempts(events: list[tuple[str, float, Any]]) -> dict[tuple[str, int], list[str]]:
    record = RunRecord("t", "goal")
    found = _Builder(record, [], events)._handoffs()
    return {key: [h["target"] for h in moves] for key, moves in found.items()}


def test_handoffs_go_to_their_attempt_with_or_without_stored_step_starts() -> None:
    def step(status: str, attempt: int) -> tuple[str, float, Any]:
        return ("step", 0.0, {"step": "a", "worker": "T", "status": status, "attempt": attempt})

    def handoff(target: str) -> tuple[str, float, Any]:
        return ("handoff", 0.0, {"step": "a", "source": "T", "target": target, "reason": ""})

    plan = ("plan", 0.0, {"attempt": 1, "steps": [], "reasoning": ""})
    now = [plan, handoff("B"), step("retrying", 1), handoff("C"), plan, handoff("D")]
    before = [plan, step("started", 1), handoff("B"), step("retrying", 1), step("started", 2)]
    before += [handoff("C"), plan, step("started", 1), handoff("D")]
    expected = {("a", 1): ["B", "D"], ("a", 2): ["C"]}  # a new plan starts its steps at 1 again
    assert _attempts(now) == expected
    assert _attempts(before) == expected
