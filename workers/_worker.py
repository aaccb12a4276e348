"""`Worker`: one LLM agent, defined as a class.

    class Billing(Worker):
        \"\"\"Answers billing questions and issues refunds.\"\"\"   # the description the planner routes on
        model = "anthropic:claude-haiku-4-5"
        instructions = "You handle billing."
        tools = [lookup_invoice, issue_refund]
        output = Refund
        max_turns = 8

    result = await Billing().run("Refund invoice 42 if it was charged twice")

The class is checked when it is defined (a bad tool list or output type fails at import, not in
production), and what every run needs (tool map, schemas, output plan) is built once per class.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from tools import Tool, tool
from tools._numbers import is_amount
from tools.errors import ConfigurationError, ToolDefinitionError, WorkerInputError, excerpt

from ._classcheck import check_class, check_model_of, listed
from ._context import RunContext
from ._events import Event, EventSink, as_sink
from ._handoff import Handoff
from ._hooks import Approver, ToolGate, as_gate
from ._messages import Message
from ._model import Model, ToolSpec
from ._output import OUTPUT_TOOL, OutputMode, OutputPlan, input_errors
from ._records import fast_init
from ._usage import Usage

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["Worker", "WorkerResult"]


@fast_init
@dataclass(frozen=True, slots=True)
class WorkerResult:
    """What a worker run produced.

    Attributes:
        worker: The worker's name.
        output: The validated output (an instance of the worker's `output`, or a str).
        usage: Tokens, requests and cost of this run's model calls.
        turns: How many model turns it took.
        messages: The whole conversation, the task first.
        handoff: Set when the worker handed its task over instead of answering (output is None).
    """

    worker: str
    output: Any
    usage: Usage
    turns: int
    messages: tuple[Message, ...]
    handoff: Handoff | None = None


@dataclass(frozen=True, slots=True)
class _Plan:
    """What every run of one worker class needs, built when the class is defined."""

    tools: Mapping[str, Tool]
    specs: tuple[ToolSpec, ...]
    output: OutputPlan | None  # None until the model is known, when output_mode is "auto"
    by_mode: dict[OutputMode, OutputPlan] = dataclasses.field(default_factory=dict)  # "auto", once per mode
    # The handoff actions and base request of a run, once per output plan and settings (see
    # _template.request_template).
    bases: dict[tuple[Any, ...], tuple[Any, Any, int]] = dataclasses.field(default_factory=dict)
    # A model's output limit and context window, by model id and the settings checked against
    # them (see _template.model_limits).
    limits: dict[tuple[Any, ...], tuple[int, int]] = dataclasses.field(default_factory=dict)


class Worker:
    """Base class of every worker. Subclass it and set the class attributes.

    Attributes:
        model: "provider:name" or a model object (a test model, say).
        instructions: The system prompt.
        tools: The tools it may call (`@tool` functions; plain functions are wrapped).
        output: A pydantic model the answer must validate against, or `str` for plain text.
        input: A pydantic model the task must validate against, or `str`.
        max_turns: The most model turns one run may take.
        handoffs: The workers it may hand off to (used by the supervisor).
        context_window: Overrides the model's known context window, in tokens.
        compaction: Compact the conversation to fit the window (old tool results trimmed, old
            turns summarised, then dropped); off, a conversation that outgrows the window fails.
        summary_model: The model that writes compaction summaries (a cheaper one, say); the
            worker's own model when None.
        count_tokens: When the estimate comes near the threshold, have the provider count the
            prompt exactly (Anthropic's count-tokens endpoint) before deciding to compact.
        max_tokens: The answer budget of one model call. Above the model's known output limit
            (`workers._limits.OUTPUT_LIMITS`) the run fails with ConfigurationError before any
            call; an answer cut off is asked again with more room, up to that limit.
        temperature: Sampling temperature (None: the provider's default). On a model known to
            refuse it (OpenAI's reasoning models, Claude from 4.7 on), or above the provider's
            range (Anthropic: 0 to 1), the run fails with ConfigurationError before any call.
        output_mode: "native" structured output, a final-answer "tool", or "auto" (native where
            the model supports it).
        output_repairs: How many invalid outputs (or refusals) the model may repair.
        argument_repairs: How many times in a row a tool's arguments may fail before the run ends.
        loop_limit: The same tool with the same arguments this many times in a row, its result the
            same each time, ends the run (the last of them is not run; polling whose result
            changes is not a loop).
        max_result_chars: Tool results longer than this are truncated with a visible marker.
        truncation_retries: How many times an answer cut by max_tokens is retried with more room.
    """

    model: ClassVar[str | Model] = ""
    instructions: ClassVar[str] = ""
    tools: ClassVar[Sequence[Tool | Callable[..., Any]]] = ()
    output: ClassVar[type[BaseModel] | type[str]] = str
    input: ClassVar[type[BaseModel] | type[str]] = str
    max_turns: ClassVar[int] = 10
    handoffs: ClassVar[Sequence[type[Worker] | str]] = ()
    context_window: ClassVar[int | None] = None
    compaction: ClassVar[bool] = True
    summary_model: ClassVar[str | Model | None] = None
    count_tokens: ClassVar[bool] = False
    max_tokens: ClassVar[int] = 4096
    temperature: ClassVar[float | None] = None
    output_mode: ClassVar[Literal["auto", "native", "tool"]] = "auto"
    output_repairs: ClassVar[int] = 2
    argument_repairs: ClassVar[int] = 2
    loop_limit: ClassVar[int] = 3
    max_result_chars: ClassVar[int | None] = 20_000
    truncation_retries: ClassVar[int] = 2

    _plan: ClassVar[_Plan]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._plan = _build_plan(cls)

    def __init__(self, *, model: str | Model | None = None) -> None:
        """Args:
        model: Use this model instead of the class's (a test model, or another provider).
        """
        self._model = model if model is not None else type(self).model
        if not self._model:
            raise ConfigurationError(
                f"worker {self.name}: no model; set `model = 'provider:name'` on the class"
            )
        # The form only: the class's own is checked here, not when the class is defined, so that
        # a class naming a placeholder it is always made with another model still imports.
        check_model_of(self.name, "model", self._model)

    @property
    def name(self) -> str:
        """The class name: how plans and handoffs refer to this worker."""
        return type(self).__name__

    @property
    def description(self) -> str:
        """The class docstring: what the planner routes on. A subclass without one (a worker
        with other settings) has its base worker's; never `Worker`'s own."""
        for klass in type(self).__mro__:
            if klass is Worker:
                break
            doc = klass.__dict__.get("__doc__")
            if doc:
                return inspect.cleandoc(doc)
        return ""

    @property
    def model_spec(self) -> str | Model:
        """The model this instance runs on."""
        return self._model

    def task_text(self, task: object) -> str:
        """Validate `task` against `input` and render it as the first user message.

        Raises:
            WorkerInputError: the task does not validate.
        """
        kind = type(self).input
        if kind is str:
            if not isinstance(task, str):
                raise WorkerInputError(self.name, [{"loc": (), "msg": "the task must be a string"}], task)
            if not task.strip():
                raise WorkerInputError(self.name, [{"loc": (), "msg": "the task is empty"}], task)
            return task
        from pydantic import BaseModel, ValidationError

        if not isinstance(kind, type) or not issubclass(kind, BaseModel):
            raise ConfigurationError(f"worker {self.name}: input must be str or a pydantic model")
        try:
            if isinstance(task, kind):
                value = task
            elif isinstance(task, str):
                value = kind.model_validate_json(task)
            else:
                value = kind.model_validate(task)
        except ValidationError as exc:
            raise WorkerInputError(self.name, input_errors(exc, task), task) from None
        return f"Task input ({kind.__name__}, JSON):\n{value.model_dump_json(indent=2)}"

    def prepare(self, task: object, upstream: Mapping[str, Any]) -> object:
        """Build the task from the typed outputs of the steps this one depends on.

        The default keeps the task as given (the outputs are shown to the model after it);
        override it to map upstream outputs into fields of your `input` model.
        """
        return task

    def render_upstream(self, upstream: Mapping[str, Any]) -> str:
        """The upstream outputs as the model reads them, after the task."""
        from tools import serialize_result

        lines = [f"- {step}: {serialize_result(value)}" for step, value in upstream.items()]
        return "Results of the steps this one depends on:\n" + "\n".join(lines)

    async def run(
        self,
        task: object,
        *,
        context: RunContext | None = None,
        approver: Approver | ToolGate | None = None,
        events: EventSink | Callable[[Event], Any] | None = None,
        upstream: Mapping[str, Any] | None = None,
        approval_timeout_s: float | None = 600.0,
    ) -> WorkerResult:
        """Run this worker alone on `task` until it produces a valid output.

        Args:
            task: A string, or the worker's input model (an instance, a dict or JSON).
            context: The run's context; a fresh one (closed afterwards) when not given.
            approver: Decides on risky tool calls: a callable `(request) -> bool | Decision`
                (sync or async) or a gate. Without one, risky calls are denied.
            events: Receives the events of the run: a sink (with `emit`) or a plain callable.
            upstream: Outputs of the steps this one depends on, by step id (typed values).
            approval_timeout_s: An approval unanswered for this long is a denial.

        Raises:
            AgentError: one of the typed failures of the error tree.
        """
        from ._loop import run_loop

        if approval_timeout_s is not None and not is_amount(approval_timeout_s):
            # "5" failed as a TypeError inside the gate, and NaN set no bound at all.
            raise ConfigurationError(
                f"worker {self.name}: approval_timeout_s must be None or 0 or more seconds, "
                f"got {excerpt(approval_timeout_s, 80)}"
            )
        own = context is None
        ctx = context if context is not None else RunContext()
        if approver is not None or events is not None:
            # A copy: this run's approver and sink must never reach another run sharing the context.
            ctx = dataclasses.replace(
                ctx,
                gate=as_gate(approver, approval_timeout_s) if approver is not None else ctx.gate,
                events=as_sink(events) if events is not None else ctx.events,
            )
        try:
            return await run_loop(self, task, ctx, upstream or {})
        finally:
            if own:
                await ctx.aclose()


def _as_tool(worker: str, entry: object) -> Tool:
    if isinstance(entry, Tool):
        return entry
    if callable(entry):
        return tool(entry)
    raise ToolDefinitionError(
        f"worker {worker}: {excerpt(entry)} is not a tool or a function", tool=str(entry)
    )


def _build_plan(cls: type[Worker]) -> _Plan:
    name = cls.__name__
    tools = [_as_tool(name, t) for t in listed(cls, "tools", "tools or functions")]
    by_name: dict[str, Tool] = {}
    for t in tools:
        if t.name in by_name:
            raise ConfigurationError(f"worker {name}: two tools are named {t.name!r}")
        by_name[t.name] = t
    check_class(cls)
    for target in listed(cls, "handoffs", "Worker classes or names"):
        if not (isinstance(target, str) or (isinstance(target, type) and issubclass(target, Worker))):
            raise ConfigurationError(f"worker {name}: handoffs take Worker classes or names, not {target!r}")
    if cls.output_mode not in ("auto", "native", "tool"):
        raise ConfigurationError(f"worker {name}: output_mode must be 'auto', 'native' or 'tool'")
    output: OutputPlan | None = None
    if cls.output is str:
        output = OutputPlan(str, "text")
    elif cls.output_mode != "auto":
        output = OutputPlan(cls.output, cls.output_mode, _output_tool_name(by_name))
    specs = tuple(ToolSpec(t.name, t.description, t.parameters) for t in tools)
    return _Plan(by_name, specs, output)


def _output_tool_name(tools: Mapping[str, Tool]) -> str:
    name = OUTPUT_TOOL
    while name in tools:
        name += "_"
    return name


def output_plan(cls: type[Worker], model: Model) -> OutputPlan:
    """The output plan of a worker class on a model ("auto" picks native where supported).

    A model with native output may still be unable to take this output's schema (it says so
    with an optional `accepts_output(spec) -> bool`): the final-answer tool is used then."""
    plan = cls._plan.output
    if plan is not None:
        return plan
    if getattr(model, "native_output", False):
        native = _plan_in_mode(cls, "native")
        accepts = getattr(model, "accepts_output", None)
        if accepts is None or native.spec is None or accepts(native.spec):
            return native
    return _plan_in_mode(cls, "tool")


def _plan_in_mode(cls: type[Worker], mode: OutputMode) -> OutputPlan:
    cached = cls._plan.by_mode.get(mode)
    if cached is None:  # building the schema is the costly part: once per class and mode
        cached = cls._plan.by_mode[mode] = OutputPlan(cls.output, mode, _output_tool_name(cls._plan.tools))
    return cached
