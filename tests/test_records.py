"""The framework's records (usage, requests, messages, events, journal records) are built by a
faster `__init__` than the dataclass's own; these tests hold it to the same behaviour."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import typing
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import pytest

import supervisor
import workers
from workers._records import fast_init


def _fast_classes() -> list[type[Any]]:
    found: dict[str, type[Any]] = {}
    for package in (workers, supervisor):
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            if info.name.endswith(("dbos", "otel", "__main__")):
                continue  # optional extras; they define no records of their own
            module = importlib.import_module(info.name)
            for value in vars(module).values():
                if isinstance(value, type) and hasattr(value.__init__, "__dataclass_init__"):
                    found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


FAST = _fast_classes()
# Values a class checks in its __post_init__, where any distinct string would not do.
VALID = {"Plan": {"steps": (supervisor.Step("a", "Writer"),)}}


def test_the_hot_records_use_the_fast_constructor() -> None:
    names = {cls.__name__ for cls in FAST}
    assert {"Usage", "ModelRequest", "ModelResponse", "UserMessage", "CallRecord", "StepEvent"} <= names


@pytest.mark.parametrize("cls", FAST, ids=lambda cls: cls.__qualname__)
def test_a_fast_constructor_has_the_dataclass_signature(cls: type[Any]) -> None:
    assert inspect.signature(cls.__init__) == inspect.signature(cls.__init__.__dataclass_init__)


@pytest.mark.parametrize("cls", FAST, ids=lambda cls: cls.__qualname__)
def test_a_fast_constructor_s_type_hints_resolve_as_the_dataclass_s_do(cls: type[Any]) -> None:
    assert typing.get_type_hints(cls.__init__) == typing.get_type_hints(cls.__init__.__dataclass_init__)


@pytest.mark.parametrize("cls", FAST, ids=lambda cls: cls.__qualname__)
def test_a_fast_constructor_builds_what_the_dataclass_builds(cls: type[Any]) -> None:
    # Every parameter given a distinct value: nothing left to a default or a clock.
    names = [name for name in inspect.signature(cls.__init__).parameters if name != "self"]
    arguments: dict[str, Any] = {name: f"<{name}>" for name in names} | VALID.get(cls.__name__, {})
    fast = cls.__new__(cls)
    slow = cls.__new__(cls)
    cls.__init__(fast, **arguments)
    cls.__init__.__dataclass_init__(slow, **arguments)
    for f in dataclasses.fields(cls):
        assert getattr(fast, f.name) == getattr(slow, f.name), f.name


def test_defaults_factories_keyword_only_fields_post_init_and_freezing_behave_as_dataclasses_do() -> None:
    made: list[str] = []

    @fast_init
    @dataclass(frozen=True, slots=True)
    class Record:
        name: str
        tags: list[str] = field(default_factory=list)
        size: int = field(default=0, init=False)
        _: KW_ONLY
        kind: str = "record"

        def __post_init__(self) -> None:
            if not self.name:
                raise ValueError("a record needs a name")
            object.__setattr__(self, "size", len(self.name))
            made.append(self.name)

    first, second = Record("a"), Record("bb", ["x"], kind="other")
    assert (first.tags, first.size, first.kind) == ([], 1, "record")
    assert (second.tags, second.size, second.kind) == (["x"], 2, "other")
    assert first.tags is not Record("c").tags  # a fresh list each time, as with the dataclass
    assert made == ["a", "bb", "c"]
    assert Record("a") == Record("a") and Record("a") != Record("a", kind="other")
    with pytest.raises(ValueError, match="needs a name"):
        Record("")
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'name'"):
        Record()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Record("a", [], "positional kind")  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.name = "changed"  # type: ignore[misc]


def test_what_it_cannot_build_faithfully_is_refused_at_decoration() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        x: int

    with pytest.raises(TypeError, match="frozen=True, slots=True"):
        fast_init(NoSlots)

    @dataclass(frozen=True, slots=True)
    class OwnInit:
        x: int

        def __init__(self, y: int) -> None:
            object.__setattr__(self, "x", y * 2)

    with pytest.raises(TypeError, match="its own __init__"):
        fast_init(OwnInit)

    @dataclass(frozen=True, slots=True)
    class Shadowing:
        _fi_missing: int
        items: list[int] = field(default_factory=list)

    with pytest.raises(TypeError, match="a field is named '_fi_missing'"):
        fast_init(Shadowing)
