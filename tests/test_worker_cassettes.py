"""Workers on real recorded provider traffic: a whole tool round trip through the turn loop.

The model's tool calls come from real Anthropic and OpenAI responses; our tools run; the tool
results we send back are checked against what the real API accepted in the recording.
"""

from __future__ import annotations

import pytest

from tests.conftest import Recording
from tools import Tool, tool
from workers import Worker


@tool
def get_weather(location: str) -> str:
    """Get the current weather in a given location."""
    return f"Sunny, 22 C in {location}"


@tool
def secret_retrieval_tool(password: str) -> str:
    """A tool that requires a password to retrieve a secret."""
    return {"mellon": "Welcome to Moria!", "radiance": "Life before Death."}.get(password, "Invalid password")


def _search(which: str) -> Tool:
    def search(query: str) -> str:
        return f"{which} results for {query}"

    search.__doc__ = f"Local search {which}."
    return tool(name=f"parallel_local_search_{which}")(search)


class Weather(Worker):
    """Answers weather questions."""

    model = "anthropic:claude-sonnet-4-6"
    tools = [get_weather]


class Secrets(Worker):
    """Retrieves secrets."""

    model = "anthropic:claude-sonnet-4-6"
    tools = [secret_retrieval_tool]


class Research(Worker):
    """Searches in parallel."""

    model = "openai:gpt-4o-mini"
    tools = [_search("one"), _search("two"), _search("three")]


@pytest.mark.cassette("anthropic/crewai__test_anthropic_function_calling.yaml")
async def test_anthropic_worker_runs_the_tool_and_answers(cassette: Recording) -> None:
    result = await Weather().run("What is the weather in Tokyo?")
    assert result.output.startswith("The weather in Tokyo is currently sunny")
    assert result.turns == 2 and result.usage.requests == 2
    assert result.usage.cost_usd is not None and result.usage.cost_usd > 0
    sent = cassette.sent[1]["messages"]
    call = sent[1]["content"][-1]
    assert (call["name"], call["input"]) == ("get_weather", {"location": "Tokyo, Japan"})
    assert sent[2]["content"] == [
        {"type": "tool_result", "tool_use_id": call["id"], "content": "Sunny, 22 C in Tokyo, Japan"}
    ]


@pytest.mark.cassette("anthropic/mirascope__test_call_with_tools__anthropic_claude_sonnet_4_0__stream.yaml")
async def test_anthropic_streamed_parallel_calls_through_the_loop(cassette: Recording) -> None:
    from workers import AnthropicModel

    async with AnthropicModel("claude-sonnet-4-6", stream=True) as model:
        result = await Secrets(model=model).run("Retrieve the secrets for mellon and radiance")
    assert result.turns == 2 and isinstance(result.output, str) and result.output
    results = cassette.sent[1]["messages"][2]["content"]
    assert [r["content"] for r in results] == ["Welcome to Moria!", "Life before Death."]


@pytest.mark.cassette(
    "openai/crewai__TestOpenAINativeToolCalling.test_openai_parallel_native_tool_calling_test_agent_kickoff.yaml"
)
async def test_openai_worker_runs_three_parallel_tools(cassette: Recording) -> None:
    result = await Research().run("Search for the latest model release notes")
    assert result.turns == 2 and result.output
    tool_messages = [m for m in cassette.sent[1]["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages] == [
        "one results for latest OpenAI model release notes",
        "two results for latest Anthropic model release notes",
        "three results for latest Gemini model release notes",
    ]
    assert cassette.sent[0]["tool_choice"] == "auto"
