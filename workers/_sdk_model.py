"""What both official-SDK models share: settings, the lazily built client, closing, and turning
SDK exceptions into the error tree. Each provider module adds only its wire format."""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any, ClassVar, Self

from tools.errors import AgentError, ConfigurationError, MalformedAPIKey, MalformedResponse

from ._model import ModelRequest, ModelResponse
from ._prices import Price, PriceTable
from ._provider import header_problem, malformed, redact, translate_sdk_error
from ._stream_errors import event_error, interrupted, timed_out

__all__ = ["SDKModel"]


class SDKModel:
    """Base of the provider models. Subclasses set the class constants and implement `_send`."""

    provider: ClassVar[str]
    _sdk_name: ClassVar[str]  # the module to import on first use
    _client_class: ClassVar[str]  # its async client class
    _error_class: ClassVar[str]  # its root exception class
    _request_id_header: ClassVar[str]
    _key_env_var: ClassVar[str]

    def __init__(
        self,
        name: str,
        *,
        stream: bool = False,
        client: Any = None,
        api_key: str | None = None,
        base_url: str | None = None,
        price: Price | None = None,
        prices: PriceTable | None = None,
        timeout_s: float = 600.0,
    ) -> None:
        self.name = name
        self.stream = stream
        self.price = (
            price if price is not None else (prices or PriceTable()).lookup(f"{self.provider}:{name}")
        )
        self._client = client
        self._owns_client = client is None
        self._api_key = api_key
        self._base_url = base_url
        self._timeout_s = timeout_s
        self._sdk: ModuleType | None = None
        # The loop the client it made was made in: one model serves the runs of one supervisor,
        # which may run under one event loop after another (asyncio.run twice).
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, stream={self.stream})"

    def _sdk_module(self) -> ModuleType:
        if self._sdk is None:  # imported on the first request: `import workers` stays fast
            self._sdk = importlib.import_module(self._sdk_name)
        return self._sdk

    def _get_client(self, sdk: ModuleType) -> Any:
        if self._owns_client and self._client is not None:
            loop = asyncio.get_running_loop()
            if loop is not self._client_loop:  # its connections belong to a loop that is gone
                self._client = None
        if self._client is None:
            # The SDK's own retries are off: the framework's retry policy is the only one.
            client_class = getattr(sdk, self._client_class)
            self._client = client_class(
                api_key=self._api_key, base_url=self._base_url, max_retries=0, timeout=self._timeout_s
            )
            self._client_loop = asyncio.get_running_loop()
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP connections of the client this model created (not one passed in)."""
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            if self._client_loop is asyncio.get_running_loop():  # else it went with its loop
                await client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Send one request (streamed or not) and return the complete response."""
        sdk = self._sdk_module()
        started = time.perf_counter()
        try:
            return await self._send(self._get_client(sdk), request, started)
        except (getattr(sdk, self._error_class), ValueError, TypeError) as exc:
            # SDK errors, undecodable bodies, and the SDK's TypeError for missing credentials.
            error = self._translate(exc, sdk)
            if not isinstance(error, MalformedAPIKey) and not self._quotes_key(exc):
                raise error from exc
        # Raised here, outside the handler: neither its cause nor its context may hold the
        # h11 error, which quotes the header value, key included, nor an error body that
        # quotes the key (a proxy's 401).
        raise error

    def _secret(self) -> str | None:
        key = getattr(self._client, "api_key", None) or self._api_key
        return key if isinstance(key, str) else None

    def _quotes_key(self, exc: BaseException) -> bool:
        """Whether the SDK's error quotes the API key, in its text or its body."""
        secret = self._secret()
        if not secret or len(secret.strip()) < 8:
            return False
        secret = secret.strip()
        return secret in str(exc) or secret in repr(getattr(exc, "body", None))

    def _translate(self, exc: BaseException, sdk: ModuleType) -> AgentError:
        secret = self._secret()
        problem = header_problem(exc, secret)
        if problem is not None:  # the request could not be built: no use sending it again
            return MalformedAPIKey(self.provider, self._key_env_var, problem)
        error = translate_sdk_error(
            exc,
            sdk,
            provider=self.provider,
            model=self.name,
            request_id_header=self._request_id_header,
            key_env_var=self._key_env_var,
            secret=secret,
        )
        if error is not None:
            return error
        detail = redact(f"unreadable response ({type(exc).__name__}: {exc})", secret)
        return malformed(self.provider, self.name, detail, "")

    async def _send(self, client: Any, request: ModelRequest, started: float) -> ModelResponse:
        """Send through the SDK client and convert the answer (the provider's part)."""
        raise NotImplementedError

    def _stream_failed(self, exc: Exception, headers: Any, what: str, received: str) -> AgentError:
        """The error of a stream that failed part-way, after `what` arrived: an error event is
        what its type says; a read that waited past the timeout says it timed out; anything
        else broke the stream. Each carries the request id of the 200 that began it."""
        sdk = self._sdk_module()
        request_id = headers.get(self._request_id_header)
        body = getattr(exc, "body", None)
        if isinstance(exc, sdk.APIError) and isinstance(body, dict | str):  # the provider's event
            return event_error(
                body, provider=self.provider, model=self.name, request_id=request_id, secret=self._secret()
            )
        if timed_out(exc):
            detail = f"stream timed out: nothing arrived for {self._timeout_s:g}s after {what}"
        else:
            detail = redact(f"stream broke after {what}: {type(exc).__name__}: {exc}", self._secret())
        return interrupted(self.provider, self.name, detail, received, request_id)

    async def _create(self, create: Callable[..., Awaitable[Any]], params: dict[str, Any]) -> Any:
        """`await create(**params)`, the SDK call that sends the request.

        Nothing of the answer is read in here (the raw response stops at the headers), so a
        TypeError is the call's own: a keyword this SDK version does not take, a value it cannot
        encode. That is a mismatch between this code and the installed SDK, not an unreadable
        response, and sending again cannot help. The SDK's TypeError for missing credentials is
        left to `request`, which names the key's variable."""
        try:
            return await create(**params)
        except TypeError as exc:
            sdk = self._sdk_module()
            if not isinstance(self._translate(exc, sdk), MalformedResponse):
                raise  # missing credentials: translated by `request`
            version = getattr(sdk, "__version__", "?")
            detail = redact(f"{type(exc).__name__}: {exc}", self._secret())
            raise ConfigurationError(
                f"{self.provider}:{self.name}: the installed {self._sdk_name} SDK ({version}) refused"
                f" the request before sending it ({detail}); nothing was sent"
            ) from exc
