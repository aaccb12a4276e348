"""Anthropic Messages API through the official `anthropic.AsyncAnthropic` client.

The SDK is imported on the first request, never at import time. Its own retries are off: the
framework's retry policy is the only one. Wire types stay in this module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from tools.errors import AgentError, ConfigurationError, excerpt

from ._messages import AssistantPart, Message, TextPart, ToolCallPart
from ._model import ForcedTool, ModelRequest, ModelResponse, OutputSpec, StopReason, ToolChoice
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

__all__ = ["AnthropicModel", "to_wire"]

_USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
_STOP: Mapping[str, StopReason] = {
    "end_turn": "end",
    "stop_sequence": "end",
    "pause_turn": "end",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "model_context_window_exceeded": "max_tokens",
    "refusal": "refusal",
}
_RATE_HEADERS = {
    "requests_limit": "anthropic-ratelimit-requests-limit",
    "requests_remaining": "anthropic-ratelimit-requests-remaining",
    "requests_reset": "anthropic-ratelimit-requests-reset",
    "tokens_limit": "anthropic-ratelimit-tokens-limit",
    "tokens_remaining": "anthropic-ratelimit-tokens-remaining",
    "tokens_reset": "anthropic-ratelimit-tokens-reset",
}


def _message_to_wire(message: Message) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if message.kind == "user":
        # The API wants tool results before any text in a user turn.
        for result in message.tool_results:
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": result.call_id,
                "content": result.content,
            }
            if result.is_error:
                block["is_error"] = True
            content.append(block)
        content.extend(
            {"type": "text", "text": p.text}
            for p in message.parts
            if isinstance(p, TextPart) and p.text.strip()
        )
        return {"role": "user", "content": content}
    for part in message.parts:
        if isinstance(part, ToolCallPart):
            args = dict(part.arguments) if part.arguments is not None else {}
            content.append({"type": "tool_use", "id": part.id, "name": part.name, "input": args})
        elif part.text.strip():  # the API rejects empty and whitespace-only text blocks
            content.append({"type": "text", "text": part.text})
    return {"role": "assistant", "content": content}


def _tool_choice(choice: ToolChoice) -> dict[str, Any]:
    if isinstance(choice, ForcedTool):
        return {"type": "tool", "name": choice.name}
    return {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}


def to_wire(request: ModelRequest, model: str) -> dict[str, Any]:
    """The keyword arguments of `messages.create` for this request."""
    params: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_tokens,
        "messages": [_message_to_wire(m) for m in request.messages],
    }
    if request.system:
        params["system"] = request.system
    if request.tools:
        params["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
            for t in request.tools
        ]
        params["tool_choice"] = _tool_choice(request.tool_choice)
    if request.output is not None:
        params["output_config"] = {"format": {"type": "json_schema", "schema": dict(request.output.schema)}}
    if request.temperature is not None:
        # The SDK (2.x) has no `temperature` keyword: the API still takes it, in the body, on
        # the models that sample by it (the worker refuses it for the others before any call).
        params["extra_body"] = {"temperature": request.temperature}
    if request.stop_sequences:
        params["stop_sequences"] = list(request.stop_sequences)
    return params


class AnthropicModel(SDKModel):
    """A Claude model over the Messages API.

    Args:
        name: The model name, for example "claude-haiku-4-5".
        stream: Use server-sent events; the result is the same `ModelResponse`.
        client: An `anthropic.AsyncAnthropic` to use instead of one built from the environment
            (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL).
        api_key: A key to use instead of ANTHROPIC_API_KEY.
        base_url: A base URL to use instead of ANTHROPIC_BASE_URL.
        price: This model's price; by default looked up in `prices` (or the built-in table).
        prices: The price table to look the model up in.
        timeout_s: Per-attempt timeout of one HTTP request.
        native_output: Ask for worker outputs with `output_config` structured output (models
            that support it) instead of a final-answer tool; an output schema the API cannot
            take (see `accepts_output`) still goes through the tool.
    """

    provider = "anthropic"
    _sdk_name = "anthropic"
    _client_class = "AsyncAnthropic"
    _error_class = "AnthropicError"
    _request_id_header = "request-id"
    _key_env_var = "ANTHROPIC_API_KEY"

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
        native_output: bool = False,
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
        self.native_output = native_output
        # The output schemas as the API takes them (or None and why not), per output spec (kept
        # alive with its entry).
        self._schemas: dict[int, tuple[OutputSpec, dict[str, Any] | None, str]] = {}

    async def _send(self, client: Any, request: ModelRequest, started: float) -> ModelResponse:
        params = to_wire(request, self.name)
        if request.output is not None:
            schema, problem = self._schema(request.output)
            if schema is None:  # the API would refuse it on every call: not sent at all
                raise ConfigurationError(
                    f"anthropic:{self.name}: output schema {request.output.name!r} cannot be sent as"
                    f" structured output ({problem}); a worker asks through its final-answer tool"
                    " instead, a direct request must too"
                )
            params["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        params["stream"] = self.stream
        raw = await self._create(client.messages.with_raw_response.create, params)
        if self.stream:
            return await self._read_stream(raw, started)
        body = json_body(await raw.text(), self.provider, self.name)
        return self._from_body(body, raw.headers, time.perf_counter() - started, None)

    def accepts_output(self, output: OutputSpec) -> bool:
        """Whether `output` can be asked for as structured output. False when the SDK's
        transform cannot shape its schema (an `Any` field has no type the API takes): a worker
        then asks through its final-answer tool, whose schema may be any JSON Schema."""
        return self._schema(output)[0] is not None

    def _schema(self, output: OutputSpec) -> tuple[dict[str, Any] | None, str]:
        """The output schema as structured outputs accept it, or None and why not.

        The SDK's own transform moves what the API refuses (`minimum`, `maxLength`, a schema in
        `additionalProperties`, ...) into descriptions; the answer is still validated against
        the full model, and repaired. A schema it cannot shape is never sent untransformed:
        those keywords would make every call a 400."""
        found = self._schemas.get(id(output))
        if found is None:
            transform = getattr(self._sdk_module(), "transform_schema", None)
            shaped: dict[str, Any] | None = None
            problem = ""
            if transform is None:
                problem = "the installed anthropic SDK has no transform_schema"
            elif _free_keys(output.schema):
                # The transform closes such an object ({"properties": {}}): the model could only
                # ever answer {} for it, and the field's data would be lost without an error.
                problem = "a field maps free keys to values (a dict), which structured outputs cannot express"
            else:
                try:
                    shaped = transform(dict(output.schema))
                except (ValueError, TypeError, KeyError) as exc:  # `Any`: a schema with no type
                    problem = f"{type(exc).__name__}: {exc}"
            if len(self._schemas) >= 64:  # planners are made per re-plan: keep the cache bounded
                self._schemas.clear()
            found = self._schemas[id(output)] = (output, shaped, problem)
        return found[1], found[2]

    async def count_tokens(self, request: ModelRequest) -> int:
        """The prompt tokens of `request` as Claude counts them (the count-tokens endpoint)."""
        sdk = self._sdk_module()
        wire = to_wire(request, self.name)
        params = {k: wire[k] for k in ("model", "messages", "system", "tools", "tool_choice") if k in wire}
        try:
            counted = await self._get_client(sdk).messages.count_tokens(**params)
        except (getattr(sdk, self._error_class), ValueError, TypeError) as exc:
            raise self._translate(exc, sdk) from exc
        tokens = getattr(counted, "input_tokens", None)
        if not isinstance(tokens, int):
            raise malformed(self.provider, self.name, "count-tokens answer has no input_tokens", counted)
        return tokens

    def _from_body(
        self, body: object, headers: Mapping[str, str], latency: float, first_token: float | None
    ) -> ModelResponse:
        if not isinstance(body, dict) or not isinstance(body.get("content"), list):
            raise malformed(self.provider, self.name, "response has no content list", body)
        raw_stop = body.get("stop_reason")
        stop = _STOP.get(raw_stop) if isinstance(raw_stop, str) else None
        if stop is None:
            raise malformed(self.provider, self.name, f"unknown stop_reason {raw_stop!r}", body)
        parts = _parts(body["content"], stop == "max_tokens", self.provider, self.name)
        usage = body.get("usage")
        fresh, output, cache_read, cache_write = token_counts(
            usage, _USAGE_KEYS, self.provider, self.name, body
        )
        input_tokens = fresh + cache_read + cache_write
        # No input count (a body or stream without usage): what the call cost is unknown, so it
        # is unpriced, never free.
        price = self.price if isinstance(usage, dict) and usage.get("input_tokens") is not None else None
        if parts and any(isinstance(p, ToolCallPart) for p in parts) and stop == "end":
            stop = "tool_use"
        return ModelResponse(
            parts=parts,
            stop_reason=stop,
            usage=make_usage(price, input_tokens, output, cache_read, cache_write),
            provider=self.provider,
            model=str(body.get("model") or self.name),
            request_id=headers.get("request-id") or body.get("id"),
            latency_s=latency,
            first_token_s=first_token,
            refusal=_refusal_text(parts, body.get("stop_details")) if stop == "refusal" else None,
            raw_stop_reason=raw_stop,
            rate_limit=rate_limit_info(headers, _RATE_HEADERS),
        )

    async def _read_stream(self, raw: Any, started: float) -> ModelResponse:
        stream = await raw.parse()
        message: dict[str, Any] = {}
        blocks: dict[int, dict[str, Any]] = {}
        first_token: float | None = None
        received: list[str] = []
        failed: AgentError | None = None
        try:
            async for event in stream:
                kind = event.type
                received.append(kind)
                if kind == "message_start":
                    message = event.message.model_dump()
                elif kind == "content_block_start":
                    # `_json`: the input_json_delta text, None until one arrives (see below).
                    blocks[event.index] = {**event.content_block.model_dump(), "_json": None}
                elif kind == "content_block_delta":
                    if first_token is None:
                        first_token = time.perf_counter() - started
                    _apply_delta(
                        blocks.setdefault(event.index, {"type": "text", "text": "", "_json": None}),
                        event.delta,
                    )
                elif kind == "message_delta":
                    _end_message(message, event)
        except Exception as exc:
            if isinstance(exc, AgentError):
                raise
            failed = self._stream_failed(exc, raw.headers, f"{len(received)} events", " ".join(received))
            if not self._quotes_key(exc):
                raise failed from exc
        if failed is not None:  # raised outside the handler: the SDK's error quotes the key
            raise failed
        if not message or "stop_reason" not in message or message.get("stop_reason") is None:
            raise interrupted(
                self.provider,
                self.name,
                "stream ended before message_delta",
                " ".join(received),
                raw.headers.get(self._request_id_header),
            )
        message["content"] = _content(blocks)
        return self._from_body(message, raw.headers, time.perf_counter() - started, first_token)


def _content(blocks: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """A stream's content blocks in order, as the message body holds them."""
    content = []
    for index in sorted(blocks):
        block = blocks[index]
        # A tool_use whose input came whole in content_block_start, with no delta after it
        # (as the SDK's own accumulator reads it), keeps that input.
        if block["type"] == "tool_use" and block["_json"] is not None:
            block["_raw"] = block["_json"]
        content.append(block)
    return content


def _end_message(message: dict[str, Any], event: Any) -> None:
    """A stream's message_delta into the message: why it stopped (and, for a refusal, the
    API's explanation), and the final usage."""
    message["stop_reason"] = event.delta.stop_reason
    details = getattr(event.delta, "stop_details", None)
    if details is not None:
        message["stop_details"] = details if isinstance(details, dict) else details.model_dump()
    usage = message.get("usage") or {}  # null when message_start carried none
    usage.update({k: v for k, v in event.usage.model_dump().items() if v is not None})
    message["usage"] = usage


def _apply_delta(block: dict[str, Any], delta: Any) -> None:
    kind = delta.type
    if kind == "text_delta":
        block["text"] = block.get("text", "") + delta.text
    elif kind == "input_json_delta":
        block["_json"] = (block["_json"] or "") + delta.partial_json
    # thinking and signature deltas are not part of the provider-neutral answer


def _parts(content: list[Any], cut: bool, provider: str, model: str) -> tuple[AssistantPart, ...]:
    parts: list[AssistantPart] = []
    last_tool = max(
        (i for i, b in enumerate(content) if isinstance(b, dict) and b.get("type") == "tool_use"), default=-1
    )
    for i, block in enumerate(content):
        if not isinstance(block, dict):
            raise malformed(provider, model, "content block is not an object", block)
        kind = block.get("type")
        if kind == "text":
            text = block.get("text", "")
            if not isinstance(text, str):
                raise malformed(provider, model, "text block without text", block)
            parts.append(TextPart(text))
        elif kind == "tool_use":
            # Only the last tool call can have been cut by max_tokens.
            truncated = cut and i == last_tool
            raw = block.get("_raw")
            if raw is None:
                raw_args = block.get("input")
                raw = _dump(raw_args)
            arguments, truncated = parse_arguments(raw, truncated)
            parts.append(
                ToolCallPart(str(block.get("id")), str(block.get("name")), raw, arguments, truncated)
            )
    return tuple(parts)


def _dump(value: object) -> str:
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError):
        return excerpt(value)


def _refusal_text(parts: tuple[AssistantPart, ...], details: object) -> str:
    """The API's explanation of a refusal when it gave one (`stop_details`), else what the model
    wrote before it was stopped."""
    if isinstance(details, dict):
        explanation = details.get("explanation")
        if isinstance(explanation, str) and explanation.strip():
            category = details.get("category")
            return f"{explanation} (category: {category})" if isinstance(category, str) else explanation
    return "".join(p.text for p in parts if isinstance(p, TextPart)) or "the model refused to answer"


def _free_keys(schema: object) -> bool:
    """Whether a JSON Schema has an object whose keys are not listed: `additionalProperties`
    given a schema, or true (a `dict[str, X]` field)."""
    if isinstance(schema, dict):
        extra = schema.get("additionalProperties")
        if extra is True or isinstance(extra, dict):
            return True
        return any(_free_keys(value) for value in schema.values())
    if isinstance(schema, list):
        return any(_free_keys(value) for value in schema)
    return False
