"""The turn loop of one worker: build the request, call the hooks, call the model, validate,
run tools, repeat until a valid output or `max_turns`.

The loop asks for each answer: a resumed run's recorded one, or the model's, its request kept
inside the context window, sent and journaled. What an answer does to the conversation (the
output, a handoff, tool calls, a repair) is `_conversation`'s.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from tools.errors import ContextOverflow, MaxTurnsExceeded, ProviderError

from ._context import RunContext
from ._conversation import Conversation
from ._fit import Fitter
from ._messages import UserMessage
from ._model import ModelRequest, ModelResponse
from ._resolve import model_id
from ._template import model_limits
from ._window import prompt_too_long

if TYPE_CHECKING:
    from ._worker import Worker, WorkerResult

__all__ = ["run_loop"]


class _Turns(Conversation):
    """The asking side of a run's turns: each method is one phase of getting the model's answer."""

    __slots__ = ()

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
