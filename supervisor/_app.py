"""A user's supervisor named by "module:factory" (the `resume` command, DBOS workers).

`factory(store)` returns the `Supervisor` with the run's workers. Whatever goes wrong on the
way (a module that cannot be imported or raises as it loads, a factory that is missing, raises
or returns something else) is a `ConfigurationError` naming the app, not a traceback.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from tools.errors import AgentError, ConfigurationError, excerpt

if TYPE_CHECKING:
    from ._supervisor import Supervisor

__all__ = ["supervisor_from"]


def supervisor_from(app: str, store: str) -> Supervisor:
    """The supervisor `app` ("module:factory", `make_supervisor` by default) makes for `store`."""
    from ._supervisor import Supervisor

    module_name, _, attribute = app.partition(":")
    attribute = attribute or "make_supervisor"
    if not module_name.strip():
        raise ConfigurationError(f"app {app!r}: cannot import it (no module named; give module:factory)")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, a SyntaxError, or whatever it raises as it loads
        raise ConfigurationError(f"app {app!r}: cannot import it ({type(exc).__name__}: {exc})") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ConfigurationError(
            f"app {app!r}: cannot import it (module {module_name} has no function {attribute})"
        )
    try:
        made = factory(store)
    except AgentError:
        raise
    except Exception as exc:
        raise ConfigurationError(
            f"app {app!r}: {attribute}(store) raised {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(made, Supervisor):
        raise ConfigurationError(
            f"app {app!r}: {attribute}(store) returned {excerpt(made, 80)}, not a Supervisor"
        )
    return made
