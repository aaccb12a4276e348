"""The built-in demo: a billing worker on the deterministic test models, offline, no API key.

It shows what the framework checks at each boundary: a 529 overload is retried with backoff,
tool arguments that break the schema go back to the model and are repaired, a risky refund
waits for an approval decided in code (never by the model), the output is validated into a
typed model, and usage and cost are summed per worker, with an unpriced model reported as such.
"""

from __future__ import annotations

from typing import TextIO

from pydantic import BaseModel, Field

from tools import tool
from workers import (
    ApprovalEvent,
    ApprovalRequest,
    Decision,
    ModelRetryEvent,
    PriceTable,
    RepairEvent,
    RetryPolicy,
    RunContext,
    ToolCallEvent,
    Worker,
)
from workers._events import Event
from workers.testing import ScriptedModel, reply

INVOICES = {"42": {"invoice_id": "42", "total": 30.0, "charges": [30.0, 30.0]}}


class Refund(BaseModel):
    invoice_id: str
    refunded: bool
    amount: float = 0.0


@tool
async def lookup_invoice(invoice_id: str) -> dict[str, object]:
    """Fetch an invoice by id."""
    return INVOICES.get(invoice_id, {"error": f"no invoice {invoice_id}"})


@tool(risky=True)
async def issue_refund(invoice_id: str, amount: float = Field(gt=0)) -> str:
    """Refund part or all of an invoice."""
    return f"refunded ${amount:.2f} on invoice {invoice_id}"


class Billing(Worker):
    """Answers billing questions and issues refunds."""

    model = "anthropic:claude-haiku-4-5"
    instructions = "You handle billing. Never refund more than the invoice total."
    tools = [lookup_invoice, issue_refund]
    output = Refund
    max_turns = 8


class Auditor(Worker):
    """Reviews what billing did."""

    model = "openai:my-local-llama"


def refund_policy(request: ApprovalRequest) -> Decision:
    """The approval gate, in code: refunds up to the invoice total pass, anything else is denied."""
    invoice = INVOICES.get(str(request.arguments.get("invoice_id")), {})
    total = float(invoice.get("total", 0.0))  # type: ignore[arg-type]
    if float(request.arguments.get("amount", 0)) <= total:
        return Decision.approve(by="refund-policy")
    return Decision.deny(f"more than the invoice total of ${total:.2f}", by="refund-policy")


class _Printer:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def emit(self, event: Event) -> None:
        if isinstance(event, ModelRetryEvent):
            self.out.write(f"  retry {event.attempt} in {event.delay_s:.2f}s after: {event.error}\n")
        elif isinstance(event, ToolCallEvent):
            detail = f" {event.detail}" if event.status != "ok" else ""
            self.out.write(f"  {event.worker} -> {event.tool}({event.arguments}) [{event.status}]{detail}\n")
        elif isinstance(event, ApprovalEvent):
            self.out.write(f"  approval of {event.tool}: {event.decision} by {event.by} {event.reason}\n")
        elif isinstance(event, RepairEvent):
            self.out.write(f"  {event.worker} asked to repair its {event.what}\n")


async def run_demo(out: TextIO) -> int:
    """Run the demo, printing each step; returns the exit code."""
    prices = PriceTable()
    billing_model = ScriptedModel(
        [
            reply.error(529, "Overloaded"),
            reply.tool_call("lookup_invoice", invoice_id="42"),
            reply.tool_call("issue_refund", invoice_id="42", amount=-30),
            reply.tool_call("issue_refund", invoice_id="42", amount=30.0),
            reply.output({"invoice_id": "42", "refunded": True, "amount": 30.0}),
        ],
        name="claude-haiku-4-5 (scripted)",
        price=prices.lookup("anthropic:claude-haiku-4-5"),
    )
    auditor_model = ScriptedModel([reply.text("Refund matches the duplicate charge.")], name="my-local-llama")
    ctx = RunContext(
        retry=RetryPolicy(base_delay_s=0.05, max_delay_s=0.2), prices=prices, events=_Printer(out)
    )

    goal = "Refund invoice 42 if it was charged twice"
    out.write(f"goal: {goal}\n")
    billed = await Billing(model=billing_model).run(goal, context=ctx, approver=refund_policy)
    out.write(f"Billing output: {billed.output!r} after {billed.turns} turns\n")
    audit = await Auditor(model=auditor_model).run(f"Review: {billed.output.model_dump_json()}", context=ctx)
    out.write(f"Auditor output: {audit.output}\n")
    for worker, usage in ctx.usage.by_worker.items():
        out.write(f"usage {worker}: {usage}\n")
    out.write(f"usage total: {ctx.usage.total}\n")
    billing_model.assert_done()
    auditor_model.assert_done()
    return 0
