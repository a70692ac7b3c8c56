"""New training text from the training rows, for a teacher to label (TinyBERT's data augmentation, made cheap).

Every new row starts from a training row drawn at random and changes its words one of three ways, drawn at
random too: some words dropped (`drop`), some words replaced by words drawn from the whole training text
(`replace`; a common word is drawn more often, as it occurs), or its first half spliced to the second half of
another row. It works on token ids, so nothing is detokenized: special tokens ([CLS], [SEP], <s>, ...) stay in
place, and a word is a token that starts one (`word_starts`) with the continuation tokens after it. The rows
get no labels here; the teacher's outputs on them are their targets (`elastic_net`, `augmented.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .batches import Encoded, pack

OPERATIONS = ("drop", "replace", "splice")


@dataclass(frozen=True, kw_only=True)
class AugmentSettings:
    """How many new rows (`factor` per training row) and how much each operation changes."""

    factor: float
    drop: float = 0.1  # each word's chance to be dropped
    replace: float = 0.1  # each word's chance to be replaced by a word drawn from the training text
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.factor > 0:
            raise ValueError(f"factor must be positive, got {self.factor}")
        for name in ("drop", "replace"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")


def _runs(ids: np.ndarray, special: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each maximal run of ordinary tokens of a row."""
    runs, start = [], None
    for pos, is_special in enumerate(special[ids]):
        if not is_special and start is None:
            start = pos
        elif is_special and start is not None:
            runs.append((start, pos))
            start = None
    if start is not None:
        runs.append((start, len(ids)))
    return runs


def _words(tokens: np.ndarray, word_starts: np.ndarray) -> list[np.ndarray]:
    """The words of a run of ordinary tokens: each from a word-starting token (or the run's first) up to the next."""
    starts = [0] + [p for p in range(1, len(tokens)) if word_starts[tokens[p]]]
    return [tokens[a:b] for a, b in zip(starts, starts[1:] + [len(tokens)])]


class _Corpus:
    """The training rows split into runs and words once, and a word drawn from all of them as often as it occurs."""

    def __init__(self, rows: Encoded, special: np.ndarray, word_starts: np.ndarray) -> None:
        self.rows = rows
        self.runs = [_runs(rows.row(i)[0], special) for i in range(len(rows))]
        self.words = [w for i, runs in enumerate(self.runs) for a, b in runs
                      for w in _words(rows.row(i)[0][a:b], word_starts)]

    def word(self, rng: np.random.Generator) -> np.ndarray:
        return self.words[int(rng.integers(len(self.words)))]


def _changed_run(words: list[np.ndarray], op: str, settings: AugmentSettings, corpus: _Corpus,
                 rng: np.random.Generator) -> list[np.ndarray]:
    if op == "drop":
        kept = [w for w in words if rng.random() >= settings.drop]
        return kept or [words[int(rng.integers(len(words)))]]
    return [corpus.word(rng) if rng.random() < settings.replace else w for w in words]


def augment(rows: Encoded, settings: AugmentSettings, *, special_ids: set[int] | list[int],
            word_starts: np.ndarray, max_length: int) -> Encoded:
    """round(`settings.factor` x len(rows)) new rows made from `rows` (see the module), each at most `max_length`
    tokens, in a repeatable order for `settings.seed`; their labels are zeros (the teacher labels them).

    special_ids: the tokenizer's special tokens, never moved; word_starts[token id]: whether that token starts a
    word (all True: every token is a word). Rows with no ordinary token are copied unchanged."""
    if rows.per_token:
        raise ValueError("augmenting rows with a label per token is not supported")
    if len(rows) == 0:
        raise ValueError("no training rows to augment")
    special = np.zeros(len(word_starts), dtype=bool)
    special[[i for i in special_ids if 0 <= i < len(special)]] = True
    corpus = _Corpus(rows, special, word_starts)
    rng = np.random.default_rng(settings.seed)
    n = max(1, round(settings.factor * len(rows)))
    new_ids, new_types = [], []
    for _ in range(n):
        i = int(rng.integers(len(rows)))
        op = OPERATIONS[int(rng.integers(len(OPERATIONS)))]
        ids, types = corpus.rows.row(i)
        runs = corpus.runs[i]
        if not runs:
            new_ids.append(ids)
            new_types.append(types)
            continue
        a, b = runs[0] if op == "splice" else runs[int(rng.integers(len(runs)))]
        words = _words(ids[a:b], word_starts)
        if op == "splice":
            j = int(rng.integers(len(rows)))
            other = corpus.runs[j]
            tail = _words(corpus.rows.row(j)[0][slice(*other[0])], word_starts) if other else []
            words = words[: max(1, len(words) // 2)] + tail[len(tail) // 2:]
        else:
            words = _changed_run(words, op, settings, corpus, rng)
        run = np.concatenate(words).astype(ids.dtype)
        room = max_length - (len(ids) - (b - a))
        run = run[: max(1, room)]
        new_ids.append(np.concatenate([ids[:a], run, ids[b:]]))
        new_types.append(np.concatenate([types[:a], np.full(len(run), types[a], dtype=types.dtype), types[b:]]))
    return pack(new_ids, new_types, np.zeros(n, dtype=np.int64))


def word_starts_of(vocabulary: dict[str, int]) -> np.ndarray:
    """Which token ids start a word, from a tokenizer's vocabulary (token -> id): WordPiece marks the continuation
    tokens ('##ing'), byte-level BPE and SentencePiece mark the starting ones ('Ġword', '▁word'). Without either
    mark every token counts as a word."""
    size = max(vocabulary.values()) + 1
    starts = np.ones(size, dtype=bool)
    tokens = list(vocabulary.items())
    if any(t.startswith("##") for t, _ in tokens):
        for t, i in tokens:
            starts[i] = not t.startswith("##")
        return starts
    for mark in ("Ġ", "▁"):
        if sum(t.startswith(mark) for t, _ in tokens) > len(tokens) // 4:
            for t, i in tokens:
                starts[i] = t.startswith(mark)
            return starts
    return starts
