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
