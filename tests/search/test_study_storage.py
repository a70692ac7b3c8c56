"""Opening studies: created once by a search, opened read-only everywhere else, with one-line errors."""

import multiprocessing
import warnings

import optuna
import pytest

from autocompress.engine.errors import ConfigError
from autocompress.search.storage import DEFAULT_STORAGE, DIRECTIONS, open_existing_study, open_study
from autocompress.search.study import SearchSettings


def test_the_default_storage_is_one_constant():
    assert DEFAULT_STORAGE == "sqlite:///autocompress.db"
    from autocompress.search.space import SearchSpace

    assert SearchSettings(baselines="none", memory=False, study="s", space=SearchSpace(dims={})).storage == DEFAULT_STORAGE


def test_open_study_creates_once_then_resumes(tmp_path):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    first = open_study("s", url)
    first.set_user_attr("marker", 1)
    again = open_study("s", url)
    assert again._study_id == first._study_id and again.user_attrs == {"marker": 1}
    assert [d.name for d in again.directions] == [d.upper() for d in DIRECTIONS]


def test_open_existing_study_reads_what_a_search_created(tmp_path):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    created = open_study("s", url)
    created.tell(created.ask(), [0.5, 10.0, 1.0])
    found = open_existing_study("s", url)
    assert found.study_name == "s" and [t.values for t in found.trials] == [[0.5, 10.0, 1.0]]


def test_a_missing_database_is_not_created(tmp_path):
    db = tmp_path / "none.db"
    with pytest.raises(ConfigError, match=r"no study named 'x': sqlite:///.*none\.db does not exist"):
        open_existing_study("x", f"sqlite:///{db}")
    assert not db.exists()


def test_a_missing_study_is_not_created(tmp_path):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    open_study("other", url)
    with pytest.raises(ConfigError, match="no study named 'x' in sqlite:///"):
        open_existing_study("x", url)
    assert optuna.get_all_study_names(url) == ["other"]


def test_an_unreachable_storage_is_one_line():
    with pytest.raises(ConfigError) as err:
        open_existing_study("x", "nosuch://nowhere/db")
    msg = str(err.value)
    assert msg.startswith("storage 'nosuch://nowhere/db' cannot be opened (") and "\n" not in msg


QUEUED = 120


def _take_queued(url: str, start, out) -> None:
    """A worker: take queued trials (`ask` pops the queue) until the queue is empty; report their numbers."""
    warnings.simplefilter("ignore")  # Optuna's heartbeat note about `ask` outside `optimize`
    study = open_study("q", url)
    start.wait()
    taken = []
    while (number := study.ask().number) < QUEUED:
        taken.append(number)
    out.put(taken)


def test_workers_started_together_never_take_the_same_queued_trial(tmp_path):
    # sqlite ignores Optuna's SELECT ... FOR UPDATE: without the lock, 3 workers took 135 of 120 queued trials
    url = f"sqlite:///{tmp_path / 'q.db'}"
    study = open_study("q", url)
    for i in range(QUEUED):
        study.enqueue_trial({"x": i})
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Barrier(3), ctx.Queue()
    workers = [ctx.Process(target=_take_queued, args=(url, start, out)) for _ in range(3)]
    for w in workers:
        w.start()
    taken = [out.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    numbers = sorted(sum(taken, []))
    assert numbers == list(range(QUEUED))  # every queued trial taken, none twice
