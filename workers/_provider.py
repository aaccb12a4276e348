"""What both provider modules share: header parsing, argument parsing, SDK error translation.

No SDK is imported here; the SDK's module object is passed in by the provider that loaded it.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from tools._errors_provider import SPENT_QUOTA
from tools._jsontext import json_value
from tools.errors import (
    MalformedResponse,
    MissingAPIKey,
    ProviderConnectionError,
    ProviderError,
    excerpt,
    http_error_class,
)

from ._model import RateLimitInfo
from ._prices import Price
from ._usage import Usage

__all__ = [
    "json_body",
    "make_usage",
    "malformed",
    "parse_arguments",
    "parse_duration",
    "rate_limit_info",
    "retry_after_s",
    "translate_sdk_error",
]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms`, then `retry-after` (seconds or date).

    A value that is no number of seconds ("nan", garbage) counts as not said."""
    ms = _seconds(headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000.0
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _seconds(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    if value is None or math.isnan(value):  # every comparison with NaN is false: no bound holds
        return None
    return max(value, 0.0)


def parse_duration(value: str | None) -> float | None:
    """OpenAI's reset durations ("1s", "6m0s", "20ms", "1h2m3.5s") or an RFC 3339 time, in seconds."""
    if not value:
        return None
    parts = _DURATION_PART.findall(value)
    if parts and "".join(n + u for n, u in parts) == value:
        return sum(float(n) * _UNIT_S[u] for n, u in parts)
    try:
        from datetime import datetime

        return max(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() - time.time(), 0.0)
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def rate_limit_info(headers: Mapping[str, str], names: Mapping[str, str]) -> RateLimitInfo | None:
    """Read the six rate-limit facts from headers, given the provider's header names."""
    values = {field: headers.get(header) for field, header in names.items()}
    if not any(values.values()):
        return None
    return RateLimitInfo(
        requests_limit=_int(values["requests_limit"]),
        requests_remaining=_int(values["requests_remaining"]),
        requests_reset_s=parse_duration(values["requests_reset"]),
        tokens_limit=_int(values["tokens_limit"]),
        tokens_remaining=_int(values["tokens_remaining"]),
        tokens_reset_s=parse_duration(values["tokens_reset"]),
    )


def parse_arguments(raw: str, truncated: bool) -> tuple[Mapping[str, Any] | None, bool]:
    """Parse tool-call argument text into an object, never into garbage.

    Returns (arguments or None, truncated). Arguments cut off by max_tokens are reported as
    truncated and not parsed, even when the cut happens to leave valid JSON.
    """
    if truncated:
        return None, True
    try:
        value = json_value(raw) if raw.strip() else {}
    # Not JSON (NaN, 1e999 included), or nested too deeply: the tool call says where and why.
    except (ValueError, RecursionError):
        return None, False
    return (value, False) if isinstance(value, dict) else (None, False)


def token_counts(
    usage: object, keys: tuple[str, ...], provider: str, model: str, body: object
) -> tuple[int, ...]:
    """The token counts `keys` of a usage object: absent or null is 0; anything but a
    non-negative integer is a malformed body (a count never becomes a negative or a text cost)."""
    if usage is None:
        usage = {}
    if not isinstance(usage, dict):
        raise malformed(provider, model, "usage is not an object", body)
    counts = []
    for key in keys:
        value = usage.get(key)
        if value is None:
            value = 0
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise malformed(provider, model, f"usage.{key} is not a token count: {value!r}", body)
        counts.append(value)
    return tuple(counts)


def make_usage(
    price: Price | None,
    input_tokens: int,
    output_tokens: int,
    cache_read: int = 0,
    cache_write: int = 0,
) -> Usage:
    """The usage of one successful request, priced when the model's price is known."""
    if price is None:
        return Usage(input_tokens, output_tokens, cache_read, cache_write, requests=1, unpriced_requests=1)
    cost = price.cost(input_tokens, output_tokens, cache_read, cache_write)
    return Usage(input_tokens, output_tokens, cache_read, cache_write, requests=1, known_cost_usd=cost)


def translate_sdk_error(
    exc: BaseException,
    sdk: ModuleType,
    *,
    provider: str,
    model: str,
    request_id_header: str,
    key_env_var: str,
    secret: str | None = None,
) -> ProviderError | MissingAPIKey | None:
    """Map an SDK exception to our tree; None when it is not an SDK error (let it propagate).
    Text taken from an exception or an error body is cleared of `secret` (the API key) and of
    tokens: the real APIs mask a refused key, but a proxy or a compatible server may quote it."""
    if isinstance(exc, sdk.APIStatusError):
        headers = exc.response.headers
        message, error_type = _status_message(exc.body, exc.message)
        status = exc.status_code
        if status < 400:  # an error event inside a stream that began with 200: typed as the
            # providers' stream handlers type it (`_stream_errors` imports this module)
            from ._stream_errors import event_error

            request_id = headers.get(request_id_header)
            return event_error(exc.body, provider=provider, model=model, request_id=request_id, secret=secret)
        return http_error_class(status)(
            redact(message, secret),
            provider=provider,
            model=model,
            status_code=status,
            request_id=headers.get(request_id_header),
            retry_after_s=retry_after_s(headers),
            body_excerpt=_body_excerpt(exc.body, secret),
            error_type=error_type,
        )
    if isinstance(exc, sdk.APITimeoutError):
        return ProviderConnectionError("request timed out", provider=provider, model=model, timeout=True)
    if isinstance(exc, sdk.APIConnectionError):
        cause = exc.__cause__
        detail = redact(f": {type(cause).__name__}: {cause}", secret) if cause else ""
        return ProviderConnectionError(f"connection failed{detail}", provider=provider, model=model)
    if isinstance(exc, sdk.APIResponseValidationError):
        return MalformedResponse(
            "response did not match the API's schema",
            provider=provider,
            model=model,
            status_code=exc.status_code,
            body_excerpt=_body_excerpt(exc.body, secret),
        )
    if _is_missing_credentials(exc):
        return MissingAPIKey(provider, key_env_var)
    return None


def _body_excerpt(body: object, secret: str | None) -> str | None:
    """An error body, short, without the key (cleared before it is cut: a cut could keep part of it)."""
    if body is None:
        return None
    return excerpt(redact(body if isinstance(body, str) else repr(body), secret))


# A separator after the name: "api-keys" in a URL is a word, not a key's value.
_TOKENS = re.compile(
    r"(?i)(bearer\s+|x-api-key[\s:='\"]{1,4}|api[_-]?key[\s:='\"]{1,4})(?!\[redacted\])[^\s'\",;]+"
)


def redact(text: str, secret: str | None) -> str:
    """`text` without the API key, nor anything that reads as a bearer token or a key's value:
    exception text can quote a request's headers (h11 quotes a header value it refuses)."""
    if secret:
        for form in {secret, secret.strip()}:
            if len(form) >= 8:  # a shorter "key" would blank out ordinary words
                text = text.replace(form, "[redacted]")
    return _TOKENS.sub(r"\1[redacted]", text)


def header_problem(exc: BaseException, key: str | None) -> str | None:
    """What made the request impossible to send, when a header value could not be encoded
    (a key with a newline, or with a character that is not ASCII); None for anything else.
    Says what is wrong with the key, never what the key is."""
    problem = None
    seen: BaseException | None = exc
    for _ in range(6):  # the SDK's error, httpx's, h11's: a short chain
        if seen is None:
            break
        # An encoding error is the key's only when the key is not ASCII: a body can fail to
        # encode too (a lone surrogate in a file name), and that is no key's fault.
        if (isinstance(seen, UnicodeEncodeError) and key is not None and not key.isascii()) or (
            type(seen).__name__ == "LocalProtocolError" and "header" in str(seen).lower()
        ):
            problem = "a request header holds a character HTTP headers cannot carry"
            break
        seen = seen.__cause__ or seen.__context__
    if problem is None:
        return None
    if key is not None:
        if key != key.strip():
            return "the API key begins or ends with whitespace (a newline?)"
        if not key.isascii():
            return "the API key holds a character that is not ASCII"
        if not key.isprintable():
            return "the API key holds a control character"
    return problem


def _is_missing_credentials(exc: BaseException) -> bool:
    text = str(exc)
    return "authentication method" in text or "Missing credentials" in text or "api_key" in text


def _status_message(body: object, fallback: str) -> tuple[str, str | None]:
    """The message of an error body, and the provider's name for the error (its type or code)."""
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping):
            kind = (
                error.get("code")
                if error.get("code") in SPENT_QUOTA
                else error.get("type") or error.get("code")
            )
            kind = str(kind) if kind else None
            message = error.get("message")
            if message:
                return (f"{kind}: {message}" if kind else str(message)), kind
            return fallback, kind
    return fallback, None


def json_body(text: str, provider: str, model: str) -> object:
    """The decoded body, or MalformedResponse quoting the start of what arrived."""
    try:
        return json.loads(text)
    except RecursionError:  # the decoder recurses once per level: a hostile or broken server
        raise malformed(provider, model, "response body is nested too deeply to read", text) from None
    except ValueError:
        what = "response body is empty" if not text.strip() else "response body is not JSON"
        raise malformed(provider, model, what, text or "(empty body)") from None


def malformed(provider: str, model: str, what: str, body: object) -> MalformedResponse:
    """A body that is not the documented shape."""
    return MalformedResponse(what, provider=provider, model=model, body_excerpt=excerpt(body))
