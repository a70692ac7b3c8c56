"""A search over sub-networks of the elastic network: trained once, every trial cut from it."""

import json
from pathlib import Path

import optuna
import pytest
from conftest import make_teacher_dir, run_cli, write_experiment, write_task

from autocompress import elastic_net
from autocompress.config import Experiment
from autocompress.search.run import join_search
from autocompress.search.space import load_space, parse_space
from autocompress.search.storage import open_existing_study
from autocompress.tracking import MlflowTracker

SPACE = """\
depth: {low: 2, high: 3}
heads_keep: {choices: [0.5, 1.0]}
ffn_keep: {choices: [0.25, 0.5]}
bits: {choices: [32, 8]}
train_steps: {choices: [0, 2]}
fixed: {elastic: true, batch_size: 16}
"""
BLOCK = {"steps": 3, "batch_size": 16, "heads": [0.5, 1.0], "ffn": [0.25, 0.5, 1.0]}


def _complete(study):
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def test_which_spaces_ask_for_the_elastic_network():
    for name in ("elastic", "elastic-recovery", "elastic-lowbit"):
        shipped = load_space(name)
        assert shipped.offers("elastic", True) and shipped.fixed["elastic"] is True
        assert shipped.values_of("depth") == [2, 3, 4, 5, 6] and shipped.values_of("heads_keep") == [0.5, 0.75, 1.0]
        assert shipped.values_of("prune_ratio") is None
    assert load_space("elastic").values_of("train_steps") == [0]  # measured as cut: no training in a trial
    lowbit = load_space("elastic-lowbit")  # ternary weights and tables, for a network trained at those widths
    assert lowbit.values_of("bits") == [16, 8, 4, 2] and lowbit.values_of("embedding_bits") == [8, 4, 2]
    recovery = load_space("elastic-recovery")
    assert recovery.values_of("train_steps") == [0, 100, 300]
    assert recovery.values_of("lr") == [3e-5, 3e-4]  # a continuous range: its two ends
    assert not load_space("default").offers("elastic", True)
    mixed = parse_space({"elastic": {"choices": [True, False]}, "ffn_keep": {"low": 0.25, "high": 1.0, "step": 0.25}},
                        "s")
    assert mixed.offers("elastic", True) and mixed.values_of("ffn_keep") == [0.25, 0.5, 0.75, 1.0]


def test_an_elastic_search_trains_once_and_every_trial_names_the_network(tmp_path, monkeypatch, capsys):
    exp = write_experiment(tmp_path, make_teacher_dir(tmp_path / "t"), write_task(tmp_path / "d"), elastic=BLOCK)
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    monkeypatch.chdir(tmp_path)  # default sqlite stores land in the working directory
    # an absolute MLflow store: MLflow caches stores by URI, so the relative default would follow other tests' cwd
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code, out, err = run_cli(monkeypatch, capsys, "search", exp, "--baselines", "none", "--no-memory", "--space", space, "--trials", 3, "--study", "el",
                             "--tracking-uri", store)
    assert code == 0, err
    assert err.count("elastic: trained in") == 1, err  # once, before the trials
    assert "search: trials cut their sub-networks from elastic network" in err

    study = open_existing_study("el", "sqlite:///autocompress.db")
    network = study.user_attrs["elastic"]["id"]
    assert (tmp_path / "cache" / "elastic" / network / "elastic.json").is_file()
    done = _complete(study)
    assert len(done) == 3
    for trial in done:
        assert trial.user_attrs["recipe"]["elastic"] is True
        assert trial.user_attrs["metrics"]["elastic_id"] == network
        stored = json.loads((Path(trial.user_attrs["folder"]) / "metrics.json").read_text())
        assert stored["elastic_id"] == network and stored["heads"] in (2 * stored["layers"], 4 * stored["layers"])
    assert f"elastic network `{network}`: trained once in" in out  # the report
    assert f"search:   elastic   network {network} in " in err  # the closing summary

    client = MlflowTracker(store, experiment=None).client
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.data.params["elastic_id"] == network and "elastic_train_seconds" in parent.data.metrics
    trial_run = client.get_run(done[0].user_attrs["mlflow_run_id"])
    assert trial_run.data.tags["elastic_id"] == network and trial_run.data.params["elastic"] == "True"

    # a worker joining the study reads the network from the cache: it never trains one
    def no_training(*args, **kwargs):
        raise AssertionError("a worker must not train the elastic network again")

    monkeypatch.setattr(elastic_net, "train_elastic_", no_training)
    lines: list[str] = []
    ran = join_search(Experiment.from_file(exp), "el", "sqlite:///autocompress.db", out_dir=tmp_path / "out",
                      trials=4, no_tracking=True, log=lines.append)
    assert ran == 1
    assert any(ln.startswith(f"elastic: network {network} from the cache") for ln in lines), lines
    assert [t.user_attrs["metrics"]["elastic_id"] for t in _complete(study)] == [network] * 4


def test_an_elastic_space_on_an_experiment_without_the_block_is_one_line(tiny_experiment, tmp_path, monkeypatch,
                                                                         capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "search", tiny_experiment, "--baselines", "none", "--no-memory", "--space", "elastic", "--trials", 1,
                           "--no-tracking")
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "error: search space 'elastic': elastic: true starts from the task's elastic network, but experiment 'tiny' "
        "has no `elastic:` block; add one to the experiment file (e.g. `elastic: {steps: 2000}`)")
    assert not (tmp_path / "autocompress.db").exists() or not optuna.get_all_study_names("sqlite:///autocompress.db")


@pytest.mark.parametrize("depth", [2, 6])
def test_the_shipped_spaces_make_elastic_recipes(depth):
    chosen = {"runtime": "onnxruntime", "depth": depth, "heads_keep": 0.75, "ffn_keep": 0.25, "vocab_prune": True,
              "bits": 4, "embedding_bits": 8}
    cut = load_space("elastic").to_recipe(chosen, 6)
    recovered = load_space("elastic-recovery").to_recipe({**chosen, "train_steps": 100, "lr": 1e-4}, 6)
    for recipe in (cut, recovered):
        assert recipe.elastic and recipe.alpha == 0.7 and recipe.batch_size == 32 and recipe.bits == 4
        assert recipe.layers == (None if depth == 6 else (0, 3))
    assert cut.train_steps == 0 and recovered.train_steps == 100 and recovered.lr == 1e-4


LOWBIT_SPACE = """\
runtime: {choices: [onnxruntime, openvino]}
depth: {low: 2, high: 3}
heads_keep: {choices: [0.5, 1.0]}
ffn_keep: {choices: [0.25, 1.0]}
vocab_prune: {choices: [true, false]}
bits: {choices: [4, 2]}
embedding_bits: {choices: [4, 2], when: {bits: [4, 2]}}
fixed: {elastic: true, train_steps: 0, batch_size: 16}
"""


def test_a_search_cuts_ternary_sub_networks_from_a_network_trained_at_two_bits(tmp_path, monkeypatch, capsys):
    """The SST-2 benchmark's path on a tiny network: trained at 4 and 2 bits with ternary tables, every trial cut
    as it is at 4 or 2 bits on either runtime, measured, and the report written."""
    block = {**BLOCK, "bits": [4, 2], "embedding_bits": [2]}
    exp = write_experiment(tmp_path, make_teacher_dir(tmp_path / "t"), write_task(tmp_path / "d"), elastic=block)
    space = tmp_path / "space.yaml"
    space.write_text(LOWBIT_SPACE)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, "search", exp, "--baselines", "none", "--no-memory", "--space",
                             space, "--trials", 6, "--study", "lowbit", "--no-tracking")
    assert code == 0, err
    assert "never trained" not in err  # every width the space asks for was trained
    study = open_existing_study("lowbit", "sqlite:///autocompress.db")
    done = _complete(study)
    assert len(done) == 6, [t.state for t in study.trials]
    cuts = {(t.params["runtime"], t.params["bits"], t.params["embedding_bits"])
            for t in done}
    assert len(cuts) > 1
    for trial in done:
        stored = json.loads((Path(trial.user_attrs["folder"]) / "metrics.json").read_text())
        assert stored["bytes"] > 0 and 0.0 <= stored["accuracy"] <= 1.0
        # the model measured is the cut asked for: its weights' and tables' widths, on its runtime
        assert (stored["bits"], stored["embedding_bits"]) == (trial.params["bits"], trial.params["embedding_bits"])
        assert stored["runtime"].startswith(trial.params["runtime"])
    assert "elastic network" in out  # the report
