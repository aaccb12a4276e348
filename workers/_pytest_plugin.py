"""A pytest plugin, registered by the package (entry point `pytest11`): a test fails when a
`ScriptedModel` made during it was left with replies it never gave.

"Fails on an extra or unused call": an extra call raises in the run; an unused reply is found
when the test ends, so a script may span several runs of one test (a run, then its resume).
A model made with `allow_unused=True` is not checked. Outside pytest, `assert_done()` or a
`with` block does the same check.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import collecting_scripted_models

__all__ = ["scripted_models_are_used_up"]


@pytest.fixture(autouse=True)
def scripted_models_are_used_up() -> Iterator[None]:
    """Fail the test whose scripted models kept replies (after the test passed otherwise)."""
    with collecting_scripted_models() as made:
        yield
    left = [m for m in made if m.unused and not m.allow_unused]
    if left:
        lines = "\n".join(f"- {m.name}: {len(m.unused)} unused: {m.unused!r}"[:300] for m in left)
        pytest.fail(
            "scripted replies were never asked for (the run took another path than the script; "
            f"give allow_unused=True if that is meant):\n{lines}",
            pytrace=False,
        )
