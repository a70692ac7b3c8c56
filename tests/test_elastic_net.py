"""The elastic network of a task: its experiment block, training once and caching, and recipes cut from it."""

import json

import pytest
import torch
from conftest import (
    make_teacher_dir,
    random_batch,
    run_cli,
    write_experiment,
    write_task,
)

from autocompress import elastic_net
from autocompress.config import ElasticConfig, Experiment
from autocompress.engine.elastic import SubnetShape, active_subnet
from autocompress.engine.storage import load_model
from autocompress.engine.structured import layer_shapes
from autocompress.engine.student import evenly_spaced_layers
from autocompress.engine.techniques import check
from autocompress.engine.errors import ConfigError
from autocompress.engine.recipe import Recipe
from autocompress.session import engine_inputs, read_metrics, run_recipe, with_elastic

BLOCK = {"steps": 3, "batch_size": 16, "depths": [1, 2, 3], "heads": [0.5, 1.0], "ffn": [0.25, 0.5, 1.0]}


@pytest.fixture
def elastic_experiment(tmp_path):
    folder = tmp_path / "elastic"
    folder.mkdir()
    teacher = make_teacher_dir(folder / "teacher")
    return write_experiment(folder, teacher, write_task(folder / "data"), elastic=BLOCK)


@pytest.fixture
def elastic_inputs(elastic_experiment):
    inputs, _teacher = engine_inputs(Experiment.from_file(elastic_experiment), elastic=True)
    return inputs


def _count_training(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = elastic_net.train_elastic_

    def counted(model, batches, settings, **kw):
        calls.append(settings.steps)
        return real(model, batches, settings, **kw)

    monkeypatch.setattr(elastic_net, "train_elastic_", counted)
    return calls


# ---- the experiment's block ------------------------------------------------------------------


def test_the_block_is_optional_typed_and_defaulted(elastic_experiment, tiny_experiment):
    assert Experiment.from_file(tiny_experiment).elastic is None
    cfg = Experiment.from_file(elastic_experiment).elastic
    assert (cfg.steps, cfg.depths, cfg.heads, cfg.ffn) == (3, (1, 2, 3), (0.5, 1.0), (0.25, 0.5, 1.0))
    defaults = ElasticConfig()
    assert (defaults.steps, defaults.lr, defaults.depths, defaults.random_subnets) == (2000, 1e-4, None, 2)
    assert (defaults.heads, defaults.ffn) == ((0.5, 0.75, 1.0), (0.25, 0.5, 0.75, 1.0))
    assert (defaults.temperature, defaults.alpha, defaults.batch_size, defaults.seed) == (2.0, 1.0, 32, 0)
    assert defaults.depths_for(6) == (2, 3, 4, 5, 6) and defaults.depths_for(1) == (1,)
    assert ElasticConfig(depths=[3, 1]).depths == (1, 3)
    assert defaults.bits == () and ElasticConfig(bits=[4, 8]).bits == (8, 4)


@pytest.mark.parametrize("block, needle", [
    ({"steps": 3, "stepz": 2}, "experiment.yaml: elastic.stepz: unknown key"),
    ({"heads": [0.5, 1.5]}, "experiment.yaml: elastic.heads: fractions must be distinct and in (0, 1], got [0.5, 1.5]"),
    ({"ffn": []}, "experiment.yaml: elastic.ffn: give at least one fraction"),
    ({"depths": [0, 2]}, "experiment.yaml: elastic.depths: depths must be distinct layer counts of at least 1"),
    ({"lr": 0}, "experiment.yaml: elastic.lr: Input should be greater than 0"),
    ({"depths": [2, 5]}, "elastic.depths: the teacher has 3 layers, got [2, 5]; use depths from 1 to 3"),
    ({"bits": [8, 3]}, "experiment.yaml: elastic.bits: widths must be distinct, among 8, 4, 2, 1, got [8, 3]"),
    ({"bits": [8, 4], "embedding_bits": [2, 2]},
     "experiment.yaml: elastic.embedding_bits: widths must be distinct, among 8, 4, 2, 1, got [2, 2]"),
    ({"embedding_bits": [2]}, "experiment.yaml: elastic: embedding_bits needs bits (the widths the network trains"),
    ({"hidden_mse": -1}, "experiment.yaml: elastic.hidden_mse: Input should be greater than or equal to 0"),
    ({"augment": {"factor": 0}}, "experiment.yaml: elastic.augment.factor: Input should be greater than 0"),
    ({"augment": {"drop": 1.0}}, "experiment.yaml: elastic.augment.drop: Input should be less than 1"),
], ids=["unknown key", "fraction", "no fractions", "depth 0", "lr", "depth beyond the teacher", "bits",
        "embedding_bits", "embedding_bits without bits", "hidden_mse",
        "augment factor", "augment drop"])
def test_a_bad_block_is_one_line_and_exit_2(block, needle, tmp_path, monkeypatch, capsys):
    exp = write_experiment(tmp_path, make_teacher_dir(tmp_path / "t"), write_task(tmp_path / "d", 40, 12),
                           elastic=block)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("elastic: true\nbits: 8\n")
    code, _, err = run_cli(monkeypatch, capsys, "compress", exp, "--recipe", recipe, "--out", tmp_path / "o")
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(lines) == 1 and needle in lines[0], err
    assert "Traceback" not in err and not (tmp_path / "o").exists()
    assert not (tmp_path / "cache" / "elastic").exists()  # nothing was trained


def test_elastic_true_without_a_block_is_one_line_and_exit_2(tiny_experiment, tmp_path, monkeypatch, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("elastic: true\n")
    code, _, err = run_cli(monkeypatch, capsys, "compress", tiny_experiment, "--recipe", recipe,
                           "--out", tmp_path / "o")
    assert code == 2 and "Traceback" not in err
    assert err.strip() == (f"error: {recipe}: elastic: true starts from the task's elastic network, but experiment "
                           "'tiny' has no `elastic:` block; add one to the experiment file (e.g. "
                           "`elastic: {steps: 2000}`)")


def test_compress_cuts_an_elastic_recipe_and_says_so(elastic_experiment, tmp_path, monkeypatch, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("elastic: true\nlayers: [0, 1]\nheads_keep: 0.25\nbits: 8\n")
    code, out, err = run_cli(monkeypatch, capsys, "compress", elastic_experiment, "--recipe", recipe,
                             "--out", tmp_path / "o", "--json", tmp_path / "m.json")
    assert code == 0, err
    network = json.loads((tmp_path / "m.json").read_text())["elastic_id"]
    assert "started from" in out and f"elastic network {network}" in out
    assert "elastic: the elastic network was not trained at heads_keep 0.25 (it trained" in err
    assert layer_shapes(load_model(tmp_path / "o")) == [(1, 64), (1, 64)]


def test_the_session_refuses_an_elastic_recipe_on_inputs_without_the_network(tiny_inputs, tmp_path):
    with pytest.raises(ConfigError, match="r.yaml: elastic: true starts from the task's elastic network, which these"):
        run_recipe(tiny_inputs, Recipe(elastic=True), tmp_path / "o", "r.yaml")
    assert not (tmp_path / "o").exists()


# ---- training once, then the cache -------------------------------------------------------------


def test_prepare_trains_once_then_reads_the_cache(elastic_experiment, monkeypatch):
    calls = _count_training(monkeypatch)
    exp = Experiment.from_file(elastic_experiment)
    lines: list[str] = []
    first, teacher = engine_inputs(exp, lines.append, elastic=True)
    assert calls == [3]
    folder = exp.cache / "elastic" / first.elastic_id
    assert sorted(p.name for p in folder.iterdir()) == ["architecture.json", "elastic.json", "weights.safetensors"]
    info = json.loads((folder / "elastic.json").read_text())
    assert info["id"] == first.elastic_id and info["steps"] == 3 and info["train_seconds"] >= 0 and info["date"]
    assert info["settings"]["depths"] == [1, 2, 3] and info["settings"]["batch_size"] == 16
    assert "bits" not in info["settings"]  # float-only networks are keyed as before `bits` existed
    assert any(ln.startswith("elastic: trained in") for ln in lines), lines
    assert any(ln.startswith("elastic: training 3 steps in") for ln in lines), lines  # progress, plain lines

    lines.clear()
    again, _ = engine_inputs(exp, lines.append, elastic=True)
    assert calls == [3]  # not trained again
    assert again.elastic_id == first.elastic_id
    assert any(ln.startswith(f"elastic: network {first.elastic_id} from the cache") for ln in lines), lines
    saved, loaded = first.elastic.state_dict(), again.elastic.state_dict()
    assert list(saved) == list(loaded) and all(torch.equal(saved[k], loaded[k]) for k in saved)  # stored at 32 bits

    same, info = with_elastic(exp, again, teacher)  # inputs that hold it already are kept as they are
    assert same is again and (info.id, info.steps) == (first.elastic_id, 3)
    other = exp.model_copy(update={"elastic": exp.elastic.model_copy(update={"seed": 1})})
    assert elastic_net.network_id(teacher, other.elastic) != first.elastic_id  # other settings, another network
    aware = exp.elastic.model_copy(update={"bits": (4,)})
    assert elastic_net.network_id(teacher, aware) != first.elastic_id  # quantization-aware: another network
    plain, _ = engine_inputs(exp)
    assert plain.elastic is None and plain.elastic_id is None  # only prepared when asked for
    explicit = exp.elastic.model_copy(update={"hidden_mse": 0.0, "attention_kl": 0.0, "progressive": False})
    assert elastic_net.network_id(teacher, explicit) == first.elastic_id  # defaults leave the id as it was
    assert elastic_net.network_id(teacher, aware.model_copy(update={"embedding_bits": ()})) == \
        elastic_net.network_id(teacher, aware)  # no narrower tables: the quantization-aware network's id as before
    for change in ({"hidden_mse": 1.0}, {"attention_kl": 1.0}, {"progressive": True}, {"augment": {"factor": 1.0}},
                   {"bits": (4,), "embedding_bits": (2,)}):
        changed = ElasticConfig(**{**exp.elastic.model_dump(), **change})
        assert elastic_net.network_id(teacher, changed) != first.elastic_id, change


def test_augmented_rows_are_made_scored_and_cached_once(elastic_experiment, monkeypatch):
    from autocompress import augmented

    exp = Experiment.from_file(elastic_experiment)
    block = {**BLOCK, "hidden_mse": 1.0, "attention_kl": 0.5, "progressive": True,
             "augment": {"factor": 2.0, "seed": 1}}
    exp = exp.model_copy(update={"elastic": ElasticConfig(**block)})
    scored: list[int] = []
    real_score = augmented._score
    monkeypatch.setattr(augmented, "_score", lambda t, rows, p: scored.append(len(rows)) or real_score(t, rows, p))
    rows_seen: list[int] = []
    real_train = elastic_net.train_elastic_

    def counted(model, batches, settings, **kw):
        rows_seen.append(len(kw["teacher_logits"]))
        assert (settings.hidden_mse, settings.attention_kl, settings.progressive) == (1.0, 0.5, True)
        return real_train(model, batches, settings, **kw)

    monkeypatch.setattr(elastic_net, "train_elastic_", counted)
    lines: list[str] = []
    inputs, teacher = engine_inputs(exp, lines.append, elastic=True)
    n = len(teacher.data.train)
    assert scored == [2 * n] and rows_seen == [3 * n]  # the training rows, then the new ones
    files = list(teacher.folder.glob("augment-*.npz"))
    assert len(files) == 1 and any(ln.startswith(f"augment: {2 * n:,} new rows scored") for ln in lines), lines
    rows, outputs = augmented.augmented_rows(teacher, exp.elastic.augment, exp.task.max_length)
    assert scored == [2 * n]  # read back, not made again
    assert len(rows) == 2 * n and outputs.shape == (2 * n, 2)
    assert list(rows.labels) == list(outputs.argmax(dim=-1).numpy())  # the teacher's labels
    assert max(rows.lengths) <= exp.task.max_length
    info = json.loads((exp.cache / "elastic" / inputs.elastic_id / "elastic.json").read_text())
    assert info["settings"]["augment"]["factor"] == 2.0 and info["settings"]["progressive"] is True


# ---- recipes cut from it -------------------------------------------------------------------------


def test_an_elastic_recipe_is_its_sub_network_and_names_the_network(elastic_inputs, tmp_path):
    layers = evenly_spaced_layers(3, 2)
    recipe = Recipe(elastic=True, layers=layers, heads_keep=0.5, ffn_keep=0.25)  # fp32, no training: the cut itself
    res = run_recipe(elastic_inputs, recipe, tmp_path / "cut")
    assert layer_shapes(res.model) == [(2, 16), (2, 16)]
    assert res.metrics.elastic_id == elastic_inputs.elastic_id
    assert json.loads((tmp_path / "cut" / "metrics.json").read_text())["elastic_id"] == elastic_inputs.elastic_id
    assert json.loads((tmp_path / "cut" / "recipe.json").read_text())["elastic"] is True
    assert read_metrics(tmp_path / "cut") == res.metrics
    batch = random_batch(vocab=70)
    with torch.no_grad(), active_subnet(elastic_inputs.elastic, SubnetShape(2, 0.5, 0.25)) as net:
        want = net(**batch)
    with torch.no_grad():
        torch.testing.assert_close(res.model(**batch), want, atol=1e-5, rtol=0)


def test_an_elastic_recipe_takes_every_later_technique(elastic_inputs, tmp_path):
    recipe = Recipe(elastic=True, heads_keep=1.0, ffn_keep=0.5, vocab_prune=True, prune_ratio=0.25, bits=4,
                    embedding_bits=8, train_steps=3, batch_size=16, lr=1e-4)
    res = run_recipe(elastic_inputs, recipe, tmp_path / "t")
    m = res.metrics
    assert layer_shapes(res.model) == [(4, 32)] * 3  # all the teacher's layers: no layers, no depth
    assert (m.bits, m.embedding_bits, m.train_steps, m.elastic_id) == (4, 8, 3, elastic_inputs.elastic_id)
    assert m.vocab < elastic_inputs.teacher.config.vocab_size and m.sparsity > 0.1
    assert m.final_loss is not None  # the recovery steps ran


def test_a_candidate_from_the_teacher_names_no_network(elastic_inputs, tmp_path):
    res = run_recipe(elastic_inputs, Recipe(layers=(0, 2), bits=8), tmp_path / "t")
    assert res.metrics.elastic_id is None
    assert "elastic_id" not in json.loads((tmp_path / "t" / "metrics.json").read_text())


def test_an_elastic_recipe_keeps_evenly_spaced_layers():
    assert evenly_spaced_layers(3, 2) == (0, 1)
    assert check(Recipe(elastic=True, layers=(0, 1)), 3) is None
    assert check(Recipe(elastic=True, layers=(0, 2)), 3) == (
        "layers: an elastic sub-network keeps evenly spaced layers ([0, 1] for 2 layers), got [0, 2]; give those "
        "layers, or a depth in a search space")
    assert check(Recipe(layers=(0, 2)), 3) is None  # only elastic recipes are bound to the spread


def test_shapes_the_network_was_not_trained_on_are_named(elastic_inputs, elastic_experiment):
    cfg = Experiment.from_file(elastic_experiment).elastic
    teacher = elastic_inputs.teacher
    assert elastic_net.untrained_note(cfg, teacher, depths=[1, 3, 9], heads=[0.5, 0.6], ffn=[1.0]) is None
    note = elastic_net.untrained_note(cfg, teacher, heads=[0.25, 0.5], ffn=[0.75])
    assert note == ("elastic: the elastic network was not trained at heads_keep 0.25 and ffn_keep 0.75 (it trained "
                    "depths [1, 2, 3], heads [0.5, 1.0], FFN [0.25, 0.5, 1.0]): those sub-networks run but score "
                    "lower; add them to the experiment's elastic block to train them")
    assert elastic_net.untrained_note(cfg, teacher, bits=[8, 2], embedding_bits=[2]) is None  # float-only: no claim
    aware = cfg.model_copy(update={"bits": (8, 4)})
    assert elastic_net.untrained_note(aware, teacher, bits=[32, 16, 8, 4], embedding_bits=[8, 4]) is None
    note = elastic_net.untrained_note(aware, teacher, bits=[4, 2, 1], embedding_bits=[8, 2])
    assert note.startswith("elastic: the elastic network was not trained at bits 2, 1 and embedding_bits 2 (it "
                           "trained depths [1, 2, 3], heads [0.5, 1.0], FFN [0.25, 0.5, 1.0], bits [8, 4], tables at "
                           "[8, 4]): "), note
    ternary = cfg.model_copy(update={"bits": (8, 4, 2), "embedding_bits": (2,)})
    assert elastic_net.untrained_note(ternary, teacher, bits=[2], embedding_bits=[4, 2]) is None


@pytest.mark.parametrize("task", ["token_classification", "embedding"])
def test_augmenting_a_task_that_takes_no_new_rows_is_one_line(task):
    from autocompress import augmented
    from autocompress.engine.tasks import get_task

    with pytest.raises(ConfigError, match=f"elastic.augment: new rows are not made for a {task} task yet; leave"):
        augmented.check(get_task(task))
    for fine in ("classification", "regression"):
        augmented.check(get_task(fine))
