"""Mistakes in defining tools and workers fail where they are made, as typed errors that say what to write.

Found in review; every test here failed before its fix (a TypeError, a wrong tool list built
letter by letter, or a failure only once a run had started).
"""

from __future__ import annotations

import pytest

from supervisor import Supervisor
from tools import tool
from tools.errors import ConfigurationError, ModelNameError, ToolDefinitionError
from workers import Worker
from workers.testing import ScriptedModel


@tool
async def lookup(invoice_id: str) -> str:
    """Look up an invoice."""
    return "found"


class Billing(Worker):
    """Answers billing questions."""

    model = "anthropic:claude-haiku-4-5"
    tools = [lookup]


def define(**attrs: object) -> type[Worker]:
    return type("Bad", (Worker,), {"__doc__": "Bad.", "model": "anthropic:claude-haiku-4-5", **attrs})


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"tools": lookup}, r"got Tool\('lookup'\); write tools = \[lookup\]"),
        ({"tools": None}, "tools must be a list of tools or functions, got None"),
        ({"tools": "lookup"}, "tools must be a list of tools or functions, got 'lookup'"),
        ({"tools": {"lookup": lookup}}, "tools must be a list of tools or functions, got {'lookup'"),
        ({"handoffs": Billing}, r"handoffs must be a list of Worker .*; write handoffs = \[Billing\]"),
        ({"handoffs": "Billing"}, "handoffs must be a list of Worker classes or names, got 'Billing'"),
        ({"instructions": 5}, "instructions must be a string, got 5"),
        ({"compaction": "no"}, "compaction must be True or False, got 'no'"),
        ({"count_tokens": "yes"}, "count_tokens must be True or False, got 'yes'"),
    ],
)  # fmt: skip
def test_a_setting_of_the_wrong_kind_fails_when_the_worker_class_is_defined(
    attrs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        define(**attrs)


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"model": "gpt-4o"}, "bad model gpt-4o: missing provider or model name \\(worker Bad, model\\)"),
        ({"model": "foo:bar"}, "unknown provider 'foo'"),
        ({"model": 42}, "bad model 42: not a string and not a model object"),
        ({"summary_model": 5}, "bad model 5: .*\\(worker Bad, summary_model\\)"),
    ],
)
def test_a_malformed_model_name_fails_when_the_worker_is_made(attrs: dict[str, object], message: str) -> None:
    """Not in its first run, after other calls of the run were paid for. A class's own model
    is checked when an instance uses it: a placeholder that every instance replaces (a class
    always made with a test model or a local server's) still imports."""
    if "summary_model" in attrs:  # always the class's own: checked when it is defined
        with pytest.raises(ModelNameError, match=message):
            define(**attrs)
        return
    cls = define(**attrs)
    with pytest.raises(ModelNameError, match=message):
        cls()
    assert cls(model="anthropic:claude-haiku-4-5").name == "Bad"
    with pytest.raises(ModelNameError, match="bad model gpt-4o"):
        Billing(model="gpt-4o")


def test_a_worker_class_without_a_model_may_still_be_given_one_when_made() -> None:
    class Later(Worker):
        """Gets its model when made."""

    assert Later(model=ScriptedModel([])).name == "Later"


@pytest.mark.parametrize("seconds", ["5", float("nan"), -1, True])
async def test_an_approval_timeout_that_is_no_number_of_seconds_fails_before_anything_is_sent(
    seconds: object,
) -> None:
    model = ScriptedModel([], allow_unused=True)
    with pytest.raises(ConfigurationError, match="approval_timeout_s must be None or 0 or more seconds"):
        await Billing(model=model).run("go", approver=lambda r: True, approval_timeout_s=seconds)  # type: ignore[arg-type]
    assert model.requests == []


def test_tool_on_a_method_in_a_class_body_says_to_decorate_the_bound_method() -> None:
    with pytest.raises(ToolDefinitionError, match=r"decorate the bound method \(tool\(instance.method\)\)"):

        class Desk:
            @tool
            def add(self, a: int) -> int:
                """Add."""
                return a

    class Counter:
        def add(self, a: int) -> int:
            """Add."""
            return a

    assert list(tool(Counter().add).parameters["properties"]) == ["a"]


def test_a_generator_function_cannot_be_a_tool() -> None:
    async def pages() -> object:
        """Yields pages."""
        yield 1

    def rows() -> object:
        """Yields rows."""
        yield 1

    for function in (pages, rows):
        with pytest.raises(
            ToolDefinitionError, match="is a generator function: a tool returns its whole result"
        ):
            tool(function)


def test_a_worker_without_a_description_may_join_a_supervisor() -> None:
    """Refusing it broke supervisors that worked (run_plan uses no planner); the planner lists
    it as having no description."""

    class NoDoc(Worker):
        model = "anthropic:claude-haiku-4-5"

    class CheaperBilling(Billing):  # other settings, the same job: its base's description
        model = "anthropic:claude-haiku-4-5"

    assert CheaperBilling().description == "Answers billing questions." and NoDoc().description == ""
    Supervisor([NoDoc(), Billing()], model="anthropic:claude-sonnet-4-5", store=None)
    Supervisor([CheaperBilling()], model="anthropic:claude-sonnet-4-5", store=None)
