"""The run's call journal on its store: model responses and tool calls, kept and found again.

`RunJournal` is the supervisor's `workers.CallJournal`: it hands the worker loop what a resumed
run recorded (each record once, then forgotten, so memory does not grow with the run) and
writes new records through the store. Records are encoded to JSON in the store's writer thread
(`call_json`), off the event loop, and decoded on load (`call_from_json`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from workers import ModelResponse, TextPart, ToolCallPart, ToolRecord, ToolResultPart, ToolStatus, Usage

__all__ = [
    "CallRecord",
    "CallStore",
    "RunJournal",
    "call_from_json",
    "call_json",
    "spent",
    "usage_data",
    "usage_from",
]

_USAGE_FIELDS = tuple(f.name for f in dataclasses.fields(Usage))


def usage_data(usage: Usage) -> dict[str, Any]:
    """Usage as JSON-able data."""
    return {name: getattr(usage, name) for name in _USAGE_FIELDS}


def usage_from(data: Mapping[str, Any]) -> Usage:
    """Usage from stored data (unknown keys ignored)."""
    return Usage(**{k: v for k, v in data.items() if k in _USAGE_FIELDS})


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One journaled call: a model response or a tool call, under its key."""

    key: str
    value: ModelResponse | ToolRecord


class CallStore(Protocol):
    """What the journal needs from a store."""

    def put_call(self, run_id: str, record: CallRecord) -> None:
        """Queue a record (committed within milliseconds, before any later checkpoint)."""
        ...

    async def save_call(self, run_id: str, record: CallRecord) -> None:
        """Write a record; committed when this returns."""
        ...

    async def calls(self, run_id: str) -> list[CallRecord]:
        """Every record of a run, in the order written."""
        ...


class RunJournal:
    """One run's `CallJournal`: recorded calls to replay, new calls to record."""

    __slots__ = ("_store", "_run_id", "_responses", "_tools", "_starts")

    def __init__(self, store: CallStore, run_id: str, records: Iterable[CallRecord] = ()) -> None:
        self._store = store
        self._run_id = run_id
        self._responses: dict[str, ModelResponse] = {}
        self._tools: dict[str, ToolRecord] = {}
        self._starts: dict[str, int] = {}
        for record in records:
            if isinstance(record.value, ModelResponse):
                self._responses[record.key] = record.value
            else:
                self._tools[record.key] = record.value

    def response(self, key: str) -> ModelResponse | None:
        """The recorded response, once (a replayed turn is not asked for again)."""
        return self._responses.pop(key, None) if self._responses else None

    def save_response(self, key: str, response: ModelResponse) -> None:
        """Queue the response."""
        self._store.put_call(self._run_id, CallRecord(key, response))

    def tool(self, key: str) -> ToolRecord | None:
        """The recorded tool call, once."""
        record = self._tools.pop(key, None) if self._tools else None
        if record is not None and record.state == "started":
            self._starts[key] = record.starts
        return record

    async def tool_started(self, key: str, call: ToolCallPart, arguments_json: str, *, durable: bool) -> None:
        """Record the start; committed before the tool runs when `durable`."""
        starts = self._starts[key] = self._starts.get(key, 0) + 1
        record = CallRecord(key, ToolRecord(call.name, "started", starts, arguments_json))
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
        *,
        durable: bool,
    ) -> None:
        """Record the result the model gets; committed before the worker goes on when `durable`."""
        starts = self._starts.pop(key, 1)
        record = CallRecord(key, ToolRecord(call.name, "finished", starts, arguments_json, result, status))
        if durable:
            await self._store.save_call(self._run_id, record)
        else:
            self._store.put_call(self._run_id, record)


def spent(records: Iterable[CallRecord]) -> Usage | None:
    """What every recorded model call of a run cost (None when none was recorded)."""
    total: Usage | None = None
    for record in records:
        if isinstance(record.value, ModelResponse):
            total = record.value.usage if total is None else total + record.value.usage
    return total


# --- the JSON of a record ---------------------------------------------------------------------


def _part(part: Any) -> dict[str, Any]:
    if isinstance(part, ToolCallPart):
        return {
            "kind": "tool_call",
            "id": part.id,
            "name": part.name,
            "raw_arguments": part.raw_arguments,
            "arguments": None if part.arguments is None else dict(part.arguments),
            "truncated": part.truncated,
        }
    return {"kind": "text", "text": part.text}


def call_json(value: ModelResponse | ToolRecord) -> tuple[str, str]:
    """The record's kind ("model" or "tool") and its JSON."""
    if isinstance(value, ModelResponse):
        body: dict[str, Any] = {
            "parts": [_part(p) for p in value.parts],
            "stop_reason": value.stop_reason,
            "usage": usage_data(value.usage),
            "provider": value.provider,
            "model": value.model,
            "request_id": value.request_id,
            "latency_s": value.latency_s,
            "first_token_s": value.first_token_s,
            "refusal": value.refusal,
            "raw_stop_reason": value.raw_stop_reason,
        }
        return "model", json.dumps(body, separators=(",", ":"), default=str)
    result = value.result
    body = {
        "tool": value.tool,
        "state": value.state,
        "starts": value.starts,
        "arguments": value.arguments_json,
        "status": value.status,
        "result": None
        if result is None
        else {"call_id": result.call_id, "content": result.content, "is_error": result.is_error},
    }
    return "tool", json.dumps(body, separators=(",", ":"))


def call_from_json(kind: str, text: str) -> ModelResponse | ToolRecord:
    """A record from its kind and JSON."""
    data: Mapping[str, Any] = json.loads(text)
    if kind == "model":
        parts = tuple(
            ToolCallPart(p["id"], p["name"], p["raw_arguments"], p["arguments"], p["truncated"])
            if p["kind"] == "tool_call"
            else TextPart(p["text"])
            for p in data["parts"]
        )
        return ModelResponse(
            parts,
            data["stop_reason"],
            usage_from(data["usage"]),
            data["provider"],
            data["model"],
            data["request_id"],
            data["latency_s"],
            data["first_token_s"],
            data["refusal"],
            data["raw_stop_reason"],
        )
    result = data["result"]
    return ToolRecord(
        data["tool"],
        data["state"],
        data["starts"],
        data["arguments"],
        None
        if result is None
        else ToolResultPart(result["call_id"], data["tool"], result["content"], result["is_error"]),
        data["status"],
    )
