"""The root of the error tree and its helpers (the tree is drawn in `tools.errors`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = [
    "AgentError",
    "ConfigurationError",
    "MalformedAPIKey",
    "MissingAPIKey",
    "ModelNameError",
    "ScriptError",
    "Redact",
    "excerpt",
    "json_path",
    "shown",
]

_EXCERPT_CHARS = 300

Redact = Callable[[str, str, str], str]
"""A supervisor's `redact` hook: (tool, "arguments" or "result", text) -> the text to show."""


def excerpt(value: object, limit: int = _EXCERPT_CHARS) -> str:
    """A short, single-line rendering of a bad value for error messages.

    Never raises: the value is the one that was bad, and its `repr` may be too (nested deeper
    than `repr` recurses, or a class of the user's whose `__repr__` raises)."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = repr(value)
        except Exception:  # RecursionError included
            text = f"<{type(value).__name__} that cannot be shown>"
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def json_path(parts: Any) -> str:
    """A location as a JSON path: ("items", 0, "qty") -> "$.items[0].qty" (a key the model
    made up of thousands of characters is excerpted)."""
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{excerpt(str(p), 80)}" for p in parts)


class AgentError(Exception):
    """Root of every error the framework raises.

    Attributes:
        run_id: The run this failure ended, once a supervisor run owns it; otherwise None.
        completed: The steps that run finished before it failed (`StepResult` by step id).
    """

    run_id: str | None
    completed: dict[str, Any]

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.completed = {}  # a supervisor run's finished steps by id, kept when the run fails

    @property
    def retryable(self) -> bool:
        """Whether sending the same request again may succeed."""
        return False

    def redacted(self, redact: Redact) -> str:
        """The message, with every tool argument or result it quotes passed through `redact`:
        what events, progress lines and traces show of it."""
        return str(self)

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from the message and the fields, not by calling __init__ again (whose
        # arguments differ per class): pickle (multiprocessing, pytest-xdist) and copy work.
        return (_rebuilt, (type(self), self.args, self.__dict__))


def shown(error: object, redact: Redact | None) -> str:
    """An error's message as a run may show it: redacted when the run has a `redact` hook."""
    if redact is not None and isinstance(error, AgentError):
        return error.redacted(redact)
    return str(error)


def _rebuilt(cls: type[AgentError], args: tuple[Any, ...], state: dict[str, Any]) -> AgentError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ConfigurationError(AgentError):
    """The code or environment is misconfigured; raised before anything is sent."""


class ModelNameError(ConfigurationError):
    """A model string that is not `"provider:name"` or names an unknown provider."""

    def __init__(self, value: object, reason: str) -> None:
        super().__init__(
            f"bad model {excerpt(value)}: {reason}; expected 'anthropic:NAME' or 'openai:NAME'"
            " or a model object"
        )
        self.value = value
        self.reason = reason


class MissingAPIKey(ConfigurationError):
    """The provider's SDK found no credentials."""

    def __init__(self, provider: str, env_var: str) -> None:
        super().__init__(
            f"no API key for {provider}: set {env_var} (or pass a client or api_key to the model)"
        )
        self.provider = provider
        self.env_var = env_var


class MalformedAPIKey(ConfigurationError):
    """The API key (or another request header) holds a character HTTP headers cannot carry:
    a stray newline or space, or a non-ASCII character, most often from a copy and paste.

    Attributes:
        provider: The provider the request was for.
        env_var: The environment variable the SDK reads the key from.
        problem: What is wrong, never the key itself.
    """

    def __init__(self, provider: str, env_var: str, problem: str) -> None:
        super().__init__(
            f"the request to {provider} cannot be sent: {problem}; check {env_var} (or the api_key "
            "passed to the model) for pasted whitespace or characters that are not ASCII"
        )
        self.provider = provider
        self.env_var = env_var
        self.problem = problem


class ScriptError(AgentError):
    """A test model was used other than its script says: an extra call, or replies left unused."""

    def __init__(self, message: str, *, model: str, unused: int = 0) -> None:
        super().__init__(message)
        self.model = model
        self.unused = unused
