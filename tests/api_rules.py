"""What the real Messages and Chat Completions APIs refuse, checked on the wire.

`conversation_rules` checks our own message types; this checks the JSON body the official SDK
actually sent, as the providers do: unknown top-level fields, missing or wrong-typed required
fields, tool names outside the allowed pattern, empty text blocks, tool calls left unanswered or
answered out of place. `refusal(path, body)` gives the provider's own 400 message, or None when
the request would be accepted.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["refusal"]

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ANTHROPIC_FIELDS = {
    "model", "messages", "max_tokens", "system", "tools", "tool_choice", "temperature", "top_p",
    "top_k", "stop_sequences", "stream", "metadata", "thinking", "output_config", "service_tier",
}  # fmt: skip
_OPENAI_FIELDS = {
    "model", "messages", "max_tokens", "max_completion_tokens", "tools", "tool_choice",
    "response_format", "temperature", "top_p", "stop", "stream", "stream_options", "n", "seed",
    "user", "parallel_tool_calls", "metadata", "store", "reasoning_effort", "service_tier",
}  # fmt: skip


def refusal(path: str, body: Any) -> str | None:
    """The provider's reason to refuse this request with a 400, or None."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if path.startswith("/v1/messages/count_tokens"):
        return _anthropic({**body, "max_tokens": 1})
    if path.startswith("/v1/messages"):
        return _anthropic(body)
    if path.endswith("/chat/completions"):
        return _openai(body)
    return f"unknown path {path}"


def _anthropic(body: dict[str, Any]) -> str | None:
    extra = set(body) - _ANTHROPIC_FIELDS
    if extra:
        return f"{sorted(extra)[0]}: Extra inputs are not permitted"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    sampling = _anthropic_sampling(body)
    if sampling is not None:
        return sampling
    names = _tool_names(body.get("tools"), lambda t: t.get("name"), lambda t: t.get("input_schema"))
    if isinstance(names, str):
        return names
    choice = body.get("tool_choice")
    if choice is not None:
        if not body.get("tools") and choice.get("type") != "none":
            return "tool_choice may only be specified while providing tools"
        if choice.get("type") == "tool" and choice.get("name") not in names:
            return f"tool_choice names {choice.get('name')!r}, which is not among the tools"
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        return "system: must be a string or a list of text blocks"
    refused = _output_config(body.get("output_config"))
    if refused is not None:
        return refused
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if messages[0].get("role") != "user":
        return "messages.0: the first message must use the user role"
    return _anthropic_messages(messages)


# Keywords Claude's structured outputs refuse (the SDK's transform_schema moves them into
# descriptions); every schema needs a type (or anyOf, allOf, enum, const, $ref).
_UNSUPPORTED_KEYWORDS = (
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
    "maxLength", "pattern", "maxItems",
)  # fmt: skip
_TYPED_BY = ("type", "anyOf", "allOf", "oneOf", "enum", "const", "$ref")


def _anthropic_sampling(body: dict[str, Any]) -> str | None:
    tokens = body.get("max_tokens")
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
        return f"max_tokens: must be a positive integer, got {tokens!r}"
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        return "temperature: must be between 0 and 1"
    return None


def _output_config(config: Any) -> str | None:
    output = (config or {}).get("format") or {}
    if "schema" not in output:
        return None
    refused = _structured_output_problem(output["schema"], "schema")
    return f"output_config.format.{refused}" if refused is not None else None


def _structured_output_problem(schema: Any, path: str) -> str | None:
    """Why structured outputs refuse this (sub)schema, or None."""
    if not isinstance(schema, dict):
        return f"{path}: must be an object"
    for keyword in _UNSUPPORTED_KEYWORDS:
        if keyword in schema:
            return f"{path}: For '{keyword}' property, keyword is not supported"
    if not any(k in schema for k in _TYPED_BY) and path != "schema.$defs":
        return f"{path}: a schema must have a type"
    if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
        return f"{path}: For 'object' type, 'additionalProperties' must be explicitly set to false"
    subs: list[tuple[str, Any]] = [(f"{path}.items", schema["items"])] if "items" in schema else []
    for key in ("properties", "$defs"):
        subs += [(f"{path}.{key}.{name}", sub) for name, sub in (schema.get(key) or {}).items()]
    for key in ("anyOf", "allOf", "oneOf"):
        subs += [(f"{path}.{key}.{i}", sub) for i, sub in enumerate(schema.get(key) or [])]
    for where, sub in subs:
        problem = _structured_output_problem(sub, where)
        if problem is not None:
            return problem
    return None


def _anthropic_messages(messages: list[Any]) -> str | None:
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: unexpected role {role!r}"
        blocks = content if isinstance(content, list) else None
        if isinstance(content, str):
            if not content.strip() and i != len(messages) - 1:
                return f"messages.{i}: text content blocks must be non-empty"
            continue
        if not blocks:
            return f"messages.{i}: all messages must have non-empty content"
        for j, block in enumerate(blocks):
            kind = block.get("type")
            if kind == "text" and not str(block.get("text", "")).strip():
                return f"messages.{i}.content.{j}: text content blocks must contain non-whitespace text"
            if kind == "tool_use" and (role != "assistant" or not isinstance(block.get("input"), dict)):
                return f"messages.{i}.content.{j}: tool_use needs the assistant role and an object input"
            if kind == "tool_result" and role != "user":
                return f"messages.{i}.content.{j}: tool_result needs the user role"
        paired = _anthropic_pairing(messages, i, blocks)
        if paired is not None:
            return paired
    return None


def _anthropic_pairing(messages: list[Any], i: int, blocks: list[Any]) -> str | None:
    """Tool results answer exactly the tool uses of the message before; every use is answered."""
    uses = [b["id"] for b in blocks if b.get("type") == "tool_use"]
    results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
    if results:
        previous = messages[i - 1].get("content") if i else None
        before = (
            [b["id"] for b in previous if b.get("type") == "tool_use"] if isinstance(previous, list) else []
        )
        if sorted(results) != sorted(before):
            return f"messages.{i}: tool_result blocks must answer the tool_use blocks before them"
    if uses:
        following = messages[i + 1].get("content") if i + 1 < len(messages) else None
        answered = (
            [b.get("tool_use_id") for b in following if b.get("type") == "tool_result"]
            if isinstance(following, list)
            else []
        )
        if sorted(answered) != sorted(uses):
            return f"messages.{i}: tool_use ids were found without tool_result blocks immediately after"
    return None


def _openai(body: dict[str, Any]) -> str | None:
    extra = set(body) - _OPENAI_FIELDS
    if extra:
        return f"Unrecognized request argument supplied: {sorted(extra)[0]}"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    if "max_tokens" in body and "max_completion_tokens" in body:
        return "max_tokens and max_completion_tokens cannot both be set"
    if "stream_options" in body and not body.get("stream"):
        return "stream_options: only allowed when stream is true"
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 2:
        return "temperature: must be between 0 and 2"
    names = _tool_names(
        body.get("tools"),
        lambda t: (t.get("function") or {}).get("name"),
        lambda t: (t.get("function") or {}).get("parameters"),
    )
    if isinstance(names, str):
        return names
    if body.get("tool_choice") is not None and not body.get("tools"):
        return "tool_choice is only allowed when tools are specified"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: array too short, expected at least 1 element"
    return _openai_messages(messages)


def _openai_messages(messages: list[Any]) -> str | None:
    pending: list[str] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool"):
            return f"messages[{i}].role: invalid value {role!r}"
        if role == "tool":
            if message.get("tool_call_id") not in pending:
                return (
                    f"messages[{i}]: messages with role 'tool' must be a response to a preceeding "
                    "message with 'tool_calls'"
                )
            pending.remove(message["tool_call_id"])
            continue
        if pending:
            return (
                f"messages[{i}]: an assistant message with 'tool_calls' must be followed by tool "
                f"messages responding to each 'tool_call_id' (missing {pending})"
            )
        calls = message.get("tool_calls") if role == "assistant" else None
        if calls:
            pending = [c.get("id") for c in calls]
            continue
        content = message.get("content")
        if content is None or (isinstance(content, str) and not content.strip() and role != "assistant"):
            return f"messages[{i}].content: expected a non-empty string"
    if pending:
        return f"an assistant message with 'tool_calls' must be followed by tool messages (missing {pending})"
    return None


def _tool_names(tools: Any, name: Any, schema: Any) -> list[str] | str:
    """The tools' names, or the reason the tool list is refused."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        return "tools: must be a list"
    names: list[str] = []
    for i, entry in enumerate(tools):
        called = name(entry)
        if not isinstance(called, str) or not _TOOL_NAME.match(called):
            return f"tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$' (got {called!r})"
        parameters = schema(entry)
        if not isinstance(parameters, dict) or parameters.get("type") != "object":
            return f"tools.{i}: the input schema must be a JSON Schema of type object"
        names.append(called)
    if len(set(names)) != len(names):
        return "tools: tool names must be unique"
    return names
