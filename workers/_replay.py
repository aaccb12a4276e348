"""The call journal: what a worker needs to resume inside a step after its process died.

The supervisor implements `CallJournal` on its store and puts it in the run's context, with a
scope naming where the worker runs (plan version, step, attempt, handoff). The turn loop keys
every model call by scope, worker and turn, and every tool call by that plus its place in the
turn. On a resumed run, a recorded response is used instead of calling the model again, so the
conversation, and with it every tool call id, comes out as it was; a finished tool call gives
back its recorded result. A tool call that started and never finished is handled by the tool's
declaration: idempotent tools run again, risky ones go back to a person, others fail clearly
(`ToolInterrupted`).

Durability: a model response is committed before the worker acts on it (a tool-call turn's
response with the first tool start, or before an approval wait, or at the end of the turn), a tool that is not
idempotent runs only after its start is committed, and its result is committed before the worker
goes on, so a kill at any moment leaves a record that says what happened. An idempotent tool's
result is committed with the next commit: losing it only runs a harmless call again.

A journal may also hand the loop `steps`: an engine that runs each live call as a durable step
of its own (DBOS), under the call's key, and keeps its output. The loop then sends the model
request and runs the tool inside `steps.model` and `steps.tool`; everything else (what is
replayed, the records written, their durability) stays as described here. Without one
(`steps is None`, every store of the framework's own), a call is made directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from ._events import ToolStatus
from ._messages import ToolCallPart, ToolResultPart
from ._model import ModelResponse
from ._records import fast_init

__all__ = ["CallJournal", "CallSteps", "ToolRecord", "steps_of"]


@fast_init
@dataclass(frozen=True, slots=True)
class ToolRecord:
    """A tool call as journaled.

    Attributes:
        tool: The tool's name.
        state: "approved" (a person said yes; not started yet), "started" (it may or may not
            have taken effect) or "finished".
        starts: How many times it was started (a re-run after an interruption counts again).
        arguments_json: The arguments it ran with, as canonical JSON.
        result: The result the model got, once finished.
        status: How it finished ("ok", "error", "timeout"), once finished.
        duration_s: How long it ran, once finished.
        shown: The arguments and result as events and traces show them, when a redact hook
            changed them (the fields above keep what resume needs).
    """

    tool: str
    state: Literal["approved", "started", "finished"]
    starts: int
    arguments_json: str
    result: ToolResultPart | None = None
    status: ToolStatus | None = None
    duration_s: float = 0.0
    shown: tuple[str, str] | None = None


class CallSteps(Protocol):
    """Runs a run's live calls as durable steps of an engine that keeps their outputs (DBOS).

    A step is named by the call's journal key; its output is the call's record, which a resumed
    run is handed back by its journal. A call that fails (an exception) leaves no output: it is
    made again when asked again, as without steps.
    """

    async def model(self, key: str, send: Callable[[], Awaitable[ModelResponse]]) -> ModelResponse:
        """`send()` (one model call, retries included) inside the step `key`; its response."""
        ...

    async def tool(
        self,
        key: str,
        call: ToolCallPart,
        arguments_json: str,
        execute: Callable[[], Awaitable[tuple[ToolResultPart, ToolStatus, float]]],
    ) -> tuple[ToolResultPart, ToolStatus, float]:
        """`execute()` (the tool, run once) inside the step `key`: the result the model gets, how
        it finished, and how long it ran. An exception from here may come before `execute`
        began or after it ended: the caller tells which by what `execute` did."""
        ...


class CallJournal(Protocol):
    """Where a run's model and tool calls are recorded, and found again on resume.

    A journal may have a `steps` attribute (`CallSteps | None`): the engine that runs its live
    calls as durable steps. Without one, or None, they are made directly.
    """

    def response(self, key: str) -> ModelResponse | None:
        """The response recorded under `key`, or None (then the model is called)."""
        ...

    async def save_response(self, key: str, response: ModelResponse, *, durable: bool = True) -> None:
        """Record a response; committed when this returns, or, with `durable=False`, with the
        next commit (the caller then commits before anything depends on it)."""
        ...

    async def commit(self) -> None:
        """Commit what was recorded without `durable`."""
        ...

    def tool(self, key: str) -> ToolRecord | None:
        """The tool call recorded under `key`, or None."""
        ...

    async def tool_approved(self, key: str, call: ToolCallPart, arguments_json: str) -> None:
        """Record a person's approval (with the arguments approved); committed when this returns."""
        ...

    async def tool_started(self, key: str, call: ToolCallPart, arguments_json: str, *, durable: bool) -> None:
        """Record that a tool call starts; when `durable`, return only once it is committed."""
        ...

    async def tool_finished(
        self,
        key: str,
        call: ToolCallPart,
        arguments_json: str,
        result: ToolResultPart,
        status: ToolStatus,
        duration_s: float,
        *,
        durable: bool,
    ) -> None:
        """Record a finished tool call and the result the model gets; when `durable`, committed
        when this returns (else with the next commit)."""
        ...


def steps_of(journal: object) -> CallSteps | None:
    """The engine whose durable steps a journal's live calls run in (DBOS), if it has one.

    A journal of None has none: asked with getattr, None raises and catches an AttributeError
    inside, a cost on every call of a run that keeps no journal."""
    return getattr(journal, "steps", None) if journal is not None else None
