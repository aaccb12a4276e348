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
from typing import Any, TypeVar

__all__ = ["fast_init"]

_T = TypeVar("_T")


def fast_init(cls: type[_T]) -> type[_T]:
    """Give a `@dataclass(frozen=True, slots=True)` class a faster, equivalent `__init__`."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__ or not params.init:
        raise TypeError(f"fast_init needs a @dataclass(frozen=True, slots=True) class, not {cls!r}")
    initvar = getattr(dataclasses, "_FIELD_INITVAR", None)
    if any(getattr(f, "_field_type", None) is initvar for f in cls.__dataclass_fields__.values()):  # type: ignore[attr-defined]
        raise TypeError(f"fast_init does not support InitVar fields ({cls.__qualname__})")
    # The sentinel dataclasses itself shows for a default factory ("<factory>"): the same signature.
    names: dict[str, Any] = {"_MISSING": getattr(dataclasses, "_HAS_DEFAULT_FACTORY", dataclasses.MISSING)}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        setter = f"_set_{f.name}"
        names[setter] = cls.__dict__[f.name].__set__  # the slot's member descriptor
        has_factory = f.default_factory is not dataclasses.MISSING
        if has_factory:
            names[f"_factory_{f.name}"] = f.default_factory
        if not f.init:  # set as the dataclass would: from its default, else left unset
            if has_factory:
                body.append(f"    {setter}(self, _factory_{f.name}())")
            elif f.default is not dataclasses.MISSING:
                names[f"_default_{f.name}"] = f.default
                body.append(f"    {setter}(self, _default_{f.name})")
            continue
        if has_factory:
            param = f"{f.name}=_MISSING"
            body.append(f"    {setter}(self, _factory_{f.name}() if {f.name} is _MISSING else {f.name})")
        else:
            if f.default is not dataclasses.MISSING:
                names[f"_default_{f.name}"] = f.default
                param = f"{f.name}=_default_{f.name}"
            else:
                param = f.name
            body.append(f"    {setter}(self, {f.name})")
        (keyword if f.kw_only else positional).append(param)
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    signature = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    source = f"def __init__({signature}):\n" + ("\n".join(body) or "    pass") + "\n"
    exec(source, names)
    init = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    init.__annotations__ = dict(cls.__init__.__annotations__)
    init.__dataclass_init__ = cls.__init__  # what it replaces, for the tests
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
