"""Keeping a worker's conversation inside its model's context window.

Before each model call the conversation's size is known without counting it again: `History`
keeps each message's estimated size and only measures what was added since the last call. When
the request would pass the threshold (80% of the window, minus the answer's room) the oldest part
is compacted, in this order, until it fits a lower target (so the next turns do not compact
again at once):

1. trim: old tool results become a stub saying what was removed and how big it was;
2. summarise: the oldest turns become one summary, written by a model (when one is given);
3. drop: the oldest turns are removed, with a note saying so.

Always kept: the system prompt (not part of the conversation), the task (the first message),
and the most recent turn. Turns go in whole assistant-then-results pairs, so a tool call never
loses its result and the conversation still alternates as the APIs require.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from ._messages import AssistantMessage, Message, TextPart, ToolResultPart, UserMessage

__all__ = ["Compacted", "History", "compact", "message_chars"]

_CHARS_PER_TOKEN = 4
_PER_MESSAGE = 16  # role markers and framing, in characters
_SUMMARY_MARK = "[Summary of the earlier turns, written to fit the context window]"
_DROPPED_MARK = "[Earlier turns were removed to fit the context window: "
THRESHOLD = 0.8  # of the window: compact before a call would pass it
TARGETS = (0.6, 0.45, 0.3)  # the share of the window to compact down to, then harder after a refusal

Summariser = Callable[[Sequence[Message]], Awaitable[str]]


def message_chars(message: Message) -> int:
    """The characters a message sends (text, tool names and arguments, results)."""
    size = _PER_MESSAGE
    for part in message.parts:
        if part.kind == "tool_call":
            size += len(part.name) + len(part.raw_arguments) + _PER_MESSAGE
        elif part.kind == "tool_result":
            size += len(part.content) + _PER_MESSAGE
        else:
            size += len(part.text)
    return size


class History:
    """The estimated size of a conversation, kept up to date in O(new messages) per call."""

    __slots__ = ("sizes", "total")

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.total = 0

    def tokens(self, messages: Sequence[Message]) -> int:
        """The conversation's estimated tokens; measures only the messages new since last time."""
        sizes = self.sizes
        if len(sizes) > len(messages):  # replaced by a compaction: measure again
            self.reset(messages)
        if sizes:  # the last message may have grown in place (a nudge merged into it)
            self.total += message_chars(messages[len(sizes) - 1]) - sizes[-1]
            sizes[-1] = message_chars(messages[len(sizes) - 1])
        for message in messages[len(sizes) :]:
            size = message_chars(message)
            sizes.append(size)
            self.total += size
        return self.total // _CHARS_PER_TOKEN + 1

    def reset(self, messages: Sequence[Message]) -> None:
        """Measure everything again (after the conversation was replaced)."""
        self.sizes = [message_chars(m) for m in messages]
        self.total = sum(self.sizes)


@dataclass(frozen=True, slots=True)
class Compacted:
    """A compacted conversation, and how it got there."""

    messages: list[Message]
    strategy: str
    tokens_before: int
    tokens_after: int


def _tokens(messages: Sequence[Message]) -> int:
    return sum(message_chars(m) for m in messages) // _CHARS_PER_TOKEN + 1


def _pairs_end(messages: Sequence[Message]) -> int:
    """Where the kept tail starts: the last assistant message (the most recent turn)."""
    for index in range(len(messages) - 1, 0, -1):
        if isinstance(messages[index], AssistantMessage):
            return index
    return len(messages)


def _trim(messages: list[Message], upto: int, budget: int) -> bool:
    """Stub the tool results before `upto`, oldest first, until the conversation fits."""
    for index in range(1, upto):
        if _tokens(messages) <= budget:
            return True
        message = messages[index]
        if not isinstance(message, UserMessage) or not message.tool_results:
            continue
        parts = tuple(
            ToolResultPart(
                p.call_id,
                p.name,
                f"[{len(p.content)} characters of {p.name} output removed to fit the context window]",
                p.is_error,
            )
            if isinstance(p, ToolResultPart) and len(p.content) > 120
            else p
            for p in message.parts
        )
        messages[index] = UserMessage(parts)
    return _tokens(messages) <= budget


def _with_note(task: Message, mark: str, text: str) -> UserMessage:
    """The task message with one note of this kind (a newer note replaces an older one)."""
    kept = tuple(p for p in task.parts if not (isinstance(p, TextPart) and p.text.startswith(mark)))
    return UserMessage((*kept, TextPart(f"{mark}{text}")))  # type: ignore[arg-type]


def _cut_for(messages: Sequence[Message], budget: int, tail: int) -> int:
    """How many messages after the task to take away (whole turns) for the rest to fit."""
    cut, size = 1, _tokens(messages)
    while cut < tail and size > budget:
        size -= (message_chars(messages[cut]) + message_chars(messages[cut + 1])) // _CHARS_PER_TOKEN
        cut += 2
    return cut


async def compact(
    messages: Sequence[Message], budget: int, summarise: Summariser | None = None
) -> Compacted | None:
    """The conversation made to fit `budget` prompt tokens, or None when nothing can be taken.

    The result may still be over budget when only the task and the last turn are left.
    """
    before = _tokens(messages)
    work = list(messages)
    tail = _pairs_end(work)
    if _trim(work, tail, budget):
        return Compacted(work, "trim", before, _tokens(work))
    strategy = "trim" if _tokens(work) < before else ""
    cut = _cut_for(work, budget, tail)
    if cut > 1 and summarise is not None:
        try:
            summary = await summarise(work[1:cut])
        except Exception:
            summary = ""
        if summary:
            work = [_with_note(work[0], _SUMMARY_MARK, "\n" + summary), *work[cut:]]
            cut, strategy = 1, "summarise"
            if _tokens(work) <= budget:
                return Compacted(work, strategy, before, _tokens(work))
            cut = _cut_for(work, budget, _pairs_end(work))
    if cut > 1:
        removed = (cut - 1) // 2
        note = f"{removed} earlier turn{'s' if removed > 1 else ''}.]"
        work = [_with_note(work[0], _DROPPED_MARK, note), *work[cut:]]
        strategy = "drop" if not strategy or strategy == "trim" else f"{strategy}+drop"
    if not strategy:
        # Only the task and the last turn are left: shorten the last turn's results too.
        _trim(work, len(work), budget)
        strategy = "trim" if _tokens(work) < before else ""
    return Compacted(work, strategy, before, _tokens(work)) if strategy else None
