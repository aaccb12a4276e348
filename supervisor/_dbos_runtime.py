"""DBOS in this process, for the backend (`dbos.py`): launching and destroying it off the event
loop (both block on database round trips and thread joins), one try at a run as the body of its
workflow, and the runs in flight stopped when the worker stops."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from tools.errors import AgentError, StoreError

if TYPE_CHECKING:
    from ._supervisor import Supervisor

__all__ = ["destroy", "launch", "off_loop", "run_once", "stop_runs"]


async def launch(dbos: Any) -> None:
    """`DBOS.launch()` off the event loop (it migrates DBOS's tables and lists the runs to
    recover: database round trips), its runs still on this loop.

    DBOS runs async workflows on the loop that was running in the thread it launched from, and a
    thread has none; it keeps a loop set before, when it finds none (dbos 3.4 `_event_loop.py`).
    So this loop is set first: the runs must share it with the supervisor and its store, which
    belong to one loop. A DBOS without that hook launches here, on the loop, as it documents."""
    from dbos import DBOS

    set_loop = getattr(getattr(dbos, "_background_event_loop", None), "set_main_loop", None)
    if not callable(set_loop):
        DBOS.launch()
        return
    set_loop()
    await off_loop(DBOS.launch)


async def destroy() -> None:
    """`DBOS.destroy()` off the event loop: it joins DBOS's threads (10 s each at most), and one
    of them may wait on this loop to hand over a run, which a loop blocked in the join never does.

    DBOS made its thread pool this loop's default one (asyncio.to_thread's) and shuts the pool
    down with itself; the loop gets a pool of its own back, or every later to_thread would fail
    ("cannot schedule new futures after shutdown")."""
    from dbos import DBOS

    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(thread_name_prefix="foreman")  # shut down by asyncio.run, as a default
    loop.set_default_executor(pool)
    await off_loop(functools.partial(DBOS.destroy, workflow_completion_timeout_sec=0))
    loop.set_default_executor(pool)  # a DBOS call meanwhile may have made its pool the default again


async def off_loop(call: Callable[[], object]) -> None:
    """A blocking DBOS call in a thread. Cancelled meanwhile, it waits for the thread all the same
    (DBOS bounds its own waits): a thread cannot be stopped, and DBOS destroyed while it still
    launches would race with it."""
    thread = asyncio.ensure_future(asyncio.to_thread(call))
    try:
        await asyncio.shield(thread)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):  # cancelled: that is what this raises
            await thread
        raise


async def run_once(supervisor: Supervisor, goal: str, run_id: str, *, again: bool) -> str:
    """One try at a run in its workflow; `StoreError` when the store failed (the database
    went away, say), and the run is taken up again from the store (`again`: its record may say
    "failed" with that error). Other errors end it: the store has them, and DBOS records the run
    as ended."""
    record = await supervisor._store.load(run_id)
    ended = record is not None and (
        (record.status == "failed" and not again) or record.aborted_by is not None
    )
    if record is not None and ended:
        # It ended (failed, or a person aborted it) before DBOS recorded so: a worker died in
        # between. Taken up again, it would run on (and a person who aborted it would be asked
        # again); it ends as recorded. A run aborted because its worker was stopping has no
        # `aborted_by`, and resumes.
        return f"{record.status}: {record.error}"
    try:
        await supervisor._run(goal, None, run_id)
    except StoreError:
        raise
    except AgentError as error:
        return f"failed: {type(error).__name__}"
    return "succeeded"


async def stop_runs(supervisor: Supervisor) -> None:
    """Cancel the runs in flight and wait for them to record where they stopped (bounded)."""
    running = [task for task in supervisor._running.values() if not task.done()]
    for task in running:
        task.cancel()
    if running:
        await asyncio.wait(running, timeout=10)
