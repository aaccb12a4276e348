"""Package promises: public names, layering, lazy SDK imports, the one error tree, the README."""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import supervisor
import tools
import tools._errors_base
import tools._errors_provider
import tools._errors_run
import tools._errors_supervisor
import tools.errors
import workers
import workers.testing
from tools.errors import AgentError
from workers import ModelNameError, resolve_model

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"tools": set(), "workers": {"tools"}, "supervisor": {"tools", "workers"}}


@pytest.mark.parametrize("module", [supervisor, workers, tools, tools.errors, workers.testing])
def test_all_lists_exactly_the_public_names_and_each_exists(module: object) -> None:
    names = module.__all__  # type: ignore[attr-defined]
    assert sorted(names) == sorted(set(names)), "duplicates in __all__"
    for name in names:
        assert hasattr(module, name), name
        assert not name.startswith("_")


def test_contract_names_are_importable_from_where_the_design_says() -> None:
    assert supervisor.AgentError is tools.errors.AgentError
    from workers.testing import FunctionModel, ScriptedModel, reply  # noqa: F401


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_layers_import_downward_only(package: str) -> None:
    allowed = LAYERS[package] | {package}
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                top = node.module.split(".")[0]
            elif isinstance(node, ast.Import):
                top = node.names[0].name.split(".")[0]
            else:
                continue
            assert top not in LAYERS or top in allowed, f"{path.relative_to(ROOT)} imports {top}"


def test_importing_the_framework_does_not_import_any_sdk() -> None:
    heavy = "{'anthropic', 'openai', 'httpx2', 'jsonschema', 'vcr'}"
    code = (
        "import sys, supervisor, workers, tools, workers.testing;"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {heavy}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_every_error_is_in_the_one_tree_and_drawn_in_its_docstring() -> None:
    exported = [getattr(tools.errors, name) for name in tools.errors.__all__]
    classes = [c for c in exported if inspect.isclass(c)]
    assert len(classes) >= 25
    for module in (tools._errors_base, tools._errors_provider, tools._errors_run, tools._errors_supervisor):
        members = inspect.getmembers(module, inspect.isclass)
        defined = {c for _, c in members if c.__module__ == module.__name__}
        assert defined <= set(classes), f"{module.__name__}: an error not exported"
    for cls in classes:
        assert issubclass(cls, AgentError), cls
        assert re.search(rf"\b{cls.__name__}\b", tools.errors.__doc__ or ""), (
            f"{cls.__name__} not drawn in the tree"
        )
        assert cls.__doc__, cls


def test_errors_carry_run_id_and_read_well() -> None:
    from tools.errors import ProviderUnavailable

    error = ProviderUnavailable(
        "Overloaded", provider="anthropic", model="m", status_code=529, request_id="req_1", attempts=3
    )
    assert str(error) == "anthropic:m: Overloaded (status 529, request id req_1, after 3 attempts)"
    assert error.run_id is None and error.retryable


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("claude-haiku-4-5", "missing provider"),
        ("anthropic:", "missing provider or model name"),
        (":gpt-4o", "missing provider"),
        ("gemini:pro", "unknown provider 'gemini'"),
        ("openai: gpt-4o", "missing provider or model name"),
        (42, "not a string and not a model object"),
    ],
)
def test_bad_model_strings_are_configuration_errors_naming_the_value(spec: object, reason: str) -> None:
    with pytest.raises(ModelNameError) as caught:
        resolve_model(spec)  # type: ignore[arg-type]
    assert reason in str(caught.value) and caught.value.value == spec
    assert isinstance(caught.value, supervisor.ConfigurationError)


def test_model_strings_resolve_to_providers_and_objects_pass_through() -> None:
    from workers import AnthropicModel, OpenAIModel
    from workers.testing import ScriptedModel

    assert isinstance(resolve_model("anthropic:claude-haiku-4-5"), AnthropicModel)
    openai = resolve_model("openai:gpt-4o-mini")
    assert isinstance(openai, OpenAIModel) and openai.name == "gpt-4o-mini"
    scripted = ScriptedModel([])
    assert resolve_model(scripted) is scripted


def test_readme_has_exactly_the_two_commands_and_its_quickstart_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e '.[dev]' && python -m supervisor demo" in readme
    assert "\npytest " in readme
    quickstart = readme.split("## Quickstart", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    out = subprocess.run(
        [sys.executable, "-c", quickstart], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Invoice 42 was charged twice. invoice_id='42' refunded=False"


def test_demo_runs_offline_journals_and_reports_costs(tmp_path: Path) -> None:
    no_keys = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    out = subprocess.run(
        [sys.executable, "-m", "supervisor", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=no_keys,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout
    assert "running on the scripted test models" in lines
    assert "reply: Writer after refund, order - Writer drafts customer replies" in lines
    assert "retry 1" in lines and "Overloaded (status 529)" in lines
    assert "[invalid] $.amount: -30 is less than or equal to the minimum of 0" in lines
    assert "approval of issue_refund: approve by refund-policy" in lines
    assert "refund step output: Refund(invoice_id='42', refunded=True, amount=30.0)" in lines
    assert "usage total: " in lines and "10 requests (1 retries), $0.0" in lines
    listed = subprocess.run(
        [sys.executable, "-m", "supervisor", "runs", "--store", "foreman-demo.db"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=no_keys,
    )
    assert " succeeded " in listed.stdout and "Invoice 42 may have been charged twice" in listed.stdout


def test_errors_survive_pickle_and_copy_with_their_fields() -> None:
    # Their __init__s take other arguments than the message: pickle (multiprocessing,
    # pytest-xdist) and copy.copy failed with "missing required positional argument".
    import copy
    import pickle

    import tools.errors as te

    cause = te.ToolTimeoutError("slow", 0.2, attempts=3)
    samples = [
        te.ToolArgumentsError("add", [("$.a", "1", "bad")], attempts=3),
        cause,
        te.OutputValidationError("W", [{"loc": ("a",), "msg": "m", "input": 1}], "{}", 3),
        te.MaxTurnsExceeded("W", 3, []),
        te.ProviderRateLimited("slow down", provider="openai", model="gpt-4o", status_code=429),
        te.StepFailed("s", "W", 2, cause, run_id="r1"),
        te.ApproverFailed("wire", "Banker", RuntimeError("down")),
        te.MalformedAPIKey("openai", "OPENAI_API_KEY", "a newline"),
    ]
    for error in samples:
        error.completed = {"a": 1}
        for again in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
            assert type(again) is type(error) and str(again) == str(error)
            assert again.run_id == error.run_id and again.completed == {"a": 1}
    again = pickle.loads(pickle.dumps(samples[5]))
    assert again.cause.timeout_s == 0.2 and again.step == "s"  # type: ignore[attr-defined]


def test_the_bench_workload_still_runs() -> None:
    """`python -m bench` measures this workload; a change that breaks it (a worker class the
    definition checks refuse, say) would otherwise be found only when someone measures."""
    from bench.memory_journal import journal_write_ms
    from bench.supervisor_runs import BenchModel, supervisor

    async def one() -> str:
        sup = supervisor(model)
        try:
            return str((await sup.run("check every desk")).output)
        finally:
            await sup.aclose()

    model = BenchModel(0.0)
    assert asyncio.run(one()) == "checked: ok" and model.calls == 10
    assert journal_write_ms(writers=2, writes=20) > 0
