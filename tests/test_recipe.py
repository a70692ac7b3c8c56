import json

import pytest

from autocompress.config import Experiment
from autocompress.engine.errors import ConfigError
from autocompress.engine.recipe import Recipe

RECIPES = [
    Recipe(),
    Recipe(layers=(0, 2, 4), temperature=4.0, alpha=0.5, train_steps=100, hidden_mse=0.1),
    Recipe(heads_keep=0.5, ffn_keep=0.25, vocab_prune=True),
    Recipe(prune_ratio=0.5, prune_scope="layer", prune_schedule="oneshot"),
    Recipe(prune_threshold=0.01),
    Recipe(bits=4, embedding_bits=8, train_subset=100, seed=3),
    Recipe(bits=1),
]


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_round_trips_through_dict_and_json(recipe, tmp_path):
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    path = tmp_path / "r.json"
    path.write_text(json.dumps(recipe.to_dict()))
    again = Recipe.from_file(path)
    assert again == recipe
    assert again.fingerprint() == recipe.fingerprint()


def test_fingerprint_changes_with_any_knob():
    assert Recipe(bits=8).fingerprint() != Recipe(bits=4).fingerprint()
    assert Recipe(layers=(0, 1)).fingerprint() != Recipe(layers=(0, 2)).fingerprint()


def test_layers_are_sorted_and_validated():
    assert Recipe(layers=(4, 0, 2)).layers == (0, 2, 4)
    with pytest.raises(ConfigError, match="layers"):
        Recipe.from_dict({"layers": [1, 1]})
    with pytest.raises(ConfigError, match="layers"):
        Recipe.from_dict({"layers": []})


@pytest.mark.parametrize(
    "data, key",
    [
        ({"bits": 3}, "bits"),
        ({"alpha": 1.5}, "alpha"),
        ({"temperature": 0}, "temperature"),
        ({"heads_keep": 0}, "heads_keep"),
        ({"prune_ratio": 1.0}, "prune_ratio"),
        ({"prune_scope": "row"}, "prune_scope"),
        ({"colour": "red"}, "colour"),
        ({"train_steps": -1}, "train_steps"),
    ],
)
def test_bad_recipe_values_name_the_key(data, key):
    with pytest.raises(ConfigError) as err:
        Recipe.from_dict(data, "r.yaml")
    msg = str(err.value)
    assert msg.startswith("r.yaml: ") and key in msg
    assert "\n" not in msg


def test_ratio_and_threshold_are_exclusive():
    with pytest.raises(ConfigError, match="not both"):
        Recipe.from_dict({"prune_ratio": 0.5, "prune_threshold": 0.1})


def test_recipe_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        Recipe.from_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("bits: [8\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        Recipe.from_file(bad)


def test_experiment_round_trips_and_resolves_paths(tiny_experiment):
    exp = Experiment.from_file(tiny_experiment)
    assert Experiment.model_validate(exp.model_dump()) == exp
    assert exp.path(exp.task.train).is_file()
    rel = tiny_experiment.parent / "rel.yaml"
    rel.write_text("task: {train: data/train.tsv, dev: data/dev.tsv}\n")
    assert Experiment.from_file(rel).path("data/train.tsv") == tiny_experiment.parent / "data" / "train.tsv"


@pytest.mark.parametrize(
    "text, needle",
    [
        ("task: {train: a.tsv, dev: b.tsv}\nteachr: {}\n", "teachr: unknown key"),
        ("task: {train: a.tsv, dev: b.tsv, max_length: 2}\n", "task.max_length"),
        ("task: {train: a.tsv}\n", "give both"),
        ("task: [\n", "malformed YAML"),
        ("- 1\n- 2\n", "expected a mapping"),
    ],
)
def test_bad_experiment_files(tmp_path, text, needle):
    path = tmp_path / "e.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        Experiment.from_file(path)
