"""A supervisor's settings, checked when it is made: a mistake fails at construction, before a
run has paid for a planner call, rather than part-way through a run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tools._numbers import is_amount, is_count
from tools.errors import ConfigurationError
from workers import Model, Worker
from workers._resolve import check_model

__all__ = ["MAX_WORKERS", "check_options", "checked_settings"]

MAX_WORKERS = 4  # the coordination saturation point
_RESERVED = ("Planner", "Synthesizer")


def checked_settings(
    workers: Sequence[Worker], model: str | Model, approval_timeout_s: Any
) -> dict[str, Worker]:
    """The workers by name, after checking them, the models they and the planner name, their
    handoff targets and the approval timeout.

    Raises:
        ConfigurationError: the first setting that is wrong (a `ModelNameError` for a model).
    """
    workers = list(workers)
    if len(workers) > MAX_WORKERS:
        raise ConfigurationError(
            f"{len(workers)} workers given; a supervisor coordinates at most {MAX_WORKERS}"
        )
    if not workers:
        raise ConfigurationError("a supervisor needs at least one worker")
    by_name: dict[str, Worker] = {}
    for worker in workers:
        _check_worker(worker, by_name)
        by_name[worker.name] = worker
    for worker in by_name.values():
        for target in type(worker).handoffs:
            name = target if isinstance(target, str) else target.__name__
            if name not in by_name:
                raise ConfigurationError(
                    f"worker {worker.name}: handoff target {name!r} is not a worker of this supervisor "
                    f"(its workers: {', '.join(by_name)})"
                )
    if approval_timeout_s is not None and not is_amount(approval_timeout_s):
        raise ConfigurationError(f"approval_timeout_s must be None or 0 or more, got {approval_timeout_s!r}")
    for spec in (model, *(w.model_spec for w in by_name.values())):
        check_model(spec)
    return by_name


def _check_worker(worker: object, by_name: dict[str, Worker]) -> None:
    if not isinstance(worker, Worker):
        raise ConfigurationError(f"{worker!r} is not a Worker instance")
    if worker.name in by_name:
        raise ConfigurationError(f"two workers are named {worker.name!r}")
    if worker.name in _RESERVED:
        raise ConfigurationError(f"the worker name {worker.name!r} is reserved for the supervisor")


def check_options(*, budget: object, redact: object, step_retries: object, max_replans: object) -> None:
    """The supervisor's other settings, each of its kind (they failed in a run, as AttributeError
    or TypeError, or at each risky call).

    Raises:
        ConfigurationError: the first that is wrong.
    """
    from ._budget import Budget

    if budget is not None and not isinstance(budget, Budget):
        raise ConfigurationError(f"budget must be a Budget, got {budget!r}")
    if redact is not None and (isinstance(redact, type) or not callable(redact)):
        raise ConfigurationError(f"redact must be a function (tool, what, text) -> text, got {redact!r}")
    for name, value in (("step_retries", step_retries), ("max_replans", max_replans)):
        if not is_count(value, 0):
            raise ConfigurationError(f"{name} must be an int of 0 or more, got {value!r}")
