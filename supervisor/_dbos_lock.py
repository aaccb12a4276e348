"""A DBOS worker's hold on its executor id, and the DBOS side's database errors as ours.

While a worker lives it holds a PostgreSQL advisory lock on its executor id, which the server
releases when the process dies: a second process under a live id, or a takeover of a live id,
is refused. A server restart releases every advisory lock too, so the lock is checked every few
seconds and taken again; a worker whose id another process took meanwhile stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import unquote, urlsplit

from tools.errors import AgentError, ConfigurationError, StoreError

__all__ = ["IN_USE", "LOCK_CHECK_S", "hold_lock", "take_lock", "unreachable"]

IN_USE = "this executor id is in use by a live worker"
LOCK_CHECK_S = 5.0  # how often a worker checks that it still holds its executor id's lock
_log = logging.getLogger("supervisor.dbos")


def unreachable(url: str, exc: BaseException) -> AgentError:
    """A database error of the DBOS side (psycopg's, SQLAlchemy's) as one of ours: the store's,
    with the password hidden, as written in the URL or decoded, before the message is cut."""
    if isinstance(exc, AgentError):
        return exc
    from ._pg_schema import passing, public_url

    text = " ".join(str(exc).split())
    written = urlsplit(url).netloc.rpartition("@")[0].partition(":")[2]
    for secret in {written, unquote(written)} - {""}:
        text = text.replace(secret, "***")
    return StoreError(public_url(url), f"{type(exc).__name__}: {text[:300]}", transient=passing(exc))


async def take_lock(url: str, app: str, executor_id: str, refusal: str) -> Any:
    """A connection holding the executor id's advisory lock; `ConfigurationError` (`refusal`)
    when a live process holds it, `StoreError` when the database cannot be reached."""
    import psycopg

    key = f"foreman-executor:{app}:{executor_id}"
    try:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:  # unreachable, a wrong password, no such database
        raise unreachable(url, exc) from None
    try:
        async with asyncio.timeout(30):
            row = await (await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,))).fetchone()
    except (psycopg.Error, TimeoutError) as exc:
        await conn.close()
        if isinstance(exc, TimeoutError):
            from ._pg_schema import public_url

            raise StoreError(
                public_url(url), "cannot connect: no answer within 30 s", transient=True
            ) from None
        raise unreachable(url, exc) from None
    if not (row and row[0]):
        await conn.close()
        raise ConfigurationError(f"executor {executor_id!r}: {refusal}")
    return conn


async def hold_lock(url: str, app: str, executor_id: str, held: list[Any], stop: asyncio.Event) -> None:
    """Keep the lock (`held[0]`, the connection holding it) until `stop`: checked every
    `LOCK_CHECK_S`, and taken again when its connection was lost. Taken meanwhile by another
    process, `stop` is set and `ConfigurationError` raised: this worker must not run beside it."""
    import psycopg

    while not stop.is_set():  # bounded by `stop`
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), LOCK_CHECK_S)
        if stop.is_set():
            return
        try:
            async with asyncio.timeout(LOCK_CHECK_S):  # a server that stopped answering too
                await held[0].execute("SELECT 1")
            continue
        except (psycopg.Error, TimeoutError):
            pass
        with contextlib.suppress(Exception):
            await held[0].close()
        try:
            held[0] = await take_lock(url, app, executor_id, IN_USE)
            _log.warning("executor %s: the database connection was lost; its lock is held again", executor_id)
        except StoreError:  # the database is still away: try again at the next check
            continue
        except ConfigurationError:
            stop.set()
            raise ConfigurationError(
                f"executor {executor_id!r}: another process took this id while the database was away; "
                "this worker stopped (its runs are that process's now)"
            ) from None
