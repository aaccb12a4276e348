"""The SQLite store's schema: its migrations, and the check that a file is ours and not newer.

Schema 1: runs, finished steps, trace events. 2: the approval queue. 3: the call journal (model
responses and tool calls inside a step), each run's owner, and each approval's call key. 4: who
aborted a run, when a person did (a run stopped with its process is taken up again; one a person
aborted is not, by an engine that recovers runs by itself).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tools.errors import StoreError

from ._store import UNNAMED

__all__ = ["APP", "MIGRATIONS", "SCHEMA_VERSION", "migrate", "schema_version"]

SCHEMA_VERSION = 4
APP = "foreman"
# MIGRATIONS[n] brings a store from schema n to n + 1.
MIGRATIONS = [
    """
    CREATE TABLE foreman_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY, goal TEXT, status TEXT NOT NULL, plan TEXT, workers TEXT NOT NULL,
        usage TEXT NOT NULL, output TEXT, error TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL
    );
    CREATE TABLE steps (
        run_id TEXT NOT NULL REFERENCES runs(run_id), step_id TEXT NOT NULL, worker TEXT NOT NULL,
        output TEXT NOT NULL, usage TEXT NOT NULL, attempts INTEGER NOT NULL, finished_at REAL NOT NULL,
        PRIMARY KEY (run_id, step_id)
    );
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, kind TEXT NOT NULL,
        at REAL NOT NULL, body TEXT NOT NULL
    );
    CREATE INDEX events_by_run ON events (run_id, seq);
    """,
    """
    CREATE TABLE approvals (
        approval_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, worker TEXT NOT NULL, tool TEXT NOT NULL,
        call_id TEXT NOT NULL, arguments TEXT NOT NULL, schema TEXT NOT NULL, reason TEXT NOT NULL,
        created_at REAL NOT NULL, expires_at REAL NOT NULL, status TEXT NOT NULL,
        decision_reason TEXT, edited_arguments TEXT, decided_by TEXT, decided_at REAL
    );
    CREATE INDEX approvals_pending ON approvals (status, created_at);
    """,
    """
    CREATE TABLE calls (
        run_id TEXT NOT NULL, key TEXT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL, at REAL NOT NULL,
        PRIMARY KEY (run_id, key)
    ) WITHOUT ROWID;
    ALTER TABLE runs ADD COLUMN owner TEXT;
    ALTER TABLE approvals ADD COLUMN call_key TEXT NOT NULL DEFAULT '';
    CREATE INDEX approvals_by_key ON approvals (run_id, call_key);
    """,
    # Runs a person aborted before this column existed are known by RunAborted's message, the
    # only "aborted" end whose error is not empty (a stopped run's CancelledError has none).
    f"""
    ALTER TABLE runs ADD COLUMN aborted_by TEXT;
    UPDATE runs SET aborted_by = '{UNNAMED}' WHERE status = 'aborted' AND error LIKE 'run aborted%';
    """,
]


def schema_version(path: Path) -> int:
    """The file's schema version (0 for a new or empty file); StoreError when it is not ours."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    try:
        with sqlite3.connect(read_only_uri(path), uri=True) as db:
            names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}  # views too
            if not names:
                return 0
            if "foreman_meta" not in names:
                raise StoreError(
                    str(path), f"not a {APP} store (it has other tables: {', '.join(sorted(names))})"
                )
            meta = dict(db.execute("SELECT key, value FROM foreman_meta"))
    except sqlite3.DatabaseError as exc:
        raise StoreError(str(path), f"not an SQLite database ({exc})") from None
    if meta.get("app") != APP:
        raise StoreError(str(path), f"not a {APP} store (app is {meta.get('app')!r})")
    version = _version(str(path), meta.get("schema_version", "0"))
    if version > SCHEMA_VERSION:
        raise _newer(str(path), version)
    return version


def _newer(where: str, version: int) -> StoreError:
    return StoreError(
        where, f"written by a newer version (schema {version}; this one reads up to {SCHEMA_VERSION})"
    )


def read_only_uri(path: Path) -> str:
    """The URI that opens `path` read-only; the path percent-encoded, or a "#" or "?" in a file
    name would end it there, and another file (or none) would be opened and checked."""
    return f"{path.resolve().as_uri()}?mode=ro"


def _version(path: str, value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise StoreError(path, f"its schema_version {value!r} is not a number") from None


def migrate(db: sqlite3.Connection, version: int, where: str = "store") -> None:
    """Bring the store open on `db` from schema `version` to the current one, in one transaction.

    The version is read again once the write lock is held: processes opening a new (or old)
    store at the same moment all read the version before, and every one but the first would
    run the migrations again ("table foreman_meta already exists")."""
    try:
        db.execute("BEGIN IMMEDIATE")
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'foreman_meta'").fetchone():
            row = db.execute("SELECT value FROM foreman_meta WHERE key = 'schema_version'").fetchone()
            version = max(version, _version(where, row[0]) if row else 0)
        if version > SCHEMA_VERSION:  # a newer foreman migrated it meanwhile: leave its mark
            raise _newer(where, version)
        if version == SCHEMA_VERSION:  # another process migrated it meanwhile
            db.execute("COMMIT")
            return
        for script in MIGRATIONS[version:]:
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
        db.execute("INSERT OR REPLACE INTO foreman_meta VALUES ('app', ?)", (APP,))
        db.execute("INSERT OR REPLACE INTO foreman_meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        db.execute("COMMIT")
    except Exception:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
