"""One process at a time creates or upgrades a store: a lock around opening the MLflow tracking store and the
Optuna study storage.

Opening either store on an empty database creates its schema, and two processes started together race there:
MLflow's migrations in one fail with `duplicate column name` while the other adds the column, Optuna's tables or
study are created twice. Under the lock, the first process creates and the others find what it made. The lock is a
file in the temporary folder named after the store (a sqlite file by its absolute path), so it holds between
processes of one machine, where workers started together run; workers on other machines join a study that
`autocompress search` has created already.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

SQLITE = "sqlite:///"


def lock_path(uri: str) -> Path:
    """The lock file of store `uri`: one per store, whatever relative path names a sqlite file."""
    key = uri
    if uri.startswith(SQLITE):
        file = uri[len(SQLITE):].split("?")[0]
        if file and file != ":memory:":
            key = SQLITE + str(Path(file).resolve())
    name = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"autocompress-store-{name}.lock"


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold the lock of store `uri` for the block (a no-op where there is no fcntl)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(lock_path(uri), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
