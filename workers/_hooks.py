"""The small Protocols a worker calls and the supervisor implements, with safe defaults.

- `ModelCallGuard`: before each model call (budget reservation: may lower max_tokens or refuse
  by raising) and after it (settle on the real usage).
- `ToolGate`: before each risky tool call; only a person's decision, made in code, approves.
- The event sink lives in `_events`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from tools._numbers import is_amount
from tools._threads import in_daemon_thread, is_async
from tools.errors import AgentError, ApproverFailed, ConfigurationError, excerpt

from ._model import ModelRequest, ModelResponse

__all__ = [
    "ApprovalRequest",
    "Approver",
    "CallableGate",
    "Decision",
    "DenyAllGate",
    "ModelCallGuard",
    "NoGuard",
    "TimedGate",
    "ToolGate",
    "as_gate",
    "sound",
]


RERUN_NOTE = (
    "This call was started before the process stopped and did not finish: it may already "
    "have taken effect. Approve only to run it again."
)
"""Put before the model's reason when a call caught half-way is asked about again."""


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """A risky tool call waiting for a person.

    Attributes:
        run_id: The run it belongs to (None for a worker run alone).
        worker: The worker that wants to call the tool.
        tool: The tool's name.
        arguments: The arguments, already validated against the tool's schema.
        call_id: The model's id for this call.
        reason: What the model said in the turn it made the call (its stated reason).
        schema: The tool's JSON Schema, so an edit can be checked where it is made.
        key: The call's place in the run's journal ("" when the run keeps none): a store gate
            finds its earlier request by it, so a decision outlives the process that asked.
    """

    run_id: str | None
    worker: str
    tool: str
    arguments: Mapping[str, Any]
    call_id: str = ""
    reason: str = ""
    schema: Mapping[str, Any] = field(default_factory=dict)
    key: str = ""

    def __str__(self) -> str:
        return f"{self.worker} wants to call {self.tool}({excerpt(dict(self.arguments), 200)})"


@dataclass(frozen=True, slots=True)
class Decision:
    """A person's answer to an `ApprovalRequest`.

    Build one with `Decision.approve()`, `.deny(reason)`, `.edit(arguments)` or `.abort(reason)`.
    `waited_s` is for a gate that knows better than the asking process how long the request
    waited for this answer (a person decided in the store while that process was dead); None:
    the asker's own wait is reported.
    """

    kind: Literal["approve", "deny", "edit", "abort"]
    reason: str = ""
    arguments: Mapping[str, Any] | None = None
    by: str = ""
    waited_s: float | None = None

    def __post_init__(self) -> None:
        # Checked where it is made: the gate runs a call for "approve" or "edit" only, and a
        # misspelt kind ("reject", "Deny") would otherwise read as neither a denial nor an error.
        if not (isinstance(self.kind, str) and self.kind in _KINDS):
            raise ConfigurationError(
                f"a Decision's kind is one of {', '.join(_KINDS)}; got {excerpt(self.kind, 40)}"
            )
        if self.kind == "edit" and not (
            isinstance(self.arguments, Mapping) and all(isinstance(k, str) for k in self.arguments)
        ):
            raise ConfigurationError(
                f"an edit Decision's arguments are a mapping of parameter names to values; "
                f"got {excerpt(self.arguments, 80)}"
            )
        if not isinstance(self.reason, str) or not isinstance(self.by, str):
            wrong = self.reason if not isinstance(self.reason, str) else self.by
            raise ConfigurationError(f"a Decision's reason and by are text; got {excerpt(wrong, 40)}")
        waited = self.waited_s
        if waited is not None and not (is_amount(waited) and math.isfinite(waited)):
            raise ConfigurationError(
                f"a Decision's waited_s is a number of seconds, 0 or more; got {excerpt(waited, 40)}"
            )

    @classmethod
    def approve(cls, *, by: str = "") -> Decision:
        """Run the call as requested."""
        return cls("approve", by=by)

    @classmethod
    def deny(cls, reason: str = "", *, by: str = "") -> Decision:
        """Do not run the call; the model is told the reason."""
        return cls("deny", reason, by=by)

    @classmethod
    def edit(cls, arguments: Mapping[str, Any], *, by: str = "") -> Decision:
        """Run the call with these arguments instead (validated against the schema again)."""
        return cls("edit", arguments=dict(arguments), by=by)

    @classmethod
    def abort(cls, reason: str = "", *, by: str = "") -> Decision:
        """Stop the whole run."""
        return cls("abort", reason, by=by)


_KINDS = ("approve", "deny", "edit", "abort")


class ToolGate(Protocol):
    """Decides on risky tool calls before they run."""

    async def review(self, request: ApprovalRequest) -> Decision:
        """Return the decision for one risky call."""
        ...


class ModelCallGuard(Protocol):
    """Sees every model call of a worker: reserve before, settle after."""

    async def before_model_call(self, worker: str, model: str, request: ModelRequest) -> ModelRequest:
        """Return the request to send (possibly with a lower max_tokens), or raise to refuse it."""
        ...

    def after_model_call(
        self, worker: str, model: str, request: ModelRequest, response: ModelResponse | None
    ) -> None:
        """Settle the call: `response` is None when it failed."""
        ...


class NoGuard:
    """The default guard: every call may go, nothing to settle."""

    __slots__ = ()

    async def before_model_call(self, worker: str, model: str, request: ModelRequest) -> ModelRequest:
        """Let the request go unchanged."""
        return request

    def after_model_call(
        self, worker: str, model: str, request: ModelRequest, response: ModelResponse | None
    ) -> None:
        """Nothing to settle."""


class DenyAllGate:
    """The default gate when nobody can approve: every risky call is denied, and the model told so."""

    __slots__ = ()

    async def review(self, request: ApprovalRequest) -> Decision:
        """Deny: no approver is configured."""
        return Decision.deny("no approver is configured for risky tools", by="policy")


Approver = Callable[[ApprovalRequest], "bool | Decision | Awaitable[bool | Decision]"]
"""A sync or async callable answering an approval request with True/False or a `Decision`."""


def sound(answer: object) -> Decision:
    """A gate's answer as a decision the call may act on: anything that is not a well-formed
    `Decision` (a user's gate returning True, a decision altered after it was made) is a
    denial, so only an approval made as one runs a risky call."""
    if isinstance(answer, Decision):
        try:
            return Decision(answer.kind, answer.reason, answer.arguments, answer.by, answer.waited_s)
        except ConfigurationError as exc:
            return Decision.deny(f"the gate's decision is malformed: {exc}", by="policy")
    return Decision.deny(f"the gate answered {excerpt(answer, 40)}, not a decision", by="policy")


class CallableGate:
    """A gate over a user's approver callable (sync or async, returning a bool or a Decision)."""

    __slots__ = ("_approver",)

    def __init__(self, approver: Approver) -> None:
        self._approver = approver

    async def review(self, request: ApprovalRequest) -> Decision:
        """Ask the callable; anything but True or a Decision is a denial.

        A sync callable runs in a thread of its own, so the event loop goes on and the timeout
        holds: one that blocks (a person at `input()`) is denied when the time is up, and its
        daemon thread does not hold up the process's exit. One that raises is `ApproverFailed`.
        """
        try:
            if is_async(self._approver):
                answer = await self._approver(request)  # type: ignore[misc]
            else:
                answer = await in_daemon_thread(functools.partial(self._approver, request), "approver")
                if inspect.isawaitable(answer):
                    answer = await answer
        except AgentError:
            raise  # one of ours (a RunAborted, say): it says what happened already
        except Exception as exc:
            raise ApproverFailed(request.tool, request.worker, exc) from exc
        if isinstance(answer, Decision):
            return answer
        if answer is True:
            return Decision.approve(by="approver")
        return Decision.deny(f"denied by the approver (answered {excerpt(answer, 40)})", by="approver")


class TimedGate:
    """A gate whose decisions must come within `timeout_s`; silence is a denial."""

    __slots__ = ("_gate", "_timeout_s")

    def __init__(self, gate: ToolGate, timeout_s: float) -> None:
        self._gate = gate
        self._timeout_s = timeout_s

    async def review(self, request: ApprovalRequest) -> Decision:
        """Ask the inner gate; deny when it does not answer in time."""
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._gate.review(request)
        except TimeoutError:
            return Decision.deny(f"no answer within {self._timeout_s:g} s", by="timeout")


def as_gate(approver: Approver | ToolGate | None, timeout_s: float | None = None) -> ToolGate:
    """The gate for an approver argument: a gate as is, a callable wrapped, None denies all.

    With `timeout_s`, an approval unanswered for that long is a denial.
    """
    if approver is None:
        return DenyAllGate()
    if isinstance(approver, type) or not (hasattr(approver, "review") or callable(approver)):
        shown = f"the class {approver.__name__}" if isinstance(approver, type) else repr(approver)
        raise ConfigurationError(
            f"approver must be TerminalApprover(), a gate, or a function of the request; got {shown}"
        )
    gate: ToolGate = approver if hasattr(approver, "review") else CallableGate(approver)
    return TimedGate(gate, timeout_s) if timeout_s is not None else gate
