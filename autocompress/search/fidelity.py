"""Multi-fidelity stopping: cost-aware successive halving for multi-objective studies.

Optuna's pruners are single-objective, so the rule is ours. A trial is scored on the validation rows
at absolute training steps `rung_steps * eta**k` (k = 0, 1, ...; below its last step), so that trials
of any length meet at the same rungs. At a rung its peers are the other trials of the study (any
state) that were scored at that step and cost no more: no more parameters in embeddings + encoder,
no wider weights or embeddings in bits, no denser after unstructured pruning. With at least `eta`
peers, a trial whose score is strictly below the top 1/eta of {peers + itself} stops: most models no
larger and no wider already score higher at the same point of training, so it is unlikely to reach
the Pareto front (a heuristic, as in successive halving: a slow starter can be stopped).

Everything here is pure (no study, no model training): `study.py` feeds it the study's trials.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..engine.model import count_parameters
from ..engine.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from ..engine.recipe import Recipe

RUNGS_ATTR = "rungs"  # trial user attribute: {str(step): score}
COST_ATTR = "rung_cost"  # trial user attribute: {name: value}, see `model_cost`
Cost = Mapping[str, float]


class TrialStopped(RuntimeError):
    """Training stopped early because the trial cannot win; the objective records it as pruned."""


class RungStopped(TrialStopped):
    """At a rung, the trial scored below the top 1/eta of the trials that cost no more."""


def check(rung_steps: int, eta: int) -> None:
    """0 for either turns stopping off; otherwise rung_steps >= 1 and eta >= 2."""
    if rung_steps < 0 or eta < 0:
        raise ConfigError(f"rung_steps ({rung_steps}) and eta ({eta}) must be >= 0 (0 turns rungs off)")
    if rung_steps and eta == 1:
        raise ConfigError("eta must be at least 2 (the share of trials kept at each rung is 1/eta), or 0 for off")


def enabled(rung_steps: int, eta: int) -> bool:
    return rung_steps > 0 and eta > 1


def rung_schedule(total_steps: int, rung_steps: int, eta: int) -> list[int]:
    """The steps `rung_steps * eta**k` strictly below `total_steps` (never the last step)."""
    if not enabled(rung_steps, eta):
        return []
    out, step = [], rung_steps
    while step < total_steps:
        out.append(step)
        step *= eta
    return out


def model_cost(model: nn.Module, recipe: Recipe) -> dict[str, float]:
    """What a trial costs, to compare it with its peers: parameters of the embeddings and encoder as
    built (layers, vocabulary, heads, neurons and low-rank factors applied), the bit-widths of weights
    and embeddings, and the share of encoder weights unstructured pruning keeps (its target ratio, or
    for a magnitude threshold, applied at once, the share left nonzero now)."""
    if hasattr(model, "family"):  # a Classifier: its family says where embeddings and layers are
        parts = [model.family.embeddings_module(model.hf), model.encoder_layers]
        params = sum(count_parameters(p) for p in parts)
    else:
        params = count_parameters(model)
    density = 1.0
    if recipe.prune_ratio > 0:
        density = round(1.0 - recipe.prune_ratio, 6)
    elif recipe.prune_threshold is not None:
        from ..engine.prune import sparsity_of

        density = round(1.0 - sparsity_of(model), 2)
    return {"params": int(params), "bits": int(recipe.bits), "embedding_bits": int(recipe.emb_bits),
            "density": density}


def no_costlier(peer: Cost | None, cost: Cost) -> bool:
    """True when `peer` costs no more than `cost` in every respect (ties included); a peer without a
    recorded cost, or with other cost names, is not comparable."""
    if not peer or set(peer) != set(cost):
        return False
    return all(float(peer[k]) <= float(cost[k]) for k in cost)


def peer_scores(trials: Iterable[Any], step: int, cost: Cost, exclude: int | None = None) -> list[float]:
    """Scores at `step` of the trials (FrozenTrial-like: `.number`, `.user_attrs`) that cost no more than
    `cost`, in any state; trial number `exclude` (the asking trial) is left out."""
    key, out = str(step), []
    for t in trials:
        if t.number == exclude:
            continue
        attrs = t.user_attrs
        score = (attrs.get(RUNGS_ATTR) or {}).get(key)
        if score is not None and math.isfinite(float(score)) and no_costlier(attrs.get(COST_ATTR), cost):
            out.append(float(score))
    return out


def cutoff(score: float, peers: Sequence[float], eta: int) -> float | None:
    """The score a trial must reach to stay, when it does not (else None): with at least `eta` peers, the
    ceil(n / eta)-th best of the n = peers + 1 scores; a score equal to it stays."""
    if eta < 2 or len(peers) < eta:
        return None
    ranked = sorted([*peers, score], reverse=True)
    bar = ranked[math.ceil(len(ranked) / eta) - 1]
    return bar if score < bar else None


def _share(eta: int) -> str:
    return {2: "half", 3: "third", 4: "quarter"}.get(eta, f"1/{eta}")


def stop_reason(metric: str, score: float, step: int, peers: Sequence[float], eta: int) -> str | None:
    """Why a trial scoring `score` at `step` stops among `peers` (None: it goes on)."""
    bar = cutoff(score, peers, eta)
    if bar is None:
        return None
    above = sum(p > score for p in peers)
    return (f"validation {metric} {score:.3f} at step {step} is below {above} of {len(peers)} cheaper-or-equal "
            f"trials' (top {_share(eta)} from {bar:.3f})")
