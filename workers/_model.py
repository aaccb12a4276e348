"""The narrow model interface: one `ModelRequest` in, one `ModelResponse` out.

Every model (Anthropic, OpenAI, the test models, a user's own) implements `Model`. Providers
translate inside their module; the framework above sees only these types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ._messages import (
    AssistantMessage,
    AssistantPart,
    Message,
    ToolCallPart,
    ToolResultPart,
    text_of,
    tool_calls_of,
)
from ._records import fast_init
from ._usage import Usage

__all__ = [
    "ForcedTool",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "OutputSpec",
    "RateLimitInfo",
    "StopReason",
    "ToolChoice",
    "ToolSpec",
]

StopReason = Literal["end", "tool_use", "max_tokens", "refusal"]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as offered to the model.

    Attributes:
        name: The name the model calls it by.
        description: What it does, for the model.
        parameters: The JSON Schema of its arguments (an object schema).
        is_output: True for the final-answer tool a worker adds when the provider has no native
            structured output; calling it delivers the worker's output.
        size: The UTF-8 size of name, description and schema (computed once, for estimates).
    """

    name: str
    description: str
    parameters: Mapping[str, Any]
    is_output: bool = False
    size: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The encoded size never changes: token estimates read it on every call.
        encoded = len(self.name) + len(self.description.encode()) + len(str(self.parameters).encode())
        object.__setattr__(self, "size", encoded)


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """Native structured output: the model must answer with JSON matching `schema`.

    `size` is the UTF-8 size of the schema (computed once, for estimates).
    """

    name: str
    schema: Mapping[str, Any]
    description: str = ""
    size: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", len(str(self.schema).encode()))


@dataclass(frozen=True, slots=True)
class ForcedTool:
    """Tool choice that forces one named tool."""

    name: str


ToolChoice = Literal["auto", "required", "none"] | ForcedTool


@fast_init
@dataclass(frozen=True, slots=True)
class ModelRequest:
    """Everything one model call needs, in provider-neutral form."""

    messages: tuple[Message, ...]
    system: str = ""
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = "auto"
    output: OutputSpec | None = None
    max_tokens: int = 4096
    temperature: float | None = None
    stop_sequences: tuple[str, ...] = ()

    @property
    def tool_results(self) -> tuple[ToolResultPart, ...]:
        """The tool results of the latest turn (empty when the last message is not results)."""
        if self.messages:
            last = self.messages[-1]
            if last.kind == "user":
                return last.tool_results
        return ()


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What the provider's rate-limit headers said about the remaining capacity.

    Reset times are seconds from when the response arrived. Any field may be unknown (None).
    """

    requests_limit: int | None = None
    requests_remaining: int | None = None
    requests_reset_s: float | None = None
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_reset_s: float | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class ModelResponse:
    """One complete answer from a model, streamed or not.

    Attributes:
        parts: Text and tool-call parts in the order the model produced them.
        stop_reason: Why the model stopped: "end", "tool_use", "max_tokens" or "refusal".
        usage: Tokens and cost of this call (retries of it included).
        provider: The provider name ("anthropic", "openai", "test").
        model: The model name as the provider reported it.
        request_id: The provider's request id, when it sent one.
        latency_s: Wall time of the successful attempt, from send to last byte.
        first_token_s: Time to the first streamed content, for streamed calls.
        refusal: The model's refusal text, when it refused.
        raw_stop_reason: The provider's own stop reason, for diagnosis.
        rate_limit: What the rate-limit headers said, when present.
    """

    parts: tuple[AssistantPart, ...]
    stop_reason: StopReason
    usage: Usage = field(default_factory=Usage)
    provider: str = ""
    model: str = ""
    request_id: str | None = None
    latency_s: float = 0.0
    first_token_s: float | None = None
    refusal: str | None = None
    raw_stop_reason: str | None = None
    rate_limit: RateLimitInfo | None = None

    @property
    def text(self) -> str:
        """All text parts joined."""
        return text_of(self.parts)

    @property
    def tool_calls(self) -> tuple[ToolCallPart, ...]:
        """The tool calls, in the order the model made them."""
        return tool_calls_of(self.parts)

    @property
    def message(self) -> AssistantMessage:
        """The response as the assistant message to append to the conversation."""
        return AssistantMessage(self.parts)


@runtime_checkable
class Model(Protocol):
    """Anything that answers a `ModelRequest` with a `ModelResponse`.

    Errors are raised from the `ProviderError` branch of the error tree, so that the retry
    policy, the rate limiter and the breaker treat every model alike.
    """

    @property
    def provider(self) -> str:
        """The provider name, the part before the colon in "provider:name"."""
        ...

    @property
    def name(self) -> str:
        """The model name sent to the provider."""
        ...

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Send one request and return the complete response."""
        ...
