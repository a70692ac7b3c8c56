"""Unstructured weight pruning: magnitude or threshold masks applied as parametrizations.

Masks are registered on the encoder's linear weights with `torch.nn.utils.parametrize`, so
the effective `module.weight` is `original * mask` in every forward pass and the pruned weights
stay zero through training. They are registered before any quantization parametrization (those
compose in registration order, so the quantizer sees the masked weights).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils import parametrize

from .model import Classifier
from .targets import encoder_linears

Scope = Literal["global", "layer"]
Schedule = Literal["oneshot", "gradual"]


def prunable(model: Classifier) -> dict[str, nn.Linear]:
    """The weights unstructured pruning acts on: the encoder's linear layers and the pooler dense
    (see `targets.encoder_linears`), keyed by their `named_modules()` names."""
    return encoder_linears(model)


def _mask_of(module: nn.Module) -> Mask | None:
    """The Mask parametrization on `module.weight`, if one is attached."""
    if not parametrize.is_parametrized(module, "weight"):
        return None
    return next((p for p in module.parametrizations.weight if isinstance(p, Mask)), None)


def _scores(module: nn.Linear) -> torch.Tensor:
    """|effective weight| as float32; weights already masked rank lowest (-1) so they stay pruned."""
    with torch.no_grad():
        s = module.weight.detach().abs().float()
        mask = _mask_of(module)
        if mask is not None:
            s = s.masked_fill(~mask.mask, -1.0)
    return s


def _keep_smallest_out(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool keep-mask over flat `scores` that drops exactly the `k` smallest (ties: lowest index)."""
    n = scores.numel()
    if k <= 0:
        return torch.ones(n, dtype=torch.bool, device=scores.device)
    if k >= n:
        return torch.zeros(n, dtype=torch.bool, device=scores.device)
    thr = scores.kthvalue(k).values
    drop = scores < thr
    ties = (scores == thr).nonzero().flatten()
    drop[ties[: k - int(drop.sum())]] = True
    return ~drop


def _check_ratio(ratio: float) -> None:
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"pruning ratio must be in [0, 1], got {ratio}")


def magnitude_masks(model: Classifier, ratio: float, scope: Scope = "global") -> dict[str, torch.Tensor]:
    """Keep-masks zeroing the `ratio` fraction of smallest-|w| prunable weights.

    global: one ranking over all prunable weights; layer: each module at `ratio` on its own.
    Ranks the current effective weights; the number of zeros is round(ratio * n) exactly.
    """
    _check_ratio(ratio)
    mods = prunable(model)
    scores = {name: _scores(m) for name, m in mods.items()}
    if scope == "layer":
        return {name: _keep_smallest_out(s.flatten(), round(ratio * s.numel())).view_as(s)
                for name, s in scores.items()}
    if scope != "global":
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    flat = torch.cat([s.flatten() for s in scores.values()])
    keep = _keep_smallest_out(flat, round(ratio * flat.numel()))
    out, start = {}, 0
    for name, s in scores.items():
        out[name] = keep[start : start + s.numel()].view_as(s)
        start += s.numel()
    return out


def threshold_masks(model: Classifier, threshold: float) -> dict[str, torch.Tensor]:
    """Keep-masks keeping the prunable weights with |w| >= threshold."""
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    return {name: _scores(m) >= threshold for name, m in prunable(model).items()}


class Mask(nn.Module):
    """Parametrization multiplying a weight by a fixed boolean keep-mask."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask.to(torch.bool).clone())

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask


def attach_masks_(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Apply `masks` (module name -> keep-mask) to the modules' weights.

    Registers a `Mask` parametrization the first time; afterwards updates its buffer in place
    (so optimizers and later parametrizations keep working).
    """
    modules = dict(model.named_modules())
    for name, keep in masks.items():
        module = modules[name]
        existing = _mask_of(module)
        if existing is not None:
            if existing.mask.shape != keep.shape:
                raise ValueError(f"mask for {name} has shape {tuple(keep.shape)}, "
                                 f"expected {tuple(existing.mask.shape)}")
            existing.mask.copy_(keep)
        else:
            parametrize.register_parametrization(module, "weight", Mask(keep.to(module.weight.device)))


def sparsity_of(model: Classifier) -> float:
    """Fraction of exact zeros among the prunable (effective) weights."""
    zeros = total = 0
    with torch.no_grad():
        for m in prunable(model).values():
            w = m.weight
            zeros += int((w == 0).sum())
            total += w.numel()
    return zeros / total if total else 0.0


def cubic_sparsity(progress: float, final_ratio: float) -> float:
    """Zhu & Gupta (2017): s = s_f * (1 - (1 - p)^3) for progress p in [0, 1] (clamped)."""
    p = min(max(progress, 0.0), 1.0)
    return final_ratio * (1.0 - (1.0 - p) ** 3)


class GradualPruner:
    """Training hook applying magnitude (or threshold) pruning; call `start_()` before training.

    oneshot: the final masks are attached at `start_()` and kept fixed.
    gradual: masks start all-ones; after optimizer steps, sparsity follows the cubic schedule
    between `start_frac` and `end_frac` of training, recomputed from the current masked weights
    every `every` steps (previously pruned weights stay pruned), and is exactly `final_ratio`
    from the end of the window on. A `threshold` always means oneshot.
    """

    def __init__(
        self,
        model: Classifier,
        final_ratio: float | None = None,
        scope: Scope = "global",
        schedule: Schedule = "gradual",
        start_frac: float = 0.0,
        end_frac: float = 0.7,
        every: int = 10,
        *,
        threshold: float | None = None,
    ):
        if (final_ratio is None) == (threshold is None):
            raise ValueError("give exactly one of final_ratio and threshold")
        if final_ratio is not None:
            _check_ratio(final_ratio)
        if scope not in ("global", "layer"):
            raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
        if schedule not in ("oneshot", "gradual"):
            raise ValueError(f"schedule must be 'oneshot' or 'gradual', got {schedule!r}")
        if not 0.0 <= start_frac <= end_frac <= 1.0:
            raise ValueError(f"need 0 <= start_frac <= end_frac <= 1, got {start_frac}, {end_frac}")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.model = model
        self.final_ratio = final_ratio
        self.threshold = threshold
        self.scope: Scope = scope
        self.schedule: Schedule = "oneshot" if threshold is not None else schedule
        self.start_frac, self.end_frac, self.every = start_frac, end_frac, every
        self.current = 0.0  # target sparsity of the masks now attached (ratio mode)
        self._started = False
        self._finished = False

    def start_(self) -> None:
        """Attach the initial masks (final ones for oneshot, all-ones for gradual)."""
        if self.threshold is not None:
            attach_masks_(self.model, threshold_masks(self.model, self.threshold))
            self._finished = True
        elif self.schedule == "oneshot":
            self._apply(self.final_ratio)
            self._finished = True
        else:
            self._apply(0.0)
        self._started = True

    def target_at(self, step: int, total: int) -> float:
        """Scheduled sparsity after `step` of `total` optimizer steps (gradual schedule)."""
        t = step / total if total else 1.0
        if self.end_frac == self.start_frac:
            p = 1.0 if t >= self.end_frac else 0.0
        else:
            p = (t - self.start_frac) / (self.end_frac - self.start_frac)
        return cubic_sparsity(p, float(self.final_ratio))

    def __call__(self, step: int, total: int, loss: float, model: nn.Module | None = None) -> None:
        """After optimizer step number `step` (1-based) of `total`: update the masks if due."""
        if not self._started:
            raise RuntimeError("call GradualPruner.start_() before training")
        if self._finished:
            return
        target = self.target_at(step, total)
        at_end = target >= float(self.final_ratio) or step >= total
        if at_end:
            self._apply(float(self.final_ratio))
            self._finished = True
        elif step % self.every == 0 and target > self.current:
            self._apply(target)

    def _apply(self, ratio: float) -> None:
        attach_masks_(self.model, magnitude_masks(self.model, ratio, self.scope))
        self.current = ratio
