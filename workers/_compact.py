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

from tools.errors import ProviderError

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

    __slots__ = ("sizes", "total", "last")

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.total = 0
        self.last: Message | None = None  # the last message measured

    def tokens(self, messages: Sequence[Message]) -> int:
        """The conversation's estimated tokens; measures only the messages new since last time."""
        if len(self.sizes) > len(messages):  # replaced by a compaction: measure again
            self.reset(messages)
            return self.total // _CHARS_PER_TOKEN + 1
        sizes = self.sizes
        known = len(sizes)
        if known and messages[known - 1] is not self.last:  # replaced (a nudge merged into it)
            size = message_chars(messages[known - 1])
            self.total += size - sizes[-1]
            sizes[-1] = size
        for i in range(known, len(messages)):
            size = message_chars(messages[i])
            sizes.append(size)
            self.total += size
        self.last = messages[-1] if messages else None
        return self.total // _CHARS_PER_TOKEN + 1

    def reset(self, messages: Sequence[Message]) -> None:
        """Measure everything again (after the conversation was replaced)."""
        self.sizes = [message_chars(m) for m in messages]
        self.total = sum(self.sizes)
        self.last = messages[-1] if messages else None


@dataclass(frozen=True, slots=True)
class Compacted:
    """A compacted conversation, and how it got there."""

    messages: list[Message]
    strategy: str
    tokens_before: int
    tokens_after: int


def _tokens(messages: Sequence[Message]) -> int:
    return sum(message_chars(m) for m in messages) // _CHARS_PER_TOKEN + 1


def _turn_starts(messages: Sequence[Message]) -> list[int]:
    """The index of each turn's assistant message, oldest first (a turn: it, then its results)."""
    return [i for i in range(1, len(messages)) if isinstance(messages[i], AssistantMessage)]


def _stubbed(message: UserMessage) -> UserMessage:
    return UserMessage(
        tuple(
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
    )


def _trim(messages: list[Message], upto: int, budget: int) -> bool:
    """Stub the tool results before `upto`, oldest first, until the conversation fits.

    The size is kept as a running total: one pass, whatever the length of the conversation.
    """
    chars = sum(message_chars(m) for m in messages)
    for index in range(1, upto):
        if chars // _CHARS_PER_TOKEN + 1 <= budget:
            return True
        message = messages[index]
        if not isinstance(message, UserMessage) or not message.tool_results:
            continue
        stubbed = _stubbed(message)
        chars += message_chars(stubbed) - message_chars(message)
        messages[index] = stubbed
    return chars // _CHARS_PER_TOKEN + 1 <= budget


def _note(task: Message, mark: str) -> str | None:
    """The text of the task message's note of this kind, if it has one."""
    for part in task.parts:
        if isinstance(part, TextPart) and part.text.startswith(mark):
            return part.text[len(mark) :]
    return None


def _with_note(task: Message, mark: str, text: str) -> UserMessage:
    """The task message with one note of this kind (a newer note replaces an older one)."""
    kept = tuple(p for p in task.parts if not (isinstance(p, TextPart) and p.text.startswith(mark)))
    return UserMessage((*kept, TextPart(f"{mark}{text}")))  # type: ignore[arg-type]


def _cut_for(messages: Sequence[Message], budget: int, keep: int) -> int:
    """Where the kept turns start: whole turns after the task go, oldest first, until the rest
    fits, but the last `keep` turns stay."""
    starts = _turn_starts(messages)
    size = sum(message_chars(m) for m in messages)
    cut = 1
    for k in range(max(len(starts) - keep, 0)):
        if size // _CHARS_PER_TOKEN + 1 <= budget:
            break
        size -= sum(message_chars(m) for m in messages[starts[k] : starts[k + 1]])
        cut = starts[k + 1]
    return cut


def _dropped_before(task: Message) -> int:
    """How many turns earlier compactions dropped, from the task's note."""
    note = _note(task, _DROPPED_MARK)
    first = note.split()[0] if note else ""
    return int(first) if first.isdigit() else 0


def _named(strategies: list[str]) -> str:
    return "+".join(dict.fromkeys(strategies))


async def compact(
    messages: Sequence[Message], budget: int, summarise: Summariser | None = None
) -> Compacted | None:
    """The conversation made to fit `budget` prompt tokens, or None when nothing can be taken.

    The two most recent turns are kept while anything older can go; past that only the last
    turn is kept, and its results are shortened as a last resort. The result may still be over
    budget then. A summary folds the previous one in; a note of dropped turns keeps the count.
    """
    before = _tokens(messages)
    work = list(messages)
    # The same turns untrimmed, index for index: a summary is written from what the tools
    # returned, not from the stubs trimming left (the transcript bounds its own size).
    source = list(messages)
    strategies: list[str] = []
    for keep in (2, 1):
        starts = _turn_starts(work)
        upto = starts[-keep] if len(starts) >= keep else len(work)
        if _trim(work, upto, budget):
            return Compacted(work, _named([*strategies, "trim"]), before, _tokens(work))
        if _tokens(work) < before and "trim" not in strategies:
            strategies.append("trim")
        # Room for the summary itself: cut a little deeper when one will replace the turns.
        cut = _cut_for(work, budget - min(budget // 4, 300) if summarise else budget, keep)
        if cut > 1 and summarise is not None:
            earlier = _note(work[0], _SUMMARY_MARK)
            folded = ([UserMessage.of(f"Summary so far:{earlier}")] if earlier else []) + source[1:cut]
            try:
                summary = await summarise(folded)
            except ProviderError:  # a summary that failed falls back to dropping the turns
                summary = ""
            if summary:
                work = [_with_note(work[0], _SUMMARY_MARK, "\n" + summary), *work[cut:]]
                source = [work[0], *source[cut:]]
                strategies.append("summarise")
                if _tokens(work) <= budget:
                    return Compacted(work, _named(strategies), before, _tokens(work))
                cut = _cut_for(work, budget, keep)
        if cut > 1:
            removed = len([i for i in _turn_starts(work) if i < cut]) + _dropped_before(work[0])
            note = f"{removed} earlier turn{'s' if removed > 1 else ''}.]"
            work = [_with_note(work[0], _DROPPED_MARK, note), *work[cut:]]
            source = [work[0], *source[cut:]]
            strategies.append("drop")
            if _tokens(work) <= budget:
                return Compacted(work, _named(strategies), before, _tokens(work))
    # Only the task and the last turn are left: shorten the last turn's results too.
    _trim(work, len(work), budget)
    if _tokens(work) < before and not strategies:
        strategies.append("trim")
    return Compacted(work, _named(strategies), before, _tokens(work)) if strategies else None
