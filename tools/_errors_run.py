"""Failures of tools and workers inside a run (the tree is drawn in `tools.errors`)."""

from __future__ import annotations

from ._errors_base import AgentError, ConfigurationError, Redact, excerpt, json_path

__all__ = [
    "ApproverFailed",
    "ContextOverflow",
    "LoopDetected",
    "MaxTurnsExceeded",
    "ModelRefused",
    "OutputValidationError",
    "ResponseTruncated",
    "RunAborted",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "ToolError",
    "ToolInterrupted",
    "ToolTimeoutError",
    "UnknownToolError",
    "WorkerError",
    "WorkerInputError",
]


class ToolError(AgentError):
    """A tool could not be used.

    Attributes:
        tool: The tool's name (as the model wrote it, for unknown tools).
    """

    def __init__(self, message: str, *, tool: str) -> None:
        super().__init__(message)
        self.tool = tool


class ToolDefinitionError(ToolError, ConfigurationError):
    """A function that cannot become a tool: an unsupported signature or schema."""


class ToolArgumentsError(ToolError):
    """The model's arguments failed the tool's schema, and the allowed repairs ran out.

    Attributes:
        path: JSON path of the first problem, like "$.amount".
        value: The offending value (None for a missing property).
        rule: What was broken, like "-5 is less than the minimum of 0".
        issues: Every problem found, as (path, value, rule).
        attempts: How many times the model tried.
    """

    def __init__(
        self, tool: str, issues: list[tuple[str, object, str]], *, attempts: int, raw_arguments: str = ""
    ) -> None:
        path, value, rule = issues[0]
        super().__init__(self._text(tool, issues, attempts, rule), tool=tool)
        self.path = path
        self.value = value
        self.rule = rule
        self.issues = issues
        self.attempts = attempts
        self.raw_arguments = raw_arguments

    @staticmethod
    def _text(tool: str, issues: list[tuple[str, object, str]], attempts: int, rule: str) -> str:
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        return f"tool {tool!r}: invalid arguments after {attempts} attempts: {issues[0][0]}: {rule}{more}"

    def redacted(self, redact: Redact) -> str:
        return self._text(self.tool, self.issues, self.attempts, redact(self.tool, "arguments", self.rule))


class UnknownToolError(ToolError):
    """The model kept calling a tool that does not exist."""

    def __init__(self, tool: str, available: list[str], *, attempts: int) -> None:
        super().__init__(
            f"unknown tool {tool!r} called {attempts} times; available: {', '.join(available) or 'none'}",
            tool=tool,
        )
        self.available = available
        self.attempts = attempts


class ToolInterrupted(ToolError):
    """A tool call started before the process stopped and never finished; it is not run again.

    Raised on resume for a tool that is neither idempotent nor risky: it may or may not have taken
    effect, and nobody can say which, so the run stops rather than repeat it silently. Check its
    effect by hand, then start a new run; declare the tool `idempotent=True` (safe to repeat) or
    `risky=True` (a person decides) to let resume handle it.

    Attributes:
        arguments: The arguments it was started with (canonical JSON).
        key: Its place in the run's journal (plan version, step, attempt, worker, turn, call).
    """

    def __init__(self, tool: str, arguments: str, key: str, *, run_id: str | None = None) -> None:
        super().__init__(self._text(tool, arguments), tool=tool)
        self.arguments = arguments
        self.key = key
        self.run_id = run_id

    @staticmethod
    def _text(tool: str, arguments: str) -> str:
        return (
            f"tool {tool!r} was started with {excerpt(arguments, 200)} before the process stopped and "
            "did not finish; it may have taken effect, so it was not run again. Check its effect, then "
            "start a new run (declare the tool idempotent=True or risky=True to let resume handle it)"
        )

    def redacted(self, redact: Redact) -> str:
        return self._text(self.tool, redact(self.tool, "arguments", self.arguments))


class ToolTimeoutError(ToolError):
    """The tool kept running past its `timeout_s`."""

    def __init__(self, tool: str, timeout_s: float, *, attempts: int) -> None:
        super().__init__(f"tool {tool!r} timed out after {timeout_s:g} s, {attempts} times", tool=tool)
        self.timeout_s = timeout_s
        self.attempts = attempts


class ApproverFailed(ToolError):
    """The approver raised instead of deciding on a risky call; the call was not run.

    A bug in the approver is not taken for a denial: the run stops so that it is seen.

    Attributes:
        worker: The worker whose call was to be approved.
        cause: The approver's exception (also the `__cause__`).
    """

    def __init__(self, tool: str, worker: str, cause: BaseException) -> None:
        raised = f"{type(cause).__name__}: {excerpt(str(cause), 200)}"
        super().__init__(
            f"the approver raised on a call of tool {tool!r} by {worker} ({raised}); the call was not run",
            tool=tool,
        )
        self.worker = worker
        self.cause = cause


class RunAborted(AgentError):
    """A person aborted the run: at the approval of a risky tool call (`tool`), or by run id."""

    def __init__(self, tool: str, reason: str, *, by: str = "", run_id: str | None = None) -> None:
        who = f" by {by}" if by else ""
        where = f" at the approval of {tool!r}" if tool else ""
        super().__init__(f"run aborted{who}{where}: {reason or 'no reason given'}", run_id=run_id)
        self.tool = tool
        self.reason = reason
        self.by = by


class WorkerError(AgentError):
    """One worker could not finish its task.

    Attributes:
        worker: The worker's name.
    """

    def __init__(self, message: str, *, worker: str) -> None:
        super().__init__(f"{worker}: {message}")
        self.worker = worker


def _first_issue(errors: list[dict[str, object]], whole: object, none: str) -> tuple[str, str]:
    """The first of pydantic-style errors as the JSON path and "rule (got bad value)" that tool
    argument errors use, the value excerpted (the whole input when the error names none)."""
    first = errors[0] if errors else {"loc": (), "msg": none}
    loc = first.get("loc")
    path = json_path(loc if isinstance(loc, tuple | list) else ())
    if first.get("type") == "missing":  # its input is the whole object around it
        return path, "is required but missing"
    bad = first["input"] if "input" in first else whole
    shown = excerpt(repr(bad) if isinstance(bad, str) else bad, 80)  # quoted, as jsonschema's are
    return path, f"{excerpt(str(first.get('msg')), 300)} (got {shown})"


class WorkerInputError(WorkerError):
    """The task given to a worker does not validate against its `input` model.

    Attributes:
        errors: pydantic's errors (loc, msg, input), every one.
        value: The task as given.
        path: JSON path of the first problem, like "$.items[0].qty".
    """

    def __init__(self, worker: str, errors: list[dict[str, object]], value: object) -> None:
        path, rule = _first_issue(errors, value, "invalid")
        super().__init__(f"input does not validate: {path}: {rule}", worker=worker)
        self.errors = errors
        self.value = value
        self.path = path


class MaxTurnsExceeded(WorkerError):
    """`max_turns` model turns passed without a valid output.

    Attributes:
        max_turns: The limit.
        last_calls: The tool calls of the last turns, as (tool, arguments text), newest last.
    """

    def __init__(self, worker: str, max_turns: int, last_calls: list[tuple[str, str]]) -> None:
        super().__init__(self._text(max_turns, last_calls), worker=worker)
        self.max_turns = max_turns
        self.last_calls = last_calls

    @staticmethod
    def _text(max_turns: int, last_calls: list[tuple[str, str]]) -> str:
        calls = ", ".join(f"{name}({excerpt(args, 60)})" for name, args in last_calls[-3:]) or "no tool calls"
        return f"no valid output after {max_turns} turns; last calls: {calls}"

    def redacted(self, redact: Redact) -> str:
        calls = [(name, redact(name, "arguments", args)) for name, args in self.last_calls[-3:]]
        return self._text(self.max_turns, calls)


class LoopDetected(WorkerError):
    """The model called the same tool with the same arguments a `count`-th time in a row after
    it had returned the same result each time (the last call was not run)."""

    def __init__(self, worker: str, tool: str, arguments: str, count: int) -> None:
        super().__init__(self._text(tool, arguments, count), worker=worker)
        self.tool = tool
        self.arguments = arguments
        self.count = count

    @staticmethod
    def _text(tool: str, arguments: str, count: int) -> str:
        return (
            f"loop: {tool}({excerpt(arguments, 120)}) called {count} times with the same arguments, "
            "and it had returned the same result each time"
        )

    def redacted(self, redact: Redact) -> str:
        return self._text(self.tool, redact(self.tool, "arguments", self.arguments), self.count)


class OutputValidationError(WorkerError):
    """The worker's output failed its `output` model after the allowed repairs.

    Attributes:
        errors: pydantic's errors of the last attempt (loc, msg, input).
        raw_output: What the model produced last.
        attempts: How many outputs were tried.
        path: JSON path of the first problem, like "$.items[0].qty".
    """

    def __init__(self, worker: str, errors: list[dict[str, object]], raw_output: str, attempts: int) -> None:
        path, rule = _first_issue(errors, raw_output, "no output")
        super().__init__(f"output invalid after {attempts} attempts: {path}: {rule}", worker=worker)
        self.errors = errors
        self.raw_output = raw_output
        self.attempts = attempts
        self.path = path


class ModelRefused(WorkerError):
    """The model refused the task, and kept refusing after being asked again."""

    def __init__(self, worker: str, refusal: str, attempts: int) -> None:
        super().__init__(f"the model refused {attempts} times: {excerpt(refusal, 200)}", worker=worker)
        self.refusal = refusal
        self.attempts = attempts


class ContextOverflow(WorkerError):
    """The conversation does not fit the model's context window, even compacted as far as it goes.

    Attributes:
        window: The context window, in tokens.
        tokens: The estimated prompt tokens of the smallest conversation compaction left.
        max_tokens: The room the answer needed.
        attempts: How many times the provider refused the prompt as too long (0: refused here).
    """

    def __init__(self, worker: str, window: int, tokens: int, max_tokens: int, attempts: int) -> None:
        times = "once" if attempts == 1 else f"{attempts} times"
        refused = f"; the provider refused it {times}" if attempts else ""
        super().__init__(
            f"the conversation does not fit the context window: about {tokens} prompt tokens and "
            f"{max_tokens} for the answer, in a window of {window}, after compacting{refused}",
            worker=worker,
        )
        self.window = window
        self.tokens = tokens
        self.max_tokens = max_tokens
        self.attempts = attempts


class ResponseTruncated(WorkerError):
    """The model's answer was cut by max_tokens, and still was with more room."""

    def __init__(self, worker: str, max_tokens: int, attempts: int) -> None:
        super().__init__(
            f"answer cut by max_tokens {attempts} times (last max_tokens={max_tokens})", worker=worker
        )
        self.max_tokens = max_tokens
        self.attempts = attempts
