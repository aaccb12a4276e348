"""The command line's DBOS commands: `worker` takes runs from the queue, `submit` adds one.

python -m supervisor worker --store postgresql://... --app module:factory --executor w1
python -m supervisor submit "GOAL" --store postgresql://... [--run-id ID] [--wait]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import sys
import threading
import time
from typing import Any, TextIO

__all__ = ["add_commands", "run_command"]


_THREADS_GRACE_S = 15.0  # how long a stopped worker waits for DBOS's threads


def add_commands(commands: Any) -> None:
    """Add `worker` and `submit` to the command line's subcommands."""
    worker = commands.add_parser("worker", help="take runs from the DBOS queue (needs .[dbos])")
    worker.add_argument("--store", required=True, help="the PostgreSQL database, postgresql://...")
    worker.add_argument("--app", required=True, help="module:factory; factory(store) returns the Supervisor")
    worker.add_argument("--executor", default="local", help="this worker's id, unique among live workers")
    worker.add_argument("--concurrency", type=int, default=8, help="runs at once in this worker")
    worker.add_argument("--global-concurrency", type=int, help="runs at once across all workers")
    worker.add_argument("--version", default="1", help="the app version runs are pinned to")
    worker.add_argument(
        "--recover", action="append", default=[], help="a dead worker's executor id: take its runs over"
    )
    worker.add_argument(
        "--update-limits", action="store_true", help="set the queue's limits to these for every worker"
    )
    worker.add_argument(
        "--no-call-steps",
        dest="call_steps",
        action="store_false",
        help="keep model and tool calls in the run journal only, not as DBOS steps (less CPU a call)",
    )
    submit = commands.add_parser("submit", help="add a run to the DBOS queue (needs .[dbos])")
    submit.add_argument("goal")
    submit.add_argument("--store", required=True, help="the PostgreSQL database, postgresql://...")
    submit.add_argument("--run-id", help="the run's id (submitting an id again runs it once)")
    submit.add_argument("--version", default="1", help="the app version to pin the run to")
    submit.add_argument("--wait", action="store_true", help="wait for the run to end and print its output")
    submit.add_argument("--timeout", type=_seconds, default=3600.0, help="with --wait: give up after SECONDS")


def _seconds(text: str) -> float:
    """A time limit: a number of seconds, 0 or more ("inf" waits for ever; "nan" and -1 are not)."""
    value = float(text)
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds, 0 or more")
    return value


def run_command(args: argparse.Namespace, out: TextIO) -> int:
    """Run `worker` or `submit`; the exit code."""
    if args.command == "worker":
        from tools.errors import AgentError

        try:
            code = asyncio.run(_worker(args, out))
        except AgentError as error:  # said here: the process may have to leave DBOS's threads behind
            sys.stderr.write(f"error: {error}\n")
            code = 1
        _leave(code)
        return code
    return asyncio.run(_submit(args, out))


def _leave(code: int) -> None:
    """Wait a bounded while for the threads DBOS left behind, then exit even if some remain: with
    the database away, DBOS retries recording its runs' ends in threads of its own for ever, and
    a worker told to stop never exited. What it could not record, recovery takes up."""
    deadline = time.monotonic() + _THREADS_GRACE_S
    me = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not me and not thread.daemon:
            thread.join(max(deadline - time.monotonic(), 0.0))
    if any(t.is_alive() and not t.daemon and t is not me for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.write(f"DBOS threads busy after {_THREADS_GRACE_S:g} s (the database away?): exiting\n")
        sys.stderr.flush()
        os._exit(code)


async def _worker(args: argparse.Namespace, out: TextIO) -> int:
    from .dbos import DBOSBackend

    backend = DBOSBackend(
        args.store,
        args.app,
        worker_concurrency=args.concurrency,
        global_concurrency=args.global_concurrency,
        app_version=args.version,
        executor_id=args.executor,
        call_steps=args.call_steps,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Stop cleanly: the runs in flight are cancelled and recorded; they resume when this executor
    # id starts again, or on a worker started with --recover it.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def ready() -> None:
        out.write(f"worker {args.executor} takes runs from {backend.queue} ({backend.url_shown})\n")
        out.flush()

    await backend.serve(stop, recover=args.recover, ready=ready, update_limits=args.update_limits)
    out.write(f"worker {args.executor} stopped\n")
    return 0


async def _submit(args: argparse.Namespace, out: TextIO) -> int:
    from tools.errors import AgentError, StoreError

    from .dbos import DBOSBackend

    backend = DBOSBackend(args.store, "", app_version=args.version)
    run_id = args.run_id or ""
    try:
        run_id = await backend.submit(args.goal, run_id=args.run_id)
        out.write(f"{run_id}\n")
        if not args.wait:
            return 0
        record = await backend.result(run_id, timeout_s=args.timeout)
    except TimeoutError:
        sys.stderr.write(
            f"run {run_id} not ended after {args.timeout:g} s (is a worker of version {args.version} up?)\n"
        )
        return 1
    except AgentError:
        raise
    except Exception as error:  # the DBOS client's own errors: no worker ever set the database up
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise StoreError(backend.url_shown, f"DBOS could not take the run: {first}") from None
    finally:
        await backend.aclose()
    if record.status != "succeeded":
        sys.stderr.write(f"run {run_id} {record.status}: {record.error}\n")
        return 1
    out.write(f"{record.output_json}\n")
    return 0
