"""Task data: load (local files or hub) through `datasets`, split, tokenize once, cache, bucket batches.

Three splits. `train` rows train the teacher and the students. `validation` rows (a separate
file or hub split, or rows held out from training: seeded and stratified) are the only rows the
search chooses on. `test` rows are the task's dev file (GLUE's dev set): only reported.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .engine._io import atomic_path, digest, file_digest
from .config import Experiment, HubData, TaskConfig
from .engine.errors import DataError
from .log import Log, silent
from .engine.batches import SPLITS, Encoded, TaskData, pack, sample_indices
from .phrases import inside, whole_rows

_FORMATS = {".tsv": "csv", ".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_TOKEN_FORMATS = (".txt", ".conll")  # CoNLL columns (a token a line), for per-token tasks



# ---- loading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSource:
    """Where an experiment's rows come from this time: its local files, or its hub dataset."""

    files: dict[str, str]  # split -> local file as the experiment names it (train, validation, test)
    hub: HubData | None = None  # set: the rows come from the hub
    missing: str | None = None  # the local file that was not found, when the hub stands in for the files

    def describe(self) -> str:
        if self.hub is None:
            return ", ".join(self.files.values())
        used = f"hub dataset {self.hub.describe()}"
        return f"{used}, because {self.missing} was not found" if self.missing else used


def data_source(exp: Experiment) -> DataSource:
    """Local files first, else the hub: the files when all of them exist (or no hub is given), the
    hub dataset when no files are given or one of them is missing."""
    task = exp.task
    files = {split: name for split, name in (("train", task.train), ("validation", task.validation),
                                             ("test", task.dev)) if name}
    if task.hub is None:
        return DataSource(files)
    missing = next((name for name in files.values() if not exp.path(name).is_file()), None)
    if files and missing is None:
        return DataSource(files)
    return DataSource(files, task.hub, missing)


def _hub_off() -> str | None:
    """The variable that switches the hub off, when one does."""
    return next((v for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE") if os.environ.get(v) == "1"), None)


def load_raw(exp: Experiment, log: Log = silent) -> dict[str, Any]:
    """The train and test splits, and validation when it is its own file or hub split, as
    `datasets.Dataset`s: from the local files, or from the hub (see `data_source`).

    `log` hears one line when the hub stands in for a missing local file.
    """
    import datasets

    datasets.disable_progress_bars()
    task = exp.task
    src = data_source(exp)
    if src.hub is None:
        return {split: _load_local(exp.path(name), split, task.columns, task) for split, name in src.files.items()}
    hub = src.hub
    if src.missing:
        log(f"data: {src.missing} not found; using hub dataset {hub.describe()} instead")
    try:
        d = datasets.load_dataset(hub.path, hub.name, cache_dir=str(exp.cache / "hub-datasets"))
    except Exception as err:  # offline, unknown id, bad config: all one message for the user
        off = _hub_off()
        if src.missing:
            why = f"hub off: {off}=1" if off else str(err).splitlines()[0]
            raise DataError(f"{exp.name} data: {src.missing} not found and hub dataset {hub.describe()} not "
                            f"reachable ({why}); put the files there or go online") from None
        hint = f"the hub is off ({off}=1) and there is no local copy" if off else str(err).splitlines()[0]
        raise DataError(
            f"dataset {hub.describe()} could not be loaded: {hint}; "
            "use local files (task.train / task.dev) or check the id"
        ) from None
    names = hub.splits()
    for name in names.values():
        if name is not None and name not in d:
            raise DataError(f"dataset {hub.describe()} has no split '{name}' (has {', '.join(d)}); "
                            "set task.hub.*_split")
    return {split: _named_labels(_renamed(d[name], hub), task.label, hub, name, task.task.per_token)
            for split, name in names.items() if name is not None}


def _renamed(ds, hub: HubData):
    """The hub split with its columns named as the task names them (`task.hub.columns`)."""
    renames = {k: v for k, v in (hub.columns or {}).items() if k in ds.column_names and k != v}
    return ds.rename_columns(renames) if renames else ds


def _named_labels(ds, column: str, hub: HubData, split: str, per_token: bool = False):
    """The hub split with its integer labels replaced by names, the way local files spell labels out:
    `hub.label_names`, or for a per-token task's tags (a list of class indices a row: CoNLL-2003's `ner_tags`) the
    names the dataset's own features give them. Unchanged when nothing names them and they are not per-token."""
    if column not in ds.column_names:
        return ds
    names = hub.label_names
    if names is None and per_token:
        inner = getattr(ds.features[column], "feature", None)  # a sequence of ClassLabel: its names, in order
        names = tuple(inner.names) if getattr(inner, "names", None) else None
    if names is None and not per_token:
        return ds
    values = list(ds[column])
    flat = [v for row in values for v in row] if per_token else values
    if names is None:
        if any(isinstance(v, (int, np.integer)) for v in flat):
            raise DataError(f"dataset {hub.describe()} split '{split}': its tags are numbers the dataset does not "
                            "name; set task.hub.label_names (the names of tags 0, 1, ... in order)")
        return ds
    source = "task.hub.label_names" if hub.label_names is not None else "the dataset's tag names"
    for v in flat:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < len(names):
            raise DataError(f"dataset {hub.describe()} split '{split}': label {v!r} has no name in "
                            f"{source} {list(names)} (they name labels 0 to {len(names) - 1})")
    named = [[names[v] for v in row] for row in values] if per_token else [names[v] for v in values]
    return ds.remove_columns(column).add_column(column, named)


def _load_local(path: Path, split: str, columns: tuple[str, ...] | None = None, task: TaskConfig | None = None):
    import datasets

    if not path.is_file():
        raise DataError(f"{path}: data file not found; fix task.{_KEYS[split]} in the experiment file")
    if task is not None and task.task.per_token and path.suffix.lower() in _TOKEN_FORMATS:
        from .engine.tasks.conll import read_conll

        words, tags = read_conll(path, tags=task.labels)
        return datasets.Dataset.from_dict({task.text: words, task.label: tags})
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unknown data format '{path.suffix}'; use one of {', '.join(_FORMATS)}")
    kwargs: dict[str, Any] = {}
    if fmt == "csv":
        # GLUE TSVs hold unbalanced quotes: quoting off, and keep strings like "NA" as text.
        kwargs = {"delimiter": "\t" if path.suffix.lower() == ".tsv" else ",", "quoting": csv.QUOTE_NONE,
                  "keep_default_na": False}
        if columns:  # headerless files, as GLUE ships some of them: every row is data
            kwargs.update(column_names=list(columns), header=None)
    try:
        return datasets.load_dataset(fmt, data_files=str(path), split="train", **kwargs)
    except Exception as err:
        if "corresponds to no data" in str(err):  # a header and nothing else
            raise DataError(f"{path}: {split} data has no rows; fix task.{_KEYS[split]} in the experiment file") from None
        raise DataError(f"{path}: could not be parsed as {fmt} ({str(err).splitlines()[0]})") from None


_KEYS = {"train": "train", "validation": "validation", "test": "dev"}  # the experiment file's key of each split


def _source_key(task: TaskConfig, split: str) -> str:
    if task.hub is None:
        return f"task.{_KEYS[split]}"
    hub = f"task.hub.{_KEYS[split]}_split"
    return hub if task.train is None else f"task.{_KEYS[split]} (or {hub}, its fallback)"


def _cache_sources(exp: Experiment) -> list[object]:
    """What the rows are read from, for the data cache key: the local files' contents or the hub dataset."""
    src = data_source(exp)
    if src.hub is None:
        return [_file_source(exp, n) for n in (exp.task.train, exp.task.validation, exp.task.dev)]
    return ["hub", src.hub.model_dump()]


def _label_names(task: TaskConfig, columns: dict[str, list]) -> tuple[str, ...]:
    if task.labels is not None:
        return tuple(task.labels)
    return task.task.label_names([v for split in columns.values() for v in split])


def _file_source(exp: Experiment, name: str | None) -> object:
    if name is None:
        return None
    path = exp.path(name)
    return file_digest(path) if path.is_file() else name


def held_out(labels: np.ndarray, size: float, seed: int,
             eligible: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into (kept, held out): `size` rows (a fraction below 1 of all rows, or a count)
    held out, stratified by label (each label keeps its share, largest remainders first), seeded.

    eligible: a mask of the rows that may be held out (default: all of them); the shares are theirs.
    """
    n = len(labels)
    k = round(size * n) if size < 1 else int(size)
    if k < 1 or k >= n:
        raise DataError(f"task.validation_size {size:g} holds out {k} of the {n} training rows, leaving "
                        f"{'no validation' if k < 1 else 'no training'} rows; use a fraction below 1 or a count from 1 to {n - 1}")
    pool = np.arange(n) if eligible is None else np.flatnonzero(eligible)
    if k > len(pool):
        raise DataError(f"task.validation_size {size:g} asks for {k} held-out rows but only {len(pool)} training rows "
                        "are whole rows (task.validation_whole_rows); ask for fewer")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels[pool], return_counts=True)
    quota = counts * k / len(pool)
    take = np.floor(quota).astype(int)
    for c in np.argsort(-(quota - take), kind="stable")[: k - take.sum()]:
        take[c] += 1
    held = np.concatenate([rng.permutation(pool[labels[pool] == c])[:t] for c, t in zip(classes, take)])
    mask = np.zeros(n, dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _checked(task: TaskConfig, raw: dict[str, Any]) -> None:
    cols = [task.text] + ([task.text_pair] if task.text_pair else []) + [task.label]
    for split, ds in raw.items():
        if len(ds) == 0:
            raise DataError(f"{split} data has no rows; fix {_source_key(task, split)} in the experiment file")
        missing = [c for c in cols if c not in ds.column_names]
        if missing:
            raise DataError(
                f"{split} data has no column '{missing[0]}' (columns: {', '.join(ds.column_names)}); "
                "fix task.text / task.text_pair / task.label"
            )


def rows_digest(*encs: Encoded) -> str:
    """A short digest of tokenized splits: their token ids, token types, row boundaries and labels."""
    h = hashlib.sha256()
    for e in encs:
        for a in (e.ids, e.types, e.offsets, e.labels):
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def load_task(exp: Experiment, tokenizer, tokenizer_id: str) -> TaskData:
    """Tokenized train / validation / test splits, cached under the experiment's cache folder by content."""
    task = exp.task
    sources = _cache_sources(exp)  # local files or the hub: never one key for both
    if task.text_file is not None:
        sources.append(_file_source(exp, task.text_file))
    key = digest("data-v3", sources, task.model_dump(), tokenizer_id)
    cache_file = exp.cache / "data" / f"{key}.npz"
    per_token = task.task.per_token
    if cache_file.is_file():
        z = np.load(cache_file, allow_pickle=False)
        enc = {s: Encoded(z[s + "_ids"], z[s + "_types"], z[s + "_offsets"], z[s + "_labels"], per_token)
               for s in SPLITS}
        return TaskData(**enc, label_names=tuple(str(x) for x in z["label_names"]), fingerprint=key,
                        train_key=str(z["train_key"]), task_type=task.type)

    raw = load_raw(exp)
    _checked(task, raw)
    labels = {s: raw[s][task.label] for s in raw}
    names = _label_names(task, labels)
    src = data_source(exp)
    where = {s: f"{src.files[s]} ({s} data)" if src.hub is None and s in src.files else f"{s} data" for s in raw}
    ids = {s: task.task.label_values(labels[s], names, where[s]) for s in raw}
    if "validation" not in raw:  # held out from the training rows, before any training row is sampled
        texts = [str(x) for x in raw["train"][task.text]] if task.validation_whole_rows else None
        eligible = whole_rows(texts) if texts is not None else None
        keep, held = held_out(task.task.strata(_per_row(ids["train"])), task.validation_size,
                              task.validation_seed, eligible)
        if texts is not None:  # a held-out sentence's phrases would carry its label into training
            keep = keep[~inside(texts, held)[keep]]
        raw["validation"], raw["train"] = raw["train"].select(held), raw["train"].select(keep)
        ids["validation"], ids["train"] = _rows(ids["train"], held), _rows(ids["train"], keep)
    if task.train_limit is not None and task.train_limit < len(raw["train"]):
        pick = sample_indices(len(raw["train"]), task.train_limit, 0)
        raw["train"], ids["train"] = raw["train"].select(pick), _rows(ids["train"], pick)
    if not task.task.labelled_training:
        raw["train"], ids["train"] = _training_text(exp, raw)
    enc = {split: _encoded(task, tokenizer, raw[split], ids[split], split) for split in SPLITS}
    train_key = rows_digest(enc["train"])
    with atomic_path(cache_file) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, label_names=np.array(names, dtype=str), train_key=np.array(train_key), **{
                f"{s}_{k}": getattr(enc[s], k) for s in enc for k in ("ids", "types", "offsets", "labels")
            })
    return TaskData(**enc, label_names=names, fingerprint=key, train_key=train_key, task_type=task.type)


def _per_row(labels) -> np.ndarray:
    """One value per row to hold validation rows out by (a per-token task's rows: their row numbers)."""
    return labels if isinstance(labels, np.ndarray) else np.zeros(len(labels), dtype=np.int64)


def _rows(labels, idx: np.ndarray):
    """Rows `idx` of a label column (an array, or a per-token task's list of arrays)."""
    return labels[idx] if isinstance(labels, np.ndarray) else [labels[i] for i in idx]


def _encoded(task: TaskConfig, tokenizer, ds, labels, split: str) -> Encoded:
    """One split tokenized: a row per data row; for a per-token task, word tags moved onto each word's
    first sub-word token; for a task scored in pairs (embedding), each pair's two texts as rows 2i, 2i + 1."""
    if task.task.per_token:
        return _encoded_words(task, tokenizer, ds, labels, split)
    if task.task.pairs_as_rows and split != "train":
        a, b = [str(x) for x in ds[task.text]], [str(x) for x in ds[task.text_pair]]
        texts = [t for pair in zip(a, b) for t in pair]
        tok = tokenizer(texts, truncation=True, max_length=task.max_length, return_token_type_ids=True)
        return pack(tok["input_ids"], tok["token_type_ids"], np.repeat(labels, 2))
    a = [str(x) for x in ds[task.text]]
    b = [str(x) for x in ds[task.text_pair]] if task.text_pair and task.text_pair in ds.column_names else None
    tok = tokenizer(a, b, truncation=True, max_length=task.max_length, return_token_type_ids=True)
    return pack(tok["input_ids"], tok["token_type_ids"], labels)


def _encoded_words(task: TaskConfig, tokenizer, ds, tags: list, split: str) -> Encoded:
    from .engine.tasks.tokens import IGNORED

    if not getattr(tokenizer, "is_fast", False):
        raise DataError(f"a {task.type} task needs a fast tokenizer (it maps words to sub-words); the teacher's "
                        f"{type(tokenizer).__name__} is not one: use a teacher with a tokenizer.json")
    words = [[str(w) for w in row] for row in ds[task.text]]
    tok = tokenizer(words, is_split_into_words=True, truncation=True, max_length=task.max_length,
                    return_token_type_ids=True)
    aligned = []
    for i, row_tags in enumerate(tags):
        seen: set[int] = set()
        out = np.full(len(tok["input_ids"][i]), IGNORED, dtype=np.int64)
        for pos, word in enumerate(tok.word_ids(i)):
            if word is not None and word not in seen:
                seen.add(word)
                out[pos] = row_tags[word]
        aligned.append(out)
    return pack(tok["input_ids"], tok["token_type_ids"], aligned, per_token=True)


def _training_text(exp: Experiment, raw: dict[str, Any]):
    """The sentences an embedding student is distilled on: every text of the training rows, and the lines of
    `task.text_file`, once each, leaving out any sentence of a validation or test pair."""
    import datasets

    task = exp.task
    scored = {str(x) for split in ("validation", "test") for col in (task.text, task.text_pair)
              for x in raw[split][col]}
    texts = [str(x) for col in (task.text, task.text_pair) for x in raw["train"][col]]
    if task.text_file is not None:
        path = exp.path(task.text_file)
        if not path.is_file():
            raise DataError(f"{path}: text file not found; fix task.text_file in the experiment file")
        texts += [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    kept = [t for t in dict.fromkeys(texts) if t.strip() and t not in scored]
    if not kept:
        raise DataError(f"{exp.name}: an embedding task needs text to distill on, and its training rows (and "
                        "task.text_file) have none outside the validation and test pairs; give a task.text_file")
    return datasets.Dataset.from_dict({task.text: kept}), np.zeros(len(kept), dtype=np.float32)


def majority_baseline(data: TaskData, validation: Encoded | None = None) -> tuple[str, dict[str, dict[str, float]]]:
    """The task's constant predictor fitted on the training rows (a classifier's most frequent label, a
    regression's mean, ...: `Task.constant_outputs`), what it says, and its scores on the validation and test
    rows: what a candidate must beat to be more than a constant function.

    `validation`: the validation rows candidates are scored on, when not all of them.
    """
    task = data.task
    rows = {"validation": data.validation if validation is None else validation, "test": data.test}
    scores = {}
    for split, enc in rows.items():
        said, outputs = task.constant_outputs(data.train, enc, data.label_names)
        scores[split] = data.scores(outputs, enc)
    return said, scores
