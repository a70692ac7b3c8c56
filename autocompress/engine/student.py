"""Students built from teacher layers: a chosen subset of the teacher's encoder layers (weights copied)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

from torch import nn

from .model import Classifier


def evenly_spaced_layers(n_teacher: int, depth: int, keep_last: bool = False) -> tuple[int, ...]:
    """`depth` teacher layer indices spread over the stack, first layer included (6, 3 -> 0, 2, 4); with
    `keep_last`, the teacher's last layer too (6, 3 -> 0, 2, 5; 6, 5 -> 0, 1, 2, 3, 5)."""
    if not 1 <= depth <= n_teacher:
        raise ValueError(f"depth must be between 1 and {n_teacher}, got {depth}")
    if keep_last and depth > 1:
        return tuple(int(i * (n_teacher - 1) / (depth - 1)) for i in range(depth))
    return tuple(int(i * n_teacher / depth) for i in range(depth))


def keep_layers_(model: Classifier, layers: Sequence[int] | None) -> None:
    """Keep only encoder layers `layers` of `model` (all when None), in place."""
    if layers is None:
        return
    n = len(model.encoder_layers)
    bad = [i for i in layers if i >= n]
    if bad:
        raise ValueError(f"recipe layers {list(bad)} do not exist: the teacher has layers 0..{n - 1}")
    family = model.family
    kept = nn.ModuleList([model.encoder_layers[i] for i in layers])
    for new_idx, layer in enumerate(kept):
        family.set_layer_index(layer, new_idx)
    family.set_encoder_layers(model.hf, kept)


def select_layers(teacher: Classifier, layers: Sequence[int] | None) -> Classifier:
    """A copy of `teacher` that keeps only encoder layers `layers` (all when None)."""
    student = copy.deepcopy(teacher)
    keep_layers_(student, layers)
    return student
