"""The PostgreSQL store's reader: a connection of its own, and the schema check before any use.

The connection opens at the first read, or when the writer asks for its own: either way the
schema is checked first (and created or migrated when behind), so nothing is read or written
in a schema that is not ours. Both connections tell the server to give up a statement past the
timeout too. A read whose connection was lost while idle (a server restart) is tried once more
on a new one; any other failure, or no answer in time, is a `StoreError`. The connection
belongs to one event loop at a time, as the writer's task does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tools.errors import StoreError

from ._pg_schema import passing, prepare

if TYPE_CHECKING:
    from psycopg import AsyncConnection

__all__ = ["PgReader"]


class PgReader:
    """The reading connection of one PostgreSQL store.

    Args:
        url: The database's URL or libpq connection string.
        schema: The store's schema (its name, unquoted).
        where: The URL without its password, for error messages.
        timeout_s: How long a read (or a statement, on the server) may take before `StoreError`.
    """

    def __init__(self, url: str, schema: str, where: str, timeout_s: float) -> None:
        self._url = url
        self._schema = schema
        self._where = where
        self._timeout_s = timeout_s
        self._conn: AsyncConnection | None = None
        self._lock = asyncio.Lock()  # one reader opened at once (an asyncio lock binds to one loop)
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the reader belongs to
        self._checked = False

    async def _open(self) -> AsyncConnection:
        import psycopg

        try:
            conn = await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, connect_timeout=max(2, int(self._timeout_s))
            )
        except psycopg.Error as exc:
            raise StoreError(
                self._where, f"cannot connect: {type(exc).__name__}: {exc}", transient=passing(exc)
            ) from exc
        try:  # the server gives up too, so a statement stuck on a lock does not hold others' locks
            await conn.execute(
                "SELECT set_config('statement_timeout', %s, false)",
                (str(min(int(self._timeout_s * 1000), 2**31 - 1)),),
            )
        except BaseException:
            await conn.close()
            raise
        return conn

    async def connect(self) -> AsyncConnection:
        """The writer's connection, once the schema is known to be ours."""
        await self._connection()
        return await self._open()

    async def _connection(self) -> AsyncConnection:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None and self._loop.is_running():
                raise StoreError(self._where, "in use on another event loop; close it there first")
            if self._conn is not None:  # opened on a loop that is gone: release it without it
                self._conn.pgconn.finish()
                self._conn = None
            self._lock, self._loop = asyncio.Lock(), loop
        async with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = await self._open()
            if not self._checked:  # before anything is read or written: ours, and not newer
                try:
                    await prepare(self._conn, self._schema, self._where)
                except StoreError:
                    raise
                except Exception as exc:
                    raise StoreError(self._where, f"cannot prepare schema {self._schema!r}: {exc}") from exc
                self._checked = True
            return self._conn

    async def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows `sql` returns."""
        import psycopg

        for again in (True, False):  # a read is tried twice: the first on a connection that may be stale
            conn = None
            try:
                async with asyncio.timeout(self._timeout_s):
                    conn = await self._connection()
                    cursor = await conn.execute(sql, params)
                    return await cursor.fetchall()
            except (psycopg.Error, TimeoutError) as exc:
                if conn is not None and self._conn is conn:  # the next read opens a new one
                    self._conn = None  # (a concurrent read may have opened one already: kept)
                stale = conn is not None and conn.closed  # lost while idle (a server restart)
                if conn is not None:
                    await conn.close()
                if again and stale and isinstance(exc, psycopg.OperationalError):
                    continue
                why = f"no answer within {self._timeout_s:g} s" if isinstance(exc, TimeoutError) else str(exc)
                raise StoreError(
                    self._where, f"read failed: {type(exc).__name__}: {why}", transient=passing(exc)
                ) from exc
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Close the connection (the next read opens it again)."""
        conn, self._conn, self._loop = self._conn, None, None
        if conn is not None:
            await conn.close()
