"""A throwaway PostgreSQL cluster on 127.0.0.1 for the tests that need one.

`FOREMAN_PG_URL` points at a server someone started; otherwise the cluster is made with the
machine's `initdb` in a temporary directory, on a free port, and stopped and removed at the end.
PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user (created
when missing, as Debian's package does). Without PostgreSQL the tests skip, unless
`FOREMAN_REQUIRE_PG` is set, as CI sets it: then they fail.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["cluster", "fresh_database"]


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def cluster(*, durable: bool = False) -> Iterator[str | None]:
    """The URL of a PostgreSQL server (its `postgres` database), or None when there is none.

    `durable`: flush every commit to disk, as a production server does (the benchmarks); the
    tests skip it for speed, since what they check does not depend on the disk."""
    given = os.environ.get("FOREMAN_PG_URL")
    if given:
        yield given
        return
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        yield None
        return
    as_user: list[str] = []
    folder = tempfile.mkdtemp(prefix="foreman-pg-")
    if os.geteuid() == 0:
        if subprocess.run(["id", "postgres"], capture_output=True).returncode:
            subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
        shutil.chown(folder, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(folder, "data"), _free_port()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "timeout": 120, "check": True}
    subprocess.run(
        [*as_user, initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"], **quiet
    )
    flush = "" if durable else " -c fsync=off"
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder}{flush} -c max_connections=300"
    log = os.path.join(folder, "server.log")
    subprocess.run([*as_user, pg_ctl, "-D", data, "-l", log, "-w", "-o", options, "start"], **quiet)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"], **quiet)
        shutil.rmtree(folder, ignore_errors=True)


def fresh_database(server_url: str) -> str:
    """A new empty database on the server; its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name
