"""A run as a tree: why it went where it went, and what each part cost.

Built from what the store kept: the run's record (goal, plan, steps, status, usage), its call
journal (every model response and tool call, keyed by plan version, step, attempt, handoff,
worker and turn) and its trace events (plans, step starts and failures, handoffs, approvals,
refused tool calls, retries, budget and breaker decisions). Every step shows the reason the plan
gave for its worker, and every handoff the reason the worker gave, so the tree answers "why did
this request end at worker F".

`render` draws the tree as text (colour only when asked); `to_jsonl` and `from_jsonl` export
and read it back, one node per line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workers import ModelResponse, ToolRecord, Usage

from ._calls import CallRecord, FailedAttempt, usage_data, usage_from
from ._store import RunRecord

__all__ = ["TraceNode", "build_trace", "from_jsonl", "render", "to_jsonl"]

_EXCERPT = 100


@dataclass(slots=True)
class TraceNode:
    """One node of a run's trace.

    Attributes:
        kind: "run", "plan", "step", "attempt", "handoff", "model", "tool", "answer", "event"
            or "error".
        label: What it is, in one line.
        status: How it ended ("" when it says nothing more).
        usage: Tokens and cost of this node and everything under it (None: no model call).
        seconds: How long it took, when known.
        children: The nodes under it, in order.
    """

    kind: str
    label: str
    status: str = ""
    usage: Usage | None = None
    seconds: float | None = None
    children: list[TraceNode] = field(default_factory=list)

    def add(self, child: TraceNode) -> TraceNode:
        """Append a child and count its usage here."""
        self.children.append(child)
        if child.usage is not None:
            self.usage = child.usage if self.usage is None else self.usage + child.usage
        return child


def _short(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 3] + "..."


def _model_node(worker: str, turn: str, response: ModelResponse) -> TraceNode:
    calls = ", ".join(c.name for c in response.tool_calls)
    said = f" -> {calls}" if calls else (f": {_short(response.text)}" if response.text else "")
    label = f"model {worker} turn {turn} ({response.model or response.provider}){said}"
    return TraceNode("model", label, response.stop_reason, response.usage, response.latency_s)


def _tool_node(record: ToolRecord) -> TraceNode:
    arguments, content = record.arguments_json, record.result.content if record.result else None
    if record.shown is not None:  # what a redact hook let through
        arguments, content = record.shown
    result = f" -> {_short(content)}" if content else ""
    status = record.status or record.state  # "started" without an end: the process stopped there
    seconds = record.duration_s if record.state == "finished" else None
    return TraceNode("tool", f"tool {record.tool} {_short(arguments)}{result}", status, None, seconds)


class _Builder:
    """Puts the journal's records and the events where they belong."""

    def __init__(
        self, record: RunRecord, calls: Sequence[CallRecord], events: Sequence[tuple[str, float, Any]]
    ):
        self.record = record
        self.calls = {c.key: c.value for c in calls}
        self.events = list(events)
        self.by_call: dict[tuple[str, str], TraceNode] = {}  # (worker, call id) -> its model turn
        self.by_scope: dict[str, TraceNode] = {}  # "{version}/{step}.{attempt}/{hop}" -> its attempt

    def build(self) -> TraceNode:
        record = self.record
        goal = record.goal if record.goal is not None else "(a plan given in code)"
        run = TraceNode("run", f"run {record.run_id}: {_short(goal)}", record.status)
        run.seconds = max(0.0, record.updated_at - record.created_at)
        self._plans(run)
        self._turns(run, "answer", "answer", "answer")
        self._events(run)
        if record.error:
            # In full (on one line): it says why the run ended; the errors bound what they quote.
            run.children.append(TraceNode("error", f"error: {' '.join(record.error.split())}", record.status))
        total = usage_from(record.usage) if record.usage else None
        run.usage = total if total is not None and total.requests else run.usage
        return run

    def _plan_steps(self) -> list[tuple[int, str, list[list[Any]]]]:
        """Each plan version: its number, reasoning and steps (id, worker, depends_on, reason)."""
        made = [body for kind, _, body in self.events if kind == "plan"]
        stored = self.record.plan or {}
        last = int(stored.get("version", 1)) if stored else len(made)
        plans = []
        for version in range(1, max(last, len(made)) + 1):
            if version == last and stored:
                steps = [[s["id"], s["worker"], s["depends_on"], s["reason"]] for s in stored["steps"]]
                plans.append((version, str(stored.get("reasoning", "")), steps))
            elif version <= len(made):
                plans.append((version, str(made[version - 1]["reasoning"]), made[version - 1]["steps"]))
        return plans

    def _handoffs(self) -> dict[tuple[str, int], list[Any]]:
        """Handoffs by (step, attempt): a step's retry events tell its attempts apart (attempt 1
        until the first retry; every plan starts its steps again at 1). Stores written before
        step starts were left out of the trace have those too, saying the same."""
        attempt: dict[str, int] = {}
        found: dict[tuple[str, int], list[Any]] = {}
        for kind, _, body in self.events:
            if kind == "plan":
                attempt.clear()
            elif kind == "step" and body["status"] == "retrying":
                attempt[body["step"]] = body["attempt"] + 1
            elif kind == "step" and body["status"] == "started":
                attempt[body["step"]] = body["attempt"]
            elif kind == "handoff":
                found.setdefault((body["step"], attempt.get(body["step"], 1)), []).append(body)
        return found

    def _plans(self, run: TraceNode) -> None:
        handoffs = self._handoffs()
        for version, reasoning, steps in self._plan_steps():
            made = "planned" if self._has(f"plan{version}/") else "given in code"
            node = TraceNode("plan", f"plan v{version} ({made}): {_short(reasoning)}")
            for child in self._turn_nodes(f"plan{version}/"):
                node.add(child)
            run.add(node)
            for sid, worker, depends_on, reason in steps:
                step = self._step(version, sid, worker, depends_on, reason, handoffs)
                if step is not None:
                    run.add(step)

    def _step(
        self,
        version: int,
        sid: str,
        worker: str,
        depends_on: list[str],
        reason: str,
        handoffs: Mapping[tuple[str, int], list[Any]],
    ) -> TraceNode | None:
        done = self.record.steps.get(sid)
        attempts = []
        attempt = 1
        while self._has(f"{version}/{sid}.{attempt}/"):
            moves = handoffs.get((sid, attempt), [])
            attempts.append(self._attempt(f"{version}/{sid}.{attempt}/", attempt, moves))
            attempt += 1
        if not attempts and done is not None:
            return None  # finished under an earlier plan version, shown there
        status = (
            "succeeded"
            if done is not None and attempts
            else ("running" if self.record.status == "running" else "not finished")
        )
        after = f" after {', '.join(depends_on)}" if depends_on else ""
        node = TraceNode("step", f"step {sid} -> {worker}{after} (the plan: {_short(reason)})", status)
        if done is not None and done.worker != worker:
            node.label += f", ended at {done.worker}"
        for child in attempts:
            node.add(child)
        return node

    def _attempt(self, prefix: str, attempt: int, moves: list[Any]) -> TraceNode:
        """One attempt: each worker's turns, and the handoff (with its reason) between them."""
        failed = self.calls.get(prefix + "failed")
        status = f"failed: {_short(failed.message)}" if isinstance(failed, FailedAttempt) else ""
        node = TraceNode("attempt", f"attempt {attempt}", status)
        for hop in range(len(moves) + 1):
            self.by_scope[f"{prefix}{hop}"] = node
            if hop:
                moved = moves[hop - 1]
                why = f"handoff {moved['source']} -> {moved['target']}: {_short(moved['reason'])}"
                node.children.append(TraceNode("handoff", why))
            for child in self._turn_nodes(f"{prefix}{hop}/"):
                node.add(child)
        return node

    def _turns(self, run: TraceNode, prefix: str, kind: str, label: str) -> None:
        turns = self._turn_nodes(prefix + "/")
        if turns:
            node = TraceNode(kind, label)
            for child in turns:
                node.add(child)
            run.add(node)

    def _turn_nodes(self, prefix: str) -> list[TraceNode]:
        """The model turns under `prefix` (".../worker/turn"), each with its tool calls."""
        nodes = []
        for key, value in self.calls.items():
            if not key.startswith(prefix) or not isinstance(value, ModelResponse):
                continue
            worker, _, turn = key[len(prefix) :].rpartition("/")
            if "/" in worker or not turn.isdigit():
                continue
            node = _model_node(worker, turn, value)
            for index, call in enumerate(value.tool_calls):
                self.by_call.setdefault((worker, call.id), node)
                tool = self.calls.get(f"{key}/{index}")
                if isinstance(tool, ToolRecord):
                    node.children.append(_tool_node(tool))
            nodes.append(node)
        return nodes

    def _events(self, run: TraceNode) -> None:
        """Refused calls and approvals go under the turn that made the call; the rest to the run."""
        placed: dict[int, int] = {}
        decided = {
            (body.get("worker"), body.get("call_id"))
            for kind, _, body in self.events
            if kind == "approval" and body.get("decision") != "requested"
        }
        for kind, _, body in self.events:
            if kind in ("plan", "handoff", "step", "run"):  # the plan, the attempts, the run's line
                continue
            text = _event_text(kind, body)
            if kind == "approval" and body.get("decision") == "requested":
                if (body.get("worker"), body.get("call_id")) in decided:  # its decision says it
                    continue
                text = (
                    f"approval of {body['tool']}: asked, no decision recorded (waiting, or the run stopped)"
                )
            node = TraceNode("event", text)
            owner = self.by_call.get((body.get("worker", ""), body.get("call_id", "")))
            if owner is None and body.get("scope") in self.by_scope:  # a compaction, say
                self.by_scope[body["scope"]].children.append(node)
                continue
            if owner is None:
                run.children.append(node)
            else:  # refusals and approvals came before the turn's tools ran
                at = placed.get(id(owner), 0)
                owner.children.insert(at, node)
                placed[id(owner)] = at + 1

    def _has(self, prefix: str) -> bool:
        return any(key.startswith(prefix) for key in self.calls)


def _event_text(kind: str, body: Mapping[str, Any]) -> str:
    if kind == "tool_call":
        return f"tool {body['tool']} {body['status']}: {_short(body.get('detail') or body.get('arguments'))}"
    if kind == "approval":
        why = f": {_short(body['reason'])}" if body.get("reason") else ""
        who = body["by"] or "?"
        return f"approval of {body['tool']}: {body['decision']} by {who} after {body['waited_s']:.1f} s{why}"
    if kind == "compaction":
        return (
            f"compaction of {body['worker']}'s conversation ({body['strategy']}, {body['reason']}): "
            f"{body['tokens_before']} -> {body['tokens_after']} tokens, "
            f"{body['messages_before']} -> {body['messages_after']} messages"
        )
    if kind == "step":
        detail = _short(body.get("detail", ""))
        return f"step {body['step']} attempt {body['attempt']} {body['status']}: {detail}"
    details = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={_short(v)}" for k, v in body.items() if k != "kind"
    )
    return f"{kind}: {details}"


def build_trace(
    record: RunRecord, calls: Sequence[CallRecord], events: Sequence[tuple[str, float, Any]]
) -> TraceNode:
    """The run's tree, from its record, its call journal and its events (in order)."""
    return _Builder(record, calls, events).build()


_COLOURS = {"succeeded": "32", "ok": "32", "end": "32", "tool_use": "32"}


def _status_text(status: str, colour: bool) -> str:
    if not status or not colour:
        return status
    code = _COLOURS.get(status, "31" if status.startswith(("failed", "error", "aborted")) else "33")
    return f"\x1b[{code}m{status}\x1b[0m"


def _numbers(node: TraceNode) -> str:
    parts = []
    if node.usage is not None and node.usage.requests:
        cost = node.usage.cost_usd
        money = f"${cost:.6f}" if cost is not None else "unpriced"
        parts.append(f"{node.usage.input_tokens} in / {node.usage.output_tokens} out, {money}")
    if node.seconds is not None:
        parts.append(f"{node.seconds:.2f} s")
    return f"  [{'; '.join(parts)}]" if parts else ""


def render(node: TraceNode, *, colour: bool = False) -> str:
    """The tree as text, one node per line."""
    lines: list[str] = []

    def walk(current: TraceNode, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("`- " if last else "|- ")
        status = _status_text(current.status, colour)
        lines.append(f"{prefix}{branch}{current.label}{'  ' + status if status else ''}{_numbers(current)}")
        inner = prefix + ("" if top else ("   " if last else "|  "))
        for i, child in enumerate(current.children):
            walk(child, inner, i == len(current.children) - 1, False)

    walk(node, "", True, True)
    return "\n".join(lines) + "\n"


def to_jsonl(node: TraceNode) -> Iterable[str]:
    """One JSON object per node, parents first; `path` names its place ("0", "0.2", "0.2.1")."""

    def walk(current: TraceNode, path: str) -> Iterable[str]:
        usage = None if current.usage is None else usage_data(current.usage)
        data = {
            "path": path,
            "kind": current.kind,
            "label": current.label,
            "status": current.status,
            "usage": usage,
            "seconds": current.seconds,
        }
        yield json.dumps(data, separators=(",", ":"))
        for i, child in enumerate(current.children):
            yield from walk(child, f"{path}.{i}")

    return walk(node, "0")


def from_jsonl(lines: Iterable[str]) -> TraceNode:
    """The tree back from `to_jsonl`'s lines."""
    nodes: dict[str, TraceNode] = {}
    for line in lines:
        data = json.loads(line)
        usage = Usage(**data["usage"]) if data["usage"] is not None else None
        node = TraceNode(data["kind"], data["label"], data["status"], usage, data["seconds"])
        nodes[data["path"]] = node
        parent = data["path"].rpartition(".")[0]
        if parent:
            nodes[parent].children.append(node)
    return nodes["0"]
