"""The error of a stream that began with 200 and failed part-way, for both providers.

A stream's status is 200 whatever happens after: an error the provider sends inside it (an
Anthropic `error` event, an OpenAI chunk with `error`) is typed by the status its type stands
for, so that a hopeless one (a prompt too long, a spent account) is not retried and a prompt
too long reaches compaction; the request id comes from the 200's headers. A stream that stalls
past the read timeout says it timed out. No SDK is imported here: the providers pass in what
their SDK raised, already unpacked.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from tools._errors_provider import SPENT_QUOTA
from tools.errors import ProviderError, StreamInterrupted, excerpt, http_error_class

from ._provider import redact

__all__ = ["STREAM_ERROR_STATUS", "event_error", "interrupted", "timed_out"]

# The HTTP status each documented error type stands for. Anthropic's types
# (docs.anthropic.com/en/api/errors), then OpenAI's codes and types.
STREAM_ERROR_STATUS: Mapping[str, int] = MappingProxyType(
    {
        "invalid_request_error": 400,
        "authentication_error": 401,
        "billing_error": 402,
        "permission_error": 403,
        "not_found_error": 404,
        "request_too_large": 413,
        "rate_limit_error": 429,
        "api_error": 500,
        "timeout_error": 504,
        "overloaded_error": 529,
        "context_length_exceeded": 400,
        "invalid_api_key": 401,
        "model_not_found": 404,
        "rate_limit_exceeded": 429,
        "insufficient_quota": 429,
        "billing_hard_limit_reached": 429,
        "billing_not_active": 429,
        "server_error": 500,
    }
)


def event_error(
    body: object, *, provider: str, model: str, request_id: str | None, secret: str | None
) -> ProviderError:
    """The typed error of an error event whose body is `body` (Anthropic's `{"type": "error",
    "error": {...}}` or OpenAI's `{"message", "type", "code"}`); an error of a type no table
    knows is a StreamInterrupted, retried as a broken stream is."""
    error = body.get("error", body) if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        what = redact(f"error event in the stream: {excerpt(body)}", secret)
        return StreamInterrupted(what, provider=provider, model=model, request_id=request_id)
    code, kind = error.get("code"), error.get("type")
    code = str(code) if code else None
    kind = str(kind) if kind else None
    # Named as the HTTP path names it: the type, unless the code says the account is spent.
    name = code if code in SPENT_QUOTA else kind or code
    status = STREAM_ERROR_STATUS.get(code or "") or STREAM_ERROR_STATUS.get(kind or "")
    text = error.get("message")
    text = f"{name}: {text}" if name and text else str(text or name or "no message")
    message = redact(f"error event in the stream: {text}", secret)
    shown = excerpt(redact(repr(dict(error)), secret))
    if status is None:
        return StreamInterrupted(
            message,
            provider=provider,
            model=model,
            request_id=request_id,
            body_excerpt=shown,
            error_type=name,
        )
    return http_error_class(status)(
        message,
        provider=provider,
        model=model,
        status_code=status,
        request_id=request_id,
        body_excerpt=shown,
        error_type=name,
    )


def interrupted(
    provider: str, model: str, what: str, received: str, request_id: str | None
) -> StreamInterrupted:
    """A stream that ended or broke before the message was complete (`received`: what came)."""
    return StreamInterrupted(
        what, provider=provider, model=model, request_id=request_id, body_excerpt=excerpt(received) or None
    )


# By name: httpx (the SDKs' copy of it), its SDK wrapper and asyncio's are different modules.
_TIMEOUTS = frozenset({"TimeoutError", "TimeoutException", "APITimeoutError"})


def timed_out(exc: BaseException) -> bool:
    """Whether `exc`, or what caused it, is a timeout: the SDK's, httpx's or asyncio's."""
    seen: BaseException | None = exc
    for _ in range(6):  # the SDK's error, httpx's, httpcore's: a short chain
        if seen is None:
            return False
        if any(c.__name__ in _TIMEOUTS for c in type(seen).__mro__):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
