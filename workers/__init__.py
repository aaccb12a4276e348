"""One LLM agent: the Worker class and its turn loop, provider-neutral messages, the model
interface, providers, usage and cost, retries and rate limits.

Provider SDKs are imported on first use, never by `import workers`.
"""

from tools.errors import (
    AgentError,
    LoopDetected,
    MalformedResponse,
    MaxTurnsExceeded,
    MissingAPIKey,
    ModelNameError,
    ModelNotFound,
    ModelRefused,
    OutputValidationError,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderRateLimited,
    ProviderUnavailable,
    ResponseTruncated,
    RunAborted,
    StreamInterrupted,
    ToolArgumentsError,
    ToolTimeoutError,
    UnknownToolError,
    WorkerError,
    WorkerInputError,
)

from ._anthropic import AnthropicModel
from ._context import RunContext
from ._events import (
    ApprovalEvent,
    Event,
    EventSink,
    ModelCallEvent,
    ModelRetryEvent,
    NullSink,
    RateLimitWaitEvent,
    RepairEvent,
    ToolCallEvent,
)
from ._hooks import ApprovalRequest, Approver, Decision, ModelCallGuard, ToolGate
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
from ._worker import Worker, WorkerResult

__all__ = [
    "BUILTIN_PRICES",
    "AgentError",
    "AnthropicModel",
    "ApprovalEvent",
    "ApprovalRequest",
    "Approver",
    "AssistantMessage",
    "Decision",
    "Event",
    "EventSink",
    "ForcedTool",
    "LoopDetected",
    "MalformedResponse",
    "MaxTurnsExceeded",
    "Message",
    "MissingAPIKey",
    "Model",
    "ModelCallEvent",
    "ModelCallGuard",
    "ModelNameError",
    "ModelNotFound",
    "ModelRefused",
    "ModelRequest",
    "ModelResponse",
    "ModelRetryEvent",
    "NullSink",
    "OpenAIModel",
    "OutputSpec",
    "OutputValidationError",
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
    "RepairEvent",
    "ResponseTruncated",
    "RetryPolicy",
    "RunAborted",
    "RunContext",
    "StopReason",
    "StreamInterrupted",
    "TextPart",
    "ToolArgumentsError",
    "ToolCallEvent",
    "ToolCallPart",
    "ToolChoice",
    "ToolGate",
    "ToolResultPart",
    "ToolSpec",
    "ToolTimeoutError",
    "UnknownToolError",
    "Usage",
    "UsageLedger",
    "UserMessage",
    "Worker",
    "WorkerError",
    "WorkerInputError",
    "WorkerResult",
    "call_model",
    "estimate_prompt_tokens",
    "estimate_tokens",
    "model_id",
    "resolve_model",
]
