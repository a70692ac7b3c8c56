"""Shared fixtures: tiny randomly initialized BERT classifiers and small generated task data."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import pytest
import torch

from autocompress.engine.model import Classifier
from autocompress.testing import (  # noqa: F401  (re-exported to the tests)
    WORDS,
    make_sentences,
    make_teacher_dir,
    tiny_config,
    write_experiment,
    write_task,
    write_vocab,
)

# Tiny models run fastest on one thread, and the suite then leaves the other core free.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` need a GPU torch sees: they run on a machine with one and are skipped elsewhere."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch sees none here)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def make_tiny(seed: int = 0, **overrides) -> Classifier:
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    return Classifier(BertForSequenceClassification(tiny_config(**overrides))).eval()


@pytest.fixture
def tiny() -> Classifier:
    return make_tiny()


def separable_batches(n: int = 16, length: int = 8):
    """Endless copies of one batch whose label is which of two tokens opens the sentence (the rest is
    shared filler), with `labels` and `index` as training batches carry them."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 2
    ids = torch.randint(20, 120, (n, length), generator=g)
    ids[:, 0] = 2  # [CLS]
    ids[:, 1] = torch.where(labels == 1, 10, 11)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids),
             "labels": labels, "index": torch.arange(n)}
    while True:
        yield batch


def random_batch(n: int = 6, length: int = 12, vocab: int = 120, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (n, length), generator=g)
    mask = torch.ones(n, length, dtype=torch.long)
    mask[: n // 2, length // 2 :] = 0  # some padding
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    return random_batch()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def tiny_experiment(tmp_path):
    teacher = make_teacher_dir(tmp_path / "teacher")
    task = write_task(tmp_path / "data")
    return write_experiment(tmp_path, teacher, task)


@pytest.fixture
def tiny_inputs(tiny_experiment):
    """EngineInputs for the tiny teacher and generated task (teacher logits computed and cached)."""
    from autocompress.config import Experiment
    from autocompress.session import engine_inputs

    inputs, _teacher = engine_inputs(Experiment.from_file(tiny_experiment))
    return inputs


def hub_dataset(n_train: int = 40, n_dev: int = 10, label_names=("negative", "positive")):
    """A small `datasets.DatasetDict` shaped like GLUE SST-2 on the hub: integer labels (a ClassLabel),
    splits train and validation; the same sentences and labels as `write_task(folder, n_train, n_dev)`."""
    import datasets

    features = datasets.Features({"sentence": datasets.Value("string"), "idx": datasets.Value("int32"),
                                  "label": datasets.ClassLabel(names=list(label_names))})
    parts = {}
    for split, n, seed in (("train", n_train, 1), ("validation", n_dev, 2)):
        texts, labels = make_sentences(n, seed)
        parts[split] = datasets.Dataset.from_dict({"sentence": texts, "label": labels, "idx": list(range(n))},
                                                  features=features)
    return datasets.DatasetDict(parts)


def fake_hub(monkeypatch, dataset=None):
    """Route `datasets.load_dataset` of hub ids to `dataset` (None: the hub is unreachable); local
    files (csv, json, parquet) still load for real. Returns the list of (hub id, config) asked for."""
    import datasets

    real = datasets.load_dataset
    calls = []

    def load_dataset(path, name=None, *args, **kwargs):
        if path in ("csv", "json", "parquet"):
            return real(path, name, *args, **kwargs)
        calls.append((path, name))
        if dataset is None:
            raise ConnectionError(f"Couldn't reach '{path}' on the Hub (OfflineModeIsEnabled)")
        return dataset

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def run_cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run `autocompress ARGS` in this process: (exit code, stdout, stderr)."""
    import sys

    from autocompress.cli import main

    monkeypatch.setattr(sys, "argv", ["autocompress", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


# ---- the family matrix: with AUTOCOMPRESS_FAMILY_RESULTS=path, the outcome of every test parametrized by
# `family` is written there as JSON (experiments/family_table.py turns it into the README's table)

_FAMILY_RESULTS: dict[str, dict[str, str]] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "family" not in params or not os.environ.get("AUTOCOMPRESS_FAMILY_RESULTS"):
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        check = item.originalname + "".join(f"[{k}={v}]" for k, v in sorted(params.items()) if k != "family")
        _FAMILY_RESULTS.setdefault(params["family"], {})[check] = report.outcome


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("AUTOCOMPRESS_FAMILY_RESULTS")
    if path and _FAMILY_RESULTS:
        import json

        with open(path, "w") as f:
            json.dump(_FAMILY_RESULTS, f, indent=1, sort_keys=True)
