"""The run's call journal on its store: model responses and tool calls, kept and found again.

`RunJournal` is the supervisor's `workers.CallJournal`: it hands the worker loop what a resumed
run recorded (each record once, then forgotten, so memory does not grow with the run) and
writes new records through the store. Records are encoded to JSON in the store's writer thread
(`call_json`), off the event loop, and decoded on load (`call_from_json`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tools._jsontext import json_value
from tools.errors import ReplayMismatch, shown
from workers import (
    CallSteps,
    ModelResponse,
    Redactor,
    TextPart,
    ToolCallPart,
    ToolRecord,
    ToolResultPart,
    ToolStatus,
    Usage,
)
from workers._records import fast_init

from ._json import compact

__all__ = [
    "CallRecord",
    "FailedAttempt",
    "CallStore",
    "RunJournal",
    "StepEngine",
    "call_from_json",
    "call_json",
    "spent",
    "usage_data",
    "usage_from",
]

_USAGE_FIELDS = tuple(f.name for f in dataclasses.fields(Usage))


def usage_data(usage: Usage) -> dict[str, Any]:
    """Usage as JSON-able data."""
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "requests": usage.requests,
        "retries": usage.retries,
        "known_cost_usd": usage.known_cost_usd,
        "unpriced_requests": usage.unpriced_requests,
    }


def usage_from(data: Mapping[str, Any]) -> Usage:
    """Usage from stored data (unknown keys ignored)."""
    return Usage(**{k: v for k, v in data.items() if k in _USAGE_FIELDS})


@fast_init
@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """A step attempt that failed: its error's class name and message."""

    error_type: str
    message: str


@fast_init
@dataclass(frozen=True, slots=True)
class CallRecord:
    """One journaled call under its key: a model response, a tool call, or a failed attempt."""

    key: str
    value: ModelResponse | ToolRecord | FailedAttempt


class CallStore(Protocol):
    """What the journal needs from a store.

    Order is the contract: `save_call` and `commit_calls` commit every record `put_call` queued
    before them, in the order queued, so a committed record never refers to a lost one.
    """

    def put_call(self, run_id: str, record: CallRecord, *, now: bool = False) -> None:
        """Queue a record: committed with the next checkpoint, or within milliseconds with `now`."""
        ...

    async def save_call(self, run_id: str, record: CallRecord) -> None:
        """Write a record; committed when this returns."""
        ...

    async def calls(self, run_id: str) -> list[CallRecord]:
        """Every record of a run, in the order written."""
        ...

    async def commit_calls(self) -> None:
        """Commit the records queued so far."""
        ...


class StepEngine(Protocol):
    """An engine that runs each live call of a run as a durable step of its own, which keeps the
    call's output (DBOS, `_dbos_steps.py`); a resumed run takes the outputs from there."""

    async def take_up(
        self, run_id: str, calls: Sequence[CallRecord], *, resumed: bool
    ) -> tuple[list[CallRecord], CallSteps | None, list[CallRecord]]:
        """The run's journal records with the outputs the engine holds in place of the store's,
        the steps its live calls are to run in (None: made directly), and the outputs the
        engine holds that the store lacks (for `RunJournal.restore`)."""
        ...

    def forget(self, run_id: str) -> None:
        """The run ended in this process."""
        ...


class RunJournal:
    """One run's `CallJournal`: recorded calls to replay, new calls to record."""

    __slots__ = (
        "_store",
        "_run_id",
        "_responses",
        "_tools",
        "_starts",
        "_failures",
        "_strict",
        "_redact",
        "steps",
    )

    def __init__(
        self,
        store: CallStore,
        run_id: str,
        records: Iterable[CallRecord] = (),
        *,
        strict: bool = False,
        redact: Redactor | None = None,
    ) -> None:
        self._store = store
        self._run_id = run_id
        self._strict = strict  # a replay: every call must come from the records
        self._redact = redact  # what traces show of tool calls
        self.steps: CallSteps | None = None  # set by an engine whose steps run the live calls (DBOS)
        self._responses: dict[str, ModelResponse] = {}
        self._tools: dict[str, ToolRecord] = {}
        self._starts: dict[str, int] = {}
        self._failures: dict[str, FailedAttempt] = {}
        for record in records:
            value = record.value
            if isinstance(value, ModelResponse):
                self._responses[record.key] = value
            elif isinstance(value, ToolRecord):
                self._tools[record.key] = value
            else:
                self._failures[record.key] = value

    def restore(self, records: Iterable[CallRecord]) -> None:
        """Queue records the store lacks (outputs an engine's steps kept: `StepEngine`), with
        what traces may show of them; committed with the next commit."""
        for record in records:
            value = record.value
            if isinstance(value, ToolRecord) and self._redact is not None:
                result = value.result.content if value.result is not None else ""
                shown = self._shown(value.tool, value.arguments_json, result)
                record = CallRecord(record.key, dataclasses.replace(value, shown=shown))
            self._store.put_call(self._run_id, record)

    def failure(self, key: str) -> FailedAttempt | None:
        """The failure recorded for a step attempt, once."""
        return self._failures.pop(key, None) if self._failures else None

    def record_failure(self, key: str, error: BaseException) -> None:
        """Queue a failed attempt (committed before anything the next attempt does that counts)."""
        failed = FailedAttempt(type(error).__name__, shown(error, self._redact))  # what traces show
        self._store.put_call(self._run_id, CallRecord(key, failed))

    def response(self, key: str) -> ModelResponse | None:
        """The recorded response, once (a replayed turn is not asked for again)."""
        response = self._responses.pop(key, None) if self._responses else None
        if response is None and self._strict:
            raise ReplayMismatch(self._run_id, key, "a model answer")
        return response

    async def save_response(self, key: str, response: ModelResponse, *, durable: bool = True) -> None:
        """Write the response; committed when this returns, else with the next commit."""
        if durable:
            await self._store.save_call(self._run_id, CallRecord(key, response))
        else:
            self._store.put_call(self._run_id, CallRecord(key, response))

    async def commit(self) -> None:
        """Commit what was queued."""
        await self._store.commit_calls()

    def tool(self, key: str) -> ToolRecord | None:
        """The recorded tool call, once."""
        record = self._tools.pop(key, None) if self._tools else None
        if self._strict and (record is None or record.state != "finished"):
            name = record.tool if record is not None else "a tool"
            raise ReplayMismatch(self._run_id, key, f"the result of {name!r}")
        if record is not None and record.state != "finished":
            self._starts[key] = record.starts
        return record

    def _shown(self, tool: str, arguments_json: str, result: str = "") -> tuple[str, str] | None:
        """What the trace may show of a call (None: no redact hook, the values themselves)."""
        if self._redact is None:
            return None
        shown_result = self._redact(tool, "result", result) if result else ""
        return (self._redact(tool, "arguments", arguments_json), shown_result)

    async def tool_approved(self, key: str, call: ToolCallPart, arguments_json: str) -> None:
        """Record a person's approval; committed when this returns."""
        approved = ToolRecord(
            call.name,
            "approved",
            self._starts.get(key, 0),
            arguments_json,
            shown=self._shown(call.name, arguments_json),
        )
        await self._store.save_call(self._run_id, CallRecord(key, approved))

    async def tool_started(self, key: str, call: ToolCallPart, arguments_json: str, *, durable: bool) -> None:
        """Record the start; committed before the tool runs when `durable`."""
        starts = self._starts[key] = self._starts.get(key, 0) + 1
        started = ToolRecord(
            call.name, "started", starts, arguments_json, shown=self._shown(call.name, arguments_json)
        )
        record = CallRecord(key, started)
        if durable:
            await self._store.save_call(self._run_id, record)
        else:
            self._store.put_call(self._run_id, record)

    async def tool_finished(
        self,
        key: str,
        call: ToolCallPart,
        arguments_json: str,
        result: ToolResultPart,
        status: ToolStatus,
        duration_s: float,
        *,
        durable: bool,
    ) -> None:
        """Record the result the model gets; committed when this returns when `durable`."""
        starts = self._starts.pop(key, 1)
        shown = self._shown(call.name, arguments_json, result.content)
        tool = ToolRecord(call.name, "finished", starts, arguments_json, result, status, duration_s, shown)
        if durable:
            await self._store.save_call(self._run_id, CallRecord(key, tool))
        else:
            self._store.put_call(self._run_id, CallRecord(key, tool))


def spent(records: Iterable[CallRecord]) -> tuple[Usage | None, dict[str, Usage]]:
    """What the recorded model calls of a run cost, in all (None when none was recorded) and by
    worker (named in each key: ".../worker/turn")."""
    total: Usage | None = None
    by_worker: dict[str, Usage] = {}
    for record in records:
        if isinstance(record.value, ModelResponse):
            usage = record.value.usage
            total = usage if total is None else total + usage
            parts = record.key.split("/")
            # ".../worker/turn", or ".../worker/turn/summaryN" for a compaction's summary
            worker = parts[-3] if parts[-1].startswith("summary") and len(parts) >= 3 else parts[-2]
            by_worker[worker] = by_worker[worker] + usage if worker in by_worker else usage
    return total, by_worker


# --- the JSON of a record ---------------------------------------------------------------------
# Positional arrays: a record is written for every model call, and keys cost as much to encode
# as the values. The first element is the format's version.

_FORMAT = 1


def call_json(value: ModelResponse | ToolRecord | FailedAttempt) -> tuple[str, str]:
    """The record's kind ("model", "tool" or "failed") and its JSON."""
    if isinstance(value, FailedAttempt):
        return "failed", compact([_FORMAT, value.error_type, value.message])
    if isinstance(value, ModelResponse):
        u = value.usage
        body: list[Any] = [
            _FORMAT,
            [
                [p.id, p.name, p.raw_arguments, p.truncated] if isinstance(p, ToolCallPart) else p.text
                for p in value.parts
            ],
            value.stop_reason,
            [
                u.input_tokens,
                u.output_tokens,
                u.cache_read_tokens,
                u.cache_write_tokens,
                u.requests,
                u.retries,
                u.known_cost_usd,
                u.unpriced_requests,
            ],
            value.provider,
            value.model,
            value.request_id,
            value.latency_s,
            value.first_token_s,
            value.refusal,
            value.raw_stop_reason,
        ]
        return "model", compact(body)
    result = value.result
    answer = None if result is None else [result.call_id, result.content, result.is_error]
    body = [
        _FORMAT,
        value.tool,
        value.state,
        value.starts,
        value.arguments_json,
        value.status,
        answer,
        value.duration_s,
        value.shown,
    ]
    return "tool", compact(body)


def _call_part(data: Any) -> TextPart | ToolCallPart:
    if isinstance(data, str):
        return TextPart(data)
    call_id, name, raw, truncated = data
    arguments = None
    if not truncated:
        try:
            parsed = json_value(raw)
        except (ValueError, RecursionError):  # refused when it was live: the same on resume
            parsed = None
        arguments = parsed if isinstance(parsed, dict) else None
    return ToolCallPart(call_id, name, raw, arguments, truncated)


def call_from_json(kind: str, text: str) -> ModelResponse | ToolRecord | FailedAttempt:
    """A record from its kind and JSON."""
    data = json.loads(text)
    if kind == "failed":
        return FailedAttempt(data[1], data[2])
    if kind == "model":
        _, parts, stop, usage, provider, model, request_id, latency, first, refusal, raw_stop = data
        return ModelResponse(
            tuple(_call_part(p) for p in parts),
            stop,
            Usage(*usage),
            provider,
            model,
            request_id,
            latency,
            first,
            refusal,
            raw_stop,
        )
    _, tool, state, starts, arguments, status, answer, duration, shown = data
    result = None if answer is None else ToolResultPart(answer[0], tool, answer[1], answer[2])
    return ToolRecord(
        tool, state, starts, arguments, result, status, duration, tuple(shown) if shown else None
    )
