"""Runs on DBOS Transact over PostgreSQL: worker processes on any number of hosts share the runs.

Install with `pip install 'foreman-agents[dbos]'`. Three roles, each a `DBOSBackend` with the same
database URL and app:

- workers: `await backend.serve(stop)` (or `python -m supervisor worker`) launches DBOS in the
  process and takes runs from the queue, at most `worker_concurrency` at once in the process and
  `global_concurrency` across all of them;
- submitters: `await backend.submit(goal)` enqueues a run from any process, no launch needed;
  `await backend.result(run_id)` waits for it to end and gives its stored record;
- people: `python -m supervisor approve|runs|trace --store postgresql://...` read and decide
  through the run store, as with SQLite.

Each run is one DBOS workflow whose id is the run id, so submitting the same id twice runs it
once. Inside it, every model call and every tool call is a DBOS step named by the call's journal
key (`{scope}/{worker}/{turn}`, then `/{index}` for a tool call): the model request and the tool
run inside their step, whose output is the call's record. Recovery reads DBOS's steps: a resumed
run loads its workflow's step outputs once and hands each to the call of that key, so a recovered
call gets its own output whatever order concurrent workers started their calls in
(`_dbos_steps.py`: the steps are found by name, at ids of their own; it uses dbos internals,
pinned to dbos 3.4.x and checked by a test). The run store (`PostgresStore`, same database)
keeps what no step holds: approvals and their decisions, the durable start of a tool that is not
idempotent (written before its step runs; a tool caught half-way is never run again silently),
denials, failed step attempts, and the redacted values traces show. It also keeps every call's
record as before, for `trace`, `runs` and `export`, and as a fallback: a record the store has
and DBOS does not (a stop while DBOS wrote it) is used, never a second run of the call.

A run whose store failed for a reason that may pass (the database restarted under it: a lost
connection, a failed read or write, no answer in time) is taken up again by its workflow from
the store after 1, 2, 4 ... 30 s, twelve times at most, then raises (DBOS records an error; the
store has the run failed, and `resume` takes it up). A worker's lock on its executor id dies with
its connection on a restart: it is checked every few seconds and taken again, and a worker whose
id another process took meanwhile stops.

A worker that dies leaves its runs PENDING under its executor id. Started again with the same
`executor_id`, it takes them up at launch; if it will not come back, another worker takes them
over with `recover=[dead ids]` (`python -m supervisor worker --recover ID`). While a worker
lives, it holds a PostgreSQL advisory lock on its executor id, released by the server when the
process dies: a second process under a live id, or a takeover of a live id, is refused (either
would run the same runs twice, side effects included). The concurrency limits belong to the
queue: the first worker sets them and a worker asking for others is refused, unless it is told
to update them for all. Runs are pinned to `app_version`: change it when a code change alters
what a run does (its workers, their tools or outputs), and keep workers of the old version up
until their runs end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tools.errors import ConfigurationError, RunNotFound, StoreError

from ._approvals import StoreGate
from ._dbos_approvals import APPROVAL, APPROVALS_QUEUE, MessageGate, approval_workflow, notify_decision
from ._dbos_lock import IN_USE, hold_lock, take_lock, unreachable
from ._dbos_runtime import destroy, launch, run_once, stop_runs
from ._dbos_steps import DBOSSteps

if TYPE_CHECKING:
    from ._store import RunRecord, Store
    from ._supervisor import Supervisor

__all__ = ["DBOSBackend", "QueuedRun", "notify_decision"]

_WORKFLOW = "foreman_run"
_STORE_TRIES = 12  # a run whose store failed is taken up again after 1, 2, 4 ... 30 s waits
_log = logging.getLogger("supervisor.dbos")


@dataclass(frozen=True, slots=True)
class QueuedRun:
    """A run on the queue that no worker has taken yet (it has no store record)."""

    run_id: str
    goal: str
    app_version: str  # only a worker of this version takes it
    submitted_at: float


class DBOSBackend:
    """Supervisor runs as DBOS workflows on a queue shared by worker processes.

    Args:
        url: The PostgreSQL database for DBOS and the run store ("postgresql://...").
        app: "module:factory"; `factory(url)` returns the `Supervisor` (importable in every
            worker process). A `Supervisor` object may be given instead, for one process.
        name: The DBOS application name: workers and submitters of one app share it.
        queue: The queue runs are submitted to.
        worker_concurrency: Runs at once in one worker process.
        global_concurrency: Runs at once across every worker (None: no global limit).
        app_version: Runs are pinned to the version that submitted them (see the module doc).
        executor_id: This worker's own id (default "local"); unique per live process.
        poll_s: How often a worker looks at the queue.
        call_steps: Each model call and tool call a DBOS step (the default). False: calls are
            kept in the run store's journal only, as on PostgreSQL without DBOS; a taken-over
            run replays them from there all the same (nothing finished is sent or run twice),
            and each call saves the CPU of a DBOS step (about 3 ms: bench/README.md). Workers
            of either kind may share a queue: each takes up the other's runs.
    """

    def __init__(
        self,
        url: str,
        app: str | Supervisor,
        *,
        name: str = "foreman",
        queue: str = "foreman-runs",
        worker_concurrency: int = 8,
        global_concurrency: int | None = None,
        app_version: str = "1",
        executor_id: str = "local",
        poll_s: float = 0.2,
        call_steps: bool = True,
    ) -> None:
        from ._pg_schema import is_postgres, normal_url, public_url

        if not is_postgres(url) or "://" not in url:  # DBOS reads URLs only, not libpq's key=value
            raise ConfigurationError(f"DBOSBackend needs a postgresql:// URL, got {public_url(url)!r}")
        self.url = normal_url(url)
        self.app = app
        self.name = name
        self.queue = queue
        self.worker_concurrency = worker_concurrency
        self.global_concurrency = global_concurrency
        self.app_version = app_version
        self.executor_id = executor_id
        self.poll_s = poll_s
        if not isinstance(call_steps, bool):
            raise ConfigurationError(f"call_steps is True or False, got {call_steps!r:.40}")
        self.call_steps = call_steps
        self._supervisor: Supervisor | None = None
        self._client: Any = None
        self._reader: Store | None = None

    # --- submitting ---------------------------------------------------------------------------

    async def submit(self, goal: str, *, run_id: str | None = None) -> str:
        """Enqueue a run of `goal`; its id (a new one unless given). Submitting an id again
        attaches to the run that has it: it runs once."""
        from ._store import new_run_id
        from ._supervisor import check_goal

        check_goal(goal)  # as Supervisor.run checks it
        if "\x00" in goal:  # PostgreSQL's text holds no NUL: the run would have no record
            raise ConfigurationError(f"the goal must be a string without NUL, got {goal!r:.80}")
        run_id = run_id or new_run_id()
        options = {
            "workflow_name": _WORKFLOW,
            "queue_name": self.queue,
            "workflow_id": run_id,
            "app_version": self.app_version,
            "application_name": self.name,
        }
        try:
            await self._dbos_client().enqueue_async(options, goal, run_id)
        except Exception as exc:  # the database's errors (SQLAlchemy's), typed as the store's
            raise unreachable(self.url, exc) from None
        return run_id

    async def result(self, run_id: str, *, timeout_s: float | None = None) -> RunRecord:
        """Wait for the run to end (at most `timeout_s`), then its stored record: `status`,
        `output_json`, `error`, `usage`. `RunNotFound` for an id never submitted."""
        from dbos._error import DBOSNonExistentWorkflowError

        try:
            handle = await self._dbos_client().retrieve_workflow_async(run_id)
        except DBOSNonExistentWorkflowError:
            raise RunNotFound(run_id, self.url_shown) from None
        except Exception as exc:
            raise unreachable(self.url, exc) from None
        async with asyncio.timeout(timeout_s):
            try:
                await handle.get_result(polling_interval_sec=self.poll_s)
            except Exception:  # a bug raised inside the run: its record says how it ended
                pass
        return await self._record(run_id)

    async def status(self, run_id: str) -> str:
        """DBOS's status of the run's workflow: ENQUEUED, PENDING, SUCCESS, ERROR, ..."""
        from dbos._error import DBOSNonExistentWorkflowError

        try:
            handle = await self._dbos_client().retrieve_workflow_async(run_id)
            return str((await handle.get_status()).status)
        except DBOSNonExistentWorkflowError:
            raise RunNotFound(run_id, self.url_shown) from None
        except Exception as exc:
            raise unreachable(self.url, exc) from None

    async def queued(self) -> list[QueuedRun]:
        """Runs submitted to this database's queues that no worker has taken yet, oldest first:
        a run has no store record until a worker of its version takes it (`runs` lists these)."""
        try:
            waiting = await self._dbos_client().list_queued_workflows_async(
                name=_WORKFLOW, status="ENQUEUED", load_output=False
            )
        except Exception as exc:
            from ._pg_schema import sqlstate

            if sqlstate(exc) == "42P01":  # undefined table
                return []  # no worker ever set this database up: nothing can be queued in it
            raise unreachable(self.url, exc) from None
        found = []
        for status in waiting:
            inputs = status.input
            args = inputs["args"] if isinstance(inputs, dict) else ()
            goal = args[0] if args and isinstance(args[0], str) else ""
            since = (status.created_at or 0) / 1000
            found.append(QueuedRun(status.workflow_id, goal, status.app_version or "", since))
        return sorted(found, key=lambda run: run.submitted_at)

    # --- working ------------------------------------------------------------------------------

    async def serve(
        self,
        stop: asyncio.Event,
        *,
        recover: Sequence[str] = (),
        ready: Callable[[], object] | None = None,
        update_limits: bool = False,
    ) -> None:
        """Launch DBOS in this process and run queued runs until `stop` is set.

        `recover`: executor ids of dead workers whose unfinished runs this worker takes over
        (refused while one of them is alive). `ready` is called once the worker takes runs.
        The concurrency limits belong to the queue, not to one worker: the first worker sets
        them, and a worker started with other limits is refused unless `update_limits`.
        On stop, the runs in flight are cancelled; they resume when this executor id starts
        again, or on a worker started with `recover=[this id]`.
        """
        import dbos._dbos as dbos_module
        from dbos import DBOS

        if dbos_module._dbos_global_instance is not None and dbos_module._dbos_global_instance._launched:
            raise ConfigurationError("DBOS is already running in this process: one worker per process")
        supervisor = self._build()  # a wrong --app fails here, before any run is taken
        held = [
            await take_lock(self.url, self.name, self.executor_id, IN_USE)
        ]  # the connection holding it now
        try:
            DBOS(config=self._config())
            logging.getLogger("dbos").setLevel(logging.WARNING)
            DBOS.workflow(name=_WORKFLOW)(self._workflow())
            DBOS.workflow(name=APPROVAL)(approval_workflow)
            try:
                await launch(dbos_module._dbos_global_instance)  # this executor's unfinished runs first
                await self._queues(update_limits)
                for dead in recover:
                    theirs = await take_lock(self.url, self.name, dead, "it is alive and keeps its runs")
                    try:
                        await asyncio.to_thread(DBOS._recover_pending_workflows, [dead])
                    finally:
                        await theirs.close()
                if ready is not None:
                    ready()
                await hold_lock(self.url, self.name, self.executor_id, held, stop)
            finally:
                await stop_runs(supervisor)
                await destroy()
                await stop_runs(supervisor)  # one DBOS handed over while it shut down
        finally:
            await supervisor.aclose()
            self._supervisor = None
            await self.aclose()
            await held[0].close()

    async def _queues(self, update_limits: bool) -> None:
        from dbos import DBOS

        queue = await DBOS.register_queue_async(
            self.queue,
            worker_concurrency=self.worker_concurrency,
            global_concurrency=self.global_concurrency,
            polling_interval_sec=self.poll_s,
            on_conflict="always_update" if update_limits else "never_update",
        )
        held = (await queue.get_worker_concurrency_async(), await queue.get_global_concurrency_async())
        if held != (self.worker_concurrency, self.global_concurrency):
            raise ConfigurationError(
                f"queue {self.queue!r} holds limits {held[0]} per worker and {held[1]} in all; "
                f"this worker asked for {self.worker_concurrency} and {self.global_concurrency}. "
                "The limits belong to the queue: start it with the same ones, or update them "
                "for every worker with --update-limits"
            )
        # Waiting for a person holds no run slot: approvals have a queue of their own.
        await DBOS.register_queue_async(APPROVALS_QUEUE, polling_interval_sec=self.poll_s)

    def _workflow(self) -> Callable[[str, str], Any]:
        backend = self

        async def foreman_run(goal: str, run_id: str) -> str:
            supervisor = backend._build()
            try:
                for attempt in range(_STORE_TRIES):  # bounded: about four minutes of a store away
                    try:
                        return await run_once(supervisor, goal, run_id, again=attempt > 0)
                    except StoreError as error:
                        if attempt == _STORE_TRIES - 1 or not error.transient:
                            raise  # DBOS records an error; the store's record says where the run is
                        wait = min(2.0**attempt, 30.0)
                        _log.warning("run %s: %s; taken up again in %g s", run_id, error, wait)
                        await asyncio.sleep(wait)
                raise AssertionError("unreachable")
            finally:
                if supervisor._steps is not None:
                    supervisor._steps.forget(run_id)

        foreman_run.__qualname__ = _WORKFLOW
        return foreman_run

    def _build(self) -> Supervisor:
        """This process's supervisor, built once: it resumes whatever the store holds."""
        if self._supervisor is None:
            from ._supervisor import Supervisor

            if isinstance(self.app, Supervisor):
                self._supervisor = self.app
            else:
                from ._app import supervisor_from

                self._supervisor = supervisor_from(self.app, self.url)
            from ._store import MemoryStore

            store = self._supervisor._store
            if isinstance(store, MemoryStore) or getattr(store, "path", None) is not None:
                raise ConfigurationError(
                    f"app {self.app!r}: its store must be the PostgreSQL database the runs are on "
                    "(factory(store) should pass `store` on), or a taken-over run replays nothing"
                )
            # DBOS hands a run to one live executor: the previous owner of a run it hands over
            # is dead or written off, even on another host that this process cannot ask.
            self._supervisor._takeover = True
            if self.call_steps:
                self._supervisor._steps = DBOSSteps(self)  # each model and tool call a DBOS step
            gate = self._supervisor._shared.gate
            if type(gate) is StoreGate:  # no approver given: wait on DBOS messages, not polls
                self._supervisor._shared.gate = MessageGate(self, gate.store, gate.timeout_s)
        return self._supervisor

    # --- plumbing -----------------------------------------------------------------------------

    @property
    def url_shown(self) -> str:
        """The URL without its password, for messages."""
        from ._pg_schema import public_url

        return public_url(self.url)

    def _config(self) -> Any:
        return {
            "name": self.name,
            "system_database_url": self.url,
            "application_version": self.app_version,
            "executor_id": self.executor_id,
            "log_level": "WARNING",
        }

    def _dbos_client(self) -> Any:
        if self._client is None:
            from dbos import DBOSClient

            # lazy: it connects on first use, inside the calls that run in threads
            # No retries of its own on a lost connection: they went on for ever (a submit to a
            # database that is down hung); the caller sees a StoreError and decides.
            self._client = DBOSClient(
                system_database_url=self.url,
                application_name=self.name,
                lazy=True,
                retry_connection_errors=False,
            )
        return self._client

    async def _record(self, run_id: str) -> RunRecord:
        if self._reader is None:  # one store for every result read: its connections are shared
            from ._store import open_store

            self._reader = open_store(self.url)
        record = await self._reader.load(run_id)
        if record is None:
            raise RunNotFound(run_id, self.url_shown)
        return record

    async def aclose(self) -> None:
        """Close the submitting side's connections."""
        if self._reader is not None:
            await self._reader.aclose()
            self._reader = None
        if self._client is not None:
            await asyncio.to_thread(self._client.destroy)
            self._client = None
