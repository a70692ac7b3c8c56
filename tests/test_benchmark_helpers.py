"""The benchmark scripts' shared helper that builds a candidate once and reuses it (experiments/_common.py)."""

import sys
from pathlib import Path

from autocompress import session
from autocompress.config import Experiment
from autocompress.recipe import Recipe
from autocompress.session import engine_inputs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
from _common import cached_run


def test_cached_run_builds_once_then_reads_the_folder(tiny_experiment, tmp_path, monkeypatch):
    inputs, _teacher = engine_inputs(Experiment.from_file(tiny_experiment))
    recipe, folder = Recipe(layers=[0], bits=8, train_steps=2, batch_size=8), tmp_path / "row"
    steps: list[int] = []
    first = cached_run(inputs, recipe, folder, "row", hooks=[lambda step, *_: steps.append(step)])
    assert steps == [1, 2] and (folder / "metrics.json").is_file()

    def no_build(*args, **kwargs):
        raise AssertionError("a built folder must be reused")

    monkeypatch.setattr(session, "run_recipe", no_build)
    again = cached_run(inputs, recipe, folder, "row")
    assert again == first and again.train_steps == 2
