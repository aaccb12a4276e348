"""OpenTelemetry export: each run as spans, following the GenAI semantic conventions.

Install the extra (`pip install 'foreman-agents[otel]'`) and pass the sink as the supervisor's
events (or beside another sink with `Both`):

    from supervisor.otel import OTelSink
    supervisor = Supervisor(workers, model=..., events=OTelSink())

A run is an `invoke_agent supervisor` span, child of whatever span is current when the run
starts (your request's, say); each step attempt an `invoke_agent {worker}` span under it; each
model call a `chat {model}` span (CLIENT) with the provider, the models, the response id, the
finish reason and the token usage; each tool call that ran an `execute_tool {tool}` span.
Handoffs, approvals, refused tool calls and retries are span events; a failed run or attempt
has an error status. Prompts and outputs are not recorded.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from workers import (
    ApprovalEvent,
    Event,
    EventSink,
    HandoffEvent,
    ModelCallEvent,
    ModelRetryEvent,
    RunEvent,
    StepEvent,
    ToolCallEvent,
)

__all__ = ["OTelSink"]

_RAN = frozenset({"ok", "error", "timeout"})


class OTelSink:
    """An event sink that turns each run's events into spans.

    Args:
        tracer_provider: Where the spans go (the global provider by default).
    """

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer("foreman", tracer_provider=tracer_provider)

    def for_run(self, run_id: str) -> EventSink:
        """The sink of one run: the supervisor asks for it when the run starts."""
        return _RunSpans(self._tracer, run_id)

    def emit(self, event: Event) -> None:
        """Events outside a supervisor run (a worker run alone) make no spans."""


def _ns(seconds_ago: float) -> int:
    return time.time_ns() - int(max(seconds_ago, 0.0) * 1e9)


def _attempt_of(scope: str) -> tuple[str, int] | None:
    """(step, attempt) of a scope "{version}/{step}.{attempt}/{hop}"; None for plan or answer."""
    _, slash, rest = scope.partition("/")
    middle = rest.rpartition("/")[0]
    step, dot, attempt = middle.rpartition(".")
    return (step, int(attempt)) if slash and dot and attempt.isdigit() else None


class _RunSpans:
    """The spans of one run, opened and closed as its events arrive."""

    def __init__(self, tracer: trace.Tracer, run_id: str) -> None:
        self._tracer = tracer
        self._run_id = run_id
        self._run: Span | None = None
        self._attempts: dict[tuple[str, int], Span] = {}
        self._current: dict[str, int] = {}  # step -> its attempt now

    def emit(self, event: Event) -> None:
        """Open, close or annotate spans for one event."""
        if isinstance(event, RunEvent):
            self._on_run(event)
        elif isinstance(event, StepEvent):
            self._on_step(event)
        elif isinstance(event, ModelCallEvent):
            self._on_model(event)
        elif isinstance(event, ToolCallEvent):
            self._on_tool(event)
        elif isinstance(event, HandoffEvent):
            span = self._attempts.get((event.step, self._current.get(event.step, 1)))
            attributes = {
                "foreman.from": event.source,
                "foreman.to": event.target,
                "foreman.reason": event.reason,
            }
            (span or self._root()).add_event("handoff", attributes)
        elif isinstance(event, ApprovalEvent):
            attributes = {
                "gen_ai.tool.name": event.tool,
                "foreman.decision": event.decision,
                "foreman.by": event.by,
            }
            self._root().add_event("approval", attributes)
        elif isinstance(event, ModelRetryEvent):
            retried: dict[str, Any] = {"foreman.attempt": event.attempt, "foreman.error": event.error}
            self._root().add_event("model_retry", retried)

    def _root(self) -> Span:
        if self._run is None:
            self._run = self._start("invoke_agent supervisor", None, {"gen_ai.agent.name": "supervisor"})
        return self._run

    def _start(self, name: str, parent: Span | None, attributes: dict[str, Any], **kw: Any) -> Span:
        ctx = trace.set_span_in_context(parent) if parent is not None else context.get_current()
        attributes = {"gen_ai.conversation.id": self._run_id, **attributes}
        return self._tracer.start_span(name, context=ctx, attributes=attributes, **kw)

    def _on_run(self, event: RunEvent) -> None:
        root = self._root()
        if event.status == "started":
            root.set_attribute("gen_ai.operation.name", "invoke_agent")
            if event.goal:
                root.set_attribute("foreman.goal", event.goal)
            return
        for span in self._attempts.values():  # an aborted run leaves attempts open: close them
            span.end()
        self._attempts.clear()
        if event.status != "succeeded":
            root.set_status(Status(StatusCode.ERROR, event.detail or event.status))
        root.set_attribute("foreman.status", event.status)
        root.end()

    def _on_step(self, event: StepEvent) -> None:
        key = (event.step, event.attempt)
        if event.status == "started":
            self._current[event.step] = event.attempt
            attributes = {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": event.worker,
                "foreman.step": event.step,
                "foreman.attempt": event.attempt,
            }
            self._attempts[key] = self._start(f"invoke_agent {event.worker}", self._root(), attributes)
            return
        span = self._attempts.pop(key, None)
        if span is None:
            return
        if event.status != "finished":
            span.set_status(Status(StatusCode.ERROR, event.detail or event.status))
        span.end()

    def _parent(self, scope: str) -> Span:
        attempt = _attempt_of(scope)
        return self._attempts.get(attempt, self._root()) if attempt is not None else self._root()

    def _on_model(self, event: ModelCallEvent) -> None:
        provider, _, model = event.model.partition(":")
        usage = event.usage
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "gen_ai.response.finish_reasons": [event.stop_reason],
            "gen_ai.usage.input_tokens": usage.input_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
            "foreman.retries": usage.retries,
            "foreman.worker": event.worker,
        }
        if event.request_id:
            attributes["gen_ai.response.id"] = event.request_id
        if usage.cost_usd is not None:
            attributes["foreman.cost_usd"] = usage.cost_usd
        if event.first_token_s is not None:
            attributes["foreman.first_token_s"] = event.first_token_s
        parent = self._parent(event.scope)
        span = self._start(
            f"chat {model}", parent, attributes, kind=SpanKind.CLIENT, start_time=_ns(event.latency_s)
        )
        span.end()

    def _on_tool(self, event: ToolCallEvent) -> None:
        parent = self._parent(event.scope)
        if event.status not in _RAN:  # refused before it ran: an event, not a span
            parent.add_event("tool_refused", {"gen_ai.tool.name": event.tool, "foreman.status": event.status})
            return
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": event.tool,
            "gen_ai.tool.call.id": event.call_id,
            "foreman.result_chars": event.result_chars,
        }
        span = self._start(f"execute_tool {event.tool}", parent, attributes, start_time=_ns(event.duration_s))
        if event.status != "ok":
            span.set_status(Status(StatusCode.ERROR, event.detail or event.status))
        span.end()
