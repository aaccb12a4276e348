"""The turn loop of one worker: build the request, call the hooks, call the model, validate,
run tools, repeat until a valid output or `max_turns`.

The conversation stays one the real APIs accept at every step: roles alternate, every tool
call is answered by exactly one result in the next message, and an answer that cannot be
answered (cut by max_tokens) is dropped and asked again with more room rather than sent back.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tools._schema import json_path
from tools.errors import (
    ContextOverflow,
    MaxTurnsExceeded,
    ModelRefused,
    OutputValidationError,
    ProviderError,
    ResponseTruncated,
    WorkerInputError,
)

from ._callids import conforming_calls
from ._context import RunContext
from ._events import RepairEvent
from ._fit import Fitter
from ._handoff import Handoff
from ._messages import Message, TextPart, ToolCallPart, ToolResultPart, UserMessage
from ._model import ModelRequest, ModelResponse
from ._output import OutputPlan, repair_prompt
from ._records import fast_init
from ._replay import CallSteps, steps_of
from ._resolve import model_id
from ._template import model_limits, request_template
from ._toolcalls import ToolRunner
from ._usage import UsageSum
from ._window import prompt_too_long

if TYPE_CHECKING:
    from ._worker import Worker, WorkerResult

__all__ = ["run_loop"]


@fast_init
@dataclass(frozen=True, slots=True)
class _Finished:
    """A turn that produced the worker's output, or handed the task over."""

    output: Any
    handoff: Handoff | None = None


class _Turns:
    """State of one worker run; each method is one phase of a turn."""

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
        "worker",
    )

    def __init__(self, worker: Worker, ctx: RunContext, plan: OutputPlan, task: str) -> None:
        cls = type(worker)
        self.worker, self.cls, self.ctx, self.plan = worker, cls, ctx, plan
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

    def recorded(self, turn: int) -> ModelResponse | None:
        """A resumed run's recorded answer to this turn; None when the model must be asked."""
        journal = self.ctx.journal
        if journal is None:
            return None
        self.key = key = f"{self.ctx.scope}/{self.name}/{turn}"
        recorded = journal.response(key)
        if recorded is not None:  # the run's total already counts this call
            self.usage.add(recorded.usage)
        return recorded

    async def resend(self, error: ProviderError) -> ModelResponse:
        """The answer after the provider refused the prompt as too long: compacted harder and
        sent again, at most twice; any other error stands."""
        refused = 0
        while True:  # bounded: refused grows each time round
            if self.fitter is None or not prompt_too_long(error):
                raise error
            refused += 1
            if refused > 2:
                tokens = int(self.fitter.estimate * self.ctx.calibration.ratio(self.mid))
                raise ContextOverflow(
                    self.name, self.fitter.window, tokens, self.max_tokens, refused
                ) from error
            await self._fit(self.mid, refused)
            try:
                return await self.send()
            except ProviderError as again:
                error = again

    def send(self) -> Awaitable[ModelResponse]:
        """This turn's model call, inside the journal's durable step for it when there is one.
        The call's own awaitable, not a coroutine around it: a waiting worker holds a frame less."""
        if self.steps is None:
            return self.ctx.call(self.model, self.mid, self._request(), worker=self.name)
        call = functools.partial(self.ctx.call, self.model, self.mid, self._request(), worker=self.name)
        return self.steps.model(self.key, call)

    async def received(self, response: ModelResponse) -> None:
        """Count a live answer and journal it."""
        if self.fitter is not None:  # the estimate learns the provider's count
            self.ctx.calibration.observe(self.mid, self.fitter.estimate, response.usage.input_tokens)
        journal = self.ctx.journal
        if journal is not None:
            # A turn of tool calls commits its response with its first tool start (or at its end);
            # the run's last answer, with the run's end.
            self.unsaved = self._runs_tools(response)
            self.deferred = not self.unsaved and self.ctx.final
            await journal.save_response(self.key, response, durable=not (self.unsaved or self.deferred))
        self.usage.add(response.usage)
        self.ctx.usage.record(self.name, response.usage)

    async def _fit(self, mid: str, refused: int) -> None:
        fitter = self.fitter
        if fitter is None:
            return
        fitter.key = self.key if self.ctx.journal is not None else ""
        over = fitter.over(self.messages, mid, self.max_tokens)
        count = None
        if not refused and self.cls.count_tokens and fitter.near(mid, self.max_tokens):
            count = getattr(self.model, "count_tokens", None)
        if count is not None:
            try:
                counted = await count(self._request())  # exact, where the estimate is too rough
            except ProviderError:
                counted = None  # the count is a refinement: without it, the estimate decides
            if counted is not None:
                self.ctx.calibration.observe(mid, fitter.estimate, counted)
                over = not fitter.fits(counted, self.max_tokens)
        if self.full:  # the last answer was cut because the window was full
            refused, self.full = max(refused, 1), False
        if refused or over:
            self.messages = await fitter.fit(self.messages, mid, self.max_tokens, refused)
            self.usage.add(fitter.take_usage())  # the summaries this worker asked for

    def _request(self) -> ModelRequest:
        base = self.base  # built field by field: dataclasses.replace costs more than the rest of a turn
        return ModelRequest(
            messages=tuple(self.messages),
            system=base.system,
            tools=base.tools,
            tool_choice=base.tool_choice,
            output=base.output,
            max_tokens=self.max_tokens,
            temperature=base.temperature,
        )

    async def handle(self, response: ModelResponse) -> _Finished | None:
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
            return _Finished(value)
        self._failed_output(errors, response.text, nudge=repair_prompt(errors))
        return None

    def _output(self, response: ModelResponse, output_call: ToolCallPart) -> _Finished | None:
        """The final-answer tool's arguments: the output, or the errors sent back to the model."""
        value, errors = self.plan.from_arguments(output_call.arguments, output_call.raw_arguments)
        self.messages.append(response.message)
        if not errors:
            return _Finished(value)
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

    def _hand_off(self, response: ModelResponse, call: Any) -> _Finished | None:
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
        return _Finished(None, Handoff(self.name, target, payload["input"], str(payload["reason"])))

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


async def run_loop(
    worker: Worker, task: object, ctx: RunContext, upstream: Mapping[str, Any]
) -> WorkerResult:
    """Run `worker` on `task` inside `ctx` until it has a valid output (or hands over)."""
    from ._worker import WorkerResult, output_plan

    cls = type(worker)
    text = worker.task_text(worker.prepare(task, upstream))
    model = ctx.model(worker.model_spec)
    mid = model_id(model)
    turns = _Turns(worker, ctx, output_plan(cls, model), text)
    turns.output_limit, window = model_limits(cls, mid)
    turns.model, turns.mid = model, mid
    if cls.compaction:
        turns.fitter = Fitter(worker.name, ctx, model, cls.summary_model, window, turns.overhead)
    if upstream:
        upstream_text = worker.render_upstream(upstream)
        if turns.fitter is not None:
            turns.fitter.key = f"{ctx.scope}/{worker.name}/0" if ctx.journal is not None else ""
            text = await turns.fitter.fit_task(text, upstream_text, cls.max_tokens)
            turns.usage.add(turns.fitter.take_usage())
        else:
            text = f"{text}\n\n{upstream_text}"
        turns.messages = [UserMessage.of(text)]
    max_turns = min(cls.max_turns, ctx.max_turns) if ctx.max_turns else cls.max_turns
    # The model call is awaited here (`turns.send` only builds it, a plain function): a waiting
    # worker holds one frame less.
    for turn in range(1, max_turns + 1):
        response = turns.recorded(turn)
        if response is None:
            if turns.deferred and ctx.journal is not None:  # an answer to repair: committed first
                turns.deferred = False
                await ctx.journal.commit()
            if turns.fitter is not None:
                await turns._fit(mid, 0)
            try:
                response = await turns.send()
            except ProviderError as error:
                response = await turns.resend(error)
            await turns.received(response)
        finished = await turns.handle(response)
        if finished is not None:
            usage, messages = turns.usage.value(), tuple(turns.messages)
            return WorkerResult(worker.name, finished.output, usage, turn, messages, finished.handoff)
    raise MaxTurnsExceeded(worker.name, max_turns, turns.last_calls)
