"""The conversation rules the real Anthropic and OpenAI APIs enforce, as one assertion.

Every loop test runs its model through the `checked` fixture, which applies this to every
request the worker sent.
"""

from __future__ import annotations

import re

from workers import ModelRequest

_WELL_FORMED = re.compile(r"[A-Za-z0-9_-]{1,64}")  # tool_use ids and names on both APIs


def assert_valid_request(request: ModelRequest) -> None:
    """Raise AssertionError naming the rule a request breaks."""
    messages = request.messages
    assert messages, "a request needs at least one message"
    assert messages[0].kind == "user", "the conversation must start with the user"
    assert messages[-1].kind == "user", "the last message must be the user's"
    seen_ids: set[str] = set()
    for i, message in enumerate(messages):
        assert message.parts, f"message {i} is empty"
        blank = all(p.kind == "text" and not p.text.strip() for p in message.parts)
        assert not blank, f"message {i} has only blank text (the APIs reject it)"
        if i:
            assert message.kind != messages[i - 1].kind, f"messages {i - 1} and {i} have the same role"
        if message.kind == "assistant":
            calls = [c.id for c in message.tool_calls]
            for call in message.tool_calls:
                assert _WELL_FORMED.fullmatch(call.id), f"message {i}: tool call id {call.id!r}"
                assert _WELL_FORMED.fullmatch(call.name), f"message {i}: tool name {call.name!r}"
            assert len(set(calls)) == len(calls), f"message {i} repeats a tool call id"
            assert not seen_ids & set(calls), f"message {i} reuses a tool call id"
            seen_ids.update(calls)
            answered = [r.call_id for r in messages[i + 1].tool_results] if i + 1 < len(messages) else []
            assert answered == calls, (
                f"calls {calls} of message {i} answered by {answered}: one result each, in order"
            )
        else:
            results = message.tool_results
            if results:
                assert i > 0, "tool results without a call"
                previous = messages[i - 1]
                assert previous.kind == "assistant" and [c.id for c in previous.tool_calls] == [
                    r.call_id for r in results
                ], f"results of message {i} do not answer the calls before them"
                assert all(r.content for r in results), f"message {i} has an empty tool result"
            for part in message.parts:
                if part.kind == "text":
                    assert part.text.strip(), f"message {i} has a blank text part"
