"""Multi-fidelity stopping: the rung schedule, the cost-aware halving rule, and a trial pruned at a rung."""

from types import SimpleNamespace

import optuna
import pytest

from autocompress.config import Experiment
from autocompress.engine.errors import ConfigError
from autocompress.engine.recipe import Recipe
from autocompress.search.fidelity import (
    cutoff, model_cost, no_costlier, peer_scores, rung_schedule, stop_reason,
)
from autocompress.search.space import parse_space
from autocompress.search.study import SearchSettings, prepare_search, run_trials, settings_of
from autocompress.session import engine_inputs
from autocompress.tracking import NullTracker
from conftest import make_tiny

CHEAP = {"params": 0, "bits": 1, "embedding_bits": 1, "density": 0.0}  # no candidate costs less
COSTLY = {"params": 10**12, "bits": 32, "embedding_bits": 32, "density": 1.0}  # no candidate costs more


# ---- the schedule ------------------------------------------------------------------------------

def test_rungs_are_absolute_steps_below_the_last():
    assert rung_schedule(1000, 150, 3) == [150, 450]
    assert rung_schedule(1350, 150, 3) == [150, 450]  # never the last step
    assert rung_schedule(1351, 150, 3) == [150, 450, 1350]
    assert rung_schedule(150, 150, 3) == []
    assert rung_schedule(20, 4, 2) == [4, 8, 16]
    assert rung_schedule(0, 150, 3) == []


def test_zero_turns_rungs_off_and_eta_one_is_refused(tmp_path):
    assert rung_schedule(10_000, 0, 3) == [] and rung_schedule(10_000, 150, 0) == []
    space = parse_space({"bits": {"choices": [8]}}, "s")
    SearchSettings(baselines="none", memory=False, study="s", space=space, rung_steps=0, eta=0)
    with pytest.raises(ConfigError, match="eta"):
        SearchSettings(baselines="none", memory=False, study="s", space=space, eta=1)
    with pytest.raises(ConfigError):
        SearchSettings(baselines="none", memory=False, study="s", space=space, rung_steps=-1)


# ---- the decision ------------------------------------------------------------------------------

def test_a_trial_below_the_top_share_of_its_peers_stops():
    peers = [0.90, 0.88, 0.86, 0.85, 0.84]
    assert cutoff(0.812, peers, 3) == 0.88  # 6 scores: the top third is the best 2
    assert stop_reason("accuracy", 0.812, 450, peers, 3) == (
        "validation accuracy 0.812 at step 450 is below 5 of 5 cheaper-or-equal trials' (top third from 0.880)")
    assert cutoff(0.87, peers, 3) == 0.88  # third best: still out
    assert cutoff(0.89, peers, 3) is None  # second best: in the top third
    assert "below 2 of 3 cheaper-or-equal trials' (top half from 0.700)" in stop_reason(
        "f1", 0.5, 4, [0.9, 0.7, 0.1], 2)


def test_never_stops_with_fewer_than_eta_peers():
    assert cutoff(0.0, [1.0, 1.0], 3) is None
    assert stop_reason("accuracy", 0.0, 150, [], 3) is None
    assert cutoff(0.0, [1.0, 1.0, 1.0], 3) == 1.0  # eta peers are enough


def test_ties_stay():
    assert cutoff(0.8, [0.8, 0.8, 0.8], 3) is None
    assert cutoff(0.8, [0.9, 0.8, 0.2, 0.1, 0.0], 3) is None  # equal to the bar (the 2nd best of 6)
    assert cutoff(0.7999, [0.9, 0.8, 0.2, 0.1, 0.0], 3) == 0.8


def _trial(number, rungs=None, cost=None):
    attrs = {}
    if rungs is not None:
        attrs["rungs"] = rungs
    if cost is not None:
        attrs["rung_cost"] = cost
    return SimpleNamespace(number=number, user_attrs=attrs)


def test_only_peers_no_costlier_at_the_same_step_count():
    own = {"params": 1000, "bits": 8, "embedding_bits": 8, "density": 1.0}
    trials = [
        _trial(0, {"150": 0.9}, own),  # equal cost: a peer
        _trial(1, {"150": 0.9}, {**own, "params": 999, "bits": 4}),  # cheaper: a peer
        _trial(2, {"150": 0.9}, {**own, "params": 1001}),  # larger
        _trial(3, {"150": 0.9}, {**own, "bits": 16}),  # wider weights
        _trial(4, {"150": 0.9}, {**own, "params": 10, "embedding_bits": 32}),  # wider embeddings
        _trial(5, {"150": 0.9}, {**own, "density": 1.0, "params": 2000}),
        _trial(6, {"450": 0.9}, own),  # scored at another step only
        _trial(7, {"150": 0.9}),  # no recorded cost: not comparable
        _trial(8, None, own),  # never reached a rung
        _trial(9, {"150": float("nan")}, own),
        _trial(10, {"150": 0.1}, own),  # the asking trial itself
    ]
    assert peer_scores(trials, 150, own, exclude=10) == [0.9, 0.9]
    # two peers are fewer than eta = 3: the costlier trials' scores do not help to stop it
    assert stop_reason("accuracy", 0.1, 150, peer_scores(trials, 150, own, exclude=10), 3) is None
    assert stop_reason("accuracy", 0.1, 150, peer_scores(trials, 150, own, exclude=10), 2) is not None
    assert no_costlier(own, own) and not no_costlier(None, own)
    assert not no_costlier({"params": 1, "bits": 1}, own)  # other cost names


def test_cost_counts_embeddings_and_encoder_bits_and_density():
    model = make_tiny()
    base = model.hf.base_model
    params = sum(p.numel() for p in base.embeddings.parameters()) + sum(p.numel() for p in base.encoder.parameters())
    assert model_cost(model, Recipe()) == {"params": params, "bits": 32, "embedding_bits": 32, "density": 1.0}
    assert model_cost(model, Recipe(bits=4, embedding_bits=8, prune_ratio=0.5)) == {
        "params": params, "bits": 4, "embedding_bits": 8, "density": 0.5}
    fewer = make_tiny(num_hidden_layers=1)
    assert model_cost(fewer, Recipe())["params"] < params


# ---- in a study --------------------------------------------------------------------------------

class _Recorder(NullTracker):
    def __init__(self) -> None:
        self.steps: dict[str, list[tuple[int | None, dict]]] = {}
        self.tags: dict[str, dict] = {}

    def start_trial(self, parent, name, params):
        return name

    def log_metrics(self, run, metrics, step=None):
        self.steps.setdefault(run, []).append((step, metrics))

    def set_tags(self, run, tags):
        self.tags.setdefault(run, {}).update(tags)


def _study_with_fakes(tmp_path, tiny_experiment, fakes):
    """A prepared study (rungs at steps 4 and 8 of 12, eta 2) holding `fakes`: pruned trials with the
    given rung scores and costs; then one real trial runs."""
    exp = Experiment.from_file(tiny_experiment)
    space = parse_space({"bits": {"choices": [8]}, "fixed": {"train_steps": 12, "batch_size": 16, "lr": 1e-3}}, "s")
    settings = SearchSettings(baselines="none", memory=False, study="rungs", space=space, trials=len(fakes) + 1, enqueue_starts=False,
                              storage=f"sqlite:///{tmp_path / 'optuna.db'}", out_dir=tmp_path / "out",
                              rung_steps=4, eta=2)
    tracker = _Recorder()
    search = prepare_search(exp, settings, tracker, prepared=engine_inputs(exp))
    for rungs, cost in fakes:
        search.study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED,
                                                         user_attrs={"rungs": rungs, "rung_cost": cost}))
    assert run_trials(search) == 1
    return search, tracker, search.study.trials[-1]


def test_a_trial_beaten_by_cheaper_trials_at_a_rung_is_pruned(tmp_path, tiny_experiment):
    # scores above any accuracy: the outcome does not depend on how well the real trial trains
    search, tracker, t = _study_with_fakes(tmp_path, tiny_experiment, [({"4": 2.0}, CHEAP), ({"4": 2.0}, CHEAP)])
    assert t.state == optuna.trial.TrialState.PRUNED, t.user_attrs
    reason = t.user_attrs["pruned_reason"]
    assert reason.startswith("validation accuracy ")
    assert reason.endswith(" at step 4 is below 2 of 2 cheaper-or-equal trials' (top half from 2.000)")
    assert list(t.user_attrs["rungs"]) == ["4"] and 0 <= t.user_attrs["rungs"]["4"] <= 1
    cost = t.user_attrs["rung_cost"]
    assert cost["bits"] == 8 and cost["embedding_bits"] == 8 and cost["params"] > 0
    assert t.values is None and "metrics" not in t.user_attrs
    run = f"trial-{t.number:04d}"
    assert (4, {"rung_accuracy": t.user_attrs["rungs"]["4"]}) in tracker.steps[run]
    assert tracker.tags[run]["state"] == "PRUNED" and tracker.tags[run]["reason"] == reason
    # the settings are stored with the study: a worker joining it stops trials the same way
    joined = settings_of(search.study)
    assert (joined.rung_steps, joined.eta) == (4, 2)


def test_costlier_trials_do_not_stop_a_trial(tmp_path, tiny_experiment):
    fakes = [({"4": 2.0, "8": 2.0}, COSTLY)] * 3 + [({"4": 2.0, "8": 2.0}, CHEAP)]  # only one cheaper: < eta
    _, tracker, t = _study_with_fakes(tmp_path, tiny_experiment, fakes)
    assert t.state == optuna.trial.TrialState.COMPLETE
    assert sorted(t.user_attrs["rungs"], key=int) == ["4", "8"]  # both rungs recorded, never step 12
    logged = [s for s, m in tracker.steps[f"trial-{t.number:04d}"] if "rung_accuracy" in m]
    assert logged == [4, 8]
