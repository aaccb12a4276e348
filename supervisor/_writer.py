"""The SQLite store's writer: one thread per file, batched commits, bounded waits.

Writes are queued to the thread, which drains what is queued and commits it as one
transaction, so concurrent runs share commits. Three kinds of write:

- `commit(sql, params)`: a checkpoint; waits until committed and returns the rows changed
  (`sql` None: a checkpoint of what came before, with no statement of its own).
- `soon(sql, params)`: handed to the thread now, committed within milliseconds, not waited for.
- `buffer(sql, encode, item, key=...)`: kept until the next checkpoint (or a full batch), then
  written with it; `encode` turns items into rows in the thread, off the event loop. An item
  buffered under the `key` of one still buffered replaces it (a later value of the same row).

Everything reaches the file in the order it was handed over, but for buffered writes, which
are written before the checkpoint that takes them, grouped by statement (keyed ones first: they
update the rows of runs that exist by then). A checkpoint commits what was buffered and queued
before it. Every wait for a commit is bounded (`timeout_s`) by one timer per event loop rather than
one per wait: a timer costs more than the rest of a checkpoint.

A checkpoint is the costly part of a write on the event loop (a future, a wake-up), so the
path from `commit` to the queue does only what it must: one look-up of the running loop, no
lock unless the thread is not running or another loop waited last.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import weakref
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from tools.errors import StoreError

__all__ = ["Params", "Writer"]

Params = Sequence[Any] | Callable[[], Sequence[Any]]
# (sql, params, future, loop); sql None: what was buffered (params a `_Buffered`), or nothing
# (params empty: a checkpoint of what came before).
_Write = tuple[str | None, Params, "asyncio.Future[int] | None", "asyncio.AbstractEventLoop | None"]
_STOP = object()
_BATCH = 256


class Writer:
    """The writer thread of one SQLite file.

    Args:
        where: The file, for error messages.
        connect: Opens the thread's connection.
        timeout_s: How long a checkpoint may wait for its commit before `StoreError`.
    """

    def __init__(self, where: str, connect: Callable[[], sqlite3.Connection], timeout_s: float) -> None:
        self._where = where
        self._connect = connect
        self._timeout_s = timeout_s
        self._queue: queue.SimpleQueue[_Write | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._buffers: dict[str, tuple[Callable[[Any], tuple[Any, ...]], list[Any]]] = {}
        self._keyed: dict[str, tuple[Callable[[Any], tuple[Any, ...]], dict[Hashable, Any]]] = {}
        self._count = 0  # items buffered
        # Per event loop: the commits waited for, oldest first, and the one timer that bounds them.
        self._watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watch] = (
            weakref.WeakKeyDictionary()
        )
        self._last: _Watch | None = None  # the watch of the loop that waited last (the usual case)

    # --- on the event loop -------------------------------------------------------------------

    def buffer(
        self, sql: str, encode: Callable[[Any], tuple[Any, ...]], item: Any, key: Hashable = None
    ) -> None:
        """Keep `item` for the next checkpoint; written as `encode(item)`, in the thread.

        With a `key`, it replaces the item buffered under that key, if any: for writes whose
        later value makes an earlier one pointless.
        """
        if key is None:
            items = self._buffers.get(sql)
            if items is None:
                items = self._buffers[sql] = (encode, [])
            items[1].append(item)
        else:
            keyed = self._keyed.get(sql)
            if keyed is None:
                keyed = self._keyed[sql] = (encode, {})
            keyed[1][key] = item
        self._count += 1
        if self._count >= _BATCH:
            self.flush()

    def flush(self) -> None:
        """Hand what is buffered to the thread (as one write: one hand-over, however many rows)."""
        if self._count:
            self._count = 0
            groups: list[tuple[str, Callable[[Any], tuple[Any, ...]], list[Any]]] = []
            if self._keyed:
                keyed, self._keyed = self._keyed, {}
                groups.extend((sql, encode, list(by_key.values())) for sql, (encode, by_key) in keyed.items())
            if self._buffers:
                buffers, self._buffers = self._buffers, {}
                groups.extend((sql, encode, items) for sql, (encode, items) in buffers.items())
            self._put((None, _Buffered(groups), None, None))

    @property
    def buffered(self) -> bool:
        """Whether anything waits in the buffers for the next checkpoint."""
        return self._count > 0

    def soon(self, sql: str, params: Params) -> None:
        """Hand a write to the thread after what is buffered; committed within milliseconds."""
        if self._count:
            self.flush()
        self._put((sql, params, None, None))

    async def commit(self, sql: str | None, params: Params) -> int:
        """Write after what is buffered and wait until it is committed; the rows changed."""
        return await self._submit(sql, params)

    async def wait(self, sql: str | None, params: Params) -> None:
        """`commit`, for a caller that needs no row count: one coroutine less to wait through."""
        await self._submit(sql, params)

    def _submit(self, sql: str | None, params: Params) -> asyncio.Future[int]:
        """Queue a write after what is buffered; the future of its commit, watched by the timer."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        if self._count:
            self.flush()
        self._put((sql, params, future, loop))
        watch = self._last
        if watch is None or watch.loop() is not loop:
            watch = self._watch_of(loop)
        waiting = watch.waiting
        while waiting and waiting[0][1].done():  # commits settle in order: the deque stays short
            waiting.popleft()
        deadline = loop.time() + self._timeout_s
        waiting.append((deadline, future))
        if watch.timer is None:
            watch.timer = loop.call_at(deadline, self._expire, loop, watch)
        return future

    async def aclose(self) -> None:
        """Write what is buffered and queued, then stop the thread."""
        self.flush()
        thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(thread.join, 30)
            self._thread = None

    def _put(self, write: _Write) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:  # the first write, or the last thread could not open the file
                    self._thread = threading.Thread(
                        target=self._run, name=f"store:{self._where}", daemon=True
                    )
                    self._thread.start()
        self._queue.put(write)

    def _watch_of(self, loop: asyncio.AbstractEventLoop) -> _Watch:
        with self._lock:  # loops in other threads may share the store
            watch = self._watches.get(loop)
            if watch is None:
                watch = self._watches[loop] = _Watch(loop)
        self._last = watch
        return watch

    def _expire(self, loop: asyncio.AbstractEventLoop, watch: _Watch) -> None:
        """Fail this loop's waits past their deadline; wake again at the next deadline."""
        watch.timer = None
        now = loop.time()
        waiting = watch.waiting
        while waiting:
            deadline, future = waiting[0]
            if not future.done() and deadline > now:
                watch.timer = loop.call_at(deadline, self._expire, loop, watch)
                return
            waiting.popleft()
            if not future.done():
                error = StoreError(self._where, f"no commit within {self._timeout_s:g} s", transient=True)
                future.set_exception(error)

    # --- in the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            db = self._connect()
        except Exception as exc:  # fail what waits now; the next write starts a thread again
            error = StoreError(
                self._where, f"cannot open: {type(exc).__name__}: {exc}", transient=_passing(exc)
            )
            writes = []
            with self._lock:  # no new thread starts until what is queued has been answered
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not _STOP:
                        writes.append(item)
                self._thread = None
            self._settle_all(writes, [], error)  # type: ignore[arg-type]
            return
        try:
            cursor = db.cursor()
            get, empty = self._queue.get, self._queue.empty
            while True:
                batch = [get()]
                while not empty():  # everything queued meanwhile goes in one transaction
                    batch.append(get())
                writes = [w for w in batch if w is not _STOP]
                self._commit(db, cursor, writes)  # type: ignore[arg-type]
                if len(writes) != len(batch):
                    return
        finally:
            db.close()

    def _commit(self, db: sqlite3.Connection, cursor: sqlite3.Cursor, writes: list[_Write]) -> None:
        error: BaseException | None = None
        counts: list[int] = []
        if not writes:
            return
        try:
            execute, executemany = cursor.execute, cursor.executemany
            execute("BEGIN IMMEDIATE")
            for sql, params, _, _ in writes:
                if sql is None:  # what was buffered, or nothing (a checkpoint of what came before)
                    if params:
                        for buffered_sql, rows in params():  # type: ignore[operator]
                            executemany(buffered_sql, rows)
                    counts.append(0)
                    continue
                values = params() if callable(params) else params  # computed here, off the event loop
                if type(values) is list:
                    executemany(sql, values)
                else:
                    execute(sql, values)
                counts.append(cursor.rowcount)
            execute("COMMIT")
        except Exception as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            error = StoreError(
                self._where, f"write failed: {type(exc).__name__}: {exc}", transient=_passing(exc)
            )
        self._settle_all(writes, counts, error)

    @staticmethod
    def _settle_all(writes: list[_Write], counts: list[int], error: BaseException | None) -> None:
        settled: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int]]] = {}
        for i, (_, _, future, loop) in enumerate(writes):
            if future is not None and loop is not None:
                found = settled.get(loop)
                if found is None:
                    found = settled[loop] = []
                found.append((future, counts[i] if error is None else 0))
        for loop, futures in settled.items():  # one wake-up of each loop per batch, not per write
            try:
                loop.call_soon_threadsafe(_settle, futures, error)
            except RuntimeError:  # that loop is closed: nobody waits any more
                pass


class _Watch:
    """One event loop's waits for commits, and its timer."""

    __slots__ = ("loop", "waiting", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = weakref.ref(loop)
        self.waiting: deque[tuple[float, asyncio.Future[int]]] = deque()
        self.timer: asyncio.TimerHandle | None = None


class _Buffered:
    """What was buffered, by statement: each item encoded into its row when the thread calls it."""

    __slots__ = ("groups",)

    def __init__(self, groups: list[tuple[str, Callable[[Any], tuple[Any, ...]], list[Any]]]) -> None:
        self.groups = groups

    def __len__(self) -> int:
        return len(self.groups)

    def __call__(self) -> list[tuple[str, list[tuple[Any, ...]]]]:
        return [(sql, list(map(encode, items))) for sql, encode, items in self.groups]


# SQLite's primary result codes of a failure that may pass: BUSY, LOCKED (another process held the
# file too long), IOERR, FULL, CANTOPEN, PROTOCOL; not a statement or a file it refuses.
_PASSING_CODES = frozenset({5, 6, 10, 13, 14, 15})


def _passing(exc: Exception) -> bool:
    """Whether a failed write may succeed later (`StoreError.transient`)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _PASSING_CODES


def _settle(futures: list[tuple[asyncio.Future[int], int]], error: BaseException | None) -> None:
    for future, count in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(count)
        else:
            future.set_exception(error)
