"""A run's context moved to another place in the run (`RunContext.at`) shares everything else."""

from __future__ import annotations

import dataclasses

from workers import RunContext


def test_at_copies_every_field_but_the_scope_and_finality() -> None:
    # A distinct object per field: a field that `at` forgets to copy comes out as missing or
    # as another object. Every slot counts, the private ones too.
    values = {f.name: object() for f in dataclasses.fields(RunContext)}
    ctx = object.__new__(RunContext)
    for name, value in values.items():
        object.__setattr__(ctx, name, value)
    moved = ctx.at("1/s1.1/0")
    assert moved is not ctx and moved.scope == "1/s1.1/0"
    assert moved.final is False and ctx.at("answer", final=True).final is True  # said per place
    for name in RunContext.__slots__:
        if name not in ("scope", "final"):
            assert getattr(moved, name) is values[name], name
    assert set(RunContext.__slots__) == set(values)
