"""Provider-neutral conversation messages.

Small frozen dataclasses with a `kind` discriminator. Providers translate these to and from their
wire format inside their own module; nothing else in the framework sees a vendor type.

A conversation is a sequence of `UserMessage` and `AssistantMessage`. Tool results travel in the
user message that follows the assistant message whose tool calls they answer, which is the shape
both the Anthropic and OpenAI APIs require.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ._records import fast_init

__all__ = [
    "AssistantMessage",
    "AssistantPart",
    "Message",
    "TextPart",
    "ToolCallPart",
    "ToolResultPart",
    "UserMessage",
    "UserPart",
    "text_of",
    "tool_calls_of",
]


@fast_init
@dataclass(frozen=True, slots=True)
class TextPart:
    """Plain text from the user or the model."""

    text: str
    kind: Literal["text"] = "text"


@fast_init
@dataclass(frozen=True, slots=True)
class ToolCallPart:
    """A tool call the model asked for.

    Attributes:
        id: The provider's call id; the result must quote it.
        name: The tool name as the model wrote it (it may not exist).
        raw_arguments: The argument text exactly as the model produced it.
        arguments: The parsed arguments, or None when `raw_arguments` is not a JSON object.
        truncated: True when the model was cut off (max_tokens) while writing the arguments;
            such arguments are never parsed into a partial object.
    """

    id: str
    name: str
    raw_arguments: str
    arguments: Mapping[str, Any] | None
    truncated: bool = False
    kind: Literal["tool_call"] = "tool_call"


@fast_init
@dataclass(frozen=True, slots=True)
class ToolResultPart:
    """The answer to one tool call, sent back to the model."""

    call_id: str
    name: str
    content: str
    is_error: bool = False
    kind: Literal["tool_result"] = "tool_result"


UserPart = TextPart | ToolResultPart
AssistantPart = TextPart | ToolCallPart


def text_of(parts: tuple[AssistantPart, ...]) -> str:
    """All text parts joined."""
    if len(parts) == 1:
        part = parts[0]
        return part.text if isinstance(part, TextPart) else ""
    return "".join([p.text for p in parts if isinstance(p, TextPart)])


def tool_calls_of(parts: tuple[AssistantPart, ...]) -> tuple[ToolCallPart, ...]:
    """The tool calls, in the order the model made them."""
    if len(parts) == 1:  # most answers: one text or one call
        part = parts[0]
        return (part,) if isinstance(part, ToolCallPart) else ()
    return tuple([p for p in parts if isinstance(p, ToolCallPart)])


@fast_init
@dataclass(frozen=True, slots=True)
class UserMessage:
    """A message from the user's side: the task, or the results of the previous tool calls."""

    parts: tuple[UserPart, ...]
    kind: Literal["user"] = "user"

    @classmethod
    def of(cls, text: str) -> UserMessage:
        """A user message holding one text part."""
        return cls((TextPart(text),))

    @property
    def tool_results(self) -> tuple[ToolResultPart, ...]:
        """The tool results this message carries, in call order."""
        return tuple(p for p in self.parts if isinstance(p, ToolResultPart))


@fast_init
@dataclass(frozen=True, slots=True)
class AssistantMessage:
    """What the model said: text and tool calls, in the order it produced them."""

    parts: tuple[AssistantPart, ...] = field(default=())
    kind: Literal["assistant"] = "assistant"

    @property
    def text(self) -> str:
        """All text parts joined."""
        return text_of(self.parts)

    @property
    def tool_calls(self) -> tuple[ToolCallPart, ...]:
        """The tool calls, in the order the model made them."""
        return tool_calls_of(self.parts)


Message = UserMessage | AssistantMessage
