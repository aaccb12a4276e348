"""Approvals of a run that another process took over: the one that lost it changes none of them.

Promises, on a PostgreSQL store that processes share: the approvals a run's owner files and
closes itself (a new request, an expiry when its wait times out, the superseding of those left
pending when the run ends) are fenced by the run's owner, as its journal is; once another process
has taken the run over, the one that lost it files, expires and supersedes nothing, and stops
(`RunTakenOver`) rather than telling its model the call was denied. A person's decision is never
fenced: it counts from any process, that one included, and the new owner gets it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from supervisor import Plan, Step, Supervisor
from supervisor._approvals import ApprovalRecord, StoreGate, supersede_pending
from supervisor._postgres import PostgresStore
from supervisor._store import RunRecord
from tools import tool
from tools.errors import RunTakenOver
from workers import ApprovalRequest, ModelRequest, Worker
from workers.testing import FunctionModel, ScriptedModel, reply

KEY = "1/p.1/0/Payer/1/0"
REQUEST = ApprovalRequest("r", "Payer", "pay", {"amount": 5}, "c1", "it pays", {}, key=KEY)


async def _take_over(url: str, run_id: str, owner: str) -> PostgresStore:
    """Another process takes the run up, as a resumed or recovered run does; its store."""
    store = PostgresStore(url)
    loaded = await store.load(run_id)
    assert loaded is not None
    assert await store.start(dataclasses.replace(loaded, owner=owner), loaded)
    return store


async def _pending(store: PostgresStore, run_id: str) -> list[ApprovalRecord]:
    for _ in range(500):  # bounded: 10 s at most
        pending = await store.pending_approvals(run_id)
        if pending:
            return pending
        await asyncio.sleep(0.02)
    raise AssertionError("no approval was filed")


async def test_a_supervisor_that_lost_its_run_while_waiting_does_not_expire_the_approval(
    postgres_url: str,
) -> None:
    paid: list[int] = []

    @tool(risky=True)
    def pay(amount: int) -> str:
        """Pays out (a person approves each call)."""
        paid.append(amount)
        return "paid"

    payer = type("Payer", (Worker,), {"__doc__": "Pays.", "tools": [pay]})

    def model(request: ModelRequest) -> Any:
        return reply.text("told") if request.tool_results else reply.tool_call("pay", amount=5)

    person = PostgresStore(postgres_url)
    sup = Supervisor(
        [payer(model=FunctionModel(model))], model=ScriptedModel([]), store=postgres_url, approval_timeout_s=1
    )
    try:
        run = asyncio.create_task(sup.run_plan(Plan(steps=[Step("p", "Payer", "pay 5")]), run_id="t"))
        (asked,) = await _pending(person, "t")
        new_owner = await _take_over(postgres_url, "t", "elsewhere:1")
        with pytest.raises(RunTakenOver, match="taken it over"):
            await asyncio.wait_for(run, 15)  # its wait timed out: it stops, and denies nothing
        still = await person.get_approval(asked.approval_id)
        run_now = await person.load("t")
    finally:
        await sup.aclose()
    await new_owner.aclose()
    await person.aclose()
    assert still is not None and (still.status, still.decided_by) == ("pending", None)
    assert run_now is not None and (run_now.owner, run_now.status) == ("elsewhere:1", "running")
    assert paid == []


async def test_the_approval_the_old_owner_could_not_expire_stays_pending_and_is_past_its_time(
    postgres_url: str,
) -> None:
    old, person = PostgresStore(postgres_url), PostgresStore(postgres_url)
    new: PostgresStore | None = None
    try:
        assert await old.start(RunRecord("r", "goal", "running", None, ("Payer",), owner="a:1"))
        waiting_old = asyncio.create_task(StoreGate(old, timeout_s=0.5, poll_s=0.02).review(REQUEST))
        (asked,) = await _pending(person, "r")
        new = await _take_over(postgres_url, "r", "b:2")
        with pytest.raises(RunTakenOver):
            await asyncio.wait_for(waiting_old, 10)  # its wait timed out after it lost the run
        assert [a.approval_id for a in await person.pending_approvals("r")] == [asked.approval_id]
        # Decided after its time ran out (`approve` would not offer it; recorded here by hand):
        # the resumed run, asking for the same call, finds the request filed before, and denied.
        assert await person.decide(asked.approval_id, "approved", None, None, "alice")
        decision = await asyncio.wait_for(StoreGate(new, timeout_s=60).review(REQUEST), 10)
        assert (decision.kind, decision.by) == (
            "deny",
            "timeout",
        ) and "approved only after" in decision.reason
    finally:
        for store in (old, new, person):
            if store is not None:
                await store.aclose()


async def test_a_process_that_lost_its_run_files_and_closes_no_approval_but_a_person_decides_there(
    postgres_url: str,
) -> None:
    old = PostgresStore(postgres_url)
    new: PostgresStore | None = None
    try:
        assert await old.start(RunRecord("r", "goal", "running", None, ("Payer",), owner="a:1"))
        new = await _take_over(postgres_url, "r", "b:2")
        filed = ApprovalRecord("new-1", "r", "Payer", "pay", "c1", {"amount": 5}, {}, "", 1.0, 2.0, key=KEY)
        await new.add_approval(filed)  # the new owner asks

        stale = dataclasses.replace(filed, approval_id="old-1", call_id="c2")
        with pytest.raises(RunTakenOver):
            await old.add_approval(stale)
        with pytest.raises(RunTakenOver):
            await old.decide("new-1", "expired", "no answer", None, "timeout", owner_of="r")
        assert await supersede_pending(old, "r") == 0  # its run ended: the new owner's stays open
        assert await old.get_approval("old-1") is None
        assert [a.approval_id for a in await new.pending_approvals("r")] == ["new-1"]

        # A person's decision counts from any process, this one included; the owner's expiry that
        # comes after it changes nothing and says so (False), without raising.
        assert await old.decide("new-1", "denied", "not today", None, "bob")
        assert not await new.decide("new-1", "expired", "no answer", None, "timeout", owner_of="r")
        decided = await new.get_approval("new-1")
        assert decided is not None and (decided.status, decided.decided_by) == ("denied", "bob")

        # The owner's own expiry does close its request.
        await new.add_approval(dataclasses.replace(filed, approval_id="new-2", call_id="c3"))
        assert await new.decide("new-2", "expired", "no answer", None, "timeout", owner_of="r")
    finally:
        await old.aclose()
        if new is not None:
            await new.aclose()
