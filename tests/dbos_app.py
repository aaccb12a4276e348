"""The apps the DBOS tests run in worker processes.

`make_supervisor`: three desks each call `record_effect` once (not idempotent: the side effect is
a line appended to the file named by FOREMAN_EFFECTS), then answer. The models are
`workers.testing` function models that take FOREMAN_LATENCY_S seconds per call, so a worker can
be killed mid-run.
`make_payer_supervisor`: one risky payment a run, which waits for a person's approval.
`make_payer_dying_after_an_abort`: the same, in a process that dies (exit code 3) right after its
store records that a person aborted a run, before DBOS records the run's workflow as ended.
`start_worker` starts a worker process on one of them, for the tests and the bench.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from supervisor import Supervisor
from supervisor._postgres import PostgresStore
from supervisor._store import RunStatus
from tools import tool
from workers import ModelRequest, Worker
from workers.testing import FunctionModel, reply


@tool
def record_effect(key: str) -> str:
    """Do something that must happen once: here, append `key` to the effects file."""
    with open(os.environ["FOREMAN_EFFECTS"], "a") as effects:
        effects.write(f"{key}\n")
    return f"recorded {key}"


async def _model(request: ModelRequest) -> object:
    await asyncio.sleep(float(os.environ.get("FOREMAN_LATENCY_S", "0.2")))
    task = request.messages[0].parts[0]
    text = getattr(task, "text", "")
    if (request.system or "").startswith("You plan how"):
        goal = text.removeprefix("Goal: ").strip()
        steps = [
            {
                "id": f"s{i}",
                "worker": f"Desk{i}",
                "input": f"{goal}/desk{i}",
                "depends_on": [],
                "reason": "its part",
            }
            for i in range(3)
        ]
        return reply.output({"reasoning": "one desk per part", "steps": steps})
    if request.tool_results:
        return reply.text(f"done: {request.tool_results[0].content}")
    if any(t.name == "record_effect" for t in request.tools):
        return reply.tool_call("record_effect", key=text)
    return reply.text("all desks recorded their part")


DESKS = [
    type(f"Desk{i}", (Worker,), {"__doc__": f"Records part {i}.", "tools": [record_effect]}) for i in range(3)
]


def make_supervisor(store: str) -> Supervisor:
    model = FunctionModel(_model)
    return Supervisor([d(model=model) for d in DESKS], model=model, store=store)


@tool(risky=True)
def pay(amount: int) -> str:
    """Pay out `amount` (a person approves each call; the payment is a line in the effects file)."""
    with open(os.environ["FOREMAN_EFFECTS"], "a") as effects:
        effects.write(f"paid {amount}\n")
    return f"paid {amount}"


class Payer(Worker):
    """Pays what the task says, once a person approves."""

    tools = [pay]


async def _payer_model(request: ModelRequest) -> object:
    task = getattr(request.messages[0].parts[0], "text", "")
    if (request.system or "").startswith("You plan how"):
        goal = task.removeprefix("Goal: ").strip()
        step = {"id": "pay", "worker": "Payer", "input": goal, "depends_on": [], "reason": "it pays"}
        return reply.output({"reasoning": "one payment", "steps": [step]})
    if request.tool_results:
        return reply.text(request.tool_results[0].content)
    if any(t.name == "pay" for t in request.tools):
        return reply.tool_call("pay", amount=int(task.split()[-1]))
    return reply.text("payment handled")


def make_payer_supervisor(store: str) -> Supervisor:
    model = FunctionModel(_payer_model)
    return Supervisor([Payer(model=model)], model=model, store=store, approval_timeout_s=120)


class _DiesAfterAnAbort(PostgresStore):
    """A kill at exactly the point where the run's end is recorded and DBOS's is not yet."""

    async def finish(
        self,
        run_id: str,
        status: RunStatus,
        usage: Mapping[str, Any],
        output_json: str | None,
        error: str | None,
        *,
        aborted_by: str | None = None,
    ) -> None:
        await super().finish(run_id, status, usage, output_json, error, aborted_by=aborted_by)
        if aborted_by is not None:
            os._exit(3)


def make_payer_dying_after_an_abort(store: str) -> Supervisor:
    model = FunctionModel(_payer_model)
    store_object = _DiesAfterAnAbort(store)
    return Supervisor([Payer(model=model)], model=model, store=store_object, approval_timeout_s=120)


ROOT = Path(__file__).resolve().parent.parent


def worker_env(effects: Path | str, latency_s: float) -> dict[str, str]:
    """The environment of a worker process: where side effects go, the model's latency."""
    return {
        **os.environ,
        "FOREMAN_EFFECTS": str(effects),
        "FOREMAN_LATENCY_S": str(latency_s),
        "PYTHONPATH": str(ROOT),
    }


def start_worker(
    url: str, app: str, executor: str, args: list[str] | tuple[str, ...], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """Start `python -m supervisor worker` and wait (60 s at most) until it takes runs.

    Its output goes to `log`: a file, not a pipe, which a worker would stall on once full."""
    command = [sys.executable, "-m", "supervisor", "worker", "--store", url, "--app", app]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--executor", executor, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 60
    while "takes runs" not in log.read_text():
        assert process.poll() is None, f"worker {executor} exited: {log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"worker {executor} did not start: {log.read_text()[-2000:]}"
        time.sleep(0.05)
    return process
