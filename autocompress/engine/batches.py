"""Tokenized splits and their batches: what the engine trains and scores on.

`Encoded` stores a tokenized split ragged; `TaskData` holds the three splits (`data.py` loads them);
the batch functions pad rows into the tensors every model of the engine takes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from .tasks import Task


@dataclass(frozen=True)
class Encoded:
    """A tokenized split stored ragged: row i is ids[offsets[i]:offsets[i+1]].

    Labels are one per row (int64 class indices, or float32 for a regression or a similarity score), or,
    for a per-token task, one per token in the layout of `ids` (int64; -100 where a token carries none)."""

    ids: np.ndarray  # int32, all rows concatenated
    types: np.ndarray  # int8 token type ids, same layout
    offsets: np.ndarray  # int64, len = rows + 1
    labels: np.ndarray  # one per row, or one per token (per_token)
    per_token: bool = False

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, idx: np.ndarray) -> Encoded:
        rows = [self.row(int(i)) for i in idx]
        labels = ([self.row_labels(int(i)) for i in idx] if self.per_token else self.labels[idx])
        return pack([r[0] for r in rows], [r[1] for r in rows], labels, per_token=self.per_token)

    def row_labels(self, i: int) -> np.ndarray:
        """Row i's label (one per row), or its tokens' labels (per token)."""
        if self.per_token:
            return self.labels[self.offsets[i]:self.offsets[i + 1]]
        return self.labels[i]

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.ids[a:b], self.types[a:b]


SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class TaskData:
    train: Encoded  # trains the teacher and the students
    validation: Encoded  # the only rows the search chooses on
    test: Encoded  # only reported
    label_names: tuple[str, ...]  # empty for a task whose labels are numbers
    fingerprint: str  # of all three splits and how they were made
    train_key: str  # of the training rows only: what the fine-tuned teacher and its logits depend on
    task_type: str = "classification"  # `tasks.TASKS`: what the labels mean and how outputs are scored

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def task(self) -> Task:
        from .tasks import get_task

        return get_task(self.task_type)

    def scores(self, outputs: np.ndarray, rows: Encoded) -> dict[str, float]:
        """Every score of the task of `outputs` (a model's outputs for `rows`) against `rows`' labels."""
        return self.task.metrics(outputs, rows, self.label_names)

    def split(self, name: str) -> Encoded:
        return getattr(self, name)


def pack(ids: list, types: list, labels, per_token: bool = False) -> Encoded:
    """Rows of token ids and types (and labels: an array, one per row; or per token, a list of arrays of
    the rows' lengths) as one ragged split. Integer labels are stored as int64, others as float32."""
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat_ids = np.concatenate([np.asarray(x, dtype=np.int32) for x in ids]) if ids else np.zeros(0, np.int32)
    flat_types = np.concatenate([np.asarray(x, dtype=np.int8) for x in types]) if types else np.zeros(0, np.int8)
    if per_token:
        labels = np.concatenate([np.asarray(x, dtype=np.int64) for x in labels]) if len(labels) else np.zeros(0, np.int64)
    labels = np.asarray(labels)
    dtype = np.int64 if labels.dtype.kind in "iub" or labels.size == 0 else np.float32
    return Encoded(flat_ids, flat_types, offsets, labels.astype(dtype), per_token)


def concat(first: Encoded, second: Encoded) -> Encoded:
    """The rows of `first`, then those of `second` (labels of one kind, one per row or per token)."""
    if first.per_token != second.per_token:
        raise ValueError("cannot join rows labelled per token with rows labelled per row")
    return Encoded(np.concatenate([first.ids, second.ids]), np.concatenate([first.types, second.types]),
                   np.concatenate([first.offsets, second.offsets[1:] + first.offsets[-1]]),
                   np.concatenate([first.labels, second.labels.astype(first.labels.dtype)]), first.per_token)


def collate(enc: Encoded, idx: np.ndarray, pad_id: int = 0, pad_to: int | None = None) -> dict[str, torch.Tensor]:
    """Pad rows `idx` to the longest (or `pad_to`) into input_ids / attention_mask / token_type_ids / labels."""
    lengths = enc.lengths[idx]
    width = int(pad_to if pad_to is not None else lengths.max())
    ids = np.full((len(idx), width), pad_id, dtype=np.int64)
    types = np.zeros((len(idx), width), dtype=np.int64)
    mask = np.zeros((len(idx), width), dtype=np.int64)
    token_index = np.full((len(idx), width), -1, dtype=np.int64)
    for r, i in enumerate(idx):
        a, t = enc.row(int(i))
        n = min(len(a), width)
        ids[r, :n], types[r, :n], mask[r, :n] = a[:n], t[:n], 1
        token_index[r, :n] = np.arange(enc.offsets[i], enc.offsets[i] + n)
    out = {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(mask),
        "token_type_ids": torch.from_numpy(types),
        "index": torch.from_numpy(np.asarray(idx, dtype=np.int64)),
    }
    if enc.per_token:  # each token's label and its place in the split's token layout (-100 / -1: padding)
        labels = np.full((len(idx), width), -100, dtype=np.int64)
        real = token_index >= 0
        labels[real] = enc.labels[token_index[real]]
        out.update(labels=torch.from_numpy(labels), token_index=torch.from_numpy(token_index))
    else:
        out["labels"] = torch.from_numpy(enc.labels[idx])
    return out


def bucketed_batches(
    enc: Encoded, batch_size: int, *, shuffle: bool, seed: int = 0, pool: int = 50
) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch of batches of similar length (little padding); order shuffled when asked.

    Rows are shuffled, cut into pools of `pool` batches, sorted by length inside each pool and
    split into batches; the batch order is then shuffled. Without shuffle, rows go by length.
    """
    n = len(enc)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n) if shuffle else np.arange(n)
    lengths = enc.lengths
    chunk = batch_size * pool if shuffle else n
    batches = []
    for s in range(0, n, chunk):
        part = order[s : s + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    if shuffle:
        rng.shuffle(batches)
    for b in batches:
        yield collate(enc, b)


def infinite_batches(enc: Encoded, batch_size: int, seed: int) -> Iterator[dict[str, torch.Tensor]]:
    """Epoch after epoch of shuffled bucketed batches, a new order each epoch."""
    epoch = 0
    while True:
        yield from bucketed_batches(enc, batch_size, shuffle=True, seed=seed + epoch)
        epoch += 1


def sample_indices(n: int, k: int | None, seed: int) -> np.ndarray:
    """`k` distinct row indices out of `n` (all rows, in order, when k is None or >= n)."""
    if k is None or k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))
