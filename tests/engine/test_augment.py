"""New training text from the training rows: what each operation does to token ids, and that it repeats."""

import numpy as np
import pytest

from autocompress.engine.augment import AugmentSettings, augment, word_starts_of
from autocompress.engine.batches import concat, pack

CLS, SEP = 1, 2
# token ids 10-29 start words, 30-39 continue them ('##' pieces)
STARTS = np.array([False] * 3 + [True] * 27 + [False] * 10)


def _rows(seed: int = 0, n: int = 40):
    rng = np.random.default_rng(seed)
    ids, types = [], []
    for _ in range(n):
        words = [[int(rng.integers(10, 30))] + [int(rng.integers(30, 40))] * int(rng.integers(0, 2))
                 for _ in range(int(rng.integers(2, 9)))]
        row = [CLS] + [t for w in words for t in w] + [SEP]
        ids.append(row)
        types.append([0] * len(row))
    return pack(ids, types, np.arange(n) % 2)


def _words(row: np.ndarray) -> list[tuple[int, ...]]:
    inner = [int(t) for t in row[1:-1]]
    out: list[list[int]] = []
    for t in inner:
        if STARTS[t] or not out:
            out.append([t])
        else:
            out[-1].append(t)
    return [tuple(w) for w in out]


def test_new_rows_keep_special_tokens_whole_words_and_the_length_limit():
    rows = _rows()
    vocabulary = {w for i in range(len(rows)) for w in _words(rows.row(i)[0])}
    new = augment(rows, AugmentSettings(factor=5.0, drop=0.3, replace=0.3), special_ids={0, CLS, SEP},
                  word_starts=STARTS, max_length=12)
    assert len(new) == 200 and not new.labels.any()
    for i in range(len(new)):
        ids, types = new.row(i)
        assert ids[0] == CLS and ids[-1] == SEP and len(ids) <= 12 and not types.any()
        assert 1 <= len(ids) - 2 and CLS not in ids[1:-1] and SEP not in ids[1:-1]
        # every word is a whole training word, except where the length limit cut the last one
        assert all(w in vocabulary for w in _words(ids)[:-1])
    originals = {tuple(rows.row(i)[0]) for i in range(len(rows))}
    assert sum(tuple(new.row(i)[0]) not in originals for i in range(len(new))) > 0.7 * len(new)


def test_each_operation_changes_rows_its_own_way():
    rows = _rows()
    originals = {tuple(rows.row(i)[0]) for i in range(len(rows))}
    new = augment(rows, AugmentSettings(factor=10.0, drop=0.5, replace=0.5, seed=3), special_ids={CLS, SEP},
                  word_starts=STARTS, max_length=64)
    lengths = {len(rows.row(i)[0]) for i in range(len(rows))}
    new_rows = [tuple(new.row(i)[0]) for i in range(len(new))]
    assert sum(r not in originals for r in new_rows) > 0.8 * len(new_rows)
    assert min(len(r) for r in new_rows) < min(lengths) + 1  # drops shorten rows
    assert max(len(r) for r in new_rows) <= 2 * max(lengths)


def test_augmenting_repeats_for_a_seed_and_varies_with_it():
    rows = _rows()
    make = lambda seed: augment(rows, AugmentSettings(factor=2.0, seed=seed), special_ids={CLS, SEP},
                                word_starts=STARTS, max_length=64)
    a, b, c = make(0), make(0), make(1)
    assert np.array_equal(a.ids, b.ids) and np.array_equal(a.offsets, b.offsets)
    assert not np.array_equal(a.ids, c.ids)


def test_pairs_keep_their_segments_and_types():
    ids = [[CLS, 10, 11, 12, SEP, 13, 14, SEP]] * 6
    types = [[0, 0, 0, 0, 0, 1, 1, 1]] * 6
    new = augment(pack(ids, types, np.zeros(6, dtype=np.int64)), AugmentSettings(factor=20.0, drop=0.5, replace=0.5),
                  special_ids={CLS, SEP}, word_starts=STARTS, max_length=64)
    for i in range(len(new)):
        row, t = new.row(i)
        assert list(row).count(SEP) == 2 and row[0] == CLS
        second = list(row).index(SEP)
        assert not t[: second + 1].any() and t[second + 1:].all()


def test_settings_and_rows_are_checked():
    with pytest.raises(ValueError, match="factor must be positive"):
        AugmentSettings(factor=0)
    with pytest.raises(ValueError, match="drop must be in"):
        AugmentSettings(factor=1, drop=1.0)
    per_token = pack([[CLS, 10, SEP]], [[0, 0, 0]], [np.array([-100, 1, -100])], per_token=True)
    with pytest.raises(ValueError, match="per token"):
        augment(per_token, AugmentSettings(factor=1), special_ids={CLS}, word_starts=STARTS, max_length=8)


def test_word_starts_follow_each_tokenizers_mark():
    assert list(word_starts_of({"[CLS]": 0, "play": 1, "##ing": 2})) == [True, True, False]
    assert list(word_starts_of({"<s>": 0, "Ġplay": 1, "ing": 2, "Ġgo": 3})) == [False, True, False, True]
    assert list(word_starts_of({"<s>": 0, "▁play": 1, "ing": 2, "▁go": 3})) == [False, True, False, True]
    assert list(word_starts_of({"a": 0, "b": 2})) == [True, True, True]


def test_concat_puts_rows_after_rows():
    a, b = _rows(0, 3), _rows(1, 2)
    both = concat(a, b)
    assert len(both) == 5 and list(both.labels) == [0, 1, 0, 0, 1]
    assert np.array_equal(both.row(3)[0], b.row(0)[0]) and np.array_equal(both.row(2)[0], a.row(2)[0])
