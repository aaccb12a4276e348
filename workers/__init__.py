"""One LLM agent: provider-neutral messages, the model interface, providers, usage and cost,
retries and rate limits.

Provider SDKs are imported on first use, never by `import workers`.
"""

from tools.errors import (
    AgentError,
    MalformedResponse,
    MissingAPIKey,
    ModelNameError,
    ModelNotFound,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderRateLimited,
    ProviderUnavailable,
    StreamInterrupted,
)

from ._anthropic import AnthropicModel
from ._events import Event, EventSink, ModelCallEvent, ModelRetryEvent, NullSink, RateLimitWaitEvent
from ._messages import AssistantMessage, Message, TextPart, ToolCallPart, ToolResultPart, UserMessage
from ._model import (
    ForcedTool,
    Model,
    ModelRequest,
    ModelResponse,
    OutputSpec,
    RateLimitInfo,
    StopReason,
    ToolChoice,
    ToolSpec,
)
from ._openai import OpenAIModel
from ._prices import BUILTIN_PRICES, Price, PriceTable
from ._ratelimit import RateLimit, RateLimits
from ._resolve import model_id, resolve_model
from ._retry import RetryPolicy, call_model
from ._tokens import estimate_prompt_tokens, estimate_tokens
from ._usage import Usage, UsageLedger

__all__ = [
    "BUILTIN_PRICES",
    "AgentError",
    "AnthropicModel",
    "AssistantMessage",
    "Event",
    "EventSink",
    "ForcedTool",
    "MalformedResponse",
    "Message",
    "MissingAPIKey",
    "Model",
    "ModelCallEvent",
    "ModelNameError",
    "ModelNotFound",
    "ModelRequest",
    "ModelResponse",
    "ModelRetryEvent",
    "NullSink",
    "OpenAIModel",
    "OutputSpec",
    "Price",
    "PriceTable",
    "ProviderAuthError",
    "ProviderBadRequest",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderRateLimited",
    "ProviderUnavailable",
    "RateLimit",
    "RateLimitInfo",
    "RateLimitWaitEvent",
    "RateLimits",
    "RetryPolicy",
    "StopReason",
    "StreamInterrupted",
    "TextPart",
    "ToolCallPart",
    "ToolChoice",
    "ToolResultPart",
    "ToolSpec",
    "Usage",
    "UsageLedger",
    "UserMessage",
    "call_model",
    "estimate_prompt_tokens",
    "estimate_tokens",
    "model_id",
    "resolve_model",
]
