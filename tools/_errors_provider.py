"""Model-provider failures (the tree is drawn in `tools.errors`)."""

from __future__ import annotations

from ._errors_base import AgentError

__all__ = [
    "MalformedResponse",
    "ModelNotFound",
    "ProviderAuthError",
    "ProviderBadRequest",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderRateLimited",
    "ProviderUnavailable",
    "StreamInterrupted",
    "http_error_class",
]


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
        error_type: The provider's own name for the error, when it gave one
            ("overloaded_error", "insufficient_quota", ...).
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
        error_type: str | None = None,
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
        self.error_type = error_type

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
    """429: request or token rate exceeded; `retry_after_s` says how long to wait when known.
    Not retried when the account's quota or credit is spent (`error_type` says so): waiting
    does not bring it back."""

    @property
    def retryable(self) -> bool:
        return self.error_type not in SPENT_QUOTA


# The providers' names for an account whose quota or credit is spent (OpenAI gives them in
# `code`, at times under a generic `type`): waiting does not help.
SPENT_QUOTA = frozenset(
    {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active", "billing_error"}
)


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
