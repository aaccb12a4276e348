"""The built-in demo: a billing conversation on the deterministic test models.

It runs offline with no API key, and shows what the framework checks: a 529 overload is retried
with backoff, a parallel tool-call turn arrives in order, usage and cost are summed, and a model
without a price is reported as unpriced rather than free.
"""

from __future__ import annotations

from typing import TextIO

from workers import (
    ModelRequest,
    ModelRetryEvent,
    Price,
    RateLimit,
    RateLimits,
    RetryPolicy,
    ToolResultPart,
    ToolSpec,
    UsageLedger,
    UserMessage,
    call_model,
)
from workers._events import Event
from workers.testing import ScriptedModel, reply

LOOKUP = ToolSpec(
    "lookup_invoice",
    "Fetch an invoice by id.",
    {"type": "object", "properties": {"invoice_id": {"type": "string"}}, "required": ["invoice_id"]},
)


class _Printer:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def emit(self, event: Event) -> None:
        if isinstance(event, ModelRetryEvent):
            self.out.write(f"  retry {event.attempt} after {event.delay_s:.2f}s: {event.error}\n")


async def run_demo(out: TextIO) -> int:
    """Run the demo conversation, printing each step; returns the exit code."""
    billing = ScriptedModel(
        [
            reply.error(529, "Overloaded"),
            reply.tool_calls(
                [("lookup_invoice", {"invoice_id": "42"}), ("lookup_invoice", {"invoice_id": "43"})]
            ),
            reply.text("Invoice 42 was charged twice; invoice 43 once."),
        ],
        name="billing-demo",
        price=Price(input=1.0, output=5.0),
    )
    auditor = ScriptedModel([reply.text("Agreed.")], name="auditor-demo")
    policy = RetryPolicy(base_delay_s=0.05, max_delay_s=0.2)
    limits = RateLimits({"test": RateLimit(requests_per_minute=600)})
    ledger, events = UsageLedger(), _Printer(out)

    out.write("goal: was invoice 42 charged twice?\n")
    request = ModelRequest(
        messages=(UserMessage.of("Was invoice 42 charged twice?"),),
        tools=(LOOKUP,),
        system="You handle billing.",
    )
    first = await call_model(billing, request, policy=policy, limits=limits, events=events)
    ledger.record("Billing", first.usage)
    for call in first.tool_calls:
        out.write(f"  tool call {call.name}({call.raw_arguments})\n")
    results = UserMessage(
        tuple(
            ToolResultPart(c.id, c.name, f'{{"invoice": {c.arguments}, "charges": 2}}')
            for c in first.tool_calls
        )
    )
    second_request = ModelRequest(
        messages=(*request.messages, first.message, results), tools=(LOOKUP,), system=request.system
    )
    answer = await call_model(billing, second_request, policy=policy, limits=limits, events=events)
    ledger.record("Billing", answer.usage)
    out.write(f"Billing: {answer.text}\n")
    check = await call_model(auditor, ModelRequest(messages=(UserMessage.of(answer.text),)), policy=policy)
    ledger.record("Auditor", check.usage)
    out.write(f"Auditor: {check.text}\n")
    for worker, usage in ledger.by_worker.items():
        out.write(f"usage {worker}: {usage}\n")
    out.write(f"usage total: {ledger.total}\n")
    billing.assert_done()
    auditor.assert_done()
    return 0
