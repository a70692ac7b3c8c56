"""Open an Optuna study on an RDB storage URL (sqlite, PostgreSQL, MySQL) with trial heartbeats.

Heartbeats let any worker notice a trial whose process died (kill -9, a lost machine): once its
heartbeat is older than the grace period it is marked failed and `on_stale` runs for it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError

DEFAULT_STORAGE = "sqlite:///autocompress.db"  # in the working directory
DIRECTIONS = ["maximize", "minimize", "minimize"]
HEARTBEAT_S = 20
GRACE_S = 90


def rdb_storage(url: str, on_stale: Callable | None = None, heartbeat: int = HEARTBEAT_S, grace: int = GRACE_S):
    import optuna

    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat,
                                          grace_period=grace, heartbeat_stale_trial_callback=on_stale)


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
