"""Deterministic models for tests: usable wherever a model is, and returning the real types.

    from workers.testing import ScriptedModel, FunctionModel, reply

    model = ScriptedModel([reply.tool_call("lookup_invoice", invoice_id="42"),
                           reply.output({"invoice_id": "42", "refunded": False})])
    FunctionModel(lambda request: reply.output(...) if request.tool_results else reply.tool_call(...))

Every reply carries usage (given with `usage=`, or estimated deterministically from the request
and the reply), so budgets and costs can be tested offline; give the model a `price=` to get
costs. `reply.error(...)` and `reply.disconnect()` raise the provider errors a real model would,
so retries can be tested without a network.

Tool arguments are keywords, or a mapping when a parameter's name is taken by the reply's own
`usage=`: `reply.tool_call("record", {"usage": "heavy"})`. A reply or script of the wrong shape
(`reply.text(5)`, `ScriptedModel("abc")`) is a `ConfigurationError` where it is written.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tools._jsontext import canonical_json, json_value
from tools.errors import ConfigurationError, ProviderConnectionError, ScriptError, excerpt, http_error_class

from ._messages import AssistantPart, TextPart, ToolCallPart
from ._model import ModelRequest, ModelResponse, StopReason
from ._prices import Price
from ._provider import make_usage
from ._tokens import estimate_prompt_tokens
from ._usage import Usage

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["FunctionModel", "Reply", "ScriptError", "ScriptedModel", "collecting_scripted_models", "reply"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer; built against the request it answers (see `reply`)."""

    build: Callable[[ModelRequest, _Context], ModelResponse]
    description: str

    def __repr__(self) -> str:
        return f"reply.{self.description}"


class _Context:
    """What a reply needs from the model answering: ids, name and price."""

    __slots__ = ("name", "price", "_calls", "_responses")

    def __init__(self, name: str, price: Price | None) -> None:
        self.name = name
        self.price = price
        self._calls = 0
        self._responses = 0

    def call_id(self) -> str:
        self._calls += 1
        return f"call_{self._calls}"

    def respond(
        self,
        request: ModelRequest,
        parts: tuple[AssistantPart, ...],
        stop: StopReason,
        usage: Usage | None,
        **kw: Any,
    ) -> ModelResponse:
        if usage is None:
            prompt = estimate_prompt_tokens(request)
            out = sum(len(getattr(p, "text", "") or getattr(p, "raw_arguments", "")) for p in parts) // 4 + 1
            usage = Usage(prompt, out)
        if usage.output_tokens > request.max_tokens:
            # As a real provider does: the answer stops at max_tokens.
            usage = dataclasses.replace(usage, output_tokens=request.max_tokens)
            stop = "max_tokens"
        if usage.requests == 0:
            usage = make_usage(
                self.price,
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_tokens,
                usage.cache_write_tokens,
            )
        self._responses += 1
        request_id = f"req_{self._responses}"
        return ModelResponse(
            parts, stop, usage, provider="test", model=self.name, request_id=request_id, **kw
        )


def _dump(value: object) -> str:
    if hasattr(value, "model_dump_json") and hasattr(type(value), "model_fields"):  # a pydantic model
        return str(value.model_dump_json())
    return canonical_json(value)


class _ReplyFactory:
    """The `reply` namespace: each function returns a `Reply`."""

    __slots__ = ()

    def text(self, text: str, *, usage: Usage | None = None) -> Reply:
        """A plain text answer."""
        _check("reply.text", "text", text, str, "a string")
        _check_usage("reply.text", usage)

        def build(request: ModelRequest, ctx: _Context) -> ModelResponse:
            return ctx.respond(request, (TextPart(text),) if text else (), "end", usage)

        return Reply(build, f"text({excerpt(text, 40)})")

    def tool_call(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        /,
        *,
        usage: Usage | None = None,
        **keywords: Any,
    ) -> Reply:
        """One tool call with these arguments: as keywords, `reply.tool_call("lookup", id="42")`,
        or as a mapping, `reply.tool_call("record", {"usage": "heavy"})`, which also takes an
        argument named `usage` (as a keyword, `usage=` is the reply's token usage)."""
        if arguments is not None and keywords:
            raise ConfigurationError(
                f"reply.tool_call({excerpt(name, 40)!r}, ...): give the arguments as a mapping or as "
                "keywords, not both"
            )
        if usage is not None and not isinstance(usage, Usage):
            raise ConfigurationError(
                f"reply.tool_call: usage= is the reply's token usage (a Usage), got {_quoted(usage)}; "
                f"for a tool argument named 'usage', pass the arguments as a mapping: "
                f"reply.tool_call({excerpt(name, 40)!r}, {{'usage': ...}})"
            )
        return self.tool_calls([(name, keywords if arguments is None else arguments)], usage=usage)

    def tool_calls(
        self, calls: Sequence[tuple[str, Mapping[str, Any]]], *, usage: Usage | None = None
    ) -> Reply:
        """Several tool calls in one turn (parallel), in this order."""
        _check_usage("reply.tool_calls", usage)
        if isinstance(calls, str | bytes | Mapping) or not isinstance(calls, Iterable):
            raise ConfigurationError(
                f"reply.tool_calls takes a list of (name, arguments), got {_quoted(calls)}"
            )
        frozen = [_call_entry(entry) for entry in calls]

        def build(request: ModelRequest, ctx: _Context) -> ModelResponse:
            parts = tuple(ToolCallPart(ctx.call_id(), name, _dump(args), args) for name, args in frozen)
            return ctx.respond(request, parts, "tool_use", usage)

        return Reply(build, f"tool_calls({', '.join(n for n, _ in frozen)})")

    def raw_tool_call(
        self, name: str, raw_arguments: str, *, truncated: bool = False, usage: Usage | None = None
    ) -> Reply:
        """A tool call whose argument text is given as is: not JSON, or cut by max_tokens."""

        def build(request: ModelRequest, ctx: _Context) -> ModelResponse:
            arguments = None
            if not truncated:
                try:
                    value = json_value(raw_arguments)  # as a provider reads them: no NaN
                    arguments = value if isinstance(value, dict) else None
                except (ValueError, RecursionError):  # left to the worker to report, as a provider's
                    pass
            part = ToolCallPart(ctx.call_id(), name, raw_arguments, arguments, truncated)
            return ctx.respond(request, (part,), "max_tokens" if truncated else "tool_use", usage)

        return Reply(build, f"raw_tool_call({name})")

    def output(self, value: BaseModel | Mapping[str, Any], *, usage: Usage | None = None) -> Reply:
        """The worker's structured output, in the form the request asks for.

        JSON text when the request uses native structured output (or has no output tool);
        a call to the final-answer tool when the request offers one.
        """
        payload = _dump(value)

        def build(request: ModelRequest, ctx: _Context) -> ModelResponse:
            tool = next((t for t in request.tools if t.is_output), None)
            if request.output is None and tool is not None:
                parsed = json.loads(payload)
                part = ToolCallPart(ctx.call_id(), tool.name, payload, parsed)
                return ctx.respond(request, (part,), "tool_use", usage)
            return ctx.respond(request, (TextPart(payload),), "end", usage)

        return Reply(build, f"output({excerpt(payload, 40)})")

    def refusal(self, text: str = "I can't help with that.", *, usage: Usage | None = None) -> Reply:
        """The model refuses."""

        def build(request: ModelRequest, ctx: _Context) -> ModelResponse:
            return ctx.respond(request, (TextPart(text),), "refusal", usage, refusal=text)

        return Reply(build, "refusal()")

    def error(
        self, status: int, message: str = "scripted error", *, retry_after_s: float | None = None
    ) -> Reply:
        """The provider answers with an HTTP error status (raised as the matching error class)."""

        def build(request: ModelRequest, ctx: _Context) -> ModelResponse:
            raise http_error_class(status)(
                message, provider="test", model=ctx.name, status_code=status, retry_after_s=retry_after_s
            )

        return Reply(build, f"error({status})")

    def disconnect(self) -> Reply:
        """The connection drops before an answer arrives."""

        def build(request: ModelRequest, ctx: _Context) -> ModelResponse:
            raise ProviderConnectionError("connection dropped (scripted)", provider="test", model=ctx.name)

        return Reply(build, "disconnect()")


reply = _ReplyFactory()


def _quoted(value: object) -> str:
    return excerpt(repr(value) if isinstance(value, str) else value, 80)


def _check(where: str, what: str, value: object, kind: type | tuple[type, ...], named: str) -> None:
    if not isinstance(value, kind):
        raise ConfigurationError(f"{where}: {what} must be {named}, got {_quoted(value)}")


def _check_usage(where: str, usage: object) -> None:
    if usage is not None and not isinstance(usage, Usage):
        raise ConfigurationError(f"{where}: usage= must be a Usage or None, got {_quoted(usage)}")


def _call_entry(entry: object) -> tuple[str, dict[str, Any]]:
    """One (name, arguments) of `reply.tool_calls`, checked when the script is written."""
    if not isinstance(entry, tuple | list) or len(entry) != 2:
        raise ConfigurationError(
            f"reply.tool_calls: each call is a (name, arguments) pair, got {_quoted(entry)}"
        )
    name, arguments = entry
    _check("reply.tool_call", "the tool name", name, str, "a string")
    _check("reply.tool_call", f"the arguments of {name!r}", arguments, Mapping, "a mapping")
    return name, dict(arguments)


class _TestModel:
    provider = "test"

    def __init__(self, name: str, price: Price | None, native_output: bool) -> None:
        self.name = name
        self.price = price
        self.native_output = native_output
        self.requests: list[ModelRequest] = []
        self._ctx = _Context(name, price)

    def _answer(self, answer: Reply | ModelResponse | str, request: ModelRequest) -> ModelResponse:
        if isinstance(answer, ModelResponse):
            return answer
        if isinstance(answer, str):
            answer = reply.text(answer)
        if not isinstance(answer, Reply):
            raise ScriptError(
                f"a test model must answer with a reply, not {excerpt(answer)}", model=self.name
            )
        return answer.build(request, self._ctx)


class ScriptedModel(_TestModel):
    """Answers each request with the next scripted reply.

    A request after the last reply raises `ScriptError`. Replies left unused fail the test
    that made the model when it ends (the pytest plugin this package registers), unless
    `allow_unused=True`; outside pytest, `assert_done()` (or leaving a `with` block) raises
    `ScriptError` for them. `requests` keeps every request received, for assertions on what
    was sent.
    """

    def __init__(
        self,
        replies: Iterable[Reply | ModelResponse | str],
        *,
        name: str = "scripted",
        price: Price | None = None,
        native_output: bool = False,
        allow_unused: bool = False,
    ) -> None:
        super().__init__(name, price, native_output)
        if isinstance(replies, str | bytes) or not isinstance(replies, Iterable):
            # A string is iterable: ScriptedModel("abc") was three replies, "a", "b" and "c".
            raise ConfigurationError(
                f"ScriptedModel takes a list of replies, got {_quoted(replies)}; "
                "for one text answer write ScriptedModel([reply.text(...)])"
            )
        self._replies = list(replies)
        self._next = 0
        self.allow_unused = allow_unused
        made = _MADE.get()
        if made is not None:  # under the pytest plugin: checked for unused replies when the test ends
            made.append(self)

    @property
    def unused(self) -> list[Reply | ModelResponse | str]:
        """The replies not yet consumed."""
        return self._replies[self._next :]

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Answer with the next reply."""
        self.requests.append(request)
        if self._next >= len(self._replies):
            raise ScriptError(
                f"unexpected model call #{len(self.requests)}: the script has {len(self._replies)} replies",
                model=self.name,
            )
        answer = self._replies[self._next]
        self._next += 1
        return self._answer(answer, request)

    def assert_done(self) -> None:
        """Raise ScriptError when replies were left unused."""
        if self.unused:
            raise ScriptError(
                f"{len(self.unused)} scripted replies unused: {self.unused!r}",
                model=self.name,
                unused=len(self.unused),
            )

    def __enter__(self) -> ScriptedModel:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.assert_done()


FunctionResult = Reply | ModelResponse | str

# The scripted models made in the current test, when the pytest plugin collects them.
_MADE: contextvars.ContextVar[list[ScriptedModel] | None] = contextvars.ContextVar(
    "scripted_models", default=None
)


@contextlib.contextmanager
def collecting_scripted_models() -> Iterator[list[ScriptedModel]]:
    """Collect the `ScriptedModel`s made inside the block (and in tasks started from it)."""
    made: list[ScriptedModel] = []
    token = _MADE.set(made)
    try:
        yield made
    finally:
        _MADE.reset(token)


class FunctionModel(_TestModel):
    """Answers each request with `function(request)`; the function may be sync or async."""

    def __init__(
        self,
        function: Callable[[ModelRequest], FunctionResult | Awaitable[FunctionResult]],
        *,
        name: str = "function",
        price: Price | None = None,
        native_output: bool = False,
    ) -> None:
        super().__init__(name, price, native_output)
        self._function = function

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Answer with what the function returns."""
        self.requests.append(request)
        result = self._function(request)
        if inspect.isawaitable(result):
            result = await result
        return self._answer(result, request)
