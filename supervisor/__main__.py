"""`python -m supervisor COMMAND`: the command line.

python -m supervisor demo                    the demo plan (scripted models without API keys)
python -m supervisor runs --store runs.db    the runs in a store: id, goal, status, cost, start
python -m supervisor trace RUN_ID --store runs.db [--json]   one run as a tree (or JSON lines)
python -m supervisor approve --store runs.db  decide the risky calls waiting in the store
python -m supervisor resume RUN_ID --store runs.db --app module:factory   finish a run
python -m supervisor export RUN_ID --store runs.db --to run.db   one run in a file of its own
python -m supervisor worker --store postgresql://... --app module:factory --executor w1   (DBOS)
python -m supervisor submit GOAL --store postgresql://... [--wait]                        (DBOS)

--store takes a SQLite file or a PostgreSQL URL ("postgresql://..."), wherever it appears.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TextIO, cast

from tools.errors import AgentError, RunNotFound

from ._cli_dbos import add_commands, run_command
from ._store import Store

if TYPE_CHECKING:
    from .dbos import DBOSBackend


class _Reader(Store, Protocol):
    """A store the commands can read a run's trace from (SQLite, PostgreSQL)."""

    async def events(self, run_id: str) -> list[tuple[str, float, dict[str, Any]]]: ...

    async def export_run(self, run_id: str, to: str | os.PathLike[str]) -> None: ...


def _open(path: str) -> _Reader:
    """The store at `path` (a file or a PostgreSQL URL), opened before the event loop starts;
    a file that is missing is an error, never a new store (listing creates nothing)."""
    from ._store import open_existing

    return cast(_Reader, open_existing(path))


Notify = Callable[[str, str], Awaitable[None]]


def _notifier(path: str) -> Notify | None:
    """How the approve command tells a run waiting through DBOS that its approval was decided."""
    from ._pg_schema import is_postgres

    if not is_postgres(path):
        return None
    import importlib.util

    if importlib.util.find_spec("dbos") is None:  # no dbos extra: no run can be waiting through it
        return None
    from .dbos import notify_decision

    return lambda approval_id, status: notify_decision(path, approval_id, status)


def _shown(path: str) -> str:
    """A store as messages may show it: a URL loses its password."""
    from ._pg_schema import public_url

    return public_url(path) if "://" in path or "=" in path else path


def _queue_of(path: str) -> DBOSBackend | None:
    """The DBOS queue in a PostgreSQL store's database, when DBOS is installed: runs submitted
    there have no record until a worker takes them."""
    import importlib.util

    from ._pg_schema import is_postgres

    if not (is_postgres(path) and "://" in path) or importlib.util.find_spec("dbos") is None:
        return None
    from .dbos import DBOSBackend

    return DBOSBackend(path, "")


async def _runs(store: Store, path: str, out: TextIO, queue: DBOSBackend | None = None) -> int:
    from ._calls import spent
    from ._journal import usage_from

    try:
        runs = await store.runs()
        # A run still marked running (live, or its process died) has its spending in its calls:
        # its record's usage is written with its steps and its end.
        live = {r.run_id: spent(await store.calls(r.run_id))[0] for r in runs if r.status == "running"}
        queued = await queue.queued() if queue is not None else []
    finally:
        await store.aclose()
        if queue is not None:
            await queue.aclose()
    known = {run.run_id for run in runs}
    queued = [q for q in queued if q.run_id not in known]  # taken meanwhile: its record is listed
    if not runs and not queued:
        out.write(f"no runs in {path}\n")
        return 0
    out.write(f"{'run id':34} {'status':10} {'cost':>12}  {'started':19}  goal\n")
    for waiting in queued:  # no worker took it yet: only one of its version will
        submitted = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(waiting.submitted_at))
        goal = waiting.goal.replace("\n", " ")[:60]
        note = f"  [waits for a worker of version {waiting.app_version}]"
        out.write(f"{waiting.run_id:34} {'queued':10} {'-':>12}  {submitted}  {goal}{note}\n")
    for run in runs:
        usage = live.get(run.run_id) or usage_from(run.usage)
        cost = f"${usage.cost_usd:.6f}" if usage.cost_usd is not None else "unpriced"
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created_at))
        goal = (run.goal or "(plan)").replace("\n", " ")
        # Aborted by nobody: its process stopped it (SIGTERM, Ctrl-C), and it goes on when resumed.
        status = "stopped" if run.status == "aborted" and run.aborted_by is None else run.status
        out.write(f"{run.run_id:34} {status:10} {cost:>12}  {started}  {goal[:60]}\n")
    return 0


async def _trace(store: _Reader, run_id: str, path: str, as_json: bool, out: TextIO) -> int:
    from ._trace import build_trace, render, to_jsonl

    try:
        record = await store.load(run_id)
        if record is None:
            raise RunNotFound(run_id, path)
        calls = await store.calls(run_id)
        events = await store.events(run_id)
    finally:
        await store.aclose()
    tree = build_trace(record, calls, events)
    if as_json:
        out.writelines(line + "\n" for line in to_jsonl(tree))
    else:
        out.write(render(tree, colour=out.isatty()))
    return 0


async def _export(store: _Reader, run_id: str, to: str, out: TextIO) -> int:
    try:
        await store.export_run(run_id, to)
    finally:
        await store.aclose()
    out.write(f"run {run_id} copied to {to} (replay it in a test: supervisor.testing.replay)\n")
    return 0


async def _approve(
    store: Store, run: str | None, watch: bool, out: TextIO, notify: Notify | None = None
) -> int:
    import getpass

    from workers import ApprovalRequest

    from ._approvals import STATUS_OF, expired_meanwhile, expiry, pending_in_time
    from ._terminal import ask, terminal_line

    who = f"terminal:{getpass.getuser()}"
    asked: set[str] = set()
    try:
        while True:
            pending = [p for p in await pending_in_time(store, run) if p.approval_id not in asked]
            if not pending:
                if not watch:
                    out.write("no pending approvals\n" if not asked else "no more pending approvals\n")
                    return 0
                await asyncio.sleep(1.0)  # --watch: wait for new requests until interrupted
                continue
            for record in pending:
                asked.add(record.approval_id)
                request = ApprovalRequest(
                    record.run_id,
                    record.worker,
                    record.tool,
                    record.arguments,
                    record.call_id,
                    record.reason,
                    record.schema,
                )
                age = time.time() - record.created_at
                abandoned = threading.Event()
                read = terminal_line(sys.stdin, out, abandoned) if _terminal(sys.stdin) else input
                try:
                    decision = await asyncio.to_thread(
                        ask, request, read, out, who, age_s=age, allow_skip=True
                    )
                finally:  # interrupted (Ctrl-C, SIGTERM): the thread stops reading at once
                    abandoned.set()
                if decision is None:
                    out.write("skipped\n")
                    continue
                status = STATUS_OF[decision.kind]
                if await expired_meanwhile(store, record, status):  # it ran out while the person read it
                    out.write(f"expired while you decided ({expiry(record)}): the call is denied\n")
                    continue
                if await store.decide(
                    record.approval_id, status, decision.reason or None, decision.arguments, who
                ):
                    if notify is not None:  # a run waiting through DBOS wakes on the message
                        await notify(record.approval_id, status)
                    out.write(f"{status}\n")
                else:
                    now = await store.get_approval(record.approval_id)
                    by = f" by {now.decided_by}" if now and now.decided_by else ""
                    out.write(f"already decided elsewhere: {now.status if now else 'gone'}{by}\n")
    except EOFError:
        out.write("\nno more answers\n")
        return 0
    finally:
        await store.aclose()


def _terminal(stream: TextIO) -> bool:
    """Whether the stream is a terminal, read in short waits; a pipe is read by `input`, whose
    buffer may hold the next answers already (a wait on the descriptor would not see them)."""
    try:
        return stream.isatty()
    except (AttributeError, OSError, ValueError):  # a replaced or closed sys.stdin
        return False


async def _resume(reader: Store, run_id: str, store: str, app: str, out: TextIO) -> int:
    from ._app import supervisor_from
    from ._journal import restore_plan
    from ._progress import Progress
    from ._result import RunResult

    record = await reader.load(run_id)
    await reader.aclose()
    if record is None:
        raise RunNotFound(run_id, _shown(store))
    supervisor = supervisor_from(app, store)
    progress = Progress()  # on standard error: a live line on a terminal, plain lines elsewhere
    result: Any = None
    async with supervisor:
        plan = (
            None if record.goal is not None else restore_plan(run_id, record.plan or {}, supervisor.workers)
        )
        async with contextlib.aclosing(supervisor.stream(record.goal, plan=plan, run_id=run_id)) as run:
            async for item in run:
                if isinstance(item, RunResult):
                    result = item
                else:
                    progress.emit(item)
    out.write(f"{result.output}\n")
    return 0


class _Terminated(Exception):
    """SIGTERM stopped the command."""


def _until_stopped(work: Coroutine[Any, Any, int]) -> int:
    """Run a command; SIGTERM stops it as Ctrl-C does (the work is cancelled, so a run records
    where it stopped and a tool running in its thread finishes), not at once mid-write."""
    return asyncio.run(_terminable(work))


async def _terminable(work: Coroutine[Any, Any, int]) -> int:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    terminated = asyncio.Event()

    def stop() -> None:
        terminated.set()
        if task is not None:
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, stop)
    except (NotImplementedError, RuntimeError, ValueError):  # no signals here (not the main thread)
        return await work
    try:
        return await work
    except asyncio.CancelledError:
        if terminated.is_set():
            raise _Terminated from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m supervisor", description="foreman's command line")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the demo plan (the scripted models when no API key is set)")
    demo.add_argument(
        "--store", default="foreman-demo.db", help="the journal file (default: foreman-demo.db)"
    )
    runs = commands.add_parser("runs", help="list the runs in a store")
    runs.add_argument("--store", required=True, help="the store file, e.g. runs.db")
    approve = commands.add_parser("approve", help="decide the risky tool calls waiting in a store")
    approve.add_argument("--store", required=True, help="the store file, e.g. runs.db")
    approve.add_argument("--run", help="only this run's approvals")
    approve.add_argument("--watch", action="store_true", help="keep waiting for new requests")
    trace = commands.add_parser("trace", help="show one run as a tree: plan, steps, calls, decisions, costs")
    trace.add_argument("run_id")
    trace.add_argument("--store", required=True, help="the store file, e.g. runs.db")
    trace.add_argument("--json", action="store_true", help="one JSON object per node (JSON lines)")
    export = commands.add_parser("export", help="copy one run into a file of its own (to replay in a test)")
    export.add_argument("run_id")
    export.add_argument("--store", required=True, help="the store the run is in (a file or a PostgreSQL URL)")
    export.add_argument("--to", required=True, help="the file to copy it to (created when missing)")
    resume = commands.add_parser("resume", help="finish an unfinished run")
    resume.add_argument("run_id")
    resume.add_argument("--store", required=True, help="the store file, e.g. runs.db")
    resume.add_argument("--app", required=True, help="module:factory; factory(store) returns the Supervisor")
    add_commands(commands)
    args = parser.parse_args(argv)
    try:
        if args.command in ("worker", "submit"):
            return run_command(args, sys.stdout)
        if args.command == "demo":
            from ._demo import run_demo

            return _until_stopped(run_demo(sys.stdout, args.store))
        if args.command == "resume":
            reader = _open(args.store)  # a clear error for a missing or foreign file, before anything runs
            return _until_stopped(_resume(reader, args.run_id, args.store, args.app, sys.stdout))
        if args.command == "trace":
            shown = _shown(args.store)
            return _until_stopped(_trace(_open(args.store), args.run_id, shown, args.json, sys.stdout))
        if args.command == "export":
            return _until_stopped(_export(_open(args.store), args.run_id, args.to, sys.stdout))
        if args.command == "approve":
            store = _open(args.store)
            return _until_stopped(_approve(store, args.run, args.watch, sys.stdout, _notifier(args.store)))
        listing = _runs(_open(args.store), _shown(args.store), sys.stdout, _queue_of(args.store))
        return _until_stopped(listing)
    except AgentError as error:  # a clear message and a non-zero exit, never a traceback
        sys.stderr.write(f"error: {error}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except _Terminated:
        sys.stderr.write("terminated\n")
        return 128 + signal.SIGTERM
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
