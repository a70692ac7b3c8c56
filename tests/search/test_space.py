from pathlib import Path

import optuna
import pytest

from autocompress.engine.errors import ConfigError
from autocompress.search.space import load_space, parse_space

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["default", "quick", "quantization", "distillation", "embeddings"])
def test_shipped_spaces_load_and_sample_valid_recipes(name):
    space = load_space(ROOT / "search_spaces" / f"{name}.yaml")
    study = optuna.create_study(directions=["maximize"], sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(10):
        trial = study.ask()
        recipe = space.suggest(trial, n_teacher_layers=6)
        params = trial.params
        for name, dim in space.dims.items():
            if name not in params:  # skipped only when its condition does not hold
                assert dim.when and not dim.applies(params), name
                continue
            value = params[name]
            if dim.choices is not None:
                assert value in dim.choices, name
            else:
                assert dim.low <= value <= dim.high, name
            if name == "depth":
                depth = min(value, 6)
                assert (recipe.layers is None) if depth == 6 else len(recipe.layers) == depth
            elif name == "keep_last":
                assert recipe.layers is None or (recipe.layers[-1] == 5) == (value and len(recipe.layers) > 1)
            else:
                assert getattr(recipe, name) == value, name
        for name, value in space.fixed.items():
            assert getattr(recipe, name) == value, name
        study.tell(trial, 0.0)


def test_fixed_trial_maps_to_the_expected_recipe():
    space = load_space(ROOT / "search_spaces" / "default.yaml")
    params = dict(runtime="openvino", depth=3, heads_keep=0.75, ffn_keep=0.5, vocab_prune=True, temperature=4.0,
                  alpha=0.6, hidden_mse=1.0, prune_ratio=0.25, prune_scope="layer", bits=4,
                  embedding_bits=8, train_steps=1500, lr=1e-4, bf16=True)
    r = space.suggest(optuna.trial.FixedTrial(params), n_teacher_layers=6)
    assert r.layers == (0, 2, 4) and r.runtime == "openvino" and r.bf16
    assert (r.heads_keep, r.ffn_keep, r.vocab_prune, r.temperature, r.alpha, r.hidden_mse) == (0.75, 0.5, True, 4.0, 0.6, 1.0)
    assert (r.prune_ratio, r.prune_scope, r.bits, r.embedding_bits, r.train_steps) == (0.25, "layer", 4, 8, 1500)
    assert (r.batch_size, r.train_subset) == (32, None)  # from `fixed`; None: all training rows


@pytest.mark.parametrize("depth, keep_last, layers", [
    (5, False, (0, 1, 2, 3, 4)), (5, True, (0, 1, 2, 3, 5)), (3, False, (0, 2, 4)), (3, True, (0, 2, 5)),
    (2, True, (0, 5)), (1, True, (0,)), (6, True, None)])
def test_keep_last_spreads_the_student_over_the_teacher_ends_included(depth, keep_last, layers):
    space = parse_space({"depth": {"choices": [depth]}, "keep_last": {"choices": [keep_last]}}, "s.yaml")
    assert space.suggest(optuna.trial.FixedTrial({"depth": depth, "keep_last": keep_last}), 6).layers == layers


def test_binary_trials_choose_their_embedding_width():
    space = load_space(ROOT / "search_spaces" / "default.yaml")
    params = dict(runtime="onnxruntime", depth=6, heads_keep=1.0, ffn_keep=1.0, vocab_prune=True, temperature=2.0,
                  alpha=0.7, hidden_mse=0.0, prune_ratio=0.0, bits=1, embedding_bits=4, train_steps=1000, lr=1e-4,
                  bf16=False)
    r = space.suggest(optuna.trial.FixedTrial(params), n_teacher_layers=6)
    assert (r.bits, r.embedding_bits, r.stage_bits, r.ste_clip) == (1, 4, None, None)


def test_conditions_skip_dimensions():
    space = load_space(ROOT / "search_spaces" / "default.yaml")
    params = dict(runtime="onnxruntime", depth=6, heads_keep=1.0, ffn_keep=1.0, vocab_prune=False, temperature=2.0,
                  alpha=0.5, hidden_mse=0.0, prune_ratio=0.0, bits=8, train_steps=500, lr=1e-4, bf16=False)
    # FixedTrial raises if asked for a parameter it lacks: prune_scope and embedding_bits are not asked
    r = space.suggest(optuna.trial.FixedTrial(params), n_teacher_layers=6)
    assert r.layers is None and r.embedding_bits is None and r.prune_scope == "global"


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"depht": {"low": 1, "high": 3}}, "'depht' is not a search dimension"),
        ({"alpha": {"low": 0.5, "high": 1.5}}, "alpha: value 1.5 is out of range"),
        ({"bits": {"choices": [8, 3]}}, "bits: value 3 is out of range"),
        ({"lr": {"low": 1e-3, "high": 1e-4}}, "lr: low (0.001) is above high"),
        ({"lr": {"low": 0.0, "high": 1e-4, "log": True}}, "log scale needs low > 0"),
        ({"bits": {"choices": [8]}, "embedding_bits": {"choices": [8], "when": {"depth": [1]}}}, "must be a dimension listed before"),
        ({"bits": {"choices": [8]}, "fixed": {"bits": 4}}, "also a dimension"),
        ({"bits": {"choices": [8]}, "fixed": {"colour": 1}}, "fixed: colour: unknown key"),
        ({"bits": {"low": 1}}, "give low and high"),
        ({"bits": 8}, "expected {low"),
        ({"keep_last": {"choices": ["yes"]}}, "keep_last: give choices of true / false"),
        ({"keep_last": {"low": 0, "high": 1}}, "keep_last: give choices of true / false"),
    ],
)
def test_bad_spaces_name_file_and_key(data, needle):
    with pytest.raises(ConfigError) as err:
        parse_space(data, "spaces/x.yaml")
    assert str(err.value).startswith("spaces/x.yaml: ") and needle in str(err.value)


def test_space_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_space(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("bits: {choices: [8\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_space(bad)


def test_snap_moves_starting_points_inside_the_space():
    space = load_space(ROOT / "search_spaces" / "quick.yaml")
    snapped = space.snap(dict(depth=2, bits=4, prune_ratio=0.0, train_steps=0, vocab_prune=False))
    # below the space's depths and steps: the lowest; 4 bits: the nearest width it has; no pruning key
    assert snapped == {"depth": 3, "vocab_prune": False, "train_steps": 150, "bits": 8}
    # --beat-baselines: the fastest baseline's runtime and precision, one layer shallower, then half depth
    from autocompress.search.study import starting_points

    assert starting_points(space, 6, ("openvino", 8)) == [
        {"runtime": "openvino", "depth": 5, "vocab_prune": False, "bits": 8, "train_steps": 250},
        {"runtime": "openvino", "depth": 5, "vocab_prune": True, "bits": 8, "train_steps": 250},
        {"runtime": "openvino", "depth": 3, "vocab_prune": False, "bits": 8, "train_steps": 250}]
    # the teacher in fp32 where the widest choice is 16 bits starts at 16, not at a sampled width
    default = load_space(ROOT / "search_spaces" / "default.yaml")
    assert default.snap(dict(bits=32))["bits"] == 16
    assert "runtime" not in default.snap(dict(runtime="torch"))  # not a number: dropped, as before
