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
    WORDS, make_sentences, make_teacher_dir, tiny_config, write_experiment, write_task, write_vocab,
)

# Tiny models run fastest on one thread, and the suite then leaves the other core free.
torch.set_num_threads(1)


def make_tiny(seed: int = 0, **overrides) -> Classifier:
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    return Classifier(BertForSequenceClassification(tiny_config(**overrides))).eval()


@pytest.fixture
def tiny() -> Classifier:
    return make_tiny()


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
