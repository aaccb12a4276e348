"""`python -m supervisor demo`: a small real plan, three workers, tools, one risky step.

With no API key it runs on the deterministic scripted models (and says so); with
ANTHROPIC_API_KEY or OPENAI_API_KEY set it runs the same plan on the real provider. Progress is
printed as it happens: the plan and why each worker was chosen, steps, tool calls, the approval
of the risky refund (decided by a policy in code, never by a model), retries, and the cost.
"""

from __future__ import annotations

import os
from typing import TextIO

from pydantic import BaseModel, Field

from tools import tool
from workers import (
    ApprovalRequest,
    Decision,
    Model,
    PriceTable,
    Worker,
)
from workers.testing import ScriptedModel, reply

from ._budget import Budget
from ._progress import Progress
from ._supervisor import Supervisor

INVOICES = {"42": {"invoice_id": "42", "total": 30.0, "charges": [30.0, 30.0], "order_id": 7}}
ORDERS = {7: {"order_id": 7, "status": "delivered", "items": ["blue mug"]}}
GOAL = "Invoice 42 may have been charged twice: refund the duplicate and draft a reply to the customer."


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


@tool
async def lookup_order(order_id: int) -> dict[str, object]:
    """Fetch an order by id."""
    return ORDERS.get(order_id, {"error": f"no order {order_id}"})


class Billing(Worker):
    """Checks invoices and refunds duplicate charges."""

    model = "anthropic:claude-haiku-4-5"
    instructions = "You handle billing. Refund only duplicate charges, never more than the invoice total."
    tools = [lookup_invoice, issue_refund]
    output = Refund
    max_turns = 8


class Orders(Worker):
    """Looks up orders and their delivery status."""

    model = "anthropic:claude-haiku-4-5"
    tools = [lookup_order]


class Writer(Worker):
    """Drafts short, friendly customer replies."""

    model = "anthropic:claude-haiku-4-5"


def refund_policy(request: ApprovalRequest) -> Decision:
    """The approval gate, in code: a refund up to the invoice total passes, anything else is denied."""
    invoice = INVOICES.get(str(request.arguments.get("invoice_id")), {})
    total = float(invoice.get("total", 0.0))  # type: ignore[arg-type]
    if 0 < float(request.arguments.get("amount", 0)) <= total:
        return Decision.approve(by="refund-policy")
    return Decision.deny(f"more than the invoice total of ${total:.2f}", by="refund-policy")


def _scripted() -> tuple[ScriptedModel, dict[str, ScriptedModel]]:
    # Priced as the real models they stand in for, so the costs shown are realistic.
    prices = PriceTable()
    sonnet, haiku = prices.lookup("anthropic:claude-sonnet-4-6"), prices.lookup("anthropic:claude-haiku-4-5")
    plan = {
        "reasoning": "Billing settles the charge while Orders checks the delivery; Writer drafts from both.",
        "steps": [
            {
                "id": "refund",
                "worker": "Billing",
                "input": "Check invoice 42 for a duplicate charge and refund it.",
                "depends_on": [],
                "reason": "Billing owns invoices and refunds",
            },
            {
                "id": "order",
                "worker": "Orders",
                "input": "What is the status of order 7 (invoice 42)?",
                "depends_on": [],
                "reason": "Orders knows deliveries",
            },
            {
                "id": "reply",
                "worker": "Writer",
                "input": "Draft a reply to the customer about invoice 42.",
                "depends_on": ["refund", "order"],
                "reason": "Writer drafts customer replies",
            },
        ],
    }
    planner = ScriptedModel(
        [
            reply.output(plan),
            reply.text("Refunded the $30.00 duplicate on invoice 42; order 7 was delivered; reply drafted."),
        ],
        name="planner (scripted)",
        price=sonnet,
    )
    workers = {
        "Billing": ScriptedModel(
            [
                reply.error(529, "Overloaded"),
                reply.tool_call("lookup_invoice", invoice_id="42"),
                reply.tool_call("issue_refund", invoice_id="42", amount=-30),
                reply.tool_call("issue_refund", invoice_id="42", amount=30.0),
                reply.output({"invoice_id": "42", "refunded": True, "amount": 30.0}),
            ],
            name="billing (scripted)",
            price=haiku,
        ),
        "Orders": ScriptedModel(
            [reply.tool_call("lookup_order", order_id=7), reply.text("Order 7 (a blue mug) was delivered.")],
            name="orders (scripted)",
            price=haiku,
        ),
        "Writer": ScriptedModel(
            [
                reply.text(
                    "Hi! We refunded the duplicate $30.00 charge on invoice 42. Your blue mug was delivered."
                )
            ],
            name="writer (scripted)",
            price=haiku,
        ),
    }
    return planner, workers


def _real_models() -> tuple[str, str] | None:
    """(planner model, worker model) for the provider whose key is set, else None."""
    if os.environ.get("ANTHROPIC_API_KEY"):
        return "anthropic:claude-sonnet-4-6", "anthropic:claude-haiku-4-5"
    if os.environ.get("OPENAI_API_KEY"):
        return "openai:gpt-4.1", "openai:gpt-4.1-mini"
    return None


async def run_demo(out: TextIO, store: str = "foreman-demo.db") -> int:
    """Run the demo plan, journaled in `store`, printing progress; returns the exit code."""
    from workers import RetryPolicy

    real = _real_models()
    planner: str | Model
    scripted: dict[str, ScriptedModel] = {}
    if real is None:
        out.write("No ANTHROPIC_API_KEY or OPENAI_API_KEY: running on the scripted test models.\n")
        planner, scripted = _scripted()
        workers = [cls(model=scripted[cls.__name__]) for cls in (Billing, Orders, Writer)]
    else:
        planner, worker_model = real
        out.write(f"Running on {planner} (planner) and {worker_model} (workers).\n")
        workers = [cls(model=worker_model) for cls in (Billing, Orders, Writer)]
    progress = Progress(out)
    supervisor = Supervisor(
        workers,
        model=planner,
        budget=Budget(max_usd=0.50, max_tokens=200_000, max_steps=6, deadline_s=120),
        approver=refund_policy,
        retry=RetryPolicy(base_delay_s=0.05, max_delay_s=2.0),
        events=progress,
        store=store,
    )
    out.write(f"goal: {GOAL}\n")
    async with supervisor:
        result = await supervisor.run(GOAL)
    out.write(f"\nanswer: {result.output}\n")
    out.write(f"refund step output: {result.steps['refund'].output!r}\n" if "refund" in result.steps else "")
    for worker, usage in result.usage_by_worker.items():
        out.write(f"usage {worker}: {usage}\n")
    out.write(f"usage total: {result.usage}\nrun id: {result.run_id}\n")
    out.write(f"journal: {store} (list its runs: python -m supervisor runs --store {store})\n")
    for model in scripted.values():
        model.assert_done()
    if isinstance(planner, ScriptedModel):
        planner.assert_done()
    return 0
