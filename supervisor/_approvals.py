"""The approval queue: risky calls wait in the store for a person's decision.

With no approver, the supervisor's gate writes each risky call to the store as a pending
approval (the validated arguments, the tool's schema, the model's stated reason, when it
expires) and waits for a decision taken elsewhere: `python -m supervisor approve`, in this
process or another, now or after a restart. A decision is taken once: it only applies to an
approval that is still pending, so two approvers at once cannot both decide. Unanswered past
its expiry, an approval is recorded as expired and the call denied.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from tools.errors import RunTakenOver
from workers import ApprovalRequest, Decision

__all__ = [
    "supersede_pending",
    "STATUS_OF",
    "ApprovalRecord",
    "ApprovalStatus",
    "ApprovalStore",
    "StoreGate",
    "decision_of",
]

ApprovalStatus = Literal["pending", "approved", "denied", "edited", "aborted", "expired", "superseded"]
STATUS_OF: Mapping[str, ApprovalStatus] = {
    "approve": "approved",
    "deny": "denied",
    "edit": "edited",
    "abort": "aborted",
}


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """One approval request as stored, with its decision once taken."""

    approval_id: str
    run_id: str
    worker: str
    tool: str
    call_id: str
    arguments: Mapping[str, Any]
    schema: Mapping[str, Any]
    reason: str
    created_at: float
    expires_at: float
    status: ApprovalStatus = "pending"
    decision_reason: str | None = None
    edited_arguments: Mapping[str, Any] | None = None
    decided_by: str | None = None
    decided_at: float | None = None
    key: str = ""


class ApprovalStore(Protocol):
    """What the queue needs from a store."""

    async def add_approval(self, record: ApprovalRecord) -> None:
        """Record a new pending approval; durable when this returns."""
        ...

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        """One approval, or None."""
        ...

    async def decide(
        self,
        approval_id: str,
        status: ApprovalStatus,
        reason: str | None,
        edited: Mapping[str, Any] | None,
        by: str,
        *,
        owner_of: str | None = None,
    ) -> bool:
        """Take a decision, only if the approval is still pending; True when this one took it.

        `owner_of`: the run whose owner takes it (an expiry, the run's end), rather than a
        person: fenced like the run's other writes, it changes nothing once another process
        has taken the run over, and raises `RunTakenOver` then. A person's decision is never
        fenced: it counts from any process."""
        ...

    async def pending_approvals(self, run_id: str | None = None) -> list[ApprovalRecord]:
        """Pending approvals, oldest first (of one run, or of every run)."""
        ...

    async def approval_for(self, run_id: str, key: str) -> ApprovalRecord | None:
        """The latest approval asked for the call with this journal key, or None."""
        ...


async def supersede_pending(store: ApprovalStore, run_id: str) -> int:
    """Close the approvals a run left pending when it ended, so nobody decides a stale request.

    A run resumed later asks again (under the same call key) for any call it still makes.
    """
    closed = 0
    for record in await store.pending_approvals(run_id):
        why = "superseded: the run ended"
        try:
            closed += await store.decide(
                record.approval_id, "superseded", why, None, "run end", owner_of=run_id
            )
        except RunTakenOver:  # the run is another process's now, and its approvals with it
            break
    return closed


def late(record: ApprovalRecord, now: float | None = None) -> bool:
    """Whether the approval's time ran out (by `now`, or when it was decided): unanswered until
    then, it is denied, whatever is decided after."""
    when = record.decided_at if now is None else now
    return when is not None and when > record.expires_at


def expiry(record: ApprovalRecord) -> str:
    """Why an approval that ran out of time is denied."""
    return f"no answer within {record.expires_at - record.created_at:g} s"


async def pending_in_time(store: ApprovalStore, run_id: str | None = None) -> list[ApprovalRecord]:
    """The approvals still waiting for a decision, oldest first: not those past their expiry,
    which are denied whoever answers now (nobody marked them expired while their process was
    dead)."""
    found = await store.pending_approvals(run_id)
    now = time.time()
    return [record for record in found if not late(record, now)]


async def expired_meanwhile(store: ApprovalStore, record: ApprovalRecord, status: ApprovalStatus) -> bool:
    """Whether a decision (`status`) on `record` comes too late: its time ran out, so it is
    recorded as expired instead (the call is denied). An abort is never too late."""
    if status == "aborted" or not late(record, time.time()):
        return False
    await store.decide(record.approval_id, "expired", expiry(record), None, "timeout")
    return True


def decision_of(record: ApprovalRecord) -> Decision:
    """The `Decision` a decided record stands for. An approval (or edit) given after the request
    expired is a denial: nobody marked it expired while its process was dead, but its time had
    run out (an abort stands whenever it came: stopping is always safe)."""
    by = record.decided_by or ""
    if record.status in ("approved", "edited") and late(record):
        return Decision.deny(f"{expiry(record)}: {record.status} only after that, by {by}", by="timeout")
    if record.status == "approved":
        return Decision.approve(by=by)
    if record.status == "edited" and record.edited_arguments is not None:
        return Decision.edit(record.edited_arguments, by=by)
    if record.status == "aborted":
        return Decision.abort(record.decision_reason or "", by=by)
    return Decision.deny(record.decision_reason or "", by=by)


class StoreGate:
    """The gate of a supervisor with no approver: each risky call waits in the store.

    Args:
        store: Where approvals are kept.
        timeout_s: How long an approval waits before it expires (denied).
        poll_s: How often the store is read for a decision.
    """

    def __init__(self, store: ApprovalStore, timeout_s: float, poll_s: float = 0.2) -> None:
        self.store = store
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self._asked: set[str] = set()  # runs with approvals filed here and not yet closed
        self._reasking: set[str] = set()  # runs taken up after a person's abort ended them

    def taken_up(self, run_id: str, *, after_abort: bool) -> None:
        """Told when a run is taken up again: `after_abort` when a person's abort had ended it
        (it asks again), not when it stopped with its process (an abort decided meanwhile ends it)."""
        if after_abort:
            self._reasking.add(run_id)
        else:
            self._reasking.discard(run_id)

    def asked(self, run_id: str) -> bool:
        """Whether the run filed approvals here; the run is ending, and is forgotten here."""
        self._reasking.discard(run_id)
        if run_id in self._asked:
            self._asked.discard(run_id)
            return True
        return False

    async def review(self, request: ApprovalRequest) -> Decision:
        """File the request (or find it, filed before a restart) and wait for a decision."""
        record = await self._filed(request)
        if record.status != "pending":  # decided while the asking process was dead: its real wait
            decision = decision_of(record)
            decided_at = record.expires_at if decision.by == "timeout" else record.decided_at
            if decided_at is None:
                return decision
            waited = max(0.0, decided_at - record.created_at)  # clocks of two hosts may disagree
            return replace(decision, waited_s=waited)
        while True:
            current = await self.store.get_approval(record.approval_id)
            if current is not None and current.status != "pending":
                return decision_of(current)
            left = record.expires_at - time.time()
            if left <= 0:
                why = f"no answer within {self.timeout_s:g} s"
                # As the run's owner: a process that lost the run does not expire an approval the
                # new owner waits on (`RunTakenOver` stops this one instead).
                run = record.run_id or None
                if await self.store.decide(record.approval_id, "expired", why, None, "timeout", owner_of=run):
                    return Decision.deny(why, by="timeout")
                continue  # a decision came in at the last moment: read it
            await self.wait(record, left)

    async def wait(self, record: ApprovalRecord, left: float) -> None:
        """Wait a while for a decision on `record` (at most `left` seconds); the store is read
        again after. Here: a poll interval. A backend with messages waits for one instead."""
        await asyncio.sleep(min(self.poll_s, left))

    async def decided(self, approval_id: str, status: str) -> None:
        """Told after a decision was taken through this supervisor (a backend that waits on
        messages sends one here)."""

    async def _filed(self, request: ApprovalRequest) -> ApprovalRecord:
        """The request's record: the one a resumed run filed before it stopped, else a new one.

        A decision taken while the asking process was dead applies when the run resumes (an
        abort too: the run ends aborted), and an approved call is not asked for twice. A request
        closed because its run ended is filed again, and so is one whose abort ended the run
        before a person took it up again.
        """
        run_id = request.run_id
        if run_id:
            self._asked.add(run_id)
        if request.key and run_id:
            earlier = await self.store.approval_for(run_id, request.key)
            if earlier is not None and earlier.status != "superseded":
                if earlier.status != "aborted" or run_id not in self._reasking:
                    return earlier
        now = time.time()
        record = ApprovalRecord(
            approval_id=uuid.uuid4().hex,
            run_id=request.run_id or "",
            worker=request.worker,
            tool=request.tool,
            call_id=request.call_id,
            arguments=dict(request.arguments),
            schema=dict(request.schema),
            reason=request.reason,
            created_at=now,
            expires_at=now + self.timeout_s,
            key=request.key,
        )
        await self.store.add_approval(record)
        return record


def record_row(record: ApprovalRecord) -> tuple[Any, ...]:
    """The row of a new approval in the SQLite `approvals` table."""
    return (
        record.approval_id,
        record.run_id,
        record.worker,
        record.tool,
        record.call_id,
        json.dumps(dict(record.arguments)),
        json.dumps(dict(record.schema)),
        record.reason,
        record.created_at,
        record.expires_at,
        record.status,
        None,
        None,
        None,
        None,
        record.key,
    )


def record_of(row: tuple[Any, ...]) -> ApprovalRecord:
    """An approval from its SQLite row."""
    (
        aid,
        run_id,
        worker,
        tool,
        call_id,
        arguments,
        schema,
        reason,
        created,
        expires,
        status,
        why,
        edited,
        by,
        at,
        key,
    ) = row
    return ApprovalRecord(
        aid,
        run_id,
        worker,
        tool,
        call_id,
        json.loads(arguments),
        json.loads(schema),
        reason,
        created,
        expires,
        status,
        why,
        json.loads(edited) if edited else None,
        by,
        at,
        key,
    )
