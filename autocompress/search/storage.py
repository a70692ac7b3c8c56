"""Open an Optuna study on an RDB storage URL (sqlite, PostgreSQL, MySQL) with trial heartbeats.

Heartbeats let any worker notice a trial whose process died (kill -9, a lost machine): once its
heartbeat is older than the grace period it is marked failed and `on_stale` runs for it.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from pathlib import Path

from ..engine.errors import ConfigError

DEFAULT_STORAGE = "sqlite:///autocompress.db"  # in the working directory
DIRECTIONS = ["maximize", "minimize", "minimize"]
HEARTBEAT_S = 20
GRACE_S = 90


def rdb_storage(url: str, on_stale: Callable | None = None, heartbeat: int = HEARTBEAT_S, grace: int = GRACE_S):
    import optuna

    sqlite = url.startswith("sqlite")
    engine_kwargs = {"connect_args": {"timeout": 60}} if sqlite else {"pool_pre_ping": True}
    kind = _sqlite_storage_class() if sqlite else optuna.storages.RDBStorage
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return kind(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat,
                    grace_period=grace, heartbeat_stale_trial_callback=on_stale)


@functools.cache
def _sqlite_storage_class():
    """Optuna's RDB storage, with a queued trial taken by one process at a time.

    A worker takes a queued (WAITING) trial by reading its state and writing RUNNING. Optuna makes that read
    `SELECT ... FOR UPDATE`, which PostgreSQL and MySQL honour and sqlite ignores: two workers started
    together both read WAITING and both run the same trial (measured: 3 processes taking 120 queued trials
    took 135, 15 of them twice). Under the store's lock the second one reads RUNNING and takes the next.
    A sqlite file is only shared by processes of one machine, which is where the lock holds.
    """
    import optuna

    from ..store_lock import store_lock

    class SqliteStorage(optuna.storages.RDBStorage):
        def set_trial_state_values(self, trial_id, state, values=None) -> bool:
            if state != optuna.trial.TrialState.RUNNING:
                return super().set_trial_state_values(trial_id, state, values)
            with store_lock(self.url):
                return super().set_trial_state_values(trial_id, state, values)

    return SqliteStorage


def open_study(name: str, url: str, sampler=None, create: bool = True, on_stale: Callable | None = None,
               heartbeat: int = HEARTBEAT_S, grace: int = GRACE_S):
    """The study `name` in the storage at `url`; created on first use when `create`."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not create and url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        if not Path(url.removeprefix("sqlite:///")).is_file():  # do not leave an empty database behind
            raise ConfigError(f"no study named '{name}': {url} does not exist; check --study and --storage "
                              "(and the working directory)")
    from ..store_lock import store_lock

    try:
        with store_lock(url):  # tables and study created once, also by processes started together
            storage = rdb_storage(url, on_stale, heartbeat, grace)
            if create:
                return optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                           directions=DIRECTIONS, load_if_exists=True)
            return optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    except KeyError:
        raise ConfigError(f"no study named '{name}' in {url}; check --study and --storage") from None
    except ValueError as err:
        raise ConfigError(f"study '{name}': {err}") from None
    except Exception as err:  # unreachable database, bad URL, missing driver
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"storage '{url}' cannot be opened ({first}); "
                          "check the URL and that the database is reachable") from None


def open_existing_study(name: str, url: str = DEFAULT_STORAGE):
    """The study `name` in the storage at `url`, for reading: never created, nor its database.

    A missing study or database, or a storage that cannot be reached, is a one-line ConfigError.
    """
    return open_study(name, url, create=False)
