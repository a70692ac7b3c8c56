"""Vocabulary pruning: keep only the embedding rows of tokens the training data uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from .base import BuildContext, Technique

if TYPE_CHECKING:
    import torch

    from ..model import Classifier


class VocabFields(BaseModel):
    vocab_prune: bool = Field(False, description="keep only the tokens the training data uses")


class VocabularyPruning(Technique):
    name = "vocabulary"
    Fields = VocabFields

    def apply_(self, model: Classifier, ctx: BuildContext) -> None:
        from ..vocab import prune_vocab_, used_tokens

        if ctx.recipe.vocab_prune and model.kept_tokens is None:
            inputs = ctx.inputs
            prune_vocab_(model, used_tokens(inputs.data.train.ids, inputs.special_ids + (inputs.unk_id,)), inputs.unk_id)

    def describe(self, model: Classifier) -> dict[str, Any]:
        pruned = model.kept_tokens is not None
        return {"vocab_full_size": int(model.token_map.numel()) if pruned else None,
                "unk_id": model.unk_id if pruned else None}

    def rebuild_(self, model: Classifier, arch: dict[str, Any], kept_tokens: torch.Tensor | None) -> None:
        if arch.get("vocab_full_size") is None:
            return
        if kept_tokens is None:
            raise ValueError("architecture has a pruned vocabulary but no kept token list was given")
        model.set_vocab(kept_tokens, int(arch["vocab_full_size"]), int(arch["unk_id"]))
