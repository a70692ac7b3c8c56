"""The technique registry: every compression technique, in the order a candidate is built.

Adding a technique: write one module with a `Technique` subclass (see `base.py`) and add one line
to `TECHNIQUES`. Its recipe keys join the Recipe, its search dimensions become available to
search spaces, and its architecture keys are stored and rebuilt, with no other file to change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import BuildContext, Technique
from .deployment import Deployment
from .distillation import Distillation
from .elastic_start import ElasticStart
from .heads_ffn import HeadsAndNeurons
from .layers import LayerSelection
from .lowbit import LowBitTraining
from .lowrank import LowRank
from .quantization import Quantization
from .unstructured import UnstructuredPruning
from .vocabulary import VocabularyPruning

if TYPE_CHECKING:
    import torch

    from ..recipe import Recipe
    from ..model import Classifier

TECHNIQUES: tuple[Technique, ...] = (
    LayerSelection(),       # keep teacher layers
    VocabularyPruning(),    # drop embedding rows the task never uses
    HeadsAndNeurons(),      # remove attention heads and FFN neurons
    LowRank(),              # factor FFN linears by truncated SVD
    UnstructuredPruning(),  # magnitude masks, one shot or gradual
    Quantization(),         # fake-quant k-bit / ternary / binary / bf16 weights
    LowBitTraining(),       # staged schedule and clipped estimator for ternary / binary
    Distillation(),         # how the student is trained afterwards
    Deployment(),           # the runtime it is measured on and shipped for
    ElasticStart(),         # start from the elastic network's sub-network (chosen in build.build_student)
)


def check(recipe: Recipe, n_teacher_layers: int) -> str | None:
    """The first teacher-dependent problem of `recipe`, or None."""
    for t in TECHNIQUES:
        problem = t.check(recipe, n_teacher_layers)
        if problem:
            return problem
    return None


def apply_all_(model: Classifier, ctx: BuildContext) -> None:
    for t in TECHNIQUES:
        t.apply_(model, ctx)


def describe(model: Classifier) -> dict[str, Any]:
    """Every technique's architecture keys."""
    out: dict[str, Any] = {}
    for t in TECHNIQUES:
        out.update(t.describe(model))
    return out


def rebuild_(model: Classifier, arch: dict[str, Any], kept_tokens: torch.Tensor | None) -> None:
    for t in TECHNIQUES:
        t.rebuild_(model, arch, kept_tokens)


__all__ = ["TECHNIQUES", "BuildContext", "Technique", "apply_all_", "check", "describe", "rebuild_"]
