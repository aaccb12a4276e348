"""A process killed with SIGKILL at each kind of checkpoint, then resumed by a new process.

Promise: nothing finished runs twice. Finished model calls are not sent again, finished tool
calls give back their recorded results, and a tool call caught half-way is handled by what the
tool declared: idempotent tools run again, risky ones go back to a person (told it may have run),
others fail the run clearly. Side effects and model calls are counted in a log file.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from supervisor._sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import asyncio, os, signal, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from supervisor import Supervisor
from tools import tool
from tools.errors import AgentError
from workers import Worker
from workers.testing import FunctionModel, reply

LOG = Path(os.environ["LOG"])
KILL = os.environ.get("KILL", "")
SIG = getattr(signal, os.environ.get("SIG", "SIGKILL"))
FAIL_FIRST = os.environ.get("FAIL_FIRST") == "1"
STEPS = ["books", "audit"][: int(os.environ.get("STEPS", "1"))]
calls = 0
REACHED = set()


def log(line):
    with LOG.open("a") as f:
        f.write(line + "\\n")


def die_at(point):
    if KILL == point:
        os.kill(os.getpid(), SIG)


@tool(idempotent=True)
def fetch(key: str) -> str:
    \"\"\"Reads a value (safe to repeat).\"\"\"
    log(f"fetch {{key}}")
    die_at("in-fetch")
    return f"value of {{key}}"


@tool
def record(entry: str) -> str:
    \"\"\"Writes an entry in the books (not safe to repeat).\"\"\"
    log(f"record {{entry}}")
    die_at("in-record")
    return f"recorded {{entry}}"


@tool(risky=True)
def pay(amount: int) -> str:
    \"\"\"Pays money out.\"\"\"
    log(f"pay {{amount}}")
    die_at("in-pay")
    return f"paid {{amount}}"


class Clerk(Worker):
    \"\"\"Keeps the books.\"\"\"

    model = "openai:gpt-4o"
    tools = [fetch, record, pay]


async def clerk(request):
    global calls
    calls += 1
    task = request.messages[0].parts[0].text.split()[2]  # "do the books" -> "books"
    if FAIL_FIRST and calls == 1:
        log("model clerk failed")
        return reply.error(400, "a bad request, once")
    turn = sum(1 for m in request.messages if m.kind == "assistant") + 1
    log(f"model clerk {{turn}}" if task == "books" else f"model clerk {{task}} {{turn}}")
    if len(STEPS) > 1 and turn == 3 and KILL:  # the audit dies once the books step waits here too
        REACHED.add(task)
        for _ in range(1000):
            if len(REACHED) == len(STEPS) and task == "audit":
                break
            await asyncio.sleep(0.01)
    if task == "audit":
        die_at(f"model:clerk:audit:{{turn}}")
    die_at(f"model:clerk:{{turn}}")
    entry = "x" if task == "books" else "x-" + task
    turns = [("fetch", {{"key": "a"}}), ("record", {{"entry": entry}}), ("pay", {{"amount": 5}})]
    if turn <= len(turns):
        name, arguments = turns[turn - 1]
        return reply.tool_call(name, **arguments)
    results = [p.content for m in request.messages for p in m.parts if p.kind == "tool_result"]
    return reply.text(task + " done: " + "; ".join(results))


def boss(request):
    if request.tools:  # the planner: its output is a tool
        log("model planner")
        die_at("model:planner")
        step = {{"worker": "Clerk", "reason": "it keeps them", "depends_on": []}}
        steps = [dict(step, id=task, input="do the " + task) for task in STEPS]
        return reply.output({{"reasoning": "clerks", "steps": steps}})
    log("model synthesizer")
    die_at("model:synthesizer")
    return reply.text("all done")


def approve(request):
    log(f"asked {{request.tool}} {{'started before' in request.reason}}")
    return os.environ.get("APPROVER") != "deny"


def told(event):
    if event.kind == "run" and event.status != "started":
        die_at("told-the-end")


async def main():
    approver = None if os.environ.get("APPROVER") == "queue" else approve
    clerks = [Clerk(model=FunctionModel(clerk))]
    sup = Supervisor(
        clerks, model=FunctionModel(boss), store=os.environ["DB"], approver=approver, events=told
    )
    async with sup:
        try:
            result = await sup.run("do the books", run_id="books")
        except AgentError as error:
            print("ERR", type(error).__name__, error)
        else:
            print("OK", result.output, result.usage.requests)
            if len(STEPS) > 1:
                print("\\n".join(f"{{s}}: {{result.steps[s].output}}" for s in STEPS))


asyncio.run(main())
"""


def _child(tmp_path: Path) -> Path:
    script = tmp_path / "child.py"
    if not script.exists():
        script.write_text(textwrap.dedent(CHILD.format(root=str(ROOT))))
    return script


def _run(
    tmp_path: Path, kill: str = "", approver: str = "callable", **more: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOG": str(tmp_path / "log"), "DB": str(tmp_path / "runs.db"), "KILL": kill}
    env.update(APPROVER=approver, **more)
    return subprocess.run(
        [sys.executable, str(_child(tmp_path))], env=env, capture_output=True, text=True, timeout=60
    )


def _log(tmp_path: Path) -> list[str]:
    return (tmp_path / "log").read_text().splitlines()


def _killed_then_resumed(tmp_path: Path, kill: str, **more: str) -> str:
    killed = _run(tmp_path, kill, **more)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = _run(tmp_path, **{k: v for k, v in more.items() if k == "STEPS"})
    assert resumed.returncode == 0, resumed.stderr
    return resumed.stdout.strip()


ONCE = [
    "model planner",
    "model clerk 1",
    "fetch a",
    "model clerk 2",
    "record x",
    "model clerk 3",
    "asked pay False",
    "pay 5",
    "model clerk 4",
    "model synthesizer",
]


def test_an_uninterrupted_run_does_everything_once(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert result.stdout.strip() == "OK all done 6"
    assert _log(tmp_path) == ONCE


@pytest.mark.parametrize(
    ("kill", "sent_again"),
    [
        ("model:planner", "model planner"),
        ("model:clerk:1", "model clerk 1"),
        ("model:clerk:3", "model clerk 3"),
        ("model:synthesizer", "model synthesizer"),
    ],
)
def test_killed_during_a_model_call_resumes_sending_only_that_call_again(
    tmp_path: Path, kill: str, sent_again: str
) -> None:
    assert _killed_then_resumed(tmp_path, kill) == "OK all done 6"
    log = _log(tmp_path)
    # The call in flight when the process died had no answer: it is the only one sent twice.
    assert log.count(sent_again) == 2
    assert sorted(line for line in log if line != sent_again) == sorted(x for x in ONCE if x != sent_again)
    assert log.count("record x") == 1 and log.count("pay 5") == 1 and log.count("asked pay False") == 1


def test_killed_inside_a_tool_that_is_not_idempotent_fails_clearly_and_does_not_repeat_it(
    tmp_path: Path,
) -> None:
    out = _killed_then_resumed(tmp_path, "in-record")
    assert out.startswith("ERR ToolInterrupted tool 'record' was started with")
    assert '{"entry":"x"}' in out and "was not run again" in out
    assert _log(tmp_path).count("record x") == 1
    assert "model clerk 3" not in _log(tmp_path)  # the run stopped there
    with sqlite3.connect(tmp_path / "runs.db") as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [("failed",)]


def test_killed_inside_an_idempotent_tool_runs_it_again_and_finishes(tmp_path: Path) -> None:
    assert _killed_then_resumed(tmp_path, "in-fetch") == "OK all done 6"
    log = _log(tmp_path)
    assert log.count("fetch a") == 2  # declared safe to repeat
    assert log.count("model clerk 1") == 1 and log.count("record x") == 1 and log.count("pay 5") == 1


def test_killed_inside_a_risky_tool_asks_the_person_again_saying_it_may_have_run(tmp_path: Path) -> None:
    assert _killed_then_resumed(tmp_path, "in-pay") == "OK all done 6"
    log = _log(tmp_path)
    assert log.count("asked pay False") == 1 and log.count("asked pay True") == 1
    assert log.count("pay 5") == 2  # the person approved running it again
    assert log.count("record x") == 1 and log.count("model clerk 3") == 1


def test_an_approval_decided_while_the_process_was_dead_applies_on_resume_and_runs_once(
    tmp_path: Path,
) -> None:
    _killed_waiting_then_decided(tmp_path, "approved", None, later_s=0.5)
    resumed = _run(tmp_path, approver="queue")
    assert resumed.stdout.strip() == "OK all done 6", resumed.stderr
    log = _log(tmp_path)
    assert log.count("pay 5") == 1 and log.count("record x") == 1 and log.count("model clerk 3") == 1
    with sqlite3.connect(tmp_path / "runs.db") as db:  # asked once, decided once, never re-filed
        assert db.execute("SELECT status, decided_by FROM approvals").fetchall() == [("approved", "alice")]
        (filed, decided), *_ = db.execute("SELECT created_at, decided_at FROM approvals")
        bodies = [json.loads(b) for (b,) in db.execute("SELECT body FROM events WHERE kind = 'approval'")]
    # The trace tells how long alice took, not the instant the resumed process waited.
    approved = [b for b in bodies if b["decision"] == "approve"]
    assert len(approved) == 1 and approved[0]["by"] == "alice"
    assert approved[0]["waited_s"] == pytest.approx(decided - filed) and decided - filed >= 0.5


def test_a_run_killed_as_its_end_is_announced_has_its_answer_and_is_not_run_again(tmp_path: Path) -> None:
    # The final answer is committed with the run's end, and the end before anyone is told.
    assert _killed_then_resumed(tmp_path, "told-the-end") == "OK all done 6"
    assert _log(tmp_path) == ONCE


def test_a_run_killed_after_an_approved_call_does_not_run_it_or_ask_again(tmp_path: Path) -> None:
    assert _killed_then_resumed(tmp_path, "model:clerk:4") == "OK all done 6"
    log = _log(tmp_path)
    assert log.count("pay 5") == 1 and log.count("asked pay False") == 1 and log.count("model clerk 4") == 2


def test_a_run_stopped_by_a_tool_caught_half_way_stays_stopped_however_often_it_is_resumed(
    tmp_path: Path,
) -> None:
    assert _killed_then_resumed(tmp_path, "in-record").startswith("ERR ToolInterrupted")
    again = _run(tmp_path)
    assert again.stdout.startswith("ERR ToolInterrupted"), again.stdout + again.stderr
    assert _log(tmp_path).count("record x") == 1


def test_a_run_stopped_with_ctrl_c_resumes_like_a_killed_one(tmp_path: Path) -> None:
    interrupted = _run(tmp_path, "model:clerk:3", SIG="SIGINT")
    assert interrupted.returncode != 0
    with sqlite3.connect(tmp_path / "runs.db") as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [("aborted",)]
    resumed = _run(tmp_path)
    assert resumed.stdout.strip() == "OK all done 6", resumed.stderr
    log = _log(tmp_path)
    assert log.count("record x") == 1 and log.count("fetch a") == 1 and log.count("model clerk 2") == 1


def test_a_step_attempt_that_failed_before_the_kill_fails_the_same_way_on_resume(tmp_path: Path) -> None:
    # Attempt 1 fails on a provider error, attempt 2 records, the process dies in attempt 2.
    killed = _run(tmp_path, "model:clerk:3", FAIL_FIRST="1")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = _run(tmp_path)  # the provider would answer now: attempt 1 must not be tried again
    assert resumed.stdout.strip() == "OK all done 6", resumed.stderr
    log = _log(tmp_path)
    assert log.count("model clerk failed") == 1 and log.count("record x") == 1
    assert log.count("model clerk 1") == 1 and log.count("model clerk 3") == 2


def test_a_denial_is_replayed_on_resume_and_not_asked_again(tmp_path: Path) -> None:
    killed = _run(tmp_path, "model:clerk:4", approver="deny")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = _run(tmp_path)  # this approver would approve: it must not be asked
    assert resumed.stdout.strip() == "OK all done 6", resumed.stderr
    log = _log(tmp_path)
    assert log.count("asked pay False") == 1 and "pay 5" not in log


def test_parallel_steps_of_one_worker_resume_each_from_its_own_records(tmp_path: Path) -> None:
    # Killed in the audit's third model call while the books step is in its own third call.
    out = _killed_then_resumed(tmp_path, "model:clerk:audit:3", STEPS="2")
    lines = out.splitlines()
    assert lines[0] == "OK all done 10"
    assert lines[1] == "books: books done: value of a; recorded x; paid 5"
    assert lines[2] == "audit: audit done: value of a; recorded x-audit; paid 5"
    log = _log(tmp_path)
    assert log.count("record x") == 1 and log.count("record x-audit") == 1
    assert log.count("model clerk 2") == 1 and log.count("model clerk audit 2") == 1


def test_an_abort_decided_while_the_process_was_dead_ends_the_run_on_resume_without_asking_again(
    tmp_path: Path,
) -> None:
    _killed_waiting_then_decided(tmp_path, "aborted", "not this week")
    resumed = _run(tmp_path, approver="queue")
    assert resumed.stdout.startswith("ERR RunAborted") and "not this week" in resumed.stdout, resumed.stderr
    assert "pay 5" not in _log(tmp_path)
    with sqlite3.connect(tmp_path / "runs.db") as db:  # the person's decision stands: not asked again
        assert db.execute("SELECT status, decided_by FROM approvals").fetchall() == [("aborted", "alice")]
        assert db.execute("SELECT status, aborted_by FROM runs").fetchall() == [("aborted", "alice")]
    # Taken up once more after the abort ended it, the run asks again (a person chose to resume it).
    again = _run(tmp_path, approver="callable")
    assert again.stdout.strip() == "OK all done 6", again.stderr
    assert _log(tmp_path).count("pay 5") == 1


def _killed_waiting_then_decided(
    tmp_path: Path, status: str, reason: str | None, later_s: float = 0.0
) -> None:
    """The child killed while its run waits in the store's queue; then alice decides, `later_s`
    after, as at the `approve` command, while no process runs it."""
    import asyncio

    env = {**os.environ, "LOG": str(tmp_path / "log"), "DB": str(tmp_path / "runs.db"), "APPROVER": "queue"}
    child = subprocess.Popen(
        [sys.executable, str(_child(tmp_path))], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        approval_id = _wait_for_pending(tmp_path / "runs.db")
    finally:
        child.kill()
        child.communicate(timeout=30)

    async def decide() -> bool:
        store = SQLiteStore(tmp_path / "runs.db")
        try:
            return await store.decide(approval_id, status, reason, None, "alice")  # type: ignore[arg-type]
        finally:
            await store.aclose()

    time.sleep(later_s)
    assert asyncio.run(decide())


def _wait_for_pending(db_path: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if db_path.exists():
            with sqlite3.connect(db_path) as db:
                try:
                    rows = db.execute(
                        "SELECT approval_id, tool FROM approvals WHERE status = 'pending'"
                    ).fetchall()
                except sqlite3.OperationalError:  # the schema is still being written
                    rows = []
            if rows:
                assert rows[0][1] == "pay"
                return str(rows[0][0])
    raise AssertionError("the run never asked for approval")
