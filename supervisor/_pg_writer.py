"""The PostgreSQL store's writer: one connection, group commit, bounded waits.

Writes are queued to one task, which takes everything queued and commits it as one
transaction, in one round trip: the statements, with their values bound here (psycopg's
client-side binding), are sent as one multi-statement query, which PostgreSQL runs as one
implicit transaction. While a batch is on its way the next one gathers, so concurrent runs
share commits. The kinds of write are those of the SQLite writer (`_writer.py`):

- `commit(sql, params)`: a checkpoint; waits until committed and returns the rows changed.
- `soon(sql, params)`: queued now, committed within milliseconds, not waited for.
- `buffer(sql, encode, item)`: kept until the next checkpoint (or a full batch), then written
  with it; `encode` turns each item into its row when the batch is built.

When a batch fails on a statement (a constraint, a deadlock with another process), its writes
are tried again one by one, so one run's bad write does not fail another run's checkpoint. A
batch that cannot finish within `timeout_s`, or a broken connection, fails its writes and the
connection is opened again for the next batch. The task belongs to one event loop at a time.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from tools.errors import StoreError

from ._pg_schema import passing

if TYPE_CHECKING:
    from psycopg import AsyncClientCursor, AsyncConnection

__all__ = ["Params", "PgWriter"]

Params = Sequence[Any] | list[Sequence[Any]] | Callable[[], Sequence[Any] | list[Sequence[Any]]]
_Write = tuple[str, Params, "asyncio.Future[int] | None"]
_BATCH = 256  # buffered items handed over at once
_STATEMENTS = 2000  # statements per transaction at most: keeps row locks short for other processes


class PgWriter:
    """The writing connection of one PostgreSQL store.

    Args:
        where: The store's URL without its password, for error messages.
        connect: Opens a connection (autocommit, schema checked).
        timeout_s: How long a checkpoint may wait for its commit before `StoreError`.
    """

    def __init__(
        self, where: str, connect: Callable[[], Awaitable[AsyncConnection]], timeout_s: float
    ) -> None:
        self._where = where
        self._connect = connect
        self._timeout_s = timeout_s
        self._queue: deque[_Write] = deque()
        self._buffers: dict[str, tuple[Callable[[Any], Sequence[Any]], list[Any]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._conn: AsyncConnection | None = None
        self._binder: AsyncClientCursor[Any] | None = None
        self._closing = False

    # --- on the event loop -------------------------------------------------------------------

    def buffer(self, sql: str, encode: Callable[[Any], Sequence[Any]], item: Any) -> None:
        """Keep `item` for the next checkpoint; written as `encode(item)`."""
        items = self._buffers.setdefault(sql, (encode, []))[1]
        items.append(item)
        if len(items) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        """Queue what is buffered."""
        if self._buffers:
            buffers, self._buffers = self._buffers, {}
            for sql, (encode, items) in buffers.items():
                self._queue.append((sql, _Rows(encode, items), None))
            self._start()

    def soon(self, sql: str, params: Params) -> None:
        """Queue a write after what is buffered; committed within milliseconds."""
        self.flush()
        self._queue.append((sql, params, None))
        self._start()

    async def commit(self, sql: str, params: Params) -> int:
        """Write after what is buffered and wait until it is committed; the rows changed.

        An empty `sql` writes nothing: it returns once what was queued before it is committed.
        """
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.flush()
        self._queue.append((sql, params, future))
        self._start()
        try:
            async with asyncio.timeout(self._timeout_s):
                return await future
        except TimeoutError as exc:
            raise StoreError(self._where, f"no commit within {self._timeout_s:g} s", transient=True) from exc

    async def aclose(self) -> None:
        """Write what is buffered and queued, then close the connection."""
        self.flush()
        task = self._task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            self._closing = True
            assert self._wake is not None
            self._wake.set()
            try:
                async with asyncio.timeout(self._timeout_s):
                    await asyncio.shield(task)
            except TimeoutError:
                task.cancel()
            finally:
                self._closing = False
        self._task = self._wake = None
        await self._drop()

    def _start(self) -> None:
        """Wake the writer task, started on first use, or again on another event loop."""
        task = self._task
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            if task is not None and not task.done() and task.get_loop().is_running():
                raise StoreError(self._where, "in use on another event loop; close it there first")
            if self._conn is not None:  # opened on a loop that is gone: release it without it
                self._conn.pgconn.finish()
                self._conn = self._binder = None
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"store:{self._where}")
        assert self._wake is not None
        self._wake.set()

    # --- the task ------------------------------------------------------------------------------

    async def _run(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            if not self._queue:
                if self._closing:
                    return
                wake.clear()
                await wake.wait()
                continue
            batch, statements = [], 0
            while self._queue and statements < _STATEMENTS:
                write = self._queue.popleft()
                batch.append(write)
                statements += len(write[1].items) if isinstance(write[1], _Rows) else 1
            await self._commit(batch)

    async def _commit(self, batch: list[_Write]) -> None:
        try:
            counts = await self._execute(batch)
        except Exception as exc:
            if self._conn is None or self._conn.closed or isinstance(exc, TimeoutError):
                await self._drop()  # cut off mid-query, or never opened: a new connection next time
            elif len(batch) > 1 and not _cancelled(exc):
                for write in batch:  # the batch was rolled back: each write alone, its own outcome
                    await self._commit([write])
                return
            error = (
                exc
                if isinstance(exc, StoreError)
                else StoreError(self._where, _why(exc, self._timeout_s), transient=passing(exc))
            )
            if error is not exc:
                error.__cause__ = exc
            for _, _, future in batch:
                _settle(future, 0, error)
            return
        for (_, _, future), count in zip(batch, counts, strict=True):
            _settle(future, count, None)

    async def _execute(self, batch: list[_Write]) -> list[int]:
        """Run the batch as one transaction; the rows each write changed."""
        async with asyncio.timeout(self._timeout_s):
            if self._conn is None or self._conn.closed:
                await self._drop()
                self._conn = await self._connect()
                from psycopg import AsyncClientCursor

                self._binder = AsyncClientCursor(self._conn)
            assert self._binder is not None
            bind = self._binder.mogrify
            statements: list[str] = []
            spans: list[int] = []
            for sql, params, _ in batch:
                if sql:
                    values = params() if callable(params) else params
                    if isinstance(values, list):
                        statements.extend(bind(sql, row) for row in values)
                    else:
                        statements.append(bind(sql, values))
                spans.append(len(statements))
            if not statements:
                return [0] * len(batch)
            cursor = self._conn.cursor()
            await cursor.execute(";\n".join(statements), prepare=False)  # every text is new
            rows = [max(cursor.rowcount, 0)]
            while cursor.nextset():
                rows.append(max(cursor.rowcount, 0))
        counts, start = [], 0
        for end in spans:
            counts.append(sum(rows[start:end]))
            start = end
        return counts

    async def _drop(self) -> None:
        conn, self._conn, self._binder = self._conn, None, None
        if conn is not None:
            await conn.close()


class _Rows:
    """Buffered items, encoded to rows when their batch is built."""

    __slots__ = ("encode", "items")

    def __init__(self, encode: Callable[[Any], Sequence[Any]], items: list[Any]) -> None:
        self.encode = encode
        self.items = items

    def __call__(self) -> list[Sequence[Any]]:
        return [self.encode(item) for item in self.items]


def _cancelled(exc: Exception) -> bool:
    """A statement stopped by the server's statement_timeout: trying each write again would wait
    as long again for each."""
    from psycopg import errors

    return isinstance(exc, errors.QueryCanceled)


def _why(exc: Exception, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no commit within {timeout_s:g} s"
    return f"write failed: {type(exc).__name__}: {exc}"


def _settle(future: asyncio.Future[int] | None, count: int, error: BaseException | None) -> None:
    # A waiter that gave up (timed out) or whose event loop is gone is not answered.
    if future is None or future.done() or future.get_loop().is_closed():
        return
    if error is None:
        future.set_result(count)
    else:
        future.set_exception(error)
