"""The PostgreSQL store's schema: its tables, its version, and the check that a schema is ours.

The store keeps its tables in a schema of its own ("foreman" by default), so that it can share a
database with other programs (DBOS keeps its own in "dbos"). The schema's `foreman_meta` table
names the app and the schema version. A schema that holds anything else, or that a newer
version wrote, is refused before anything is written; a missing or empty one is created, under
an advisory lock so that two processes starting at once do not both create it.

Schema 1: runs (with their owner), finished steps, the call journal, the approval queue (with
each approval's call key) and trace events: what SQLite's schema 3 has. 2: who aborted a run,
when a person did, as SQLite's schema 4.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tools.errors import StoreError

from ._store import UNNAMED

if TYPE_CHECKING:
    from psycopg import AsyncConnection

__all__ = [
    "APP",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "check_schema_name",
    "passing",
    "prepare",
    "public_url",
    "schema_version",
    "sqlstate",
]

SCHEMA_VERSION = 2
APP = "foreman"
# MIGRATIONS[n] brings a schema from version n to n + 1; "{s}" is the quoted schema name.
MIGRATIONS = [
    """
    CREATE TABLE {s}.foreman_meta (key text PRIMARY KEY, value text NOT NULL);
    CREATE TABLE {s}.runs (
        run_id text PRIMARY KEY, goal text, status text NOT NULL, plan text, workers text NOT NULL,
        usage text NOT NULL, output text, error text, created_at double precision NOT NULL,
        updated_at double precision NOT NULL, owner text
    );
    CREATE INDEX runs_by_start ON {s}.runs (created_at);
    CREATE TABLE {s}.steps (
        run_id text NOT NULL, step_id text NOT NULL, worker text NOT NULL, output text NOT NULL,
        usage text NOT NULL, attempts integer NOT NULL, finished_at double precision NOT NULL,
        PRIMARY KEY (run_id, step_id)
    );
    CREATE TABLE {s}.calls (
        run_id text NOT NULL, key text NOT NULL, kind text NOT NULL, body text NOT NULL,
        at double precision NOT NULL, seq bigserial NOT NULL, PRIMARY KEY (run_id, key)
    );
    CREATE TABLE {s}.events (
        seq bigserial PRIMARY KEY, run_id text NOT NULL, kind text NOT NULL,
        at double precision NOT NULL, body text NOT NULL
    );
    CREATE INDEX events_by_run ON {s}.events (run_id, seq);
    CREATE TABLE {s}.approvals (
        approval_id text PRIMARY KEY, run_id text NOT NULL, worker text NOT NULL, tool text NOT NULL,
        call_id text NOT NULL, arguments text NOT NULL, schema text NOT NULL, reason text NOT NULL,
        created_at double precision NOT NULL, expires_at double precision NOT NULL, status text NOT NULL,
        decision_reason text, edited_arguments text, decided_by text, decided_at double precision,
        call_key text NOT NULL DEFAULT ''
    );
    CREATE INDEX approvals_pending ON {s}.approvals (status, created_at);
    CREATE INDEX approvals_by_key ON {s}.approvals (run_id, call_key);
    """,
    # As SQLite's schema 4: a run a person aborted is known by RunAborted's message (a stopped
    # run's CancelledError has none).
    f"""
    ALTER TABLE {{s}}.runs ADD COLUMN aborted_by text;
    UPDATE {{s}}.runs SET aborted_by = '{UNNAMED}' WHERE status = 'aborted' AND error LIKE 'run aborted%';
    """,
]

# Lower case only: a name that needs no quoting names the same schema in psql and here.
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_SECRET = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def check_schema_name(schema: str) -> str:
    """The schema name, quoted for SQL; `StoreError` unless it is a plain lower-case name."""
    if not _NAME.fullmatch(schema):
        raise StoreError(schema, "a schema name is lower-case letters, digits and _ (at most 63)")
    return f'"{schema}"'


_CONNINFO_PAIR = re.compile(r"\s*([a-z_]+)\s*=\s*(?:'(?:[^'\\]|\\.)*'|[^\s']+)\s*")
# libpq's keywords (lower case, as libpq requires) that a store string would use.
_LIBPQ_KEYS = frozenset(
    "host hostaddr port dbname user password passfile service sslmode sslrootcert sslcert sslkey "
    "connect_timeout application_name options target_session_attrs channel_binding".split()
)


def is_postgres(store: str) -> bool:
    """Whether a `store=` string names a PostgreSQL database: a postgresql:// or postgres:// URL
    (any case), or a libpq key=value string of two pairs or more ("host=db dbname=runs"; one pair,
    "dbname=runs.db", stays a file name)."""
    if store[:13].lower().startswith(("postgresql://", "postgres://")):
        return True
    keys = []
    at = 0
    while at < len(store):  # bounded: each match consumes at least one character
        match = _CONNINFO_PAIR.match(store, at)
        if match is None:
            return False
        keys.append(match.group(1))
        at = match.end()
    return len(keys) >= 2 and all(key in _LIBPQ_KEYS for key in keys)


def normal_url(url: str) -> str:
    """The URL with its scheme in lower case, as libpq reads it ("POSTGRESQL://" is refused)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.lower()}{sep}{rest}" if sep and scheme.lower() in ("postgresql", "postgres") else url


def sqlstate(exc: BaseException) -> str:
    """The error's SQLSTATE ("" when it has none), also through SQLAlchemy's error (DBOS's
    side) around psycopg's."""
    return getattr(getattr(exc, "orig", None) or exc, "sqlstate", None) or ""


def passing(exc: BaseException) -> bool:
    """Whether a database error may pass once the server is back (`StoreError.transient`): no
    answer in time, a lost or refused connection, a statement cancelled while it waited, a
    write refused as read-only (a failover under way). A wrong password, a missing database or
    a statement the server refuses stay as they are."""
    if isinstance(exc, TimeoutError):
        return True
    import psycopg

    exc = getattr(exc, "orig", None) or exc  # SQLAlchemy's error (DBOS's side) around psycopg's
    code = sqlstate(exc)
    if code == "25006":  # read-only transaction: the primary was demoted, or a standby answers
        return True  # (psycopg files it under InternalError)
    if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    return not code.startswith(("28", "3D"))  # invalid authorization, no such database


def public_url(url: str) -> str:
    """The URL (or key=value conninfo) without its password, for messages."""
    if "://" not in url:
        return _SECRET.sub(r"\1***", url)
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}@{host}"
    query = urlencode([(k, "***" if k.lower() == "password" else v) for k, v in parse_qsl(parts.query)])
    return urlunsplit(parts._replace(netloc=netloc, query=query))


async def schema_version(conn: AsyncConnection, schema: str, where: str) -> int:
    """The schema's version (0 when it is missing or empty); `StoreError` when it is not ours
    or is newer than this code."""
    cur = await conn.execute(
        "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
        "UNION ALL SELECT p.proname FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n "
        "ON n.oid = p.pronamespace WHERE n.nspname = %s",
        (schema, schema),
    )
    names = {row[0] for row in await cur.fetchall()}
    if not names:
        return 0
    if "foreman_meta" not in names:
        found = ", ".join(sorted(names)[:8])
        raise StoreError(
            where, f"schema {schema!r} is not a {APP} store (it has other tables or functions: {found})"
        )
    cur = await conn.execute(f'SELECT key, value FROM "{schema}".foreman_meta')
    meta: dict[str, str] = dict(await cur.fetchall())
    if meta.get("app") != APP:
        raise StoreError(where, f"schema {schema!r} is not a {APP} store (app is {meta.get('app')!r})")
    version = int(meta.get("schema_version", "0"))
    if version > SCHEMA_VERSION:
        raise StoreError(
            where,
            f"schema {schema!r} was written by a newer version (schema {version}; this one reads up to "
            f"{SCHEMA_VERSION})",
        )
    return version


async def prepare(conn: AsyncConnection, schema: str, where: str) -> None:
    """Check the schema, and create or migrate it when it is behind, in one transaction.

    `conn` is in autocommit mode. The version is read again under the advisory lock: another
    process may have migrated it in between.
    """
    if await schema_version(conn, schema, where) == SCHEMA_VERSION:
        return
    quoted = check_schema_name(schema)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{APP}:{schema}",))
        version = await schema_version(conn, schema, where)
        if version == SCHEMA_VERSION:
            return
        cur = await conn.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (schema,))
        if await cur.fetchone() is None:  # created only when missing: IF NOT EXISTS needs the right anyway
            await conn.execute(f"CREATE SCHEMA {quoted}")
        for script in MIGRATIONS[version:]:
            await conn.execute(script.format(s=quoted))
        await conn.execute(
            f"INSERT INTO {quoted}.foreman_meta VALUES ('app', %s), ('schema_version', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (APP, str(SCHEMA_VERSION)),
        )


RUN = "run_id, goal, status, plan, workers, usage, output, error, created_at, updated_at, owner, aborted_by"
STEP = "run_id, step_id, worker, output, usage, attempts, finished_at"
CALL = "run_id, key, kind, body, at"
EVENT = "run_id, kind, at, body"
APPROVAL = (
    "approval_id, run_id, worker, tool, call_id, arguments, schema, reason, created_at, expires_at, "
    "status, decision_reason, edited_arguments, decided_by, decided_at, call_key"
)


@dataclass(frozen=True, slots=True)
class Statements:
    """The store's SQL, with its tables named in their schema; columns in SQLite's order."""

    new_run: str
    take_up: str
    plan: str
    step: str
    usage: str
    finish: str
    call: str
    event: str
    owned_call: str
    owned_step: str
    owned_plan: str
    owned_usage: str
    owned_finish: str
    add_approval: str
    decide: str
    owned_add_approval: str
    owned_decide: str
    runs: str

    @classmethod
    def of(cls, s: str) -> Statements:
        """The statements for the quoted schema name `s`."""
        return cls(
            new_run=f"INSERT INTO {s}.runs ({RUN}) VALUES (%s, %s, %s, %s, %s, %s, NULL, NULL, %s, %s, %s, "
            "NULL) ON CONFLICT (run_id) DO NOTHING",
            # Compare and swap: only if nobody, in any process, changed the run since it was loaded.
            take_up=f"UPDATE {s}.runs SET status = %s, workers = %s, owner = %s, output = NULL, "
            "error = NULL, aborted_by = NULL, updated_at = %s WHERE run_id = %s "
            "AND owner IS NOT DISTINCT FROM %s AND status = %s AND updated_at = %s",
            plan=f"UPDATE {s}.runs SET plan = %s, updated_at = %s WHERE run_id = %s",
            step=f"INSERT INTO {s}.steps ({STEP}) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (run_id, step_id) DO UPDATE SET worker = EXCLUDED.worker, "
            "output = EXCLUDED.output, usage = EXCLUDED.usage, attempts = EXCLUDED.attempts, "
            "finished_at = EXCLUDED.finished_at",
            usage=f"UPDATE {s}.runs SET usage = %s, updated_at = %s WHERE run_id = %s",
            finish=f"UPDATE {s}.runs SET status = %s, usage = %s, output = %s, error = %s, "
            "aborted_by = %s, updated_at = %s WHERE run_id = %s",
            # A record written again moves to the end, as SQLite's INSERT OR REPLACE does.
            call=f"INSERT INTO {s}.calls ({CALL}) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (run_id, key) "
            "DO UPDATE SET kind = EXCLUDED.kind, body = EXCLUDED.body, at = EXCLUDED.at, seq = DEFAULT",
            event=f"INSERT INTO {s}.events ({EVENT}) VALUES (%s, %s, %s, %s)",
            # The same writes, fenced: they change nothing once another process owns the run (a
            # process cut off from the database, whose run was taken over, must not write on).
            # FOR SHARE: a take-up committing meanwhile is waited for and seen, and a take-up
            # waits for the write, so its reading of the journal includes it.
            owned_call=f"INSERT INTO {s}.calls ({CALL}) SELECT %s, %s, %s, %s, %s::double precision "
            f"WHERE EXISTS (SELECT 1 FROM {s}.runs WHERE run_id = %s AND owner IS NOT DISTINCT FROM %s "
            "FOR SHARE) "
            "ON CONFLICT (run_id, key) "
            "DO UPDATE SET kind = EXCLUDED.kind, body = EXCLUDED.body, at = EXCLUDED.at, seq = DEFAULT",
            owned_step=f"INSERT INTO {s}.steps ({STEP}) SELECT %s, %s, %s, %s, %s, %s::integer, "
            f"%s::double precision WHERE EXISTS (SELECT 1 FROM {s}.runs WHERE run_id = %s "
            "AND owner IS NOT DISTINCT FROM %s FOR SHARE) "
            "ON CONFLICT (run_id, step_id) DO UPDATE SET worker = EXCLUDED.worker, "
            "output = EXCLUDED.output, usage = EXCLUDED.usage, attempts = EXCLUDED.attempts, "
            "finished_at = EXCLUDED.finished_at",
            owned_plan=f"UPDATE {s}.runs SET plan = %s, updated_at = %s WHERE run_id = %s "
            "AND owner IS NOT DISTINCT FROM %s",
            owned_usage=f"UPDATE {s}.runs SET usage = %s, updated_at = %s WHERE run_id = %s "
            "AND owner IS NOT DISTINCT FROM %s",
            owned_finish=f"UPDATE {s}.runs SET status = %s, usage = %s, output = %s, error = %s, "
            "aborted_by = %s, updated_at = %s WHERE run_id = %s AND owner IS NOT DISTINCT FROM %s",
            add_approval=f"INSERT INTO {s}.approvals ({APPROVAL}) VALUES ({', '.join(['%s'] * 16)})",
            # Of two processes deciding at once, the second UPDATE matches no row once the first
            # committed: PostgreSQL checks the condition again on the row the first one wrote.
            decide=f"UPDATE {s}.approvals SET status = %s, decision_reason = %s, edited_arguments = %s, "
            "decided_by = %s, decided_at = %s WHERE approval_id = %s AND status = 'pending'",
            # The approvals the run's owner files and closes (an expiry, the run's end), fenced as
            # its other writes: a process that lost the run does not close one the new owner
            # waits on. A person's decision (`decide`) is not: it counts from any process.
            owned_add_approval=f"INSERT INTO {s}.approvals ({APPROVAL}) SELECT %s, %s, %s, %s, %s, %s, %s, "
            "%s, %s::double precision, %s::double precision, %s, %s, %s, %s, %s::double precision, %s "
            f"WHERE EXISTS (SELECT 1 FROM {s}.runs WHERE run_id = %s AND owner IS NOT DISTINCT FROM %s "
            "FOR SHARE)",
            owned_decide=f"UPDATE {s}.approvals SET status = %s, decision_reason = %s, "
            "edited_arguments = %s, decided_by = %s, decided_at = %s WHERE approval_id = %s "
            f"AND status = 'pending' AND EXISTS (SELECT 1 FROM {s}.runs WHERE run_id = %s "
            "AND owner IS NOT DISTINCT FROM %s FOR SHARE)",
            runs=f"SELECT {RUN} FROM {s}.runs",
        )
