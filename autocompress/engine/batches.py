"""Tokenized splits and their batches: what the engine trains and scores on.

`Encoded` stores a tokenized split ragged; `TaskData` holds the three splits (`data.py` loads them);
the batch functions pad rows into the tensors every model of the engine takes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Encoded:
    """A tokenized split stored ragged: row i is ids[offsets[i]:offsets[i+1]]."""

    ids: np.ndarray  # int32, all rows concatenated
    types: np.ndarray  # int8 token type ids, same layout
    offsets: np.ndarray  # int64, len = rows + 1
    labels: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, idx: np.ndarray) -> Encoded:
        rows = [self.row(int(i)) for i in idx]
        return pack([r[0] for r in rows], [r[1] for r in rows], self.labels[idx])

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.ids[a:b], self.types[a:b]


SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class TaskData:
    train: Encoded  # trains the teacher and the students
    validation: Encoded  # the only rows the search chooses on
    test: Encoded  # only reported
    label_names: tuple[str, ...]
    fingerprint: str  # of all three splits and how they were made
    train_key: str  # of the training rows only: what the fine-tuned teacher and its logits depend on

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def split(self, name: str) -> Encoded:
        return getattr(self, name)


def pack(ids: list, types: list, labels: np.ndarray) -> Encoded:
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat_ids = np.concatenate([np.asarray(x, dtype=np.int32) for x in ids]) if ids else np.zeros(0, np.int32)
    flat_types = np.concatenate([np.asarray(x, dtype=np.int8) for x in types]) if types else np.zeros(0, np.int8)
    return Encoded(flat_ids, flat_types, offsets, np.asarray(labels, dtype=np.int64))


def collate(enc: Encoded, idx: np.ndarray, pad_id: int = 0, pad_to: int | None = None) -> dict[str, torch.Tensor]:
    """Pad rows `idx` to the longest (or `pad_to`) into input_ids / attention_mask / token_type_ids / labels."""
    lengths = enc.lengths[idx]
    width = int(pad_to if pad_to is not None else lengths.max())
    ids = np.full((len(idx), width), pad_id, dtype=np.int64)
    types = np.zeros((len(idx), width), dtype=np.int64)
    mask = np.zeros((len(idx), width), dtype=np.int64)
    for r, i in enumerate(idx):
        a, t = enc.row(int(i))
        n = min(len(a), width)
        ids[r, :n], types[r, :n], mask[r, :n] = a[:n], t[:n], 1
    return {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(mask),
        "token_type_ids": torch.from_numpy(types),
        "labels": torch.from_numpy(enc.labels[idx]),
        "index": torch.from_numpy(np.asarray(idx, dtype=np.int64)),
    }


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
