"""A faster `__init__` for the framework's frozen, slotted dataclasses.

A frozen dataclass sets each field with `object.__setattr__(self, name, value)`: an attribute
look-up and a generic set per field, two to three times the cost of the slot's own setter.
The framework makes several such records per model call (usage, requests, messages, events,
journal records), so `fast_init` gives a class an `__init__` with the same signature and the
same behaviour (defaults, default factories, keyword-only fields, fields not in `__init__`,
`__post_init__`) that writes each slot through its descriptor. Instances stay frozen: the
class's `__setattr__` still refuses every later assignment.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, TypeVar

__all__ = ["fast_init"]

_T = TypeVar("_T")


def fast_init(cls: type[_T]) -> type[_T]:
    """Give a `@dataclass(frozen=True, slots=True)` class a faster, equivalent `__init__`."""
    fields = _checked_fields(cls)
    # The sentinel dataclasses itself shows for a default factory ("<factory>"): the same signature.
    names: dict[str, Any] = {"_fi_missing": getattr(dataclasses, "_HAS_DEFAULT_FACTORY", dataclasses.MISSING)}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    for f in fields:
        name, setter = f.name, f"_fi_set_{f.name}"
        names[setter] = cls.__dict__[name].__set__  # the slot's member descriptor
        factory = f"_fi_factory_{name}"
        if f.default_factory is not dataclasses.MISSING:
            names[factory] = f.default_factory
        elif f.default is not dataclasses.MISSING:
            names[f"_fi_default_{name}"] = f.default
        if not f.init:  # set as the dataclass would: from its default, else left unset
            if factory in names:
                body.append(f"{setter}(self, {factory}())")
            elif f.default is not dataclasses.MISSING:
                body.append(f"{setter}(self, _fi_default_{name})")
            continue
        if factory in names:
            param = f"{name}=_fi_missing"
            body.append(f"{setter}(self, {factory}() if {name} is _fi_missing else {name})")
        else:
            param = name if f.default is dataclasses.MISSING else f"{name}=_fi_default_{name}"
            body.append(f"{setter}(self, {name})")
        (keyword if f.kw_only else positional).append(param)
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    signature = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    # Built inside a function whose arguments are the setters, factories and defaults, and run
    # in the class's module: the annotations (strings) resolve there, as the dataclass's do.
    source = (
        f"def _fi_make({', '.join(names)}):\n"
        f"    def __init__({signature}):\n"
        + "".join(f"        {line}\n" for line in body or ["pass"])
        + "    return __init__\n"
    )
    module = sys.modules.get(cls.__module__)
    made: dict[str, Any] = {}
    exec(source, module.__dict__ if module is not None else {}, made)
    init = made["_fi_make"](**names)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    init.__annotations__ = dict(cls.__init__.__annotations__)
    init.__dataclass_init__ = cls.__init__  # what it replaces, for the tests
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


def _checked_fields(cls: type[Any]) -> tuple[dataclasses.Field[Any], ...]:
    """The fields of a class `fast_init` can build, else TypeError."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__ or not params.init:
        raise TypeError(f"fast_init needs a @dataclass(frozen=True, slots=True) class, not {cls!r}")
    if cls.__init__.__code__.co_filename != "<string>":  # written by hand: kept, as dataclass keeps it
        raise TypeError(f"{cls.__qualname__} defines its own __init__: fast_init would replace it")
    initvar = getattr(dataclasses, "_FIELD_INITVAR", None)
    if any(getattr(f, "_field_type", None) is initvar for f in cls.__dataclass_fields__.values()):
        raise TypeError(f"fast_init does not support InitVar fields ({cls.__qualname__})")
    fields = dataclasses.fields(cls)
    for f in fields:  # the generated names below must not be shadowed by a parameter
        if f.name == "self" or f.name.startswith("_fi_"):
            raise TypeError(f"fast_init cannot build {cls.__qualname__}: a field is named {f.name!r}")
    return fields
