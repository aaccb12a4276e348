"""Provider-neutral requests become the exact wire shapes the real APIs accept."""

from __future__ import annotations

from workers import (
    AssistantMessage,
    ForcedTool,
    ModelRequest,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    ToolSpec,
    UserMessage,
)
from workers._anthropic import to_wire as anthropic_wire
from workers._openai import to_wire as openai_wire

TOOL = ToolSpec("lookup", "Look up.", {"type": "object", "properties": {"id": {"type": "string"}}})
CALLS = AssistantMessage(
    (
        TextPart(""),
        ToolCallPart("c1", "lookup", '{"id":"1"}', {"id": "1"}),
        ToolCallPart("c2", "lookup", '{"id": "2', None, truncated=True),
    )
)
RESULTS = UserMessage(
    (
        TextPart("and also this"),
        ToolResultPart("c1", "lookup", "found"),
        ToolResultPart("c2", "lookup", "cut off", is_error=True),
    )
)
CONVERSATION = ModelRequest(
    system="be brief",
    messages=(UserMessage.of("find 1 and 2"), CALLS, RESULTS),
    tools=(TOOL,),
    tool_choice="required",
    temperature=0.2,
    stop_sequences=("END",),
    max_tokens=100,
)


def test_anthropic_results_come_first_empty_text_is_dropped_and_bad_arguments_become_empty_input() -> None:
    wire = anthropic_wire(CONVERSATION, "claude-haiku-4-5")
    assert wire["system"] == "be brief" and wire["tool_choice"] == {"type": "any"}
    # The SDK takes no `temperature` keyword: it travels in the body the SDK sends as it is.
    assert wire["extra_body"] == {"temperature": 0.2}
    assert wire["stop_sequences"] == ["END"] and wire["max_tokens"] == 100
    assert wire["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "c1", "name": "lookup", "input": {"id": "1"}},
            {"type": "tool_use", "id": "c2", "name": "lookup", "input": {}},
        ],
    }
    assert wire["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "c1", "content": "found"},
        {"type": "tool_result", "tool_use_id": "c2", "content": "cut off", "is_error": True},
        {"type": "text", "text": "and also this"},
    ]


def test_openai_tool_messages_follow_the_call_and_text_comes_after() -> None:
    wire = openai_wire(CONVERSATION, "gpt-4o")
    roles = [m["role"] for m in wire["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "tool", "user"]
    assistant = wire["messages"][2]
    assert assistant["content"] is None
    assert [c["function"]["arguments"] for c in assistant["tool_calls"]] == ['{"id":"1"}', "{}"]
    assert wire["messages"][4] == {"role": "tool", "tool_call_id": "c2", "content": "Error: cut off"}
    assert wire["tool_choice"] == "required" and wire["stop"] == ["END"]
    assert wire["max_completion_tokens"] == 100
    assert openai_wire(CONVERSATION, "llama", "max_tokens")["max_tokens"] == 100


def test_forced_and_disabled_tool_choice() -> None:
    forced = ModelRequest(messages=(UserMessage.of("x"),), tools=(TOOL,), tool_choice=ForcedTool("lookup"))
    assert anthropic_wire(forced, "m")["tool_choice"] == {"type": "tool", "name": "lookup"}
    assert openai_wire(forced, "m")["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    none = ModelRequest(messages=(UserMessage.of("x"),), tools=(TOOL,), tool_choice="none")
    assert anthropic_wire(none, "m")["tool_choice"] == {"type": "none"}


def test_no_tools_means_no_tool_fields() -> None:
    plain = ModelRequest(messages=(UserMessage.of("x"),))
    for wire in (anthropic_wire(plain, "m"), openai_wire(plain, "m")):
        assert "tools" not in wire and "tool_choice" not in wire and "temperature" not in wire
    assert "system" not in anthropic_wire(plain, "m")
    assert openai_wire(plain, "m")["messages"] == [{"role": "user", "content": "x"}]


def test_openai_keeps_the_texts_of_one_user_turn_apart() -> None:
    # The task and a repair request were glued: "Name a dogYou declined to answer..."
    turn = UserMessage((TextPart("Name a dog."), TextPart("You declined to answer.")))
    wire = openai_wire(ModelRequest(messages=(turn,), max_tokens=10), "gpt-4o")
    assert wire["messages"][-1] == {"role": "user", "content": "Name a dog.\n\nYou declined to answer."}
