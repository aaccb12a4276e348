"""Approvals of runs on DBOS: decided once in the run store, delivered as DBOS messages.

The store stays the one place a decision is taken (by compare-and-swap, once); the message only
wakes the run that waits for it. Each approval has a DBOS workflow of its own, keyed by the
approval's id, that holds exactly one `recv`: a `recv` inside a run's workflow would be
identified by the order of the run's calls, and with workers asking at once, a recovered run
could receive the decision meant for another call.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ._approvals import ApprovalRecord, StoreGate

if TYPE_CHECKING:
    from .dbos import DBOSBackend

__all__ = [
    "APPROVAL",
    "APPROVALS_QUEUE",
    "MessageGate",
    "approval_workflow",
    "approval_workflow_id",
    "notify_decision",
]

APPROVAL = "foreman_approval"
APPROVALS_QUEUE = "foreman-approvals"
_TOPIC = "decision"


def approval_workflow_id(approval_id: str) -> str:
    """The id of the DBOS workflow that waits for a person's decision on one approval."""
    return f"approval-{approval_id}"


async def notify_decision(url: str, approval_id: str, status: str) -> None:
    """Send a decision taken in the store to the approval's DBOS workflow, which wakes the run
    waiting on it; nothing when no run waits through DBOS (the run then reads the store)."""
    from dbos import DBOSClient
    from dbos._error import DBOSNonExistentWorkflowError

    client = DBOSClient(system_database_url=url, lazy=True, retry_connection_errors=False)
    try:
        async with asyncio.timeout(10):
            await client.send_async(approval_workflow_id(approval_id), status, topic=_TOPIC)
    except DBOSNonExistentWorkflowError:
        pass
    except Exception:  # best effort: the decision is in the store, which the run reads anyway
        logging.getLogger(__name__).warning("could not send the decision on %s through DBOS", approval_id)
    finally:
        await asyncio.to_thread(client.destroy)


async def approval_workflow(approval_id: str, timeout_s: float) -> str | None:
    """Wait for the decision message on one approval (None when none came in time).

    One workflow per approval (see the module's doc)."""
    from dbos import DBOS

    message = await DBOS.recv_async(_TOPIC, timeout_seconds=timeout_s)
    return None if message is None else str(message)


class MessageGate(StoreGate):
    """The store's approval queue, woken by DBOS messages."""

    def __init__(self, backend: DBOSBackend, store: Any, timeout_s: float) -> None:
        super().__init__(store, timeout_s)
        self.backend = backend
        self._spent: set[str] = set()  # approvals whose workflow already ended: polled instead

    async def wait(self, record: ApprovalRecord, left: float) -> None:
        if record.approval_id in self._spent:
            await super().wait(record, left)
            return
        options = {
            "workflow_name": APPROVAL,
            "queue_name": APPROVALS_QUEUE,
            "workflow_id": approval_workflow_id(record.approval_id),
            "app_version": self.backend.app_version,
            "application_name": self.backend.name,
        }
        client = self.backend._dbos_client()
        try:
            handle = await client.enqueue_async(options, record.approval_id, max(left, 0.0))  # once per id
        except Exception:  # DBOS unreachable: the decision is read from the store all the same
            self._spent.add(record.approval_id)
            await super().wait(record, left)
            return
        try:
            async with asyncio.timeout(min(left, 1.0)):  # bounded: the store is read again after
                await handle.get_result(polling_interval_sec=self.poll_s)
        except TimeoutError:
            return
        self._spent.add(record.approval_id)

    async def decided(self, approval_id: str, status: str) -> None:
        await notify_decision(self.backend.url, approval_id, status)
