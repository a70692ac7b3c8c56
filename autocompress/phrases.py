"""Rows inside rows: for tasks whose training file holds sentences and their phrases (SST-2).

SST-2's training file has about 6,900 whole sentences and some 60,000 phrases cut from them, while
its dev file holds whole sentences only. Validation rows drawn from all training rows are then
mostly short phrases, and they choose models for a different job than the one they are tested on.
A row is *whole* when it is not a run of words inside another row; holding out whole rows only,
and dropping from training every row inside a held-out one, gives validation rows shaped like the
test rows and keeps their phrases (with their labels) out of training.

Words are the text split on white space: SST-2's text is lower-cased and pre-tokenised.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def _words(texts: Iterable[str]) -> list[tuple[str, ...]]:
    return [tuple(str(t).split()) for t in texts]


def _runs_found(outer: Sequence[tuple[str, ...]], among: set[tuple[str, ...]]) -> set[tuple[str, ...]]:
    """Every shorter run of words of a row of `outer` that is itself in `among`."""
    found: set[tuple[str, ...]] = set()
    for w in outer:
        n = len(w)
        for length in range(1, n):
            for start in range(n - length + 1):
                run = w[start : start + length]
                if run in among:
                    found.add(run)
    return found


def whole_rows(texts: Sequence[str]) -> np.ndarray:
    """A mask of the rows that are not a shorter run of words inside another row."""
    words = _words(texts)
    inner = _runs_found(words, set(words))
    return np.array([w not in inner for w in words], dtype=bool)


def inside(texts: Sequence[str], held: np.ndarray) -> np.ndarray:
    """A mask of the rows equal to, or a run of words inside, one of the rows `held` (indices)."""
    words = _words(texts)
    outer = [words[int(i)] for i in held]
    covered = _runs_found(outer, set(words)) | set(outer)
    return np.array([w in covered for w in words], dtype=bool)
