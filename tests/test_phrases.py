"""Validation held out as whole rows (sentences, not their phrases), and their phrases kept out of training."""

import numpy as np
import pytest
from conftest import make_teacher_dir, write_experiment

from autocompress.config import Experiment
from autocompress.data import held_out, load_task
from autocompress.engine.errors import ConfigError, DataError
from autocompress.phrases import inside, whole_rows

ROWS = [
    ("a gripping and moving film", 1),
    ("gripping and moving", 1),
    ("moving", 1),
    ("a dull , lifeless mess", 0),
    ("lifeless mess", 0),
    ("dull", 0),
    ("mess", 0),
    ("an odd little movie", 1),
    ("little", 1),
    ("moving film", 1),  # a run inside row 0, and a row of its own
    ("film moving", 1),  # the same words in another order: not inside anything
]


def test_whole_rows_are_those_inside_no_other_row():
    mask = whole_rows([t for t, _ in ROWS])
    assert [t for (t, _), m in zip(ROWS, mask) if m] == [
        "a gripping and moving film", "a dull , lifeless mess", "an odd little movie", "film moving"]


def test_inside_covers_a_row_and_every_row_that_is_a_run_of_its_words():
    texts = [t for t, _ in ROWS]
    covered = inside(texts, np.array([0]))
    assert [t for t, c in zip(texts, covered) if c] == [
        "a gripping and moving film", "gripping and moving", "moving", "moving film"]
    assert not inside(texts, np.array([], dtype=int)).any()


def test_held_out_draws_only_eligible_rows_stratified_among_them():
    labels = np.array([0] * 50 + [1] * 50)
    eligible = np.zeros(100, dtype=bool)
    eligible[40:70] = True  # 10 of label 0, 20 of label 1
    keep, held = held_out(labels, 9, seed=1, eligible=eligible)
    assert set(held) <= set(np.flatnonzero(eligible)) and len(held) == 9
    assert np.bincount(labels[held]).tolist() == [3, 6]  # the shares of the eligible rows
    assert sorted(np.concatenate([keep, held]).tolist()) == list(range(100))
    with pytest.raises(DataError, match="only 30 training rows are whole rows"):
        held_out(labels, 31, seed=1, eligible=eligible)


def _in_vocabulary(rows):
    """The rows with each distinct word replaced by one of the tiny tokenizer's words (w0, w1, ...)."""
    names: dict[str, str] = {}
    return [(" ".join(names.setdefault(w, f"w{len(names)}") for w in t.split()), y) for t, y in rows]


def _task_files(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"train": folder / "train.tsv", "dev": folder / "dev.tsv"}
    paths["train"].write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    paths["dev"].write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows[:4]))
    return paths


def test_load_task_holds_out_whole_rows_and_drops_their_phrases_from_training(tmp_path):
    from transformers import AutoTokenizer

    teacher = make_teacher_dir(tmp_path / "t")
    tok = AutoTokenizer.from_pretrained(teacher)
    rows = _in_vocabulary(ROWS * 3)  # every label of the whole rows several times over
    texts = [t for t, _ in rows]
    paths = _task_files(tmp_path / "d", rows)
    data = {}
    for name, extra in (("plain", {}), ("whole", {"validation_whole_rows": True})):
        (tmp_path / name).mkdir()
        exp = write_experiment(tmp_path / name, teacher, paths, task={"validation_size": 2, **extra})
        data[name] = load_task(Experiment.from_file(exp), tok, "tok")
    ids = {tuple(tok(t)["input_ids"]): t for t in texts}
    as_text = lambda enc: [ids[tuple(enc.row(i)[0].tolist())] for i in range(len(enc))]
    held, train = as_text(data["whole"].validation), as_text(data["whole"].train)
    whole = {t for t, m in zip(texts, whole_rows(texts)) if m}
    assert len(held) == 2 and set(held) <= whole
    covered = {t for t, c in zip(texts, inside(texts, np.array([texts.index(h) for h in held]))) if c}
    assert set(train) == set(texts) - covered  # every phrase of a held-out row left training, nothing else did
    assert len(train) == sum(t not in covered for t in texts)  # duplicates of kept rows stay
    assert len(data["plain"].train) == len(texts) - 2
    assert data["whole"].train_key != data["plain"].train_key  # another training set: another teacher


def test_whole_rows_need_a_single_text_task(tmp_path):
    teacher = make_teacher_dir(tmp_path / "t")
    paths = _task_files(tmp_path / "d", _in_vocabulary(ROWS))
    path = write_experiment(tmp_path, teacher, paths, task={"validation_whole_rows": True, "text_pair": "other"})
    with pytest.raises(ConfigError, match="validation_whole_rows is for single-text tasks"):
        Experiment.from_file(path)
