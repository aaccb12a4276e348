"""The one error tree of the framework.

It lives in the lowest layer (`tools`) so that every layer can raise from it without importing
upwards; `workers` and `supervisor` re-export the names their users meet.

    AgentError                      root; carries `run_id` once a run owns the failure
    ├── ConfigurationError          the code or environment is wrong; nothing was sent
    │   ├── ModelNameError          a model string that is malformed or names an unknown provider
    │   └── MissingAPIKey           the provider SDK found no credentials (names the env var)
    ├── ProviderError               a model provider failed (provider, model, status, request id,
    │   │                           attempts, retry-after, body excerpt)
    │   ├── ProviderHTTPError       the provider answered with an error status
    │   │   ├── ProviderBadRequest      400, 413, 422: the request itself was refused
    │   │   ├── ProviderAuthError       401, 403: the key is wrong or lacks permission
    │   │   ├── ModelNotFound           404: the provider does not know the model
    │   │   ├── ProviderRateLimited     429: request or token rate exceeded
    │   │   └── ProviderUnavailable     408, 409, 5xx, 529 overloaded
    │   ├── ProviderConnectionError connection refused or dropped, or a timeout
    │   ├── MalformedResponse       a body that is empty or not the shape the API documents
    │   └── StreamInterrupted       a stream that broke or reported an error part-way
    ├── ToolError                   a tool could not be used (tool name)
    │   ├── ToolDefinitionError     a function that cannot become a tool (bad signature, schema)
    │   ├── ToolArgumentsError      the model's arguments failed the schema after the allowed
    │   │                           repairs (JSON path, bad value, rule, every issue)
    │   ├── UnknownToolError        the model kept calling a tool that does not exist
    │   └── ToolTimeoutError        the tool kept running past `timeout_s`
    ├── RunAborted                  a person aborted the run at an approval
    ├── WorkerError                 one worker could not finish (worker name)
    │   ├── WorkerInputError        the task does not validate against the worker's `input`
    │   ├── MaxTurnsExceeded        `max_turns` model turns without a valid output
    │   ├── LoopDetected            the same tool with the same arguments, again and again
    │   ├── OutputValidationError   the output failed the worker's `output` after the repairs
    │   ├── ModelRefused            the model kept refusing the task
    │   └── ResponseTruncated       the answer kept being cut by max_tokens, even with more room
    └── ScriptError                 a test model (workers.testing) was called more often than its
                                    script allows, or replies were left unused

Every error calls `super().__init__` with a readable message and keeps its facts as attributes,
so callers branch on fields, never on message text. Whether an error is worth retrying is a
property (`retryable`) of the error, decided here once.
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "ConfigurationError",
    "MalformedResponse",
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
]

_EXCERPT_CHARS = 300


def excerpt(value: object, limit: int = _EXCERPT_CHARS) -> str:
    """A short, single-line rendering of a bad value for error messages."""
    text = value if isinstance(value, str) else repr(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


class AgentError(Exception):
    """Root of every error the framework raises.

    Attributes:
        run_id: The run this failure ended, once a supervisor run owns it; otherwise None.
    """

    run_id: str | None

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id

    @property
    def retryable(self) -> bool:
        """Whether sending the same request again may succeed."""
        return False


class ConfigurationError(AgentError):
    """The code or environment is misconfigured; raised before anything is sent."""


class ModelNameError(ConfigurationError):
    """A model string that is not `"provider:name"` or names an unknown provider."""

    def __init__(self, value: object, reason: str) -> None:
        super().__init__(
            f"bad model {excerpt(value)}: {reason}; expected 'anthropic:NAME' or 'openai:NAME'"
            " or a model object"
        )
        self.value = value
        self.reason = reason


class MissingAPIKey(ConfigurationError):
    """The provider's SDK found no credentials."""

    def __init__(self, provider: str, env_var: str) -> None:
        super().__init__(
            f"no API key for {provider}: set {env_var} (or pass a client or api_key to the model)"
        )
        self.provider = provider
        self.env_var = env_var


class ProviderError(AgentError):
    """A model provider failed.

    Attributes:
        provider: "anthropic", "openai" or a test model's provider name.
        model: The model name sent to the provider.
        status_code: HTTP status, when the provider answered.
        request_id: The provider's request id, when it sent one.
        attempts: How many times the request was sent (more than 1 means it was retried).
        retry_after_s: How long the provider asked us to wait, when it said.
        body_excerpt: The start of the provider's body, for diagnosis (never headers).
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str,
        status_code: int | None = None,
        request_id: str | None = None,
        retry_after_s: float | None = None,
        body_excerpt: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.request_id = request_id
        self.retry_after_s = retry_after_s
        self.body_excerpt = body_excerpt
        self.attempts = attempts

    @property
    def retried(self) -> bool:
        """Whether the request was sent more than once before this error stood."""
        return self.attempts > 1

    def __str__(self) -> str:
        where = f"{self.provider}:{self.model}"
        facts = [f"status {self.status_code}"] if self.status_code is not None else []
        if self.request_id:
            facts.append(f"request id {self.request_id}")
        if self.attempts > 1:
            facts.append(f"after {self.attempts} attempts")
        tail = f" ({', '.join(facts)})" if facts else ""
        body = f"; body: {self.body_excerpt}" if self.body_excerpt else ""
        return f"{where}: {self.message}{tail}{body}"


class ProviderHTTPError(ProviderError):
    """The provider answered with an error status (`status_code` is set)."""

    @property
    def retryable(self) -> bool:
        code = self.status_code or 0
        return code in (408, 409, 429) or code >= 500


class ProviderBadRequest(ProviderHTTPError):
    """400, 413 or 422: the provider refused the request as sent."""


class ProviderAuthError(ProviderHTTPError):
    """401 or 403: the API key is wrong or lacks permission."""


class ModelNotFound(ProviderHTTPError):
    """404: the provider does not know this model."""


class ProviderRateLimited(ProviderHTTPError):
    """429: request or token rate exceeded; `retry_after_s` says how long to wait when known."""


class ProviderUnavailable(ProviderHTTPError):
    """408, 409, 5xx or 529 overloaded: the provider could not serve the request now."""


class ProviderConnectionError(ProviderError):
    """The connection failed or timed out before a complete answer arrived."""

    def __init__(
        self, message: str, *, provider: str, model: str, timeout: bool = False, attempts: int = 1
    ) -> None:
        super().__init__(message, provider=provider, model=model, attempts=attempts)
        self.timeout = timeout

    @property
    def retryable(self) -> bool:
        return True


class MalformedResponse(ProviderError):
    """The provider's body was empty or not in the documented shape (`body_excerpt` shows it)."""


class StreamInterrupted(ProviderError):
    """A stream broke, or the provider sent an error event, before the message was complete."""

    @property
    def retryable(self) -> bool:
        return True


class ToolError(AgentError):
    """A tool could not be used.

    Attributes:
        tool: The tool's name (as the model wrote it, for unknown tools).
    """

    def __init__(self, message: str, *, tool: str) -> None:
        super().__init__(message)
        self.tool = tool


class ToolDefinitionError(ToolError, ConfigurationError):
    """A function that cannot become a tool: an unsupported signature or schema."""


class ToolArgumentsError(ToolError):
    """The model's arguments failed the tool's schema, and the allowed repairs ran out.

    Attributes:
        path: JSON path of the first problem, like "$.amount".
        value: The offending value (None for a missing property).
        rule: What was broken, like "-5 is less than the minimum of 0".
        issues: Every problem found, as (path, value, rule).
        attempts: How many times the model tried.
    """

    def __init__(
        self, tool: str, issues: list[tuple[str, object, str]], *, attempts: int, raw_arguments: str = ""
    ) -> None:
        path, value, rule = issues[0]
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        super().__init__(
            f"tool {tool!r}: invalid arguments after {attempts} attempts: {path}: {rule}{more}", tool=tool
        )
        self.path = path
        self.value = value
        self.rule = rule
        self.issues = issues
        self.attempts = attempts
        self.raw_arguments = raw_arguments


class UnknownToolError(ToolError):
    """The model kept calling a tool that does not exist."""

    def __init__(self, tool: str, available: list[str], *, attempts: int) -> None:
        super().__init__(
            f"unknown tool {tool!r} called {attempts} times; available: {', '.join(available) or 'none'}",
            tool=tool,
        )
        self.available = available
        self.attempts = attempts


class ToolTimeoutError(ToolError):
    """The tool kept running past its `timeout_s`."""

    def __init__(self, tool: str, timeout_s: float, *, attempts: int) -> None:
        super().__init__(f"tool {tool!r} timed out after {timeout_s:g} s, {attempts} times", tool=tool)
        self.timeout_s = timeout_s
        self.attempts = attempts


class RunAborted(AgentError):
    """A person aborted the run when asked to approve a risky tool call."""

    def __init__(self, tool: str, reason: str, *, by: str = "") -> None:
        who = f" by {by}" if by else ""
        super().__init__(f"run aborted{who} at the approval of {tool!r}: {reason or 'no reason given'}")
        self.tool = tool
        self.reason = reason
        self.by = by


class WorkerError(AgentError):
    """One worker could not finish its task.

    Attributes:
        worker: The worker's name.
    """

    def __init__(self, message: str, *, worker: str) -> None:
        super().__init__(f"{worker}: {message}")
        self.worker = worker


class WorkerInputError(WorkerError):
    """The task given to a worker does not validate against its `input` model."""

    def __init__(self, worker: str, errors: list[dict[str, object]], value: object) -> None:
        first = errors[0] if errors else {"loc": (), "msg": "invalid"}
        super().__init__(f"input does not validate: {first.get('loc')}: {first.get('msg')}", worker=worker)
        self.errors = errors
        self.value = value


class MaxTurnsExceeded(WorkerError):
    """`max_turns` model turns passed without a valid output.

    Attributes:
        max_turns: The limit.
        last_calls: The tool calls of the last turns, as (tool, arguments text), newest last.
    """

    def __init__(self, worker: str, max_turns: int, last_calls: list[tuple[str, str]]) -> None:
        shown = ", ".join(f"{name}({excerpt(args, 60)})" for name, args in last_calls[-3:]) or "no tool calls"
        super().__init__(f"no valid output after {max_turns} turns; last calls: {shown}", worker=worker)
        self.max_turns = max_turns
        self.last_calls = last_calls


class LoopDetected(WorkerError):
    """The model called the same tool with the same arguments `count` times."""

    def __init__(self, worker: str, tool: str, arguments: str, count: int) -> None:
        super().__init__(
            f"loop: {tool}({excerpt(arguments, 120)}) called {count} times with the same arguments",
            worker=worker,
        )
        self.tool = tool
        self.arguments = arguments
        self.count = count


class OutputValidationError(WorkerError):
    """The worker's output failed its `output` model after the allowed repairs.

    Attributes:
        errors: pydantic's errors of the last attempt (loc, msg, input).
        raw_output: What the model produced last.
        attempts: How many outputs were tried.
    """

    def __init__(self, worker: str, errors: list[dict[str, object]], raw_output: str, attempts: int) -> None:
        first = errors[0] if errors else {"loc": (), "msg": "no output"}
        raw_loc = first.get("loc")
        loc = ".".join(str(p) for p in raw_loc) if isinstance(raw_loc, tuple | list) and raw_loc else "$"
        got = excerpt(raw_output, 200)
        super().__init__(
            f"output invalid after {attempts} attempts: {loc}: {first.get('msg')}; got {got}", worker=worker
        )
        self.errors = errors
        self.raw_output = raw_output
        self.attempts = attempts


class ModelRefused(WorkerError):
    """The model refused the task, and kept refusing after being asked again."""

    def __init__(self, worker: str, refusal: str, attempts: int) -> None:
        super().__init__(f"the model refused {attempts} times: {excerpt(refusal, 200)}", worker=worker)
        self.refusal = refusal
        self.attempts = attempts


class ResponseTruncated(WorkerError):
    """The model's answer was cut by max_tokens, and still was with more room."""

    def __init__(self, worker: str, max_tokens: int, attempts: int) -> None:
        super().__init__(
            f"answer cut by max_tokens {attempts} times (last max_tokens={max_tokens})", worker=worker
        )
        self.max_tokens = max_tokens
        self.attempts = attempts


class ScriptError(AgentError):
    """A test model was used other than its script says: an extra call, or replies left unused."""

    def __init__(self, message: str, *, model: str, unused: int = 0) -> None:
        super().__init__(message)
        self.model = model
        self.unused = unused


def http_error_class(status: int) -> type[ProviderHTTPError]:
    """The error class for an HTTP error status, decided in one place for every provider."""
    if status in (401, 403):
        return ProviderAuthError
    if status == 404:
        return ModelNotFound
    if status == 429:
        return ProviderRateLimited
    if status in (408, 409) or status >= 500:
        return ProviderUnavailable
    return ProviderBadRequest
