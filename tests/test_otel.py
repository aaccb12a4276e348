"""OpenTelemetry export with the SDK's in-memory exporter.

Promises: a run is one `invoke_agent supervisor` span under the span current when it started;
each step attempt an `invoke_agent {worker}` span under it; each model call a CLIENT
`chat {model}` span with the GenAI attributes (provider, model, finish reason, token usage)
under the attempt that made it; each tool that ran an `execute_tool {tool}` span; handoffs and
approvals are span events; a failed run has an error status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from supervisor import Supervisor
from supervisor.otel import OTelSink
from tools import tool
from workers import Price, Worker
from workers.testing import ScriptedModel, reply

Check = Callable[[Any], Any]
PRICE = Price(input=1.0, output=5.0)


@tool
def lookup(invoice_id: str) -> str:
    """Fetch an invoice."""
    return f"invoice {invoice_id}: charged twice"


class Billing(Worker):
    """Settles invoices."""

    model = "openai:gpt-4o"
    tools = [lookup]


class Triage(Worker):
    """Routes requests."""

    model = "openai:gpt-4o"
    handoffs = [Billing]


def _exporter() -> tuple[InMemorySpanExporter, TracerProvider]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter, provider


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


async def test_a_run_becomes_genai_spans_nested_where_the_calls_happened(checked: Check) -> None:
    exporter, provider = _exporter()
    step = {"id": "s", "worker": "Triage", "input": "refund 42", "depends_on": [], "reason": "routes"}
    planner = checked(
        ScriptedModel(
            [reply.output({"reasoning": "r", "steps": [step]}), reply.text("refunded")],
            price=PRICE,
            name="boss",
        )
    )
    triage = checked(
        ScriptedModel(
            [reply.tool_call("transfer_to_Billing", input="refund 42", reason="an invoice")], price=PRICE
        )
    )
    billing = checked(
        ScriptedModel([reply.tool_call("lookup", invoice_id="42"), reply.text("charged twice")], price=PRICE)
    )
    sup = Supervisor([Triage(model=triage), Billing(model=billing)], model=planner, events=OTelSink(provider))
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("http request") as request_span:
        result = await sup.run("Refund invoice 42", run_id="r1")
    spans = list(exporter.get_finished_spans())
    run = _one(spans, "invoke_agent supervisor")
    assert run.parent is not None and run.parent.span_id == request_span.get_span_context().span_id
    assert run.attributes["gen_ai.conversation.id"] == "r1"
    attempt = _one(spans, "invoke_agent Triage")
    assert attempt.parent.span_id == run.context.span_id  # type: ignore[union-attr]
    assert attempt.attributes["foreman.step"] == "s"
    chats = [s for s in spans if s.name.startswith("chat ")]
    assert len(chats) == 5 and all(s.kind == SpanKind.CLIENT for s in chats)
    billing_calls = [s for s in chats if s.attributes["foreman.worker"] == "Billing"]
    assert all(s.parent.span_id == attempt.context.span_id for s in billing_calls)  # type: ignore[union-attr]
    first = billing_calls[0]
    assert first.attributes["gen_ai.operation.name"] == "chat"
    assert first.attributes["gen_ai.provider.name"] == "test"
    assert first.attributes["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert first.attributes["gen_ai.usage.input_tokens"] > 0
    planner_calls = [s for s in chats if s.attributes["foreman.worker"] in ("Planner", "Synthesizer")]
    assert all(s.parent.span_id == run.context.span_id for s in planner_calls)  # type: ignore[union-attr]
    tool_span = _one(spans, "execute_tool lookup")
    assert tool_span.parent.span_id == attempt.context.span_id  # type: ignore[union-attr]
    assert tool_span.attributes["gen_ai.tool.name"] == "lookup"
    assert [e.name for e in attempt.events] == ["handoff"]
    assert attempt.events[0].attributes["foreman.reason"] == "an invoice"
    total = sum(s.attributes["gen_ai.usage.input_tokens"] for s in chats)
    assert total == result.usage.input_tokens


async def test_a_failed_run_span_has_an_error_status() -> None:
    exporter, provider = _exporter()
    planner = ScriptedModel([reply.error(400, "bad request")])
    sup = Supervisor([Billing(model=ScriptedModel([]))], model=planner, events=OTelSink(provider))
    with pytest.raises(Exception, match="bad request"):
        await sup.run("Refund invoice 42")
    run = _one(list(exporter.get_finished_spans()), "invoke_agent supervisor")
    assert run.status.status_code == StatusCode.ERROR and "bad request" in (run.status.description or "")


async def test_beside_another_sink_the_otel_sink_still_makes_its_spans() -> None:
    import io

    from supervisor import Both, Progress

    exporter, provider = _exporter()
    step = {"id": "s", "worker": "Billing", "input": "x", "depends_on": [], "reason": "r"}
    planner = ScriptedModel([reply.output({"reasoning": "r", "steps": [step]}), reply.text("ok")])
    billing = ScriptedModel([reply.text("done")])
    sup = Supervisor(
        [Billing(model=billing)], model=planner, events=Both(Progress(io.StringIO()), OTelSink(provider))
    )
    await sup.run("x")
    names = [s.name for s in exporter.get_finished_spans()]
    assert "invoke_agent supervisor" in names and "invoke_agent Billing" in names
