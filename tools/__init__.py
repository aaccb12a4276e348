"""The bottom layer: plain functions as validated tools, and the framework's one error tree.

No LLM code lives here. See `tools.errors` for the error tree.
"""

from .errors import (
    AgentError,
    ConfigurationError,
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
    ScriptError,
    StreamInterrupted,
)

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
]
