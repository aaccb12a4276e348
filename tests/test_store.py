"""Durable runs: the SQLite journal, step checkpoints, resume, and stores that are not ours."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from supervisor import Plan, ResumeError, RunAborted, Step, StepFailed, Supervisor
from supervisor._sqlite import SCHEMA_VERSION, SQLiteStore
from supervisor._store import RunRecord, open_store
from tools import tool
from tools.errors import StoreError
from workers import ModelRequest, Worker
from workers.testing import FunctionModel, ScriptedModel, reply

Check = Callable[[Any], Any]
ROOT = Path(__file__).resolve().parent.parent


class Verdict(BaseModel):
    ok: bool
    note: str


class Checker(Worker):
    """Checks things."""

    model = "openai:gpt-4o"
    output = Verdict


class Writer(Worker):
    """Writes."""

    model = "openai:gpt-4o"


PLAN = Plan(steps=[Step("check", "Checker", "check it"), Step("write", "Writer", "write it up", ["check"])])


async def test_a_run_is_journaled_and_listed(checked: Check, tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    checker = checked(ScriptedModel([reply.output({"ok": True, "note": "fine"})]))
    writer = checked(ScriptedModel([reply.text("all good")]))
    async with Supervisor(
        [Checker(model=checker), Writer(model=writer)], model=checked(ScriptedModel([])), store=path
    ) as sup:
        result = await sup.run_plan(PLAN, run_id="r1")
        (run,) = await sup.runs()
    assert (run.run_id, run.status, run.workers) == ("r1", "succeeded", ("Checker", "Writer"))
    assert run.output_json == "all good" and run.plan is not None and len(run.plan["steps"]) == 2
    store = SQLiteStore(path)
    loaded = await store.load("r1")
    assert loaded is not None and set(loaded.steps) == {"check", "write"}
    assert loaded.steps["check"].output_json == '{"ok":true,"note":"fine"}'
    kinds = [kind for kind, _, _ in await store.events("r1")]
    assert kinds == []  # a run's start and end, its steps' and its calls': its row, step rows and calls
    calls = await store.calls("r1")
    assert [c.key for c in calls] == ["1/check.1/0/Checker/1", "1/write.1/0/Writer/1"]
    assert [c.value.usage.requests for c in calls] == [1, 1]  # type: ignore[union-attr]
    await store.aclose()
    assert result.output == "all good"


async def test_an_unfinished_run_resumes_without_running_finished_steps_again(
    checked: Check, tmp_path: Path
) -> None:
    path = tmp_path / "runs.db"
    checker = checked(ScriptedModel([reply.output({"ok": True, "note": "checked once"})]))
    failing = checked(ScriptedModel([reply.text(""), reply.text(""), reply.text("")]))
    first = Supervisor(
        [Checker(model=checker), Writer(model=failing)],
        model=checked(ScriptedModel([])),
        store=path,
        step_retries=0,
    )
    with pytest.raises(StepFailed) as caught:
        await first.run_plan(PLAN, run_id="r2")
    assert list(caught.value.completed) == ["check"]
    await first.aclose()

    # A new supervisor, as after a restart: the checker's model must not be asked again.
    never = checked(ScriptedModel([]))
    writer = checked(ScriptedModel([reply.text("written after resume")]))
    async with Supervisor(
        [Checker(model=never), Writer(model=writer)], model=checked(ScriptedModel([])), store=path
    ) as again:
        result = await again.run_plan(PLAN, run_id="r2")
    assert result.output == "written after resume"
    assert result.steps["check"].output == Verdict(ok=True, note="checked once")  # typed again on load
    assert '"note":"checked once"' in writer.requests[0].messages[0].parts[0].text  # type: ignore[union-attr]
    assert never.requests == []


async def test_a_finished_run_asked_again_returns_its_result_and_runs_nothing(
    checked: Check, tmp_path: Path
) -> None:
    path = tmp_path / "runs.db"
    checker = checked(ScriptedModel([reply.output({"ok": True, "note": "n"})]))
    writer = checked(ScriptedModel([reply.text("done")]))
    async with Supervisor(
        [Checker(model=checker), Writer(model=writer)], model=checked(ScriptedModel([])), store=path
    ) as sup:
        first = await sup.run_plan(PLAN, run_id="r3")
        again = await sup.run_plan(PLAN, run_id="r3")
    assert again.output == first.output == "done"
    assert again.steps["check"].output == Verdict(ok=True, note="n")
    assert len(checker.requests) == 1 and len(writer.requests) == 1


async def test_a_finished_runs_id_asked_with_another_goal_or_plan_is_refused(
    checked: Check, tmp_path: Path
) -> None:
    # It answered with the finished run's result: "delete all data" got the refund's answer.
    async with Supervisor(
        [Writer(model=checked(ScriptedModel([reply.text("done")])))],
        model=checked(ScriptedModel([])),
        store=tmp_path / "runs.db",
    ) as sup:
        plan = Plan(steps=[Step("write", "Writer", "write it up")])
        assert (await sup.run_plan(plan, run_id="r5")).output == "done"
        with pytest.raises(ResumeError, match="it finished for another goal"):
            await sup.run("delete all customer data", run_id="r5")
        with pytest.raises(ResumeError, match="its plan no longer matches"):
            await sup.run_plan(Plan(steps=[Step("other", "Writer", "x")]), run_id="r5")
        assert (await sup.run_plan(plan, run_id="r5")).output == "done"  # the same run: its answer


async def test_resume_refuses_a_run_that_no_longer_matches(checked: Check, tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    failing = checked(ScriptedModel([reply.text("") for _ in range(3)]))
    sup = Supervisor(
        [
            Checker(model=checked(ScriptedModel([reply.output({"ok": True, "note": "n"})]))),
            Writer(model=failing),
        ],
        model=checked(ScriptedModel([])),
        store=path,
        step_retries=0,
    )
    with pytest.raises(StepFailed):
        await sup.run_plan(PLAN, run_id="r4")
    with pytest.raises(ResumeError, match="its plan no longer matches"):
        await sup.run_plan(Plan(steps=[Step("other", "Writer", "x")]), run_id="r4")
    with pytest.raises(ResumeError, match="started for another goal"):
        await sup.run_plan(PLAN, goal="a different goal", run_id="r4")
    await sup.aclose()
    only_writer = Supervisor(
        [Writer(model=checked(ScriptedModel([])))], model=checked(ScriptedModel([])), store=path
    )
    with pytest.raises(ResumeError, match="it ran with workers Checker, Writer; this supervisor has Writer"):
        await only_writer.run_plan(Plan(steps=[Step("write", "Writer", "write it up")]), run_id="r4")
    await only_writer.aclose()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_an_aborted_run_is_recorded_with_its_finished_steps_and_taken_up_again(
    checked: Check, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    db = str(tmp_path / "runs.db") if kind == "sqlite" else request.getfixturevalue("postgres_url")
    started = asyncio.Event()

    async def hang(request: ModelRequest) -> Any:
        started.set()
        await asyncio.sleep(30)

    checker = checked(ScriptedModel([reply.output({"ok": True, "note": "n"})]))
    sup = Supervisor(
        [Checker(model=checker), Writer(model=checked(FunctionModel(hang)))],
        model=checked(ScriptedModel([])),
        store=db,
    )
    run = asyncio.create_task(sup.run_plan(PLAN, run_id="r5"))
    await started.wait()
    sup.abort("r5", "customer called back")
    with pytest.raises(RunAborted):
        await run
    (record,) = await sup.runs()
    assert record.status == "aborted" and "customer called back" in (record.error or "")
    await sup.aclose()
    store = open_store(db)
    loaded = await store.load("r5")
    await store.aclose()
    assert loaded is not None and list(loaded.steps) == ["check"]
    writer = checked(ScriptedModel([reply.text("finished later")]))
    async with Supervisor(
        [Checker(model=checked(ScriptedModel([]))), Writer(model=writer)],
        model=checked(ScriptedModel([])),
        store=db,
    ) as again:
        assert (await again.run_plan(PLAN, run_id="r5")).output == "finished later"


def test_a_file_that_is_not_sqlite_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database" * 200)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not an SQLite database"):
        SQLiteStore(path)
    assert path.read_bytes() == before


# "#", "?" and "%" in a name: the read-only check opened "file:in#voices.db", up to "#" ("in"),
# a file that is not there, so a foreign database so named got foreman's tables added to it.
ODD_NAMES = ["in#voices.db", "a?b.db", "c%41.db"]


@pytest.mark.parametrize("name", ["other.db", *ODD_NAMES])
def test_another_programs_database_is_refused_and_left_untouched(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id INTEGER)")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a foreman store .*customers"):
        SQLiteStore(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [name]  # nothing opened under another name


@pytest.mark.parametrize("name", ODD_NAMES)
async def test_any_legal_file_name_is_a_store_of_its_own(name: str, tmp_path: Path) -> None:
    ours = tmp_path / f"ours-{name}"
    store = SQLiteStore(ours)
    await store.start(RunRecord("r1", "goal", workers=("Writer",)))
    assert [r.run_id for r in await store.runs()] == ["r1"]
    await store.aclose()
    files = sorted(f for f in os.listdir(tmp_path) if not f.endswith(("-wal", "-shm")))
    assert files == [f"ours-{name}"]  # no stray file named by the part before "#" or "?"


def test_a_database_of_views_only_or_with_a_broken_version_is_refused_and_left_untouched(
    tmp_path: Path,
) -> None:
    views = tmp_path / "views.db"
    with sqlite3.connect(views) as db:
        db.execute("CREATE VIEW answer AS SELECT 42")
    before = views.read_bytes()
    with pytest.raises(StoreError, match="not a foreman store .*answer"):  # it was taken as empty
        SQLiteStore(views)
    assert views.read_bytes() == before
    broken = tmp_path / "broken.db"
    SQLiteStore(broken)
    with sqlite3.connect(broken) as db:
        db.execute("UPDATE foreman_meta SET value = 'four' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="its schema_version 'four' is not a number"):  # was a ValueError
        SQLiteStore(broken)


def test_processes_opening_a_new_store_at_the_same_moment_all_open_it(tmp_path: Path) -> None:
    """Each read the version (0) before any had migrated: all but one ran the migrations again
    ("table foreman_meta already exists"), or found the switch to WAL mode locked."""
    path = tmp_path / "runs.db"
    start = tmp_path / "go"
    code = textwrap.dedent(
        f"""
        import os, time
        from supervisor._sqlite import SQLiteStore
        while not os.path.exists({str(start)!r}):  # bounded by the test's timeout
            time.sleep(0.001)
        SQLiteStore({str(path)!r})
        """
    )
    children = [
        subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    try:
        import time

        time.sleep(1.0)  # every child waiting at the line
        start.touch()
        errors = [child.communicate(timeout=60)[1] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert [child.returncode for child in children] == [0] * 6, errors


def test_an_older_version_migrating_as_a_newer_one_did_leaves_the_newer_mark(tmp_path: Path) -> None:
    """Two versions opening an old store at once (a rolling deploy): the older one, having read
    the old version before the lock, wrote its own version over the newer one's."""
    from supervisor._sqlite_schema import migrate

    path = tmp_path / "runs.db"
    SQLiteStore(path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE foreman_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match="written by a newer version"):
        migrate(db, SCHEMA_VERSION - 1, str(path))  # what it read before the newer one migrated
    assert db.execute("SELECT value FROM foreman_meta WHERE key = 'schema_version'").fetchone() == (
        str(SCHEMA_VERSION + 1),
    )
    db.close()


def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    SQLiteStore(path)
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE foreman_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
        )
    with pytest.raises(StoreError, match="newer version"):
        SQLiteStore(path)


async def test_in_memory_runs_resume_within_the_process(checked: Check) -> None:
    failing = checked(ScriptedModel([reply.text("")]))
    checker = checked(ScriptedModel([reply.output({"ok": False, "note": "n"})]))
    writer_models = [failing, checked(ScriptedModel([reply.text("second time")]))]
    sup = Supervisor(
        [Checker(model=checker), Writer(model=FunctionModel(lambda r: writer_models[0].request(r)))],
        model=checked(ScriptedModel([])),
        step_retries=0,
    )
    with pytest.raises(StepFailed):
        await sup.run_plan(PLAN, run_id="m1")
    writer_models.pop(0)
    result = await sup.run_plan(PLAN, run_id="m1")
    assert result.output == "second time" and len(checker.requests) == 1


async def test_the_runs_command_shows_what_a_run_still_running_has_spent(tmp_path: Path) -> None:
    # It read the record's usage, written with steps and the end: a run waiting on a person
    # (or whose process died) showed $0.000000.
    import io

    from supervisor.__main__ import _runs
    from workers import Price

    @tool(risky=True)
    async def refund(invoice_id: str) -> str:
        """Refund."""
        return "ok"

    class Payer(Worker):
        """Refunds."""

        model = "openai:gpt-4o"
        tools = [refund]

    price = Price(input=1_000_000.0, output=0.0)  # a dollar a token: the cost is the input tokens
    model = ScriptedModel([reply.tool_call("refund", invoice_id="42")], price=price)
    path = tmp_path / "runs.db"
    async with Supervisor([Payer(model=model)], model=ScriptedModel([]), store=path) as sup:
        run = asyncio.create_task(sup.run_plan(Plan(steps=[Step("p", "Payer", "refund 42")]), run_id="waits"))
        for _ in range(200):  # bounded: 10 s
            if await sup.pending_approvals():
                break
            await asyncio.sleep(0.05)
        out = io.StringIO()
        await _runs(SQLiteStore(path), str(path), out)
        run.cancel()
        with contextlib.suppress(BaseException):
            await run
    (line,) = [row for row in out.getvalue().splitlines() if row.startswith("waits")]
    assert len(model.requests) == 1 and "running" in line
    assert "$" in line and "$0.000000" not in line and "unpriced" not in line


def test_the_runs_command_lists_runs_and_refuses_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"

    async def one_run() -> None:
        writer = ScriptedModel([reply.text("hi")])
        async with Supervisor([Writer(model=writer)], model=ScriptedModel([]), store=path) as sup:
            await sup.run_plan(Plan(steps=[Step("w", "Writer", "say hi")]), goal=None, run_id="listed-run")

    asyncio.run(one_run())
    out = subprocess.run(
        [sys.executable, "-m", "supervisor", "runs", "--store", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "listed-run" in out.stdout and "succeeded" in out.stdout and "(plan)" in out.stdout
    (tmp_path / "junk.db").write_bytes(b"junk" * 100)
    bad = subprocess.run(
        [sys.executable, "-m", "supervisor", "runs", "--store", str(tmp_path / "junk.db")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert bad.returncode == 1 and "not an SQLite database" in bad.stderr and "Traceback" not in bad.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "supervisor", "runs", "--store", str(tmp_path / "nope.db")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert (
        missing.returncode == 1 and "no such file" in missing.stderr and not (tmp_path / "nope.db").exists()
    )


CHILD = """
import asyncio, os, signal, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from supervisor import Plan, Step, Supervisor
from tools import tool
from workers import Worker
from workers.testing import FunctionModel, reply

SIDE = Path({side!r})

@tool(idempotent=True)  # killed half-way, it may run again (tests/test_crash_resume.py has the rest)
def act(name: str) -> str:
    \"\"\"A side effect, counted in a file; 'boom' kills the process first.\"\"\"
    if name == "boom" and os.environ.get("KILL") == "1":
        os.kill(os.getpid(), signal.SIGKILL)
    with SIDE.open("a") as f:
        f.write(name + "\\n")
    return "done " + name

class Actor(Worker):
    \"\"\"Acts.\"\"\"
    model = "openai:gpt-4o"
    tools = [act]

def decide(request):
    if request.tool_results:
        return reply.text("ok")
    return reply.tool_call("act", name=request.messages[0].parts[0].text.split()[0])

async def main():
    steps = [Step("a", "Actor", "first"), Step("b", "Actor", "second", ["a"])]
    steps.append(Step("c", "Actor", "boom", ["b"]))
    model = FunctionModel(decide)
    async with Supervisor([Actor(model=model)], model=model, store={db!r}) as sup:
        result = await sup.run_plan(Plan(steps=steps), run_id="crash")
        print(result.output)

asyncio.run(main())
"""


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_process_killed_between_steps_resumes_and_repeats_no_finished_step(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    side = tmp_path / "side_effects.txt"
    db = str(tmp_path / "runs.db") if kind == "sqlite" else request.getfixturevalue("postgres_url")
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD.format(root=str(ROOT), side=str(side), db=db)))
    killed = subprocess.run(
        [sys.executable, str(script)], env={**os.environ, "KILL": "1"}, capture_output=True, timeout=60
    )
    assert killed.returncode == -signal.SIGKILL
    assert side.read_text().split() == ["first", "second"]
    resumed = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "KILL": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "ok"
    assert side.read_text().split() == ["first", "second", "boom"]  # a and b ran once each


APP = """
from supervisor import Supervisor
from workers import Worker
from workers.testing import ScriptedModel, reply

class Checker(Worker):
    \"\"\"Checks things.\"\"\"
    model = "openai:gpt-4o"

class Writer(Worker):
    \"\"\"Writes.\"\"\"
    model = "openai:gpt-4o"

def make_supervisor(store):
    # After the restart the checker must not be asked again: its script is empty.
    writer = Writer(model=ScriptedModel([reply.text("resumed and done")]))
    return Supervisor([Checker(model=ScriptedModel([])), writer], model=ScriptedModel([]), store=store)
"""


async def test_the_resume_command_finishes_a_run_with_the_apps_workers(
    checked: Check, tmp_path: Path
) -> None:
    path = tmp_path / "runs.db"
    (tmp_path / "myapp.py").write_text(textwrap.dedent(APP))

    class Checker(Worker):  # the same names as in the app
        """Checks things."""

        model = "openai:gpt-4o"

    checker = checked(ScriptedModel([reply.text("checked")]))
    failing = checked(ScriptedModel([reply.text("")]))
    plan = Plan(
        steps=[Step("check", "Checker", "check it"), Step("write", "Writer", "write it up", ["check"])]
    )
    sup = Supervisor(
        [Checker(model=checker), Writer(model=failing)],
        model=checked(ScriptedModel([])),
        store=path,
        step_retries=0,
    )
    with pytest.raises(StepFailed):
        await sup.run_plan(plan, run_id="to-resume")
    await sup.aclose()

    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    command = [
        sys.executable,
        "-m",
        "supervisor",
        "resume",
        "to-resume",
        "--store",
        str(path),
        "--app",
        "myapp:make_supervisor",
    ]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "resumed and done"
    unknown = [*command[:4], "nope", *command[5:]]
    missing = await asyncio.to_thread(
        subprocess.run, unknown, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env
    )
    assert missing.returncode == 1 and "error: no run 'nope' in" in missing.stderr
    wrong = [*command[:-1], "myapp:Checker"]  # a class, not a factory: it was a traceback
    refused = await asyncio.to_thread(
        subprocess.run, wrong, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env
    )
    assert refused.returncode == 1 and refused.stderr.startswith("error: app 'myapp:Checker': Checker(store)")
    assert "Traceback" not in refused.stderr


SLOW_APP = """
import os, time
from supervisor import Supervisor
from tools import tool
from workers import Worker
from workers.testing import ScriptedModel, reply

@tool
def file_it(name: str) -> str:
    \"\"\"File a paper (slowly).\"\"\"
    with open(os.environ["EFFECTS"], "a") as out:
        out.write("start\\n")
        out.flush()
        time.sleep(1.5)
        out.write("done\\n")
    return "filed"

class Writer(Worker):
    \"\"\"Writes.\"\"\"
    model = "openai:gpt-4o"
    tools = [file_it]

def make_supervisor(store):
    script = [reply.tool_call("file_it", name="x"), reply.text("filed it")]
    writer = Writer(model=ScriptedModel(script, allow_unused=True))
    return Supervisor([writer], model=ScriptedModel([]), store=store)
"""


def _text_of(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def test_sigterm_stops_the_resume_command_as_ctrl_c_does(checked: Check, tmp_path: Path) -> None:
    """SIGTERM killed it at once: the tool in its thread was cut half-way (a person was asked
    again about it later) and the run was left marked running."""
    path, effects = tmp_path / "runs.db", tmp_path / "effects.txt"
    (tmp_path / "slowapp.py").write_text(textwrap.dedent(SLOW_APP))
    async with Supervisor(
        [Writer(model=checked(ScriptedModel([reply.text("")])))],
        model=checked(ScriptedModel([])),
        store=path,
        step_retries=0,
    ) as sup:
        with pytest.raises(StepFailed):
            await sup.run_plan(Plan(steps=[Step("w", "Writer", "file it")]), run_id="slow")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "EFFECTS": str(effects)}
    command = ["resume", "slow", "--store", str(path), "--app", "slowapp:make_supervisor"]
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "supervisor", *command, cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        for _ in range(600):  # bounded: 30 s
            if "start" in await asyncio.to_thread(_text_of, effects):
                break
            await asyncio.sleep(0.05)
        child.send_signal(signal.SIGTERM)
        _, raw = await asyncio.wait_for(child.communicate(), 60)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    err = raw.decode()
    assert child.returncode == 128 + signal.SIGTERM and err.endswith("terminated\n"), err
    assert await asyncio.to_thread(_text_of, effects) == "start\ndone\n"  # the tool finished in its thread
    store = SQLiteStore(path)
    record = await store.load("slow")
    await store.aclose()
    assert record is not None and record.status == "aborted" and record.aborted_by is None  # resumable
    from supervisor.__main__ import _runs

    listed = io.StringIO()
    await _runs(SQLiteStore(path), str(path), listed)
    assert " stopped " in listed.getvalue()  # it read "aborted", as if a person had ended it


@pytest.mark.parametrize(
    ("source", "app", "message"),
    [
        (
            "raise ValueError('broken at import')",
            "broken:make",
            "cannot import it (ValueError: broken at import)",
        ),
        ("def make(:", "broken:make", "cannot import it (SyntaxError"),
        ("def make(store): return 42", "broken:make", "make(store) returned 42, not a Supervisor"),
        (
            "def make(store): raise RuntimeError('no db')",
            "broken:make",
            "make(store) raised RuntimeError: no db",
        ),
        ("", "broken:make", "module broken has no function make"),
        ("", ":make", "no module named; give module:factory"),
    ],
)
def test_an_app_that_cannot_make_a_supervisor_is_a_configuration_error(
    source: str, app: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each gave a traceback from the resume command (and the DBOS worker, which shares this)."""
    from supervisor._app import supervisor_from
    from tools.errors import ConfigurationError

    (tmp_path / "broken.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "broken", raising=False)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        supervisor_from(app, str(tmp_path / "runs.db"))


async def test_a_resumed_run_spends_what_is_left_of_its_budget_not_a_new_one(
    checked: Check, tmp_path: Path
) -> None:
    from supervisor import Budget, BudgetExceeded
    from tests.recorders import Events
    from workers import ModelCallEvent, Price

    path, events = tmp_path / "runs.db", Events()
    plan = Plan(steps=[Step(f"s{i}", "Writer", f"part {i}") for i in range(4)])
    budget = Budget(max_tokens=700, min_answer_tokens=16)  # about three answers of ~210 tokens fit
    first = checked(FunctionModel(lambda r: reply.text("y" * 800), price=Price(1, 1)))
    sup = Supervisor(
        [Writer(model=first)], model=checked(ScriptedModel([])), store=path, budget=budget, events=events
    )
    with pytest.raises(BudgetExceeded):
        await sup.run_plan(plan, run_id="b1")
    await sup.aclose()
    again = checked(FunctionModel(lambda r: reply.text("y" * 800), price=Price(1, 1)))
    sup = Supervisor(
        [Writer(model=again)], model=checked(ScriptedModel([])), store=path, budget=budget, events=events
    )
    with pytest.raises(BudgetExceeded):
        await sup.run_plan(plan, run_id="b1")  # what is left does not fit another answer
    await sup.aclose()
    spent = sum(e.usage.input_tokens + e.usage.output_tokens for e in events.of(ModelCallEvent))
    assert len(first.requests) == 4 and again.requests == [] and spent <= 700  # the 4th was cut short


async def test_the_same_run_id_twice_at_once_runs_its_steps_once(checked: Check) -> None:
    async def slow(request: ModelRequest) -> Any:
        await asyncio.sleep(0.05)
        return reply.text("once")

    writer = checked(FunctionModel(slow))
    sup = Supervisor([Writer(model=writer)], model=checked(ScriptedModel([])))
    plan = Plan(steps=[Step("w", "Writer", "x")])
    outcomes = await asyncio.gather(
        sup.run_plan(plan, run_id="same"), sup.run_plan(plan, run_id="same"), return_exceptions=True
    )
    assert sum(isinstance(o, ResumeError) for o in outcomes) == 1 and len(writer.requests) == 1


async def test_a_run_whose_output_model_changed_is_refused(checked: Check, tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    checker = checked(ScriptedModel([reply.output({"ok": True, "note": "n"})]))
    failing = checked(ScriptedModel([reply.text("")]))
    sup = Supervisor(
        [Checker(model=checker), Writer(model=failing)],
        model=checked(ScriptedModel([])),
        store=path,
        step_retries=0,
    )
    with pytest.raises(StepFailed):
        await sup.run_plan(PLAN, run_id="chg")
    await sup.aclose()

    class Verdict2(BaseModel):
        score: int

    # A class of the same name with a different output model than when the run started.
    changed = type(
        "Checker", (Worker,), {"__doc__": "Checks things.", "model": "openai:gpt-4o", "output": Verdict2}
    )

    sup = Supervisor(
        [changed(model=checked(ScriptedModel([]))), Writer(model=checked(ScriptedModel([])))],
        model=checked(ScriptedModel([])),
        store=path,
    )
    with pytest.raises(ResumeError, match="step 'check' no longer matches Checker's output"):
        await sup.run_plan(PLAN, run_id="chg")
    await sup.aclose()


@pytest.mark.parametrize("now_takes", ["a model", "text"])
async def test_resuming_after_a_workers_input_model_changed_is_a_resume_error(
    now_takes: str, checked: Check, tmp_path: Path
) -> None:
    """It raised pydantic's ValidationError (no AgentError), and the resume command a traceback."""

    class Order(BaseModel):
        order_id: int

    before, after = (str, Order) if now_takes == "a model" else (Order, str)
    task: Any = "check order 7" if before is str else {"order_id": 7}
    path = tmp_path / "runs.db"

    def checker_class(kind: Any) -> type[Worker]:
        return type("Checker", (Worker,), {"__doc__": "Checks.", "model": "openai:gpt-4o", "input": kind})

    step = {"id": "check", "worker": "Checker", "input": task, "depends_on": [], "reason": "it checks"}
    planner = checked(ScriptedModel([reply.output({"reasoning": "one check", "steps": [step]})]))
    async with Supervisor(
        [checker_class(before)(model=checked(ScriptedModel([reply.text("")])))],
        model=planner,
        store=path,
        step_retries=0,
        max_replans=0,
    ) as sup:
        with pytest.raises(StepFailed):
            await sup.run("check the order", run_id="in")
    async with Supervisor(
        [checker_class(after)(model=checked(ScriptedModel([])))], model=checked(ScriptedModel([])), store=path
    ) as sup:
        with pytest.raises(ResumeError, match="step 'check' no longer matches Checker's input"):
            await sup.run("check the order", run_id="in")


async def test_a_checkpoint_that_cannot_commit_fails_in_bounded_time(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    store = SQLiteStore(path, commit_timeout_s=0.3)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the file
    try:
        with pytest.raises(StoreError, match=r"no commit within 0.3 s") as caught:
            await store.finish("r", "failed", {}, None, "x")
        assert caught.value.transient  # it may pass once the other process lets go
        # Later waits get their own bound from the same shared timer.
        with pytest.raises(StoreError, match=r"no commit within 0.3 s"):
            await store.finish("r", "failed", {}, None, "y")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert await store.start(RunRecord("r", None, "running", None, ("Writer",)))  # and it recovers
    await store.aclose()


async def test_a_run_whose_store_failed_a_while_is_recorded_failed_and_resumes_elsewhere(
    checked: Check, tmp_path: Path
) -> None:
    """The store locked past the commit timeout fails the run with StoreError; once it is free,
    the run's end is there (failed), so another supervisor takes it up and finishes it."""
    path = tmp_path / "runs.db"
    held = asyncio.Event()

    async def slow(request: ModelRequest) -> Any:
        held.set()
        await asyncio.sleep(0.4)  # the store is locked meanwhile
        return reply.text("written")

    sup = Supervisor(
        [Writer(model=checked(FunctionModel(slow)))], model=checked(ScriptedModel([])), store=path
    )
    sup._store._writer._timeout_s = 0.3  # type: ignore[attr-defined]  # checkpoints give up fast
    run = asyncio.create_task(sup.run_plan(Plan(steps=[Step("w", "Writer", "write")]), run_id="s"))
    await held.wait()
    blocker = sqlite3.connect(path, isolation_level=None, timeout=5)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the file past the timeout
    try:
        with pytest.raises(StoreError, match="no commit within"):
            await run
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await sup.aclose()
    again = checked(FunctionModel(lambda request: reply.text("written")))  # asked, if the answer was lost
    async with Supervisor([Writer(model=again)], model=checked(ScriptedModel([])), store=path) as other:
        resumed = await other.run_plan(Plan(steps=[Step("w", "Writer", "write")]), run_id="s")
    assert resumed.output == "written"  # it was left "running", refused to any other supervisor


async def test_a_store_whose_file_cannot_be_opened_fails_its_checkpoints_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    store = SQLiteStore(folder / "runs.db", commit_timeout_s=30)
    folder.rename(tmp_path / "moved")  # the writer thread opens the file on first write: it is gone
    started = asyncio.get_running_loop().time()
    with pytest.raises(StoreError, match="cannot open") as caught:
        await store.finish("r", "failed", {}, None, "x")
    assert asyncio.get_running_loop().time() - started < 10  # not the 30 s bound: it said why
    assert caught.value.transient  # the folder may come back (a mount)
    await store.aclose()


async def test_a_write_the_file_refuses_is_a_store_error_that_will_not_pass(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    store = SQLiteStore(path)
    assert await store.start(RunRecord("r", None, "running", None, ("Writer",)))
    other = sqlite3.connect(path)
    other.execute("ALTER TABLE runs DROP COLUMN aborted_by")  # another program changed the table
    other.commit()
    other.close()
    with pytest.raises(StoreError, match="write failed: OperationalError") as caught:
        await store.finish("r", "failed", {}, None, "x")
    assert not caught.value.transient
    await store.aclose()
