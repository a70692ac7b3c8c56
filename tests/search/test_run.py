"""run_search and join_search on a tiny teacher: the whole search flow, without the command line."""

from pathlib import Path

import optuna
import pytest
import torch

import autocompress.search.run as run_module
from autocompress.config import Experiment
from autocompress.engine.errors import ConfigError
from autocompress.search.run import join_search, run_search, split_threads, with_threads
from autocompress.search.space import parse_space
from autocompress.search.study import SearchSettings
from autocompress.session import engine_inputs
from autocompress.tracking import MlflowTracker

COMPLETE = optuna.trial.TrialState.COMPLETE
SPACE = {"depth": {"low": 1, "high": 3}, "bits": {"choices": [32, 8]}, "train_steps": {"low": 2, "high": 3},
         "fixed": {"batch_size": 16}}


@pytest.fixture
def exp(tiny_experiment):
    return Experiment.from_file(tiny_experiment)


@pytest.fixture
def restore_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _settings(tmp_path, **kw):
    base = dict(study="tiny", space=parse_space(SPACE, "test-space"), trials=2, seed=0,
                storage=f"sqlite:///{tmp_path / 'optuna.db'}", out_dir=tmp_path / "out")
    return SearchSettings(**{"baselines": "none", "memory": False, **base, **kw})


def _tracker(tmp_path):
    return MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="t", artifact_root=tmp_path / "art")


def _no_workers(commands, log):
    raise AssertionError(f"no worker should start: {commands}")


def test_split_threads():
    assert split_threads(2, cores=8) == 4
    assert split_threads(3, cores=8) == 2
    assert split_threads(1, cores=2) == 2
    assert split_threads(4, cores=2) == 1  # never below one thread


def test_with_threads(exp, restore_torch_threads):
    before = exp.measure.threads
    changed = with_threads(exp, 3)
    assert changed.measure.threads == 3 and torch.get_num_threads() == 3
    assert exp.measure.threads == before and changed.name == exp.name


def test_a_search_writes_its_report_logs_it_and_closes_the_parent_run(exp, tmp_path, monkeypatch,
                                                                      restore_torch_threads):
    tracker = _tracker(tmp_path)
    lines: list[str] = []
    done = run_search(exp, _settings(tmp_path), tracker=tracker, log=lines.append)
    assert [t.state for t in done.study.trials] == [COMPLETE, COMPLETE]
    assert done.worker_exit_codes == ()
    assert done.report.counts == {"COMPLETE": 2} and done.report.study == "tiny"
    assert done.report_md == tmp_path / "out" / "tiny" / "report.md"
    assert done.report_md.read_text().startswith(done.report.markdown())
    assert done.plot_png == tmp_path / "out" / "tiny" / "pareto.png" and done.plot_png.is_file()
    assert any("trial 1 COMPLETE" in ln and "2/2 done" in ln for ln in lines), lines

    client = tracker.client
    parent = client.get_run(done.parent_run)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["hypervolume"] == pytest.approx(done.report.hypervolume)
    assert parent.data.metrics["pareto_size"] == len(done.report.front)
    assert parent.data.metrics["teacher_score"] == pytest.approx(done.reference.score)
    assert parent.data.tags["best_trial"] == str(done.report.best.key)  # no budget: every trial is within it
    assert parent.data.tags["knee_trial"] == str(done.report.knee.key)
    assert sorted(f.path for f in client.list_artifacts(done.parent_run, "report")) == [
        "report/pareto.png", "report/report.md"]

    # again, with workers: the budget is used, so no worker starts; the same parent run is closed again
    monkeypatch.setattr(run_module, "run_workers", _no_workers)
    lines.clear()
    again = run_search(exp, _settings(tmp_path), tracker=tracker, workers=2, experiment_file=Path("unused.yaml"),
                       report_dir=tmp_path / "elsewhere", log=lines.append)
    assert again.parent_run == done.parent_run and len(again.study.trials) == 2
    assert "search: study 'tiny' already holds 2 finished trials (budget 2); nothing to run" in lines
    assert again.report_md == tmp_path / "elsewhere" / "report.md" and again.report_md.is_file()
    assert client.get_run(done.parent_run).info.status == "FINISHED"

    # without side-by-side timing: nothing is timed again and the report shows no speed ratio
    import autocompress.search.report as report_module

    def no_timing(*args, **kwargs):
        raise AssertionError("the report timed the front although remeasure=False")

    monkeypatch.setattr(report_module, "_side_by_side", no_timing)
    quiet = run_search(exp, _settings(tmp_path), tracker=tracker, report_dir=tmp_path / "untimed", remeasure=False)
    assert quiet.report.counts == {"COMPLETE": 2} and quiet.report_md.is_file()


def test_local_workers_share_the_remaining_trials_and_the_cores(exp, tiny_experiment, tmp_path, monkeypatch,
                                                                 restore_torch_threads):
    started: list[list[str]] = []

    def fake_run_workers(commands, log):
        started.extend(commands)
        return [0] * (len(commands) - 1) + [3]

    monkeypatch.setattr(run_module, "run_workers", fake_run_workers)
    tracker = _tracker(tmp_path)
    lines: list[str] = []
    done = run_search(exp, _settings(tmp_path, trials=3, seed=10), tracker=tracker, workers=5,
                      experiment_file=tiny_experiment, log=lines.append)
    threads = split_threads(5)
    assert len(started) == 3  # five asked for, three trials left to run
    for i, cmd in enumerate(started, start=1):
        args = cmd[cmd.index("worker") + 1:]
        assert args[0] == str(tiny_experiment.resolve())
        opts = dict(zip(args[1::2], args[2::2]))
        assert opts == {"--study": "tiny", "--storage": f"sqlite:///{tmp_path / 'optuna.db'}",
                        "--out": str((tmp_path / "out").resolve()), "--seed": str(10 + i), "--name": f"worker-{i}",
                        "--threads": str(threads), "--tracking-uri": tracker.tracking_uri,
                        "--device": "auto"}  # where the search trains, so that its workers train there too
    assert done.worker_exit_codes == (0, 0, 3)
    assert torch.get_num_threads() == threads
    assert f"search: 3 local workers, {threads} torch thread(s) each; they share this machine, so latency is " \
           "measured under load: for latency you can trust, run one worker per machine (`autocompress worker`)" in lines
    assert "search: worker exit codes [0, 0, 3]; the study keeps every trial they finished" in lines
    assert done.report.counts == {"WAITING": 3}  # the starting points the workers would have run


def test_workers_need_the_experiment_file(exp, tmp_path):
    with pytest.raises(ValueError, match="pass experiment_file"):
        run_search(exp, _settings(tmp_path), workers=2)
    assert not (tmp_path / "optuna.db").exists()


def test_a_worker_joins_with_the_stored_tracking_uri(exp, tmp_path):
    tracker = _tracker(tmp_path)
    prep = engine_inputs(exp)
    done = run_search(exp, _settings(tmp_path, trials=1), tracker=tracker, prepared=prep)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    lines: list[str] = []
    ran = join_search(exp, "tiny", storage, out_dir=tmp_path / "out", seed=7, trials=2, who="w9", log=lines.append)
    assert ran == 1
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert [t.state for t in study.trials] == [COMPLETE, COMPLETE]
    joined = study.trials[1]
    run = tracker.client.get_run(joined.user_attrs["mlflow_run_id"])
    assert run.data.tags["mlflow.parentRunId"] == done.parent_run and run.info.status == "FINISHED"
    assert any(ln.startswith("w9: trial 1 COMPLETE") for ln in lines), lines

    ran = join_search(exp, "tiny", storage, out_dir=tmp_path / "out", trials=3, no_tracking=True)
    assert ran == 1
    assert "mlflow_run_id" not in optuna.load_study(study_name="tiny", storage=storage).trials[2].user_attrs


def test_a_worker_needs_an_existing_study_made_by_a_search(exp, tmp_path):
    with pytest.raises(ConfigError, match="no study named 'ghost'"):
        join_search(exp, "ghost", f"sqlite:///{tmp_path / 'none.db'}")
    assert not (tmp_path / "none.db").exists()
    storage = f"sqlite:///{tmp_path / 'bare.db'}"
    optuna.create_study(study_name="bare", storage=storage, directions=["maximize"] * 3)
    with pytest.raises(ConfigError, match="was not created by `autocompress search`"):
        join_search(exp, "bare", storage)


def test_a_trial_created_after_the_budget_filled_gives_its_place_back(exp, tmp_path):
    # two workers may both create a trial for the budget's last place; the one created second must not run
    from autocompress.search.recovery import counts, used
    from autocompress.search.study import _objective, prepare_search

    tracker, prep = _tracker(tmp_path), engine_inputs(exp)
    run_search(exp, _settings(tmp_path, trials=1), tracker=tracker, prepared=prep)
    search = prepare_search(exp, _settings(tmp_path, trials=1), tracker, prepared=prep)
    search.study.optimize(_objective(search), n_trials=1, catch=(Exception,))  # as the slower worker would
    late = search.study.trials[-1]
    assert late.number == 1 and late.state == optuna.trial.TrialState.FAIL
    assert late.user_attrs == {"not_run": "the trial budget was filled by other workers"}  # no pid, run or metrics
    assert not counts(late) and used(search.study) == 1
    assert len(tracker.client.search_runs([tracker.client.get_experiment_by_name("t").experiment_id])) == 2
