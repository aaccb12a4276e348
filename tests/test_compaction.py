"""Context-window compaction: long runs never overflow and never lose the goal.

Promises: a session of hundreds of turns with large tool results stays inside the window, the
task is in every request, and every tool call keeps its result (the `checked` fixture asserts
the API rules on every request); compaction trims before it summarises and summarises before it
drops; any history compacts to a conversation the APIs accept; a prompt the provider refuses as
too long is compacted harder and sent again, at most twice, then `ContextOverflow`; outputs of
earlier steps are summarised when they would not fit; each compaction is an event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor import Budget, BudgetExceeded, Plan, Step, Supervisor
from tests.conversation_rules import assert_valid_request
from tests.provider_server import Answer, ProviderServer, anthropic_message
from tests.recorders import Events
from tools import tool
from workers import (
    AnthropicModel,
    AssistantMessage,
    CompactionEvent,
    ContextOverflow,
    ModelRequest,
    Price,
    RetryPolicy,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    UserMessage,
    Worker,
    estimate_prompt_tokens,
)
from workers._compact import compact
from workers.testing import FunctionModel, reply

Check = Callable[[Any], Any]
TASK = "Read every page of the report and say how many pages mention the refund."
SUMMARY_PROMPT_START = "You compress an agent's working notes"
DEAR = Price(input=0.0, output=100_000.0)  # per million tokens: no answer of 256 tokens fits $1


@tool
def read_page(page: int) -> str:
    """Read one page of the report."""
    return f"page {page}: " + "lorem ipsum dolor sit amet " * 80  # about 2,200 characters


class Reader(Worker):
    """Reads long reports."""

    model = "openai:gpt-4o"
    tools = [read_page]
    max_turns = 400
    context_window = 12_000
    max_tokens = 500


def _is_summary(request: ModelRequest) -> bool:
    return request.system.startswith(SUMMARY_PROMPT_START)


def _reader_model(pages: int, summaries: list[str]) -> Callable[[ModelRequest], Any]:
    def answer(request: ModelRequest) -> Any:
        if _is_summary(request):
            summaries.append(request.messages[0].parts[0].text)  # type: ignore[union-attr]
            return reply.text(f"Summary {len(summaries)}: pages read so far, none mention a refund.")
        done = [r for m in request.messages for r in getattr(m, "tool_results", ())]
        last = int(done[-1].content.split(":")[0].split()[1]) if done else 0  # the last page read
        if last < pages:
            return reply.tool_call("read_page", page=last + 1)
        return reply.text(f"Read {pages} pages; none mention the refund.")

    return answer


async def test_a_long_session_stays_in_its_window_keeps_the_task_and_every_pair(checked: Check) -> None:
    summaries: list[str] = []
    model = checked(FunctionModel(_reader_model(300, summaries)))
    events = Events()
    result = await Reader(model=model).run(TASK, events=events)
    assert result.output == "Read 300 pages; none mention the refund."
    worked = [r for r in model.requests if not _is_summary(r)]
    assert len(worked) == 301
    for request in worked:  # the API rules themselves are asserted by `checked`
        first = request.messages[0]
        assert first.kind == "user" and first.parts[0].text == TASK  # type: ignore[union-attr]
        assert estimate_prompt_tokens(request) + request.max_tokens <= Reader.context_window
    compactions = events.of(CompactionEvent)
    assert compactions and all(c.tokens_after < c.tokens_before for c in compactions)
    assert {c.strategy for c in compactions} >= {"trim"} and summaries  # trimmed, then summarised
    assert all(c.reason == "threshold" for c in compactions)
    # The summaries' cost is the worker's cost too.
    assert result.usage.requests == len(model.requests)


def _history(turns: list[tuple[int, int]]) -> list[Any]:
    """A task, then turns of (number of calls, result size), ending with the last results."""
    messages: list[Any] = [UserMessage.of(TASK)]
    n = 0
    for calls, size in turns:
        ids = [f"c{n + i}" for i in range(calls)]
        n += calls
        messages.append(AssistantMessage(tuple(ToolCallPart(i, "t", "{}", {}) for i in ids)))
        messages.append(UserMessage(tuple(ToolResultPart(i, "t", "x" * size) for i in ids)))
    return messages


async def test_compaction_trims_first_then_summarises_then_drops() -> None:
    history = _history([(1, 4000)] * 6)
    trimmed = await compact(history, 3500)
    assert trimmed is not None and trimmed.strategy == "trim" and len(trimmed.messages) == len(history)
    assert "removed to fit the context window" in trimmed.messages[2].parts[0].content  # type: ignore[union-attr]

    async def summarise(messages: Any) -> str:
        return "what happened before"

    small = _history([(3, 200)] * 40)
    summarised = await compact(small, 800, summarise)
    assert summarised is not None and summarised.strategy == "trim+summarise"  # in the order
    assert summarised.messages[0].parts[1].text.endswith("what happened before")
    read: list[str] = []

    async def reading(messages: Any) -> str:
        read.extend(p.content for m in messages for p in m.parts if p.kind == "tool_result")
        return "what the tools said"

    seen = await compact(small, 800, reading)  # it read the stubs trimming had left
    assert seen is not None and read and all("removed to fit" not in text for text in read)
    assert read[0] == small[2].parts[0].content  # type: ignore[union-attr]
    dropped = await compact(small, 300)  # too small for trimming alone, and no summariser
    assert dropped is not None and dropped.strategy == "trim+drop" and len(dropped.messages) < len(small)
    assert "earlier turns" in dropped.messages[0].parts[1].text
    for done in (trimmed, summarised, dropped):
        assert_valid_request(ModelRequest(messages=tuple(done.messages)))
        assert done.messages[-2:] == history[-2:] if done is trimmed else done.messages[-1] == small[-1]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    turns=st.lists(st.tuples(st.integers(1, 4), st.integers(1, 3000)), min_size=0, max_size=25),
    budget=st.integers(1, 20_000),
    summary=st.sampled_from(["", "a summary", "x" * 3000]),
)
def test_any_history_compacts_to_a_conversation_the_apis_accept(
    turns: list[tuple[int, int]], budget: int, summary: str
) -> None:
    import asyncio

    async def summarise(messages: Any) -> str:
        return summary

    history = _history(turns)
    done = asyncio.run(compact(history, budget, summarise if summary else None))
    messages = history if done is None else done.messages
    assert_valid_request(ModelRequest(messages=tuple(messages)))
    assert messages[0].parts[0] == TextPart(TASK)  # the task is never lost
    if len(history) > 1:
        assert messages[-1].tool_results == history[-1].tool_results or all(
            "removed to fit" in r.content for r in messages[-1].tool_results
        )  # the last turn stays, shortened at most


# --- a real SDK against a server that refuses long prompts -----------------------------------

KEY = "sk-test"
TOO_LONG = Answer(
    400,
    {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "prompt is too long: 9000 tokens > 8000 maximum",
        },
    },
)


def _claude(server: ProviderServer) -> AnthropicModel:
    model = AnthropicModel("claude-haiku-4-5", api_key=KEY, base_url=server.url, timeout_s=5)
    server.opened.append(model)
    return model


class Fetcher(Worker):
    """Fetches pages."""

    model = "anthropic:claude-haiku-4-5"
    tools = [read_page]
    max_tokens = 200
    # Summaries from a cheaper model (a test model here): the server sees only the worker's calls.
    summary_model = FunctionModel(lambda request: reply.text("Summary: page 1 was read."))


def _tool_use(page: int) -> dict[str, Any]:
    body = anthropic_message("")
    body["content"] = [
        {"type": "tool_use", "id": f"toolu_{page}", "name": "read_page", "input": {"page": page}}
    ]
    body["stop_reason"] = "tool_use"
    body["usage"]["input_tokens"] = 60 + 600 * (
        page - 1
    )  # about what the prompts hold: calibration stays near 1
    return body


async def test_a_prompt_refused_as_too_long_is_compacted_harder_and_sent_again(
    server: ProviderServer,
) -> None:
    server.queue(
        Answer(200, _tool_use(1)), Answer(200, _tool_use(2)), TOO_LONG, Answer(200, anthropic_message("done"))
    )
    events = Events()
    result = await Fetcher(model=_claude(server)).run(TASK, events=events, approver=None)
    assert result.output == "done"
    refused, resent = server.received[2].body, server.received[3].body
    assert len(str(resent)) < len(str(refused))  # compacted before it was sent again
    assert "removed to fit the context window" in str(resent)  # old results trimmed first
    (compaction,) = events.of(CompactionEvent)
    assert compaction.reason == "refused"


async def test_a_prompt_still_refused_after_two_compactions_is_a_context_overflow(
    server: ProviderServer,
) -> None:
    server.queue(Answer(200, _tool_use(1)), Answer(200, _tool_use(2)), TOO_LONG, TOO_LONG, TOO_LONG)
    with pytest.raises(ContextOverflow) as caught:
        await Fetcher(model=_claude(server)).run(TASK, approval_timeout_s=None)
    # After the second refusal nothing was left to compact: the same prompt is not sent again.
    assert caught.value.attempts == 2 and caught.value.worker == "Fetcher"
    assert caught.value.window < 1_000 and caught.value.max_tokens == 200  # the numbers, carried
    assert len(server.received) == 4  # the two tool turns, then the prompt twice


# --- between steps ---------------------------------------------------------------------------------


class Dumper(Worker):
    """Dumps a big report."""

    model = "openai:gpt-4o"


class Summer(Worker):
    """Sums up a report."""

    model = "openai:gpt-4o"
    context_window = 6_000
    max_tokens = 300


async def test_outputs_of_earlier_steps_are_summarised_when_they_would_not_fit(checked: Check) -> None:
    big = "row " * 12_000  # about 12,000 tokens: twice the summing step's window
    dumper = checked(FunctionModel(lambda r: reply.text(big)))
    seen: list[ModelRequest] = []

    def summer(request: ModelRequest) -> Any:
        seen.append(request)
        if _is_summary(request):
            return reply.text("A report of 12,000 rows, all alike.")
        return reply.text("12,000 rows")

    plan = Plan(steps=[Step("dump", "Dumper", "dump it"), Step("sum", "Summer", "sum it up", ["dump"])])
    sup = Supervisor(
        [Dumper(model=dumper), Summer(model=checked(FunctionModel(summer)))], model=FunctionModel(summer)
    )
    result = await sup.run_plan(plan)
    assert result.output == "12,000 rows"
    task = seen[-1].messages[0].parts[0].text  # type: ignore[union-attr]
    assert "summarised to fit" in task and "A report of 12,000 rows" in task and big not in task
    assert estimate_prompt_tokens(seen[-1]) + 300 <= Summer.context_window


def test_compaction_can_be_turned_off() -> None:
    class Plain(Reader):
        """Reads, and never compacts."""

        compaction = False

    assert Plain.compaction is False and Reader.compaction is True
    _ = RetryPolicy  # the worker keeps the run's retry policy either way


class Counter(Fetcher):
    """Fetches pages, and has Claude count the prompt when the estimate is close."""

    context_window = 1_000
    count_tokens = True


async def test_an_exact_count_from_the_provider_decides_when_the_estimate_is_close(
    server: ProviderServer,
) -> None:
    # After the first page the estimate is over the threshold; Claude counts 300: it fits.
    server.queue(
        Answer(200, _tool_use(1)),
        Answer(200, {"input_tokens": 300}),
        Answer(200, anthropic_message("done")),
    )
    events = Events()
    result = await Counter(model=_claude(server)).run(TASK, events=events)
    assert result.output == "done"
    assert [r.path for r in server.received] == ["/v1/messages", "/v1/messages/count_tokens", "/v1/messages"]
    counted = server.received[1].body
    assert "max_tokens" not in counted and counted["messages"][-1]["content"][0]["type"] == "tool_result"
    assert events.of(CompactionEvent) == []  # the estimate alone would have compacted


class LongFetcher(Fetcher):
    """Fetches many pages."""

    max_turns = 40


async def test_a_long_session_against_a_server_that_enforces_its_window_and_the_pairing_rules() -> None:
    # The worker believes in a large window; the server holds 14,000 characters of messages and
    # refuses a broken tool-use pairing, as the Messages API does.
    server = ProviderServer(window_chars=14_000).start()
    try:
        server.queue(
            *(Answer(200, _tool_use(page)) for page in range(1, 31)), Answer(200, anthropic_message("done"))
        )
        events = Events()
        result = await LongFetcher(model=_claude(server)).run(TASK, events=events)
        assert result.output == "done"
        assert len(server.received) - len(server.refused) == 31  # every page and the answer, once
        assert server.refused and all(m.startswith("prompt is too long") for m in server.refused)
        assert all(TASK in str(r.body["messages"][0]) for r in server.received)  # the task, always
        assert {c.reason for c in events.of(CompactionEvent)} <= {"refused", "threshold"}
    finally:
        for model in server.opened:
            await model.aclose()
        server.stop()


def test_both_providers_refusals_of_a_long_prompt_are_recognised() -> None:
    from tools.errors import ProviderBadRequest, ProviderUnavailable
    from workers._window import prompt_too_long

    openai = ProviderBadRequest(
        "This model's maximum context length is 128000 tokens. "
        "However, your messages resulted in 130511 tokens.",
        provider="openai",
        model="gpt-4o",
        status_code=400,
        body_excerpt='{"error": {"type": "invalid_request_error", "code": "context_length_exceeded"}}',
    )
    claude = ProviderBadRequest(
        "prompt is too long: 201234 tokens > 200000 maximum", provider="anthropic", model="m", status_code=400
    )
    other = ProviderBadRequest("max_tokens: 100000 > 64000", provider="anthropic", model="m", status_code=400)
    assert prompt_too_long(openai) and prompt_too_long(claude) and not prompt_too_long(other)
    assert not prompt_too_long(
        ProviderUnavailable("prompt is too long", provider="x", model="m", status_code=529)
    )


async def test_a_new_summary_folds_in_the_previous_one_and_dropped_turns_add_up() -> None:
    seen: list[str] = []

    async def summarise(messages: Any) -> str:
        seen.append(" ".join(getattr(p, "text", "") for m in messages for p in m.parts))
        return f"summary {len(seen)}"

    first = await compact(_history([(1, 150)] * 30), 400, summarise)
    assert first is not None and first.messages[0].parts[-1].text.endswith("summary 1")  # type: ignore[union-attr]
    grown = first.messages + _history([(1, 150)] * 30)[1:]
    second = await compact(grown, 400, summarise)
    assert second is not None and "Summary so far:" in seen[1] and "summary 1" in seen[1]
    dropped = await compact(_history([(1, 150)] * 30), 300)
    assert dropped is not None
    again = await compact(dropped.messages + _history([(1, 150)] * 30)[1:], 300)
    assert again is not None
    count = int(again.messages[0].parts[-1].text.split(": ")[1].split()[0])  # type: ignore[union-attr]
    assert count > int(dropped.messages[0].parts[-1].text.split(": ")[1].split()[0])  # type: ignore[union-attr]


def test_history_measures_again_after_the_conversation_shrank() -> None:
    from workers._compact import History, message_chars

    history = History()
    long = _history([(1, 500)] * 10)
    history.tokens(long)
    short = long[:1] + long[-2:]
    assert history.tokens(short) == sum(message_chars(m) for m in short) // 4 + 1


def test_history_counts_a_last_message_replaced_by_a_longer_one() -> None:
    """A nudge merged into the last user message replaces it: the estimate follows it."""
    from workers._compact import History, message_chars

    history = History()
    messages: list[Any] = [UserMessage.of("task")]
    history.tokens(messages)
    messages[-1] = UserMessage.of("task" + " and a nudge" * 100)
    assert history.tokens(messages) == message_chars(messages[0]) // 4 + 1
    messages.append(UserMessage.of("more"))
    assert history.tokens(messages) == sum(message_chars(m) for m in messages) // 4 + 1


async def test_summaries_are_numbered_per_turn_so_a_resumed_run_finds_them_again() -> None:
    from workers import RunContext
    from workers._fit import Fitter

    saved: list[str] = []

    class Journal:
        def response(self, key: str) -> Any:
            return None

        async def save_response(self, key: str, response: Any, *, durable: bool = True) -> None:
            saved.append(key)

    ctx = RunContext(journal=Journal())  # type: ignore[arg-type]
    fitter = Fitter("W", ctx, FunctionModel(lambda r: reply.text("s")), None, 10_000, 100)
    for key in ("1/a.1/0/W/3", "1/a.1/0/W/3", "1/a.1/0/W/4"):
        fitter.key = key
        await fitter._summarise([UserMessage.of("turns")])
    assert saved == ["1/a.1/0/W/3/summary1", "1/a.1/0/W/3/summary2", "1/a.1/0/W/4/summary1"]


async def test_a_count_that_fails_leaves_the_decision_to_the_estimate(server: ProviderServer) -> None:
    server.queue(
        Answer(200, _tool_use(1)),
        Answer(529, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}),
        Answer(200, anthropic_message("done")),
    )
    result = await Counter(model=_claude(server)).run(TASK)
    assert result.output == "done" and server.received[1].path == "/v1/messages/count_tokens"


async def test_a_priced_summary_model_is_held_to_the_runs_max_usd() -> None:
    """The summaries cost money too: a summary call that cannot fit `max_usd` is not sent."""
    summariser = FunctionModel(lambda request: reply.text("Summary."), name="summariser", price=DEAR)

    class Thrifty(Reader):
        """Reads long reports, summarising with a dear model."""

        summary_model = summariser

    free = Price(input=0.0, output=0.0)
    reader = FunctionModel(_reader_model(300, []), name="reader", price=free)
    planner = FunctionModel(reply.text, price=free)
    sup = Supervisor([Thrifty(model=reader)], model=planner, budget=Budget(max_usd=1.0))
    with pytest.raises(BudgetExceeded) as caught:
        await sup.run_plan(Plan(steps=[Step("a", "Thrifty", TASK)]))
    assert caught.value.limit == "max_usd" and summariser.requests == []
