"""The module every technique works on: an encoder of a supported family with its task's head.

A thin wrapper around a transformers model (`...ForSequenceClassification`, `...ForTokenClassification`,
or a bare encoder for embeddings) with a plain `forward(input_ids, attention_mask, token_type_ids) ->
outputs` (ONNX-friendly) and an optional vocabulary map for students whose embedding table was pruned.
Where the encoder keeps its parts is its family's business (`families/`); what the outputs are is its
task's (`tasks/`).
"""

from __future__ import annotations

import torch
from torch import nn

from .families import Family, family_of
from .tasks import Task, task_of


class Classifier(nn.Module):
    def __init__(self, hf: nn.Module):
        super().__init__()
        family_of(hf.config).adapt_(hf)
        task_of(hf).adapt_(hf)
        self.hf = hf
        self.register_buffer("token_map", torch.zeros(0, dtype=torch.int64), persistent=False)
        self.register_buffer("kept", torch.zeros(0, dtype=torch.int64), persistent=False)
        self.unk_id: int | None = None

    @property
    def config(self):
        return self.hf.config

    @property
    def family(self) -> Family:
        return family_of(self.hf.config)

    @property
    def task(self) -> Task:
        return task_of(self.hf)

    @property
    def encoder_layers(self) -> nn.ModuleList:
        return self.family.encoder_layers(self.hf)

    def inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               token_type_ids: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The keyword inputs of the wrapped model: ids remapped to a pruned table, what the family takes."""
        return self.family.forward_inputs(self.hf, self.remap(input_ids), attention_mask, token_type_ids)

    @property
    def kept_tokens(self) -> torch.Tensor | None:
        """Original token ids kept by vocabulary pruning, sorted (None: full vocabulary)."""
        return self.kept if self.kept.numel() else None

    def set_vocab(self, kept_tokens: torch.Tensor, full_size: int, unk_id: int) -> None:
        """Map original token ids to rows of a pruned embedding table; dropped ids go to [UNK].

        `kept_tokens` must be sorted and include `unk_id`.
        """
        kept = torch.as_tensor(kept_tokens, dtype=torch.int64)
        m = torch.full((full_size,), -1, dtype=torch.int64)
        m[kept] = torch.arange(len(kept))
        m[m < 0] = m[unk_id]
        self.token_map = m
        self.kept = kept
        self.unk_id = unk_id

    def remap(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.token_map.numel() == 0:
            return input_ids
        return self.token_map[input_ids]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.task.output(self.hf(**self.inputs(input_ids, attention_mask, token_type_ids)), attention_mask)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 token_type_ids: torch.Tensor | None = None, attentions: bool = False):
        """(outputs, hidden states, attention maps or None) for feature distillation.

        Attention maps need eager attention (`distill.eager_attention`).
        """
        out = self.hf(**self.inputs(input_ids, attention_mask, token_type_ids), output_hidden_states=True,
                      output_attentions=attentions)
        return self.task.output(out, attention_mask), out.hidden_states, (out.attentions if attentions else None)


def record_every_layer_(hf: nn.Module) -> None:
    """Make `hf` record every encoder layer's hidden states and attention maps from now on. transformers 5 records
    them with hooks it installs, once, on the layers present at the first call that asks for them: a sub-network
    running first (`elastic.active_subnet`) would leave the other layers unrecorded for good. A no-op where
    transformers records them otherwise or has its hooks in place already."""
    try:
        from transformers.utils.output_capturing import maybe_install_capturing_hooks

        maybe_install_capturing_hooks(hf.base_model)
    except (ImportError, AttributeError, TypeError):  # another transformers version: nothing to install
        pass


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
