"""`autocompress data`: how to point an experiment at its data, and a check of one experiment's data.

The check reads the splits the way a search does (`data.load_task`, with the teacher's tokenizer, so
the tokenized rows land in the cache a search then reuses) and says, per split, where its rows come
from, how many there are and how the labels are spread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Experiment
from .data import DataSource, data_source, load_task
from .engine.batches import SPLITS
from .log import Log, silent

# One `task:` block per kind of source: what `autocompress data` prints with no argument.
EXAMPLES: dict[str, str] = {
    "CSV (a header row names the columns; .tsv files are tab-separated)": """\
task:
  train: data/train.csv        # relative paths: from the experiment file's folder
  dev: data/dev.csv            # the test split: only reported, never chosen on
  text: review                 # the column holding the text
  label: stars                 # the column holding the label
  metric: f1                   # accuracy (default), f1 or mcc""",
    "JSON lines (one object per line; .json works too)": """\
task:
  train: data/train.jsonl
  dev: data/dev.jsonl
  validation: data/validation.jsonl   # optional: the rows to choose on (default: held out from train)
  text: premise
  text_pair: hypothesis               # a second text, for sentence-pair tasks
  label: verdict
  labels: [contradiction, neutral, entailment]   # label names in class-index order""",
    "parquet": """\
task:
  train: data/train.parquet
  dev: data/dev.parquet
  text: text
  label: label
  validation_size: 0.1         # held out from train to choose on: a fraction or a row count""",
    "a Hugging Face hub dataset (needs to be online once; then cached)": """\
task:
  hub:
    path: nyu-mll/glue         # the dataset's hub id
    name: sst2                 # its configuration, if it has several
    train_split: train
    dev_split: validation      # reported as the test split
  text: sentence
  label: label
# Given together with train and dev files, the hub is their fallback: the files are read when
# they exist, the hub dataset only when one of them is missing.""",
}


def examples() -> str:
    """The four example `task:` blocks, each under a heading."""
    parts = [f"# {title}\n{block}" for title, block in EXAMPLES.items()]
    return ("How to point an experiment at your data (the task: block of its YAML):\n\n" + "\n\n".join(parts)
            + "\n\nCheck an experiment's data: autocompress data EXPERIMENT.yaml")


@dataclass(frozen=True)
class SplitCheck:
    name: str  # train, validation or test
    source: str  # a file, a hub split, or how the rows were held out
    rows: int
    label_counts: dict[str, int]  # label name -> rows (tokens, for a per-token task), in class-index order
    label_range: tuple[float, float] | None = None  # numeric labels (regression, similarity): lowest, highest


@dataclass(frozen=True)
class DataCheck:
    experiment: str
    source: DataSource
    columns: dict[str, str]  # role (text, text_pair, label) -> column name
    label_names: tuple[str, ...]
    splits: tuple[SplitCheck, ...]

    def render(self) -> str:
        lines = [f"experiment: {self.experiment}",
                 f"source: {'local files' if self.source.hub is None else self.source.describe()}",
                 "columns: " + ", ".join(f"{role} '{col}'" for role, col in self.columns.items())
                 + (f"; labels {', '.join(self.label_names)}" if self.label_names else "; numeric labels")]
        width = max(len(f"{s.rows:,}") for s in self.splits)
        for s in self.splits:
            total = max(sum(s.label_counts.values()), 1)
            counts = ", ".join(f"{name} {n:,} ({n / total:.0%})" for name, n in s.label_counts.items())
            if s.label_range is not None:
                counts = f"from {s.label_range[0]:g} to {s.label_range[1]:g}"
            elif not s.label_counts:
                counts = "none (sentences distilled on)"
            lines += [f"{s.name:<10}  {s.rows:>{width},} rows  {s.source}", f"{'':<10}  labels: {counts}"]
        return "\n".join(lines)


def _shown(path: Path) -> str:
    """A file as the user can find it: relative to the working directory when that is possible."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive
        return os.path.normpath(path)


def _split_sources(exp: Experiment, src: DataSource) -> dict[str, str]:
    task = exp.task
    if src.hub is None:
        named = {split: _shown(exp.path(name)) for split, name in src.files.items()}
    else:
        hub = src.hub
        named = {split: f"hub {hub.describe()} split '{name}'" for split, name in hub.splits().items() if name}
    if "validation" not in named:
        whole = ", whole rows only" if task.validation_whole_rows else ""
        named["validation"] = f"held out from train (task.validation_size {task.validation_size:g}, " \
                              f"seed {task.validation_seed}{whole})"
    if task.train_limit is not None:
        named["train"] += f", a seeded sample of at most {task.train_limit:,} rows (task.train_limit)"
    return named


def _tokenizer(exp: Experiment):
    """The teacher's tokenizer and its id, as a search loads them (`teacher.prepare`)."""
    from .teacher import load_tokenizer, resolve_source, tokenizer_id

    source = resolve_source(exp.teacher.source)
    return load_tokenizer(source), tokenizer_id(source)


def check_data(exp: Experiment, log: Log = silent, experiment_file: str | None = None) -> DataCheck:
    """Load the experiment's splits the way a search does and count their rows and labels.

    Raises the one-line `DataError` a search would raise (a missing file, an unreachable hub, a
    wrong column or label).
    """
    src = data_source(exp)
    log(f"data: reading {src.describe()}")
    tokenizer, tok_id = _tokenizer(exp)
    data = load_task(exp, tokenizer, tok_id)
    task = exp.task
    columns = {"text": task.text, **({"text_pair": task.text_pair} if task.text_pair else {}), "label": task.label}
    where = _split_sources(exp, src)
    splits = []
    for name in SPLITS:
        enc = data.split(name)
        if name == "train" and not data.task.labelled_training:
            splits.append(SplitCheck(name, where[name], len(enc), {}))
            continue
        if not data.label_names:  # numbers: their range
            low, high = (float(enc.labels.min()), float(enc.labels.max())) if len(enc) else (0.0, 0.0)
            splits.append(SplitCheck(name, where[name], len(enc), {}, (low, high)))
            continue
        counts = np.bincount(enc.labels[enc.labels >= 0], minlength=data.num_labels)
        splits.append(SplitCheck(name, where[name], len(enc),
                                 {label: int(n) for label, n in zip(data.label_names, counts)}))
    title = f"{exp.name} ({experiment_file})" if experiment_file else exp.name
    return DataCheck(title, src, columns, data.label_names, tuple(splits))
