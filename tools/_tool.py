"""`@tool`: a plain function becomes a validated tool.

The JSON Schema offered to the model is the schema validation enforces (Draft 2020-12, compiled
once per tool, on first use so that defining tools stays cheap). Arguments that fail it never
reach the function.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, overload

from ._fastcheck import compile_check
from ._jsontext import NotJSONNumber, json_value, refused_number_rule, refused_numbers
from ._numbers import is_amount
from ._schema import ArgumentModel, function_schema, json_path
from ._threads import in_daemon_thread
from .errors import ToolDefinitionError, excerpt

__all__ = ["ArgumentIssue", "Tool", "parse_arguments_text", "tool"]

ArgumentIssue = tuple[str, object, str]
"""One problem with a tool call's arguments: (JSON path, offending value, rule broken)."""

TOO_DEEP = "arguments are nested too deeply; send a flatter value"
"""The rule broken by arguments nested deeper than they can be read or validated."""

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_MISSING = re.compile(r"^'(.+)' is a required property$")


# The longest rule told to the model per issue, and the longest quote of a bad value in it.
_RULE_CHARS = 300
_QUOTE_CHARS = 80


def _bounded(message: str, instance: object) -> str:
    """jsonschema's message with its quote of the bad value cut (it quotes the whole value:
    a 100,000-character string made a 100,000-character rule): the rule itself stays readable."""
    if len(message) <= _RULE_CHARS:  # the common case
        return message
    try:
        quoted = repr(instance)
    except Exception:  # RecursionError included: no quote to find
        quoted = ""
    if len(quoted) > _QUOTE_CHARS and quoted in message:
        message = message.replace(quoted, excerpt(quoted, _QUOTE_CHARS))
    return excerpt(message, _RULE_CHARS)


def _specific(error: Any) -> list[Any]:
    """For anyOf/oneOf failures, the errors of the branch that got furthest into the value.

    "is not valid under any of the given schemas" names no culprit; the branch whose errors
    lie deepest (for Optional[list[Item]], the list branch, not the null one) usually does.
    """
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        return [error]
    branches: dict[Any, list[Any]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)

    def rank(subs: list[Any]) -> tuple[bool, int, bool]:
        # A branch whose tag matched (no `const` or `enum` failed: a Literal kind) first; then
        # deeper first; at equal depth, a branch that matched the type and failed inside it
        # (an invented property, a bound) beats one that failed on the type itself.
        tagged = not any(e.validator in ("const", "enum") for e in subs)
        return tagged, max(len(e.absolute_path) for e in subs), any(e.validator != "type" for e in subs)

    best = max(branches.values(), key=rank)
    _, depth, specific = rank(best)
    if depth == len(error.absolute_path) and not specific:
        types = [sub.validator_value for sub in error.context if sub.validator == "type"]
        error.message = f"{error.instance!r} is not of type " + " or ".join(repr(t) for t in types)
        return [error]
    return [leaf for sub in best for leaf in _specific(sub)]


class Tool:
    """A function the model may call, with its schema and execution settings.

    Attributes:
        name: The name the model calls it by.
        description: What it does, for the model (the docstring's summary by default).
        parameters: The JSON Schema of its arguments (an object schema).
        risky: A person must approve each call before it runs.
        timeout_s: The longest one call may run (None: no limit).
        idempotent: Running it twice with the same arguments is harmless (resume may re-run it).
    """

    __slots__ = (
        "name",
        "description",
        "parameters",
        "risky",
        "timeout_s",
        "idempotent",
        "function",
        "_arguments",
        "_validator",
        "_accepts",
        "_is_async",
    )

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        name: str,
        description: str,
        parameters: dict[str, Any],
        arguments: ArgumentModel | None = None,
        risky: bool = False,
        timeout_s: float | None = None,
        idempotent: bool = False,
    ) -> None:
        if not _NAME.match(name):
            raise ToolDefinitionError(f"tool name {name!r} must match [a-zA-Z0-9_-]{{1,64}}", tool=name)
        if parameters.get("type") != "object":
            raise ToolDefinitionError(f"tool {name!r}: parameters must be an object schema", tool=name)
        for flag, value in (("risky", risky), ("idempotent", idempotent)):
            if not isinstance(value, bool):  # risky="no" is a non-empty string: it read as True
                raise ToolDefinitionError(
                    f"tool {name!r}: {flag} must be True or False, got {value!r}", tool=name
                )
        if timeout_s is not None and not is_amount(timeout_s, positive=True):
            raise ToolDefinitionError(
                f"tool {name!r}: timeout_s must be a positive number of seconds, got {timeout_s!r}",
                tool=name,
            )
        self.name = name
        self.description = description
        self.parameters = parameters
        self.risky = risky
        self.timeout_s = timeout_s
        self.idempotent = idempotent
        self.function = function
        self._arguments = arguments
        self._validator: Any = None
        self._accepts: Callable[[object], bool] | None = None  # see _fastcheck
        # A sync callable runs in a thread; one that returns a coroutine (a plain decorator over
        # an async function) has it awaited on the loop, while a sync facade that runs its own
        # event loop (async_to_sync) keeps its thread.
        self._is_async = inspect.iscoroutinefunction(function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function itself, unchecked: a decorated function stays usable from code (and
        in its own unit tests). Models' calls go through `validated` and `invoke`."""
        return self.function(*args, **kwargs)

    @property
    def is_sync(self) -> bool:
        """A plain function (run in a thread, which a timeout cannot stop)."""
        return not self._is_async

    def __repr__(self) -> str:
        flags = "".join(
            [", risky=True" if self.risky else "", f", timeout_s={self.timeout_s}" if self.timeout_s else ""]
        )
        return f"Tool({self.name!r}{flags})"

    @classmethod
    def from_schema(
        cls,
        function: Callable[..., Any],
        *,
        name: str,
        description: str,
        parameters: Mapping[str, Any],
        risky: bool = False,
        timeout_s: float | None = None,
        idempotent: bool = False,
    ) -> Tool:
        """A tool from an explicit JSON Schema; the function receives the validated arguments as keywords."""
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        schema = dict(parameters)
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise ToolDefinitionError(
                f"tool {name!r}: invalid JSON Schema: {exc.message}", tool=name
            ) from exc
        return cls(
            function,
            name=name,
            description=description,
            parameters=schema,
            risky=risky,
            timeout_s=timeout_s,
            idempotent=idempotent,
        )

    def issues(self, arguments: object) -> list[ArgumentIssue]:
        """Every way `arguments` breaks the schema (empty when they are valid)."""
        if self._validator is None:
            from jsonschema import Draft202012Validator

            self._validator = Draft202012Validator(self.parameters)
            self._accepts = compile_check(self.parameters)
        if self._accepts is not None:
            try:
                if self._accepts(arguments):  # the common case, decided fast
                    return []
            except RecursionError:  # nested deeper than the compiled check goes: jsonschema decides
                pass
        try:
            errors = [leaf for error in self._validator.iter_errors(arguments) for leaf in _specific(error)]
        except RecursionError:  # a recursive model nested deeper than jsonschema's recursion goes
            return [("$", arguments, TOO_DEEP)]
        found: list[ArgumentIssue] = []
        for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
            path = json_path(error.absolute_path)
            missing = _MISSING.match(error.message) if error.validator == "required" else None
            if missing:
                found.append((f"{path}.{missing.group(1)}", None, "is required but missing"))
            elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
                allowed = sorted(
                    (error.schema.get("properties") or {}) if isinstance(error.schema, dict) else []
                )
                listed = excerpt(", ".join(allowed) or "none", _RULE_CHARS)
                for extra in sorted(set(error.instance) - set(allowed)):
                    found.append(
                        (
                            json_path((*error.absolute_path, extra)),
                            error.instance[extra],
                            f"unknown property {excerpt(repr(extra), 80)} is not allowed (allowed: {listed})",
                        )
                    )
            else:
                found.append((path, error.instance, _bounded(error.message, error.instance)))
        return found

    def validated(self, arguments: object) -> tuple[dict[str, Any] | None, list[ArgumentIssue]]:
        """(keyword arguments for the function, []) when `arguments` are valid, else (None, issues).

        The JSON Schema decides first; for function tools pydantic then builds the typed values
        (nested models, enums) and may add what a schema cannot say (formats, validators).
        """
        issues = self.issues(arguments)
        if issues or not isinstance(arguments, dict):
            return None, issues or [("$", arguments, "is not of type 'object'")]
        if self._arguments is None:
            return dict(arguments), []
        return self._arguments.to_kwargs(arguments)

    async def invoke(self, kwargs: Mapping[str, Any]) -> Any:
        """Run the function. Sync functions run in a worker thread so they cannot block the loop.

        A function that raises SystemExit (argparse given bad input, `sys.exit`) fails like any
        other: the process is not the tool's to stop, and a model's arguments would stop it."""
        try:
            if self._is_async:
                return await self.function(**kwargs)
            # A daemon thread: one still blocked past its timeout does not hold the process open.
            result = await in_daemon_thread(functools.partial(self.function, **kwargs), f"tool:{self.name}")
            if inspect.isawaitable(result):  # a callable that returns a coroutine (a sync wrapper, say)
                result = await result
            return result
        except SystemExit as exc:
            raise ToolExited(f"it called exit({exc.code!r}); the process goes on") from None


class ToolExited(Exception):
    """A tool function raised SystemExit: its failure, not the process's end."""


def _make(
    fn: Callable[..., Any], name: str | None, risky: bool, timeout_s: float | None, idempotent: bool
) -> Tool:
    if isinstance(fn, Tool):
        raise ToolDefinitionError(f"{fn!r} is already a tool", tool=fn.name)
    if not callable(fn):
        raise ToolDefinitionError(f"@tool needs a function, got {excerpt(fn)}", tool=str(name or fn))
    tool_name = name or str(getattr(fn, "__name__", ""))
    if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        # Its call returns a generator, which the model received as "<async_generator ...>".
        raise ToolDefinitionError(
            f"tool {tool_name!r} is a generator function: a tool returns its whole result; "
            "collect the items into a list and return it",
            tool=tool_name,
        )
    description, schema, arguments = function_schema(fn, tool_name)
    return Tool(
        fn,
        name=tool_name,
        description=description or tool_name.replace("_", " "),
        parameters=schema,
        arguments=arguments,
        risky=risky,
        timeout_s=timeout_s,
        idempotent=idempotent,
    )


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *, name: str | None = None, risky: bool = False, timeout_s: float | None = None, idempotent: bool = False
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    risky: bool = False,
    timeout_s: float | None = None,
    idempotent: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a sync or async function a tool: `@tool` or `@tool(risky=True, timeout_s=5)`.

    The name is the function's, the description its docstring (an Args section describes the
    parameters), the JSON Schema comes from the signature through pydantic: defaults, Optional,
    Literal and Enum, nested models, lists, and `Annotated`/`Field` constraints.

    Args:
        fn: The function (when used bare).
        name: A name other than the function's.
        risky: A person must approve each call before it runs.
        timeout_s: The longest one call may run. Past it the model is told the call timed
            out and the run goes on; an async function is cancelled (one that ignores the
            cancel is left running, as a plain function's thread is: `asyncio.run` still waits
            for such a task when it closes the loop).
        idempotent: Running it twice with the same arguments is harmless.
    """
    if fn is not None:
        return _make(fn, name, risky, timeout_s, idempotent)
    return lambda f: _make(f, name, risky, timeout_s, idempotent)


def parse_arguments_text(raw: str) -> tuple[object, list[ArgumentIssue]]:
    """Parse argument text as the model wrote it; a non-object is reported as an issue at `$`."""
    try:
        value = json_value(raw) if raw.strip() else {}
    except NotJSONNumber as exc:  # NaN, Infinity, 1e999: each told at its path
        found = refused_numbers(raw) or [((), exc.literal)]
        return None, [(json_path(path), literal, refused_number_rule(literal)) for path, literal in found]
    except json.JSONDecodeError as exc:
        return None, [("$", raw, f"arguments are not valid JSON ({exc.msg} at char {exc.pos})")]
    except RecursionError:  # the decoder recurses once per level: deeper than the interpreter allows
        return None, [("$", raw, TOO_DEEP)]
    if not isinstance(value, dict):
        return value, [("$", value, f"{excerpt(value, 60)} is not of type 'object'")]
    return value, []
