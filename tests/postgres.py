"""A throw-away PostgreSQL server on 127.0.0.1 for tests: initdb + pg_ctl in a temporary folder.

PostgreSQL is installed on the CI machines but not running. When the binaries are missing the
tests that need it are skipped, unless AUTOCOMPRESS_REQUIRE_POSTGRES=1 (set by .ci/run) makes
that a failure.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server(databases: tuple[str, ...]):
    """Yields a URL prefix `postgresql://postgres@127.0.0.1:PORT/`; each name in `databases` exists."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not (initdb and pg_ctl):
        if os.environ.get("AUTOCOMPRESS_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL (initdb, pg_ctl) is not installed; .ci/run installs it")
        pytest.skip("PostgreSQL is not installed")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="autocompress-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    data, port = folder / "data", _free_port()
    run = dict(check=True, capture_output=True, text=True)
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres"], **run)
    opts = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", opts, "-l", str(folder / "log"), "-w", "start"], **run)
    try:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            for name in databases:
                cur.execute(f"CREATE DATABASE {name}")
        conn.close()
        yield f"postgresql://postgres@127.0.0.1:{port}/"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
