"""A simulated provider for fault injection: a cooperative model behind a flaky network.

`SimulatedProvider` is a `ProviderServer` responder. It reads each request as the real APIs
receive it (Anthropic Messages or OpenAI Chat Completions, streamed or not) and answers as a
model doing the supervisor workload would: the planner gets the plan, a worker first calls its
tool, then answers; the final-answer tool is called when offered. Before answering, a seeded
random draw may replace the answer with a fault instead:

    rate_limit   a storm of 429s with retry-after          overloaded  529 (Anthropic) or 503
    drop         the connection closed without an answer   mid_stream  a stream that breaks half-way
    slow         an answer later than the client's timeout truncated   tool arguments cut by max_tokens
    malformed    a 200 whose body is not JSON              bad_args    a tool call with invalid arguments
    too_long     400 "prompt is too long"

The shapes follow the recordings in ../shared/real-cassettes. Everything is bounded: a storm
is a few answers, `slow` waits `slow_s` once.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.provider_server import Answer

__all__ = ["DESK_PLAN", "FAULTS", "SimulatedProvider"]

FAULTS = (
    "rate_limit",
    "overloaded",
    "drop",
    "mid_stream",
    "slow",
    "truncated",
    "malformed",
    "bad_args",
    "too_long",
)
OUTPUT_TOOL = "final_result"
# The plan of the fault and soak runs: three desks (Desk0..Desk2), each checking its part at once.
DESK_PLAN = {
    "reasoning": "each desk checks its part",
    "steps": [
        {"id": f"s{i}", "worker": f"Desk{i}", "input": f"part {i}", "depends_on": [], "reason": "its desk"}
        for i in range(3)
    ],
}


@dataclass
class SimulatedProvider:
    """Answers requests as a cooperative model, with faults drawn at `rate` from `faults`.

    Attributes:
        plan: The planner's plan (the final-answer tool's arguments).
        tool_args: The arguments a worker passes to each tool, by tool name.
        faults: The kinds drawn from (`FAULTS` by default).
        rate: The chance that a request meets a fault.
        seed: Seeds the draws, so a failing run can be repeated.
        slow_s: How late a `slow` answer is (set it past the client's timeout).
        storm: How many 429s a rate-limit storm holds.
        at: Requests (numbered from 0 in arrival order) that meet a fault whatever the draw: the
            kinds of `faults` in turn.
        injected: How many of each fault were served.
    """

    plan: dict[str, Any]
    tool_args: dict[str, dict[str, Any]]
    faults: tuple[str, ...] = FAULTS
    rate: float = 0.2
    seed: int = 0
    slow_s: float = 1.0
    storm: int = 3
    at: tuple[int, ...] = ()
    injected: Counter[str] = field(default_factory=Counter)
    _random: random.Random = field(init=False, repr=False)
    _storm_left: int = field(default=0, init=False, repr=False)
    _served: int = field(default=0, init=False, repr=False)
    _scheduled: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def __call__(self, path: str, body: dict[str, Any]) -> Answer:
        api = "anthropic" if path.startswith("/v1/messages") else "openai"
        stream = bool(body.get("stream"))
        decision = _decide(api, body, self.plan, self.tool_args)
        with self._lock:  # the server answers from one thread per connection
            fault = self._draw()
        if fault is None:
            return _answer(api, stream, decision)
        self.injected[fault] += 1
        return self._fault(fault, api, stream, decision)

    def _draw(self) -> str | None:
        self._served += 1
        if self._storm_left:
            self._storm_left -= 1
            return "rate_limit"
        if self._served - 1 in self.at:  # scheduled: the kinds in turn
            fault = self.faults[self._scheduled % len(self.faults)]
            self._scheduled += 1
        elif self._random.random() < self.rate:
            fault = self._random.choice(self.faults)
        else:
            return None
        if fault == "rate_limit":
            self._storm_left = self.storm - 1
        return fault

    def _fault(self, fault: str, api: str, stream: bool, decision: tuple[str, Any]) -> Answer:
        if fault == "rate_limit":
            kind = "rate_limit_error" if api == "anthropic" else "requests"
            return Answer(
                429,
                _error(api, kind, "Rate limited. Please try again later."),
                {"retry-after": "1", "retry-after-ms": "40"},
            )
        if fault == "overloaded":
            status = 529 if api == "anthropic" else 503
            return Answer(status, _error(api, "overloaded_error", "Overloaded"))
        if fault == "drop":
            return Answer(drop=True)
        if fault == "mid_stream":
            if not stream:
                return Answer(200, json.dumps(_body(api, decision)).encode(), short_body=True)
            answer = _answer(api, True, decision)
            assert answer.events is not None
            return Answer(events=answer.events, cut_after=max(1, len(answer.events) // 2))
        if fault == "slow":
            answer = _answer(api, stream, decision)
            answer.delay_s = self.slow_s
            return answer
        if fault == "truncated":
            return _answer(api, stream, decision, cut=True)
        if fault == "malformed":
            return Answer(200, b'{"id": "msg_01", "content": [{"type": "te')
        if fault == "bad_args":
            return _bad_args(api, stream, decision)
        assert fault == "too_long", fault
        return _too_long(api)


def _bad_args(api: str, stream: bool, decision: tuple[str, Any]) -> Answer:
    """The answer the model meant, with arguments (or structured output) it got wrong."""
    kind, value = decision
    if kind == "tool":
        name, arguments = value
        return _answer(api, stream, ("tool", (name, _broken(arguments))))
    if kind == "json":
        return _answer(api, stream, ("text", json.dumps(_broken(json.loads(value)))))
    return _answer(api, stream, ("tool", ("no_such_tool", {"x": 1})))


def _too_long(api: str) -> Answer:
    """The 400 each provider gives a prompt over its window."""
    if api == "anthropic":
        message = "prompt is too long: 210000 tokens > 200000 maximum"
        return Answer(400, _error(api, "invalid_request_error", message))
    body = _error(api, "invalid_request_error", "This model's maximum context length is 128000 tokens.")
    body["error"]["code"] = "context_length_exceeded"
    return Answer(400, body)


def _decide(
    api: str, body: dict[str, Any], plan: dict[str, Any], tool_args: dict[str, Any]
) -> tuple[str, Any]:
    """What a cooperative model answers: ("tool", (name, arguments)), ("json", structured output
    text) or ("text", text)."""
    if api == "anthropic":
        tools = [t["name"] for t in body.get("tools", [])]
        system = body.get("system") or ""
        system = system if isinstance(system, str) else " ".join(b.get("text", "") for b in system)
        answered = any(
            isinstance(m.get("content"), list) and any(b.get("type") == "tool_result" for b in m["content"])
            for m in body["messages"]
        )
    else:
        tools = [t["function"]["name"] for t in body.get("tools", [])]
        first = body["messages"][0]
        system = first.get("content") or "" if first.get("role") in ("system", "developer") else ""
        answered = any(m.get("role") == "tool" for m in body["messages"])
    native = body.get("response_format") or (body.get("output_config") or {}).get("format")
    planner = system.startswith("You plan how")
    own = [t for t in tools if t in tool_args]
    if own and not answered and not planner:
        return "tool", (own[0], tool_args[own[0]])
    if native:  # structured output: the answer is the JSON text
        return "json", json.dumps(plan if planner else {"answer": "done"})
    if OUTPUT_TOOL in tools:
        return "tool", (OUTPUT_TOOL, plan if planner else {"answer": "done"})
    return "text", "checked: every desk is in order"


def _broken(arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments a model gets wrong: every value wrapped in a list, and a property invented."""
    return {key: [value] for key, value in arguments.items()} | {"invented": True}


def _body(api: str, decision: tuple[str, Any], cut: bool = False) -> dict[str, Any]:
    kind, value = decision
    kind = "text" if kind == "json" else kind
    if api == "anthropic":
        content: list[dict[str, Any]] = []
        if kind == "text":
            content.append({"type": "text", "text": value[: len(value) // 2] if cut else value})
        else:
            content.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{uuid.uuid4().hex[:20]}",
                    "name": value[0],
                    "input": value[1],
                }
            )
        stop_reason = "max_tokens" if cut else ("tool_use" if kind == "tool" else "end_turn")
        return {
            "id": "msg_01Sim", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
            "content": content, "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": 120, "output_tokens": 30},
        }  # fmt: skip
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if kind == "text":
        message["content"] = value[: len(value) // 2] if cut else value
    else:
        arguments = json.dumps(value[1])
        message["tool_calls"] = [
            {
                "id": f"call_{uuid.uuid4().hex[:20]}",
                "type": "function",
                "function": {
                    "name": value[0],
                    "arguments": arguments[: len(arguments) // 2] if cut else arguments,
                },
            }
        ]
    finish = "length" if cut else ("tool_calls" if kind == "tool" else "stop")
    return {
        "id": "chatcmpl-Sim", "object": "chat.completion", "created": 1760000000, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
    }  # fmt: skip


def _answer(api: str, stream: bool, decision: tuple[str, Any], cut: bool = False) -> Answer:
    body = _body(api, decision, cut)
    if not stream:
        return Answer(200, body, {"request-id" if api == "anthropic" else "x-request-id": "req_sim"})
    return Answer(events=_anthropic_events(body, cut) if api == "anthropic" else _openai_chunks(body, cut))


def _anthropic_events(message: dict[str, Any], cut: bool) -> list[tuple[str, Any]]:
    """The Messages stream of `message`, as the recordings show it."""
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 120, "output_tokens": 1},
    }
    events: list[tuple[str, Any]] = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opened, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": block["text"]}
        else:
            opened = {**block, "input": {}}
            arguments = json.dumps(block["input"])
            delta = {
                "type": "input_json_delta",
                "partial_json": arguments[: len(arguments) // 2] if cut else arguments,
            }
        events += [
            ("content_block_start", {"type": "content_block_start", "index": index, "content_block": opened}),
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}),
            ("content_block_stop", {"type": "content_block_stop", "index": index}),
        ]
    events += [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": 30},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


def _openai_chunks(body: dict[str, Any], cut: bool) -> list[tuple[str, Any]]:
    """The Chat Completions stream of `body`: deltas, the finish reason, the usage chunk, [DONE]."""
    base = {k: body[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    message = body["choices"][0]["message"]
    delta: dict[str, Any] = {"role": "assistant", "content": message["content"]}
    if message.get("tool_calls"):
        delta["tool_calls"] = [{"index": 0, **call} for call in message["tool_calls"]]
    finish = body["choices"][0]["finish_reason"]
    return [
        ("", {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}),
        ("", {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}),
        ("", {**base, "choices": [], "usage": body["usage"]}),
        ("", "[DONE]"),
    ]


def _error(api: str, kind: str, message: str) -> dict[str, Any]:
    if api == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}
