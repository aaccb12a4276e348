"""OpenAI Chat Completions through the official `openai.AsyncOpenAI` client.

Chat Completions is the API every OpenAI-compatible server speaks, so `OPENAI_BASE_URL` can
point this at any of them. The SDK is imported on the first request; its retries are off.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Literal

from tools.errors import AgentError

from ._messages import AssistantPart, Message, TextPart, ToolCallPart, ToolResultPart
from ._model import ForcedTool, ModelRequest, ModelResponse, StopReason, ToolChoice
from ._prices import Price, PriceTable
from ._provider import (
    json_body,
    make_usage,
    malformed,
    parse_arguments,
    rate_limit_info,
    token_counts,
)
from ._sdk_model import SDKModel
from ._stream_errors import interrupted

__all__ = ["OpenAIModel", "to_wire"]

_USAGE_KEYS = ("prompt_tokens", "completion_tokens")
_STOP: Mapping[str, StopReason] = {
    "stop": "end",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}
_RATE_HEADERS = {
    "requests_limit": "x-ratelimit-limit-requests",
    "requests_remaining": "x-ratelimit-remaining-requests",
    "requests_reset": "x-ratelimit-reset-requests",
    "tokens_limit": "x-ratelimit-limit-tokens",
    "tokens_remaining": "x-ratelimit-remaining-tokens",
    "tokens_reset": "x-ratelimit-reset-tokens",
}


def _messages_to_wire(system: str, messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    wire: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in messages:
        if message.kind == "assistant":
            text = message.text
            calls = [
                {
                    "id": p.id,
                    "type": "function",
                    "function": {
                        "name": p.name,
                        "arguments": p.raw_arguments if p.arguments is not None else "{}",
                    },
                }
                for p in message.parts
                if isinstance(p, ToolCallPart)
            ]
            entry: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                entry["tool_calls"] = calls
            wire.append(entry)
            continue
        # Tool results must directly follow the assistant turn that called them.
        for part in message.parts:
            if isinstance(part, ToolResultPart):
                content = f"Error: {part.content}" if part.is_error else part.content
                wire.append({"role": "tool", "tool_call_id": part.call_id, "content": content})
        # Separate texts of one turn (the task, a repair request) stay separate paragraphs.
        text = "\n\n".join(p.text for p in message.parts if isinstance(p, TextPart))
        if text or not message.tool_results:
            wire.append({"role": "user", "content": text})
    return wire


def _tool_choice(choice: ToolChoice) -> Any:
    if isinstance(choice, ForcedTool):
        return {"type": "function", "function": {"name": choice.name}}
    return choice


def to_wire(
    request: ModelRequest, model: str, max_tokens_param: str = "max_completion_tokens"
) -> dict[str, Any]:
    """The keyword arguments of `chat.completions.create` for this request."""
    params: dict[str, Any] = {
        "model": model,
        "messages": _messages_to_wire(request.system, request.messages),
        max_tokens_param: request.max_tokens,
    }
    if request.tools:
        params["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": dict(t.parameters)},
            }
            for t in request.tools
        ]
        params["tool_choice"] = _tool_choice(request.tool_choice)
    if request.output is not None:
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": request.output.name,
                "schema": dict(request.output.schema),
                "strict": False,
            },
        }
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.stop_sequences:
        params["stop"] = list(request.stop_sequences)
    return params


class OpenAIModel(SDKModel):
    """A model over OpenAI Chat Completions, or any server that speaks it.

    Args:
        name: The model name, for example "gpt-4o-mini".
        stream: Use server-sent events; the result is the same `ModelResponse`.
        client: An `openai.AsyncOpenAI` to use instead of one built from the environment
            (OPENAI_API_KEY, OPENAI_BASE_URL).
        api_key: A key to use instead of OPENAI_API_KEY.
        base_url: A base URL to use instead of OPENAI_BASE_URL.
        price: This model's price; by default looked up in `prices` (or the built-in table).
        prices: The price table to look the model up in.
        timeout_s: Per-attempt timeout of one HTTP request.
        max_tokens_param: "max_completion_tokens" (current OpenAI models) or "max_tokens" for
            older OpenAI-compatible servers.
    """

    provider = "openai"
    native_output = True  # response_format json_schema: workers ask for output natively
    _sdk_name = "openai"
    _client_class = "AsyncOpenAI"
    _error_class = "OpenAIError"
    _request_id_header = "x-request-id"
    _key_env_var = "OPENAI_API_KEY"

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
        max_tokens_param: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens",
    ) -> None:
        super().__init__(
            name,
            stream=stream,
            client=client,
            api_key=api_key,
            base_url=base_url,
            price=price,
            prices=prices,
            timeout_s=timeout_s,
        )
        self._max_tokens_param = max_tokens_param

    async def _send(self, client: Any, request: ModelRequest, started: float) -> ModelResponse:
        params = to_wire(request, self.name, self._max_tokens_param)
        if self.stream:
            params["stream"] = True
            params["stream_options"] = {"include_usage": True}
        raw = await self._create(client.chat.completions.with_raw_response.create, params)
        if self.stream:
            return await self._read_stream(raw, started)
        body = json_body(raw.http_response.text, self.provider, self.name)  # the legacy raw response is read
        return self._from_body(body, raw.headers, time.perf_counter() - started, None)

    def _from_body(
        self, body: object, headers: Mapping[str, str], latency: float, first_token: float | None
    ) -> ModelResponse:
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(choices, list) or not choices:
            raise malformed(self.provider, self.name, "response has no choices", body)
        choice = choices[0]
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise malformed(self.provider, self.name, "choice has no message", body)
        raw_stop = choice.get("finish_reason")
        stop = _STOP.get(raw_stop) if isinstance(raw_stop, str) else None
        if stop is None:
            raise malformed(self.provider, self.name, f"unknown finish_reason {raw_stop!r}", body)
        parts = _parts(message, stop == "max_tokens", self.provider, self.name)
        refusal = message.get("refusal")
        if refusal:
            stop = "refusal"
        elif stop == "end" and any(isinstance(p, ToolCallPart) for p in parts):
            stop = "tool_use"  # some compatible servers say "stop" after tool calls
        usage = body.get("usage")
        prompt, completion = token_counts(usage, _USAGE_KEYS, self.provider, self.name, body)
        details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
        (cached,) = token_counts(details, ("cached_tokens",), self.provider, self.name, body)
        # No prompt count (a compatible server that ignores stream_options.include_usage, a
        # body without usage): what the call cost is unknown, so it is unpriced, never free.
        counted = isinstance(usage, dict) and usage.get("prompt_tokens") is not None
        return ModelResponse(
            parts=parts,
            stop_reason=stop,
            usage=make_usage(self.price if counted else None, prompt, completion, cached),
            provider=self.provider,
            model=str(body.get("model") or self.name),
            request_id=headers.get("x-request-id") or body.get("id"),
            latency_s=latency,
            first_token_s=first_token,
            refusal=refusal or ("content filtered" if stop == "refusal" else None),
            raw_stop_reason=raw_stop,
            rate_limit=rate_limit_info(headers, _RATE_HEADERS),
        )

    async def _read_stream(self, raw: Any, started: float) -> ModelResponse:
        stream = raw.parse()
        message: dict[str, Any] = {"content": "", "refusal": None, "tool_calls": {}}
        finish: str | None = None
        body: dict[str, Any] = {}
        first_token: float | None = None
        chunks = 0
        failed: AgentError | None = None
        try:
            async for chunk in stream:
                chunks += 1
                body["id"], body["model"] = chunk.id, chunk.model
                if chunk.usage is not None:
                    body["usage"] = chunk.usage.model_dump()
                for choice in chunk.choices:
                    if choice.index != 0:
                        continue
                    if first_token is None:
                        first_token = time.perf_counter() - started
                    _merge_delta(message, choice.delta)
                    finish = choice.finish_reason or finish
        except Exception as exc:
            failed = self._stream_failed(exc, raw.headers, f"{chunks} chunks", "")
            if not self._quotes_key(exc):
                raise failed from exc
        if failed is not None:  # raised outside the handler: the SDK's error quotes the key
            raise failed
        if finish is None:
            what = f"stream ended after {chunks} chunks without a finish_reason"
            raise interrupted(self.provider, self.name, what, "", raw.headers.get(self._request_id_header))
        calls = [message["tool_calls"][i] for i in sorted(message["tool_calls"])]
        body["choices"] = [{"finish_reason": finish, "message": {**message, "tool_calls": calls or None}}]
        return self._from_body(body, raw.headers, time.perf_counter() - started, first_token)


def _merge_delta(message: dict[str, Any], delta: Any) -> None:
    if delta.content:
        message["content"] += delta.content
    if getattr(delta, "refusal", None):
        message["refusal"] = (message["refusal"] or "") + delta.refusal
    for call in delta.tool_calls or ():
        slot = message["tool_calls"].setdefault(
            call.index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if call.id:
            slot["id"] = call.id
        if call.function is not None:
            slot["function"]["name"] += call.function.name or ""
            slot["function"]["arguments"] += call.function.arguments or ""


def _parts(message: Mapping[str, Any], cut: bool, provider: str, model: str) -> tuple[AssistantPart, ...]:
    parts: list[AssistantPart] = []
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise malformed(provider, model, "message content is not text", message)
    if content:
        parts.append(TextPart(content))
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise malformed(provider, model, "tool_calls is not a list", message)
    for i, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise malformed(provider, model, "tool call has no function", call)
        raw = function.get("arguments")
        raw = raw if isinstance(raw, str) else json.dumps(raw)
        arguments, truncated = parse_arguments(raw, cut and i == len(calls) - 1)
        parts.append(ToolCallPart(str(call.get("id")), str(function.get("name")), raw, arguments, truncated))
    return tuple(parts)
