"""Vocabulary pruning: the kept rows, the map from original ids, [UNK] for the rest."""

import numpy as np
import pytest
import torch

from autocompress.engine.vocab import prune_vocab_, used_tokens
from conftest import make_tiny


def test_used_tokens_are_sorted_distinct_with_the_special_ids():
    ids = np.array([[5, 9, 9, 0], [7, 5, 0, 0]])
    assert used_tokens(ids, always=(1, 2, 3)).tolist() == [0, 1, 2, 3, 5, 7, 9]


def test_pruned_table_maps_old_ids_to_rows_and_the_rest_to_unk():
    model = make_tiny(seed=4)
    table = model.hf.base_model.embeddings.word_embeddings.weight.detach().clone()
    prune_vocab_(model, torch.tensor([0, 1, 5, 7]), unk_id=1)
    new = model.hf.base_model.embeddings.word_embeddings.weight
    assert new.shape == (4, table.shape[1]) and model.config.vocab_size == 4
    assert torch.equal(new[2], table[5]) and torch.equal(new[3], table[7])
    assert model.remap(torch.tensor([0, 5, 7, 6, 119])).tolist() == [0, 2, 3, 1, 1]


def test_pruning_twice_or_without_unk_is_refused():
    model = make_tiny()
    with pytest.raises(ValueError, match=r"\[UNK\]"):
        prune_vocab_(model, torch.tensor([0, 5]), unk_id=1)
    prune_vocab_(model, torch.tensor([0, 1, 5]), unk_id=1)
    with pytest.raises(ValueError, match="already pruned"):
        prune_vocab_(model, torch.tensor([0, 1]), unk_id=1)
