"""Fitting one worker's requests into its model's context window (see `_compact` for how).

`Fitter` belongs to one worker run. Before each live model call it checks the conversation's
size (O(new messages)) against the threshold and compacts when needed; after a provider refused
the prompt as too long it compacts harder. Summaries are model calls like any other: through the
budget, the rate limits, the retries and the journal (a resumed run does not ask for a summary
twice). The task that does not fit because of the outputs of the steps it depends on has those
outputs summarised first.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tools.errors import ContextOverflow

from ._compact import TARGETS, THRESHOLD, History, compact
from ._context import RunContext
from ._events import CompactionEvent
from ._messages import Message, UserMessage
from ._model import ModelRequest
from ._replay import steps_of
from ._resolve import model_id
from ._usage import Usage
from ._window import context_window

if TYPE_CHECKING:
    from ._model import Model

__all__ = ["Fitter"]

_ZERO = Usage()  # immutable: one for every fitter that has not summarised anything
_SUMMARY_TOKENS = 1024
_NEAR = 0.7  # of the window: where an exact count can change the decision (compaction targets 0.6)
_SUMMARY_PROMPT = (
    "You compress an agent's working notes so it can go on with its task. Summarise the turns "
    "below: what was asked, which tools were called with which arguments, what they returned "
    "(keep ids, numbers, names and errors exactly), and what is still open. Plain text, no "
    "preamble."
)


def _transcript(messages: Sequence[Message], limit: int) -> str:
    """The turns as plain text for the summariser, cut in the middle when too long."""
    lines = []
    for message in messages:
        for part in message.parts:
            if part.kind == "text":
                lines.append(f"{'User' if message.kind == 'user' else 'Assistant'}: {part.text}")
            elif part.kind == "tool_call":
                lines.append(f"Assistant called {part.name} with {part.raw_arguments}")
            elif part.kind == "tool_result":
                lines.append(f"{part.name} returned{' an error' if part.is_error else ''}: {part.content}")
    text = "\n".join(lines)
    if len(text) > limit:
        half = limit // 2
        text = f"{text[:half]}\n[... {len(text) - limit} characters left out ...]\n{text[-half:]}"
    return text


class Fitter:
    """Keeps one worker run's requests inside the window.

    Args:
        worker: The worker's name.
        ctx: The run's context (budget guard, limits, journal, events, calibration).
        model: The worker's model; `summary_model` writes the summaries (the worker's model when
            None).
        window: The context window in tokens.
        overhead: The estimated tokens every request carries besides the conversation (system
            prompt, tool definitions, output schema).
    """

    __slots__ = (
        "_summaries",
        "_summaries_of",
        "ctx",
        "estimate",
        "history",
        "key",
        "model",
        "overhead",
        "summary_model",
        "usage",
        "window",
        "worker",
    )

    def __init__(
        self,
        worker: str,
        ctx: RunContext,
        model: Model,
        summary_model: Any,
        window: int,
        overhead: int,
    ) -> None:
        self.worker = worker
        self.ctx = ctx
        self.model = model
        self.summary_model = summary_model
        self.window = window
        self.overhead = overhead
        self.history = History()
        self.estimate = 0  # the last request's estimated prompt tokens (before calibration)
        self.key = ""  # the journal key of the current turn
        self.usage = _ZERO  # the summaries' usage not yet counted in the worker's own sum
        self._summaries = 0  # this turn's summaries so far (their journal keys count them)
        self._summaries_of = ""

    def take_usage(self) -> Usage:
        """What the summaries since the last call cost (counted once: taking it resets it)."""
        usage, self.usage = self.usage, _ZERO
        return usage

    def over(self, messages: Sequence[Message], mid: str, max_tokens: int) -> bool:
        """Whether the next request would pass the threshold (the check that runs every turn)."""
        self.estimate = self.overhead + self.history.tokens(messages)
        return self.estimate * self.ctx.calibration.ratio(mid) > THRESHOLD * self.window - max_tokens

    def near(self, mid: str, max_tokens: int) -> bool:
        """Whether the last estimate is close enough to the threshold for an exact count to matter."""
        return self.estimate * self.ctx.calibration.ratio(mid) > _NEAR * self.window - max_tokens

    def fits(self, tokens: int, max_tokens: int) -> bool:
        """Whether an exact prompt count leaves the request under the threshold."""
        return tokens <= THRESHOLD * self.window - max_tokens

    async def fit(self, messages: list[Message], mid: str, max_tokens: int, refused: int) -> list[Message]:
        """The conversation compacted to fit (harder after each refusal), or `ContextOverflow`."""
        ratio = self.ctx.calibration.ratio(mid)
        if refused:  # the provider's window is smaller than believed: this prompt did not fit it
            self.window = min(self.window, int(self.estimate * ratio) + max_tokens)
        share = TARGETS[min(refused, len(TARGETS) - 1)]
        budget = int((share * self.window - max_tokens) / ratio) - self.overhead
        compacted = await compact(messages, max(budget, 1), self._summarise)
        after = messages if compacted is None else compacted.messages
        self.history.reset(after)
        self.estimate = self.overhead + self.history.tokens(after)
        if compacted is not None:
            self.ctx.events.emit(
                CompactionEvent(
                    self.worker,
                    compacted.strategy,
                    "refused" if refused else "threshold",
                    self.overhead + compacted.tokens_before,
                    self.estimate,
                    len(messages),
                    len(after),
                    self.ctx.scope,
                )
            )
        if self.estimate * ratio + max_tokens > self.window or (refused and compacted is None):
            raise ContextOverflow(self.worker, self.window, int(self.estimate * ratio), max_tokens, refused)
        return after

    async def fit_task(self, task: str, upstream: str, max_tokens: int) -> str:
        """The task with the upstream outputs, summarised when they would not leave room to work."""
        text = f"{task}\n\n{upstream}"
        room = TARGETS[0] * self.window - max_tokens - self.overhead
        if len(text) // 4 <= room:
            return text
        summary = await self._summarise([UserMessage.of(upstream)])
        return f"{task}\n\nThe outputs of the steps this one depends on, summarised to fit:\n{summary}"

    async def _summarise(self, messages: Sequence[Message]) -> str:
        model = self.ctx.model(self.summary_model) if self.summary_model is not None else self.model
        mid = model_id(model)
        window = context_window(mid) if model is not self.model else self.window
        limit = max(int(THRESHOLD * window - _SUMMARY_TOKENS) * 3, 1000)  # characters, with margin
        request = ModelRequest(
            messages=(UserMessage.of(_transcript(messages, limit)),),
            system=_SUMMARY_PROMPT,
            max_tokens=_SUMMARY_TOKENS,
        )
        if self._summaries_of != self.key:  # numbered per turn, so a resumed run finds them again
            self._summaries_of, self._summaries = self.key, 0
        self._summaries += 1
        journal = self.ctx.journal
        key = f"{self.key}/summary{self._summaries}"
        recorded = journal.response(key) if journal is not None and self.key else None
        if recorded is not None:
            self.usage = self.usage + recorded.usage
            return recorded.text.strip()
        send = functools.partial(
            self.ctx.call, model, mid, request, worker=self.worker, guard_as=f"{self.worker} (summary)"
        )
        steps = steps_of(journal) if self.key else None
        response = await (send() if steps is None else steps.model(key, send))
        if journal is not None and self.key:
            await journal.save_response(key, response)
        self.usage = self.usage + response.usage
        self.ctx.usage.record(self.worker, response.usage)
        return response.text.strip()
