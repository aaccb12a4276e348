"""A run's model calls and tool calls as DBOS steps, each named by its journal key.

DBOS identifies a step by a per-workflow counter (its `function_id`), drawn in the order steps
start and shared by every asyncio task of the workflow; a run's workers start their calls in the
order their models' latencies give, so a step found again by its counter could be another
call's. Here a step is found by its name, the call's key ("{scope}/{worker}/{turn}", then
"/{index}" for a tool call, "/summaryN" for a summary): a resumed run reads every step output of
its workflow once (`DBOSSteps.take_up`) and its journal hands each to the call with that key. A
live call gets a fresh `function_id` above every one its workflow recorded, at
[2**30, 2**31): the workflow's own counter stays below. The id is only a free slot: a call whose
process died before DBOS recorded its output has no row, and runs again (DBOS's at-least-once;
the journal's start records keep a tool that is not idempotent from running twice).

Internals of dbos 3.4 used (pinned in the `dbos` extra; tests/test_dbos_steps.py fails loudly
if they change): the context variable `dbos._context._dbos_context_var`, a copy of the
workflow's `DBOSContext` with its `function_id` set, handed to the public `DBOS.reserve_step`,
which draws the step's id from that copy (the shared counter is left alone).

Each step runs as a task of its own, awaited so that a stop does not cut it: a stop (a cancel)
that reaches the run while DBOS records the output of a call that ended waits for the record
rather than cutting it off, and a stop before or during the call is passed on to it, so a tool
is stopped as it is without DBOS (`workers._toolrun.outcome`), and a step stopped before its call
began never runs it (the worker journals it as not run). DBOS retries a lost connection for
ever: its look-up before a call and its record after it are each bounded (`DB_WAIT_S`), past
which the store has failed for a reason that may pass (`StoreError`, transient), and the run's
workflow takes it up again later as after any store error.

A step's output is the call's record as JSON text (`call_json`), prefixed by its kind ("model:",
"tool:"), so DBOS pickles none of our types. A call that raised records the output None (not
DBOS's error, which it would raise again on every resume): it is made again when asked again,
under a new id, as a failed call is without DBOS.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from tools.errors import StoreError
from workers import CallSteps, ModelResponse, ToolCallPart, ToolRecord, ToolResultPart, ToolStatus

from ._calls import CallRecord, call_from_json, call_json

if TYPE_CHECKING:
    from .dbos import DBOSBackend

__all__ = ["BASE", "DBOSSteps", "KeyedSteps"]

BASE = 1 << 30  # the first function_id of a call; PostgreSQL's INTEGER ends at 2**31 - 1
_TOP = (1 << 31) - 1
# How long DBOS may take to look a step up before its call, or to record its output after it:
# DBOS retries a lost connection for ever, so an outage would hold the run (and a stop) until the
# database came back. Past it the store failed, for a reason that may pass: the run is taken up
# again by its workflow (`dbos._run_once`), as after any store error. The store's commit bound.
DB_WAIT_S = 60.0

ToolOutcome = tuple[ToolResultPart, ToolStatus, float]
_T = TypeVar("_T")


def _in_workflow(run_id: str) -> Any:
    """The DBOS context of the run's workflow when the caller runs in it (not in a step), else None."""
    from dbos._context import get_local_dbos_context

    ctx = get_local_dbos_context()
    if ctx is None or not ctx.is_workflow() or ctx.workflow_id != run_id:
        return None
    return ctx


class KeyedSteps:
    """One workflow execution's steps: each live call a DBOS step named by its key, at an id of
    its own (see the module's doc). Implements `workers.CallSteps`."""

    __slots__ = ("backend", "next", "run_id")

    def __init__(self, backend: DBOSBackend, run_id: str) -> None:
        self.backend = backend
        self.run_id = run_id
        self.next = BASE  # above every id recorded or drawn in this process: never drawn twice

    def seen(self, function_id: int) -> None:
        """An id the workflow recorded: new calls go above it."""
        if function_id >= self.next:
            self.next = function_id + 1

    async def _step(
        self, key: str, func: Callable[[], Coroutine[Any, Any, str | None]], phase: _Phase
    ) -> str | None:
        """`func` as the step `key`; `func` marks `phase` when its call begins and ends (its
        output is then being recorded)."""
        from dbos import DBOS
        from dbos._context import _dbos_context_var

        ctx = _in_workflow(self.run_id)
        if ctx is None:  # made from inside a step (a tool that runs a worker): part of that step
            return await func()
        if self.next > _TOP:  # function_id is a PostgreSQL INTEGER
            raise StoreError(self.backend.url_shown, f"run {self.run_id!r} made more than 2**30 calls")
        at = copy.copy(ctx)  # a private counter: the workflow's own, shared by its tasks, is not touched
        at.function_id = self.next - 1  # reserve_step draws function_id + 1
        self.next += 1
        token = _dbos_context_var.set(at)
        try:
            reservation = DBOS.reserve_step()
        finally:
            _dbos_context_var.reset(token)
        options: Any = {"name": key}  # dbos.StepOptions
        # A task of its own, so that a stop (a cancel) reaching the run while DBOS records the
        # output of a call that ended waits for the record instead of cutting it off: a call
        # that took effect keeps its output.
        step = asyncio.ensure_future(reservation.run_async(options, func))
        step.add_done_callback(_consumed)  # however this ends, the step's outcome counts as seen
        try:
            try:
                return await self._awaited(step, phase)
            except asyncio.CancelledError:
                if step.done():
                    raise
                if phase.ended.is_set():  # recorded, then the stop stands
                    with contextlib.suppress(Exception):  # a store failing meanwhile: it stands too
                        await self._bounded(step, asyncio.shield(step))
                    raise
                step.cancel()  # not begun, or running: the call is stopped as it would be directly
                return await step
        except StoreError:
            raise
        except Exception as exc:  # DBOS's own (the call's errors never leave `func`): the store's
            from ._dbos_lock import unreachable

            raise unreachable(self.backend.url, exc) from None

    async def _awaited(self, step: asyncio.Future[str | None], phase: _Phase) -> str | None:
        """The step's output: DBOS's look-up before the call and its record after it are each
        bounded by `DB_WAIT_S`; the call itself by its own bounds (retries, timeouts, deadline).
        Waited through `asyncio.wait`, which leaves the step running when this is cancelled."""
        await self._bounded(step, _first(step, phase.began))
        await _first(step, phase.ended)
        await self._bounded(step, _first(step, None))
        return step.result()

    async def _bounded(self, step: asyncio.Future[str | None], waiting: Awaitable[Any]) -> None:
        try:
            async with asyncio.timeout(DB_WAIT_S):
                await waiting
        except TimeoutError:
            step.cancel()  # its thread may still be retrying: its outcome is not waited for
            raise StoreError(
                self.backend.url_shown,
                f"DBOS did not look up or record step of run {self.run_id!r} within {DB_WAIT_S:g} s",
                transient=True,
            ) from None

    async def model(self, key: str, send: Callable[[], Awaitable[ModelResponse]]) -> ModelResponse:
        """The model call inside the step `key` (see `workers.CallSteps`)."""
        value = await self._made_or_kept(key, send, lambda response: "model:" + call_json(response)[1])
        if not isinstance(value, ModelResponse):
            raise StoreError(
                self.backend.url_shown, f"step {key!r} of run {self.run_id!r} holds no model response"
            )
        return value

    async def tool(
        self,
        key: str,
        call: ToolCallPart,
        arguments_json: str,
        execute: Callable[[], Awaitable[ToolOutcome]],
    ) -> ToolOutcome:
        """The tool call inside the step `key` (see `workers.CallSteps`)."""

        def record(outcome: ToolOutcome) -> str:
            result, status, duration = outcome
            finished = ToolRecord(call.name, "finished", 1, arguments_json, result, status, duration)
            return "tool:" + call_json(finished)[1]

        value = await self._made_or_kept(key, execute, record)
        if isinstance(value, tuple):
            return value
        if not isinstance(value, ToolRecord) or value.result is None or value.status is None:
            raise StoreError(
                self.backend.url_shown, f"step {key!r} of run {self.run_id!r} holds no finished tool call"
            )
        return value.result, value.status, value.duration_s

    async def _made_or_kept(
        self, key: str, make: Callable[[], Awaitable[_T]], record: Callable[[_T], str]
    ) -> _T | ModelResponse | ToolRecord | None:
        """The call made inside the step `key`: its outcome, made here (`record` gives the
        step's output), or the record DBOS kept of it (only when another process recorded
        this very id)."""
        made: list[_T | Exception] = []
        phase = _Phase()

        async def step() -> str | None:
            phase.begin()
            try:
                value = await make()
            except Exception as error:  # not an output: asked again, it is made again
                made.append(error)
                return None
            finally:
                phase.end()
            made.append(value)
            return record(value)

        text = await self._step(key, step, phase)
        if made:
            if isinstance(made[0], Exception):
                raise made[0]
            return made[0]
        return _decoded(text, self.backend.url_shown)


class _Phase:
    """Where a step's call is: begun (DBOS found no output), ended (its output is being recorded)."""

    __slots__ = ("began", "ended")

    def __init__(self) -> None:
        self.began = asyncio.Event()
        self.ended = asyncio.Event()

    def begin(self) -> None:
        self.began.set()

    def end(self) -> None:
        self.ended.set()


async def _first(step: asyncio.Future[str | None], event: asyncio.Event | None) -> None:
    """Until `event` is set or the step is done (DBOS had its output, or failed); the step goes
    on when this is cancelled."""
    if step.done() or (event is not None and event.is_set()):
        return
    waiter = asyncio.ensure_future(event.wait()) if event is not None else None
    try:
        await asyncio.wait((step,) if waiter is None else (step, waiter), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if waiter is not None:
            waiter.cancel()


def _consumed(step: asyncio.Future[Any]) -> None:
    if not step.cancelled():
        step.exception()


def _decoded(text: str | None, where: str) -> ModelResponse | ToolRecord | None:
    """The record a step's output holds, or None (a failed call, or not one of ours); a record
    of ours that cannot be read is the store's failure (`where`: the database, for the error)."""
    if not isinstance(text, str):
        return None
    kind, _, body = text.partition(":")
    if kind not in ("model", "tool"):
        return None
    try:
        value = call_from_json(kind, body)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise StoreError(where, f"a DBOS step holds a {kind} record that cannot be read: {exc}") from None
    return value if isinstance(value, (ModelResponse, ToolRecord)) else None


class DBOSSteps:
    """The supervisor's step engine on DBOS: per run in this process, its `KeyedSteps`, and the
    outputs its workflow recorded, read once when the run is taken up."""

    def __init__(self, backend: DBOSBackend) -> None:
        self.backend = backend
        self._runs: dict[str, KeyedSteps] = {}  # the runs whose workflow runs in this process

    async def take_up(
        self, run_id: str, calls: Sequence[CallRecord], *, resumed: bool
    ) -> tuple[list[CallRecord], CallSteps | None, list[CallRecord]]:
        """The run's journal records, model responses and finished tool calls taken from its
        workflow's steps (the store's records count only for calls no step holds: approvals,
        starts, denials, failed attempts, calls stopped before they began); the steps its live
        calls run in; and the step outputs the store lacks (DBOS recorded them, then the process
        died before the store did), for the store to keep. Outside the run's workflow (its
        function called directly, as a test does): the records unchanged, no steps."""
        if _in_workflow(run_id) is None:
            return list(calls), None, []
        keyed = self._runs.get(run_id)
        if keyed is None:
            keyed = self._runs[run_id] = KeyedSteps(self.backend, run_id)
        if not resumed:  # a new run: its workflow has no step yet
            return list(calls), keyed, []
        try:
            steps = await self.backend._dbos_client().list_workflow_steps_async(run_id)
        except Exception as exc:
            from ._dbos_lock import unreachable

            raise unreachable(self.backend.url, exc) from None
        stored = {r.key: r for r in calls}  # the store keeps one record per key: its latest
        held: dict[str, CallRecord] = {}
        where = self.backend.url_shown
        for step in steps:
            function_id, name = step["function_id"], step["function_name"]
            if function_id < BASE:
                continue
            keyed.seen(function_id)
            value = _decoded(step["output"], where) if step["error"] is None else None
            if value is None or name in held:  # a failed call's None is skipped
                continue
            before = stored.get(name)
            if isinstance(value, ToolRecord) and before is not None and isinstance(before.value, ToolRecord):
                value = dataclasses.replace(value, starts=max(before.value.starts, 1))
            held[name] = CallRecord(name, value)
        kept = [r for r in calls if r.key not in held]  # a step's output supersedes a start
        missing = [r for key, r in held.items() if key not in stored or not _output(stored[key])]
        return [*kept, *held.values()], keyed, missing

    def forget(self, run_id: str) -> None:
        """The run's workflow ended in this process."""
        self._runs.pop(run_id, None)


def _output(record: CallRecord) -> bool:
    """Whether the record is what a step's output holds: a model response or a finished tool."""
    value = record.value
    return isinstance(value, ModelResponse) or (isinstance(value, ToolRecord) and value.state == "finished")
