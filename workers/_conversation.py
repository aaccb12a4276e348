"""One worker run's conversation, and what each answer of the model does to it: the output, a
handoff, tool calls run and answered, or a repair (an answer cut short, a refusal, an invalid
output), each within its bound.

The conversation stays one the real APIs accept at every step: roles alternate, every tool
call is answered by exactly one result in the next message, and an answer that cannot be
answered (cut by max_tokens) is dropped and asked again with more room rather than sent back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tools._schema import json_path
from tools.errors import ModelRefused, OutputValidationError, ResponseTruncated, WorkerInputError

from ._callids import conforming_calls
from ._context import RunContext
from ._events import RepairEvent
from ._fit import Fitter
from ._handoff import Handoff
from ._messages import Message, TextPart, ToolCallPart, ToolResultPart, UserMessage
from ._model import ModelResponse
from ._output import OutputPlan, repair_prompt
from ._records import fast_init
from ._replay import CallSteps, steps_of
from ._template import request_template
from ._toolcalls import ToolRunner
from ._usage import UsageSum

if TYPE_CHECKING:
    from ._worker import Worker

__all__ = ["Conversation", "Finished"]


@fast_init
@dataclass(frozen=True, slots=True)
class Finished:
    """A turn that produced the worker's output, or handed the task over."""

    output: Any
    handoff: Handoff | None = None


class Conversation:
    """State of one worker run; each method is one way an answer is taken. Asking for the answer
    is the turn loop's (`_loop._Turns`, which adds no state of its own)."""

    __slots__ = (
        "base",
        "call_ids",
        "cls",
        "ctx",
        "deferred",
        "fitter",
        "full",
        "handoffs",
        "key",
        "last_calls",
        "max_tokens",
        "messages",
        "mid",
        "model",
        "name",
        "output_failures",
        "output_limit",
        "overhead",
        "plan",
        "runner",
        "steps",
        "truncations",
        "unsaved",
        "usage",
    )

    def __init__(self, worker: Worker, ctx: RunContext, plan: OutputPlan, task: str) -> None:
        cls = type(worker)
        self.cls, self.ctx, self.plan = cls, ctx, plan
        self.name = worker.name
        self.messages: list[Message] = [UserMessage.of(task)]
        self.usage = UsageSum()
        self.output_failures = 0
        self.truncations = 0
        self.max_tokens = cls.max_tokens
        self.output_limit = cls.max_tokens
        self.last_calls: list[tuple[str, str]] = []
        self.key = ""  # the journal key of the current turn
        self.fitter: Fitter | None = None  # keeps requests inside the context window
        self.model: Any = None
        self.mid = ""  # the model's "provider:name"
        self.full = False  # the provider said the window was full: compact before the next call
        self.unsaved = False  # its response is recorded but not yet committed
        self.deferred = False  # its answer is recorded, to be committed with the run's end
        self.call_ids: set[str] = set()  # every tool call id of the conversation
        # The engine that runs each live model call as a durable step (DBOS), if the journal has one.
        self.steps: CallSteps | None = steps_of(ctx.journal)
        self.handoffs, self.base, self.overhead = request_template(cls, plan, ctx.workers)
        self.runner = ToolRunner(
            self.name,
            cls._plan.tools,
            ctx,
            repairs=cls.argument_repairs,
            loop_limit=cls.loop_limit,
            max_result_chars=cls.max_result_chars,
        )

    async def handle(self, response: ModelResponse) -> Finished | None:
        """Take one response: the output when it is one, else extend the conversation."""
        calls = response.tool_calls
        if calls:
            response, calls = conforming_calls(response, calls, self.call_ids, self.runner.tools)
        if response.stop_reason == "max_tokens":
            self._truncated(response.raw_stop_reason)
            return None
        if response.stop_reason == "refusal":
            self._refused(response)
            return None
        # No comprehension here: it would make locals cells for as long as the tools run.
        output_call = _first_named(calls, self.plan.tool_name) if self.plan.mode == "tool" else None
        if output_call is not None:
            return self._output(response, output_call)
        handoff_call = _first_named(calls, self.handoffs)
        if handoff_call is not None:
            return self._hand_off(response, handoff_call)
        if calls:
            self.last_calls.extend(_names_and_arguments(calls))
            self.messages.append(response.message)
            answered = await self.runner.run_turn(calls, response.text, self.key, self.unsaved)
            self.messages.append(UserMessage(answered))
            return None
        value, errors = self.plan.from_text(response.text)
        if _has_content(response):
            self.messages.append(response.message)
        if not errors:
            return Finished(value)
        self._failed_output(errors, response.text, nudge=repair_prompt(errors))
        return None

    def _output(self, response: ModelResponse, output_call: ToolCallPart) -> Finished | None:
        """The final-answer tool's arguments: the output, or the errors sent back to the model."""
        value, errors = self.plan.from_arguments(output_call.arguments, output_call.raw_arguments)
        self.messages.append(response.message)
        if not errors:
            return Finished(value)
        skipped = "Not run: the final answer was given in the same turn."
        repair = repair_prompt(errors)
        results = [
            ToolResultPart(c.id, c.name, repair if c is output_call else skipped, is_error=True)
            for c in response.tool_calls
        ]
        self.messages.append(UserMessage(tuple(results)))
        self._failed_output(errors, output_call.raw_arguments, nudge=None)
        return None

    def _runs_tools(self, response: ModelResponse) -> bool:
        """Whether `handle` will give this response's calls to the tool runner."""
        calls = response.tool_calls
        if not calls or response.stop_reason in ("max_tokens", "refusal"):
            return False
        output = self.plan.tool_name if self.plan.mode == "tool" else None
        handoffs = self.handoffs
        for call in calls:
            if call.name == output or call.name in handoffs:
                return False
        return True

    def _hand_off(self, response: ModelResponse, call: Any) -> Finished | None:
        """A valid handoff ends the run; an invalid one goes back to the model like bad arguments."""
        target, action = self.handoffs[call.name]
        payload, issues = action.validated(call.arguments) if call.arguments is not None else (None, [])
        if payload is not None:  # the schema holds; the target's input model may ask more
            issues = self._rejected_by_target(target, payload["input"])
            payload = None if issues else payload
        self.last_calls.append((call.name, call.raw_arguments))  # what MaxTurnsExceeded reports
        self.messages.append(response.message)
        if payload is None:
            issues = issues or [("$", call.raw_arguments, "arguments are not a JSON object")]
            text = (
                "Invalid handoff:\n"
                + "\n".join(f"- {p}: {r}" for p, _, r in issues)
                + "\nFix it and try again."
            )
        else:
            text = f"Handed over to {target}."
        others = "Not run: the task was handed over in the same turn."
        results = [
            ToolResultPart(
                c.id, c.name, text if c is call else others, is_error=c is not call or payload is None
            )
            for c in response.tool_calls
        ]
        self.messages.append(UserMessage(tuple(results)))
        if payload is None:
            self._failed_output(
                [{"loc": ("handoff",), "msg": text, "input": call.raw_arguments}], call.raw_arguments, None
            )
            return None
        return Finished(None, Handoff(self.name, target, payload["input"], str(payload["reason"])))

    def _rejected_by_target(self, target: str, task: object) -> list[tuple[str, object, str]]:
        """What the target's own input check (validators, a blank task) finds wrong with the
        payload, as (JSON path, value, rule): told to the model like a schema violation, rather
        than ending the step when the supervisor checks the handoff."""
        worker = self.ctx.workers.get(target) if self.ctx.workers else None
        if worker is None:  # run alone: the caller routes the handoff and checks it there
            return []
        try:
            worker.task_text(task)
        except WorkerInputError as exc:
            return [
                (json_path(("input", *e["loc"])), e.get("input", task), str(e["msg"]))  # type: ignore[misc]
                for e in exc.errors
            ]
        return []

    def _truncated(self, raw_stop: str | None) -> None:
        # The cut answer is not kept: its tool calls could not be answered, its text is partial.
        self.truncations += 1
        full = raw_stop == "model_context_window_exceeded"
        if full and self.fitter is not None and self.truncations <= self.cls.truncation_retries:
            self.full = True  # the window, not max_tokens, cut it: compact harder, then ask again
            return
        room = min(self.max_tokens * 2, self.output_limit)
        # More room cannot help when the context window is full or the model's limit is reached.
        hopeless = full or room <= self.max_tokens
        if self.truncations > self.cls.truncation_retries or hopeless:
            raise ResponseTruncated(self.name, self.max_tokens, self.truncations)
        self.max_tokens = room
        self.ctx.events.emit(
            RepairEvent(self.name, "truncated", self.truncations, f"max_tokens now {self.max_tokens}")
        )

    def _refused(self, response: ModelResponse) -> None:
        self.output_failures += 1
        refusal = response.refusal or response.text or "refused"
        if self.output_failures > self.cls.output_repairs:
            raise ModelRefused(self.name, refusal, self.output_failures)
        self.ctx.events.emit(RepairEvent(self.name, "refusal", self.output_failures, refusal))
        # The refused turn is not kept: Anthropic asks that the context be reset after a refusal
        # (a conversation that still holds it is refused again); the user's turn is rephrased.
        self._say(
            "You declined to answer. If the task can be done within your instructions, do it now; "
            "if part of it cannot, do the rest and say which part you left out and why."
        )

    def _failed_output(self, errors: list[dict[str, Any]], raw: str, nudge: str | None) -> None:
        self.output_failures += 1
        if self.output_failures > self.cls.output_repairs:
            raise OutputValidationError(self.name, errors, raw, self.output_failures)
        self.ctx.events.emit(RepairEvent(self.name, "output", self.output_failures, repair_prompt(errors)))
        if nudge is not None:
            self._say(nudge)

    def _say(self, text: str) -> None:
        """Add user text, merged into the last message when it is the user's, so roles alternate."""
        last = self.messages[-1]
        if isinstance(last, UserMessage):
            self.messages[-1] = UserMessage((*last.parts, TextPart(text)))
        else:
            self.messages.append(UserMessage.of(text))


def _first_named(calls: tuple[ToolCallPart, ...], names: str | Mapping[str, Any]) -> ToolCallPart | None:
    """The first call of the tool named `names` (or of one of the names in the mapping)."""
    for call in calls:
        if call.name == names if isinstance(names, str) else call.name in names:
            return call
    return None


def _names_and_arguments(calls: tuple[ToolCallPart, ...]) -> list[tuple[str, str]]:
    return [(c.name, c.raw_arguments) for c in calls]


def _has_content(response: ModelResponse) -> bool:
    """Whether the answer can go back into the conversation: the APIs reject blank assistant turns."""
    return bool(response.tool_calls) or bool(response.text.strip())
