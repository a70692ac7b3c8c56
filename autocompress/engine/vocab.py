"""Vocabulary pruning: keep only the embedding rows of tokens the task's training data uses.

MiniLM's 30,522 x 384 word-embedding table is about half its bytes; a task like SST-2 uses
a fraction of those tokens. Dropped tokens map to [UNK] at run time.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from .model import Classifier


def used_tokens(token_ids: np.ndarray, always: Iterable[int]) -> torch.Tensor:
    """Sorted distinct ids in `token_ids` plus the `always` ids (special tokens)."""
    ids = np.union1d(np.unique(token_ids), np.fromiter(always, dtype=np.int64))
    return torch.from_numpy(ids.astype(np.int64))


def prune_vocab_(model: Classifier, kept: torch.Tensor, unk_id: int) -> None:
    """Slice the word-embedding table to rows `kept` (sorted original ids, [UNK] included)."""
    if model.kept_tokens is not None:
        raise ValueError("the vocabulary is already pruned")
    kept = torch.as_tensor(kept, dtype=torch.int64)
    if unk_id not in set(kept.tolist()):
        raise ValueError("kept tokens must include the [UNK] id")
    emb = model.family.word_table(model.hf)
    full = emb.num_embeddings
    new = nn.Embedding(len(kept), emb.embedding_dim, padding_idx=None)
    new.weight.data.copy_(emb.weight.data[kept])
    model.family.set_word_table(model.hf, new)
    model.set_vocab(kept, full, unk_id)
