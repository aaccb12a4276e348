"""The one error tree of the framework.

It lives in the lowest layer (`tools`) so that every layer can raise from it without importing
upwards; `workers` and `supervisor` re-export the names their users meet.

    AgentError                      root; carries `run_id` once a run owns the failure
    ├── ConfigurationError          the code or environment is wrong; nothing was sent
    │   ├── ModelNameError          a model string that is malformed or names an unknown provider
    │   ├── MissingAPIKey           the provider SDK found no credentials (names the env var)
    │   └── MalformedAPIKey         the key holds a character a header cannot (never the key)
    ├── ProviderError               a model provider failed (provider, model, status, request id,
    │   │                           attempts, retry-after, body excerpt, the provider's error type)
    │   ├── ProviderHTTPError       the provider answered with an error status
    │   │   ├── ProviderBadRequest      400, 413, 422: the request itself was refused
    │   │   ├── ProviderAuthError       401, 403: the key is wrong or lacks permission
    │   │   ├── ModelNotFound           404: the provider does not know the model
    │   │   ├── ProviderRateLimited     429: request or token rate exceeded (a spent quota: not retried)
    │   │   └── ProviderUnavailable     408, 409, 5xx, 529 overloaded
    │   ├── ProviderConnectionError connection refused or dropped, or a timeout
    │   ├── MalformedResponse       a body that is empty or not the shape the API documents
    │   └── StreamInterrupted       a stream that broke or reported an error part-way
    ├── ToolError                   a tool could not be used (tool name)
    │   ├── ToolDefinitionError     a function that cannot become a tool (bad signature, schema)
    │   ├── ToolArgumentsError      the model's arguments failed the schema after the allowed
    │   │                           repairs (JSON path, bad value, rule, every issue)
    │   ├── UnknownToolError        the model kept calling a tool that does not exist
    │   ├── ToolTimeoutError        the tool kept running past `timeout_s`
    │   ├── ApproverFailed          the approver raised instead of deciding; the call was not run
    │   └── ToolInterrupted         on resume: a call that started, never finished, and is
    │                               neither idempotent nor risky, so it is not run again
    ├── RunAborted                  a person aborted the run at an approval
    ├── PlanError                   no valid plan after the re-plans allowed (every issue)
    ├── StepFailed                  a plan step failed after its retries and re-planning
    ├── BudgetExceeded              a call or step would pass a hard limit; it was not sent
    ├── CircuitOpen                 a model's breaker is open: calls fail fast until the probe
    ├── HandoffError                a handoff to a worker not allowed, or a payload it rejects
    ├── HandoffLoop                 handoffs cycling with nothing new, or past max_handoffs
    ├── StoreError                  the run store cannot be used (not ours, newer schema, write failed)
    ├── ResumeError                 a run that no longer matches the code cannot be resumed
    │   └── RunTakenOver            another process took the run over: this one stops writing
    ├── RunNotFound                 a run id the store does not have
    ├── ReplayMismatch              a replayed run asked for a call its recording does not have
    ├── RecordedFailure             on resume: a step attempt that failed before, given back as is
    ├── WorkerError                 one worker could not finish (worker name)
    │   ├── WorkerInputError        the task does not validate against the worker's `input`
    │   ├── MaxTurnsExceeded        `max_turns` model turns without a valid output
    │   ├── LoopDetected            the same tool with the same arguments, again and again
    │   ├── OutputValidationError   the output failed the worker's `output` after the repairs
    │   ├── ModelRefused            the model kept refusing the task
    │   ├── ResponseTruncated       the answer kept being cut by max_tokens, even with more room
    │   └── ContextOverflow         the conversation does not fit the window, even compacted
    └── ScriptError                 a test model (workers.testing) was called more often than its
                                    script allows, or replies were left unused

Every error calls `super().__init__` with a readable message and keeps its facts as attributes,
so callers branch on fields, never on message text. Whether an error is worth retrying is a
property (`retryable`) of the error, decided here once.

The classes are defined in private modules by family (`_errors_base`, `_errors_provider`,
`_errors_run`, `_errors_supervisor`); this module is the one place that draws and exports them all.
"""

from __future__ import annotations

from ._errors_base import (
    AgentError,
    ConfigurationError,
    MalformedAPIKey,
    MissingAPIKey,
    ModelNameError,
    ScriptError,
    excerpt,
    shown,
)
from ._errors_provider import (
    MalformedResponse,
    ModelNotFound,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderRateLimited,
    ProviderUnavailable,
    StreamInterrupted,
    http_error_class,
)
from ._errors_run import (
    ApproverFailed,
    ContextOverflow,
    LoopDetected,
    MaxTurnsExceeded,
    ModelRefused,
    OutputValidationError,
    ResponseTruncated,
    RunAborted,
    ToolArgumentsError,
    ToolDefinitionError,
    ToolError,
    ToolInterrupted,
    ToolTimeoutError,
    UnknownToolError,
    WorkerError,
    WorkerInputError,
)
from ._errors_supervisor import (
    BudgetExceeded,
    CircuitOpen,
    HandoffError,
    HandoffLoop,
    PlanError,
    RecordedFailure,
    ReplayMismatch,
    ResumeError,
    RunNotFound,
    RunTakenOver,
    StepFailed,
    StoreError,
)

__all__ = [
    "BudgetExceeded",
    "CircuitOpen",
    "HandoffError",
    "HandoffLoop",
    "PlanError",
    "RecordedFailure",
    "ResumeError",
    "ReplayMismatch",
    "RunNotFound",
    "RunTakenOver",
    "StepFailed",
    "StoreError",
    "AgentError",
    "ApproverFailed",
    "ConfigurationError",
    "ContextOverflow",
    "MalformedResponse",
    "MalformedAPIKey",
    "MissingAPIKey",
    "ModelNameError",
    "ModelNotFound",
    "ProviderAuthError",
    "ProviderBadRequest",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderRateLimited",
    "ProviderUnavailable",
    "ScriptError",
    "StreamInterrupted",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "ToolError",
    "ToolInterrupted",
    "ToolTimeoutError",
    "UnknownToolError",
    "RunAborted",
    "WorkerError",
    "WorkerInputError",
    "MaxTurnsExceeded",
    "LoopDetected",
    "OutputValidationError",
    "ModelRefused",
    "ResponseTruncated",
    "excerpt",
    "http_error_class",
    "shown",
]
