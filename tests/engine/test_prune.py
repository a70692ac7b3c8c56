"""Unstructured pruning: magnitude/threshold masks, their parametrization, the gradual schedule."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from autocompress.engine.prune import (
    GradualPruner,
    Mask,
    attach_masks_,
    cubic_sparsity,
    magnitude_masks,
    prunable,
    sparsity_of,
    threshold_masks,
)
from conftest import make_tiny, random_batch


def _total(model) -> int:
    return sum(m.weight.numel() for m in prunable(model).values())


def _zeros(masks: dict[str, torch.Tensor]) -> int:
    return sum(int((~m).sum()) for m in masks.values())


def _train_steps(model, opt, batch, n: int) -> float:
    model.train()
    labels = torch.arange(batch["input_ids"].shape[0]) % 2
    loss = torch.zeros(())
    for _ in range(n):
        loss = F.cross_entropy(model(**batch), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return float(loss.detach())


def test_prunable_is_encoder_linears_and_pooler(tiny):
    names = list(prunable(tiny))
    assert len(names) == 3 * 6 + 1
    assert all("embeddings" not in n and "classifier" not in n for n in names)
    assert sum("pooler" in n for n in names) == 1
    modules = dict(tiny.named_modules())
    assert all(modules[n] is m for n, m in prunable(tiny).items())


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.5, 0.9, 0.97])
def test_global_magnitude_reaches_ratio(tiny, ratio):
    n = _total(tiny)
    masks = magnitude_masks(tiny, ratio, "global")
    assert _zeros(masks) == round(ratio * n)
    # one global threshold: every pruned |w| is <= every kept |w|
    mods = prunable(tiny)
    pruned = torch.cat([mods[k].weight.detach().abs()[~m] for k, m in masks.items()])
    kept = torch.cat([mods[k].weight.detach().abs()[m] for k, m in masks.items()])
    if pruned.numel():
        assert pruned.max() <= kept.min()
    attach_masks_(tiny, masks)
    assert abs(sparsity_of(tiny) - ratio) <= 1 / n


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.8])
def test_layer_magnitude_prunes_each_module_at_ratio(tiny, ratio):
    masks = magnitude_masks(tiny, ratio, "layer")
    attach_masks_(tiny, masks)
    for name, m in prunable(tiny).items():
        zeros = int((m.weight == 0).sum())
        assert zeros == round(ratio * m.weight.numel()), name
    assert abs(sparsity_of(tiny) - ratio) < 0.01


def test_magnitude_exact_with_ties():
    model = make_tiny(1)
    with torch.no_grad():
        for m in prunable(model).values():
            m.weight.fill_(0.5)
    n = _total(model)
    for scope in ("global", "layer"):
        masks = magnitude_masks(model, 0.3, scope)
        assert abs(_zeros(masks) - 0.3 * n) <= len(masks)
        again = magnitude_masks(model, 0.3, scope)  # deterministic
        assert all(torch.equal(masks[k], again[k]) for k in masks)


def test_threshold_zeros_exactly_weights_below(tiny):
    t = 0.015
    before = {k: m.weight.detach().clone() for k, m in prunable(tiny).items()}
    attach_masks_(tiny, threshold_masks(tiny, t))
    below = 0
    for k, m in prunable(tiny).items():
        small = before[k].abs() < t
        below += int(small.sum())
        assert torch.all(m.weight[small] == 0)
        assert torch.equal(m.weight[~small], before[k][~small])
    assert below > 0
    assert sparsity_of(tiny) == pytest.approx(below / _total(tiny))


def test_masks_stay_applied_through_training(tiny, batch):
    masks = magnitude_masks(tiny, 0.6, "global")
    attach_masks_(tiny, masks)
    mods = prunable(tiny)
    kept_before = {k: mods[k].weight.detach()[m].clone() for k, m in masks.items()}
    opt = torch.optim.AdamW(tiny.parameters(), lr=1e-2, weight_decay=0.1)
    _train_steps(tiny, opt, batch, 3)
    for k, m in masks.items():
        w = mods[k].weight.detach()
        assert torch.all(w[~m] == 0)
        assert not torch.equal(w[m], kept_before[k])  # the live weights did train
    assert sparsity_of(tiny) == pytest.approx(round(0.6 * _total(tiny)) / _total(tiny))


def test_attach_twice_updates_in_place_and_composes_first(tiny):
    attach_masks_(tiny, magnitude_masks(tiny, 0.3))
    name, module = next(iter(prunable(tiny).items()))
    buf = module.parametrizations.weight[0].mask

    class Double(nn.Module):  # stands in for a quantization parametrization added later
        def forward(self, w):
            return 2 * w

    parametrize.register_parametrization(module, "weight", Double())
    attach_masks_(tiny, magnitude_masks(tiny, 0.6))
    chain = module.parametrizations.weight
    assert [type(p) for p in chain] == [Mask, Double]
    assert chain[0].mask is buf
    assert sum(isinstance(p, Mask) for m in prunable(tiny).values() for p in m.parametrizations.weight) == 19
    assert abs(sparsity_of(tiny) - 0.6) <= 1 / _total(tiny)
    assert torch.equal(module.weight, 2 * module.parametrizations.weight.original * buf)


def test_remasking_ranks_effective_weights(tiny):
    first = magnitude_masks(tiny, 0.5)
    attach_masks_(tiny, first)
    # same ratio on the masked model selects the same weights; a larger one is a superset
    again = magnitude_masks(tiny, 0.5)
    more = magnitude_masks(tiny, 0.7)
    for k in first:
        assert torch.equal(first[k], again[k])
        assert not torch.any(more[k] & ~first[k])


def test_cubic_schedule_values():
    assert cubic_sparsity(0.0, 0.8) == 0.0
    assert cubic_sparsity(1.0, 0.8) == pytest.approx(0.8)
    assert cubic_sparsity(0.5, 0.8) == pytest.approx(0.8 * (1 - 0.125))
    assert cubic_sparsity(2.0, 0.8) == pytest.approx(0.8)
    values = [cubic_sparsity(p / 20, 0.9) for p in range(21)]
    assert values == sorted(values)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_gradual_pruner_is_monotone_and_ends_at_final(scope):
    model = make_tiny(2)
    batch = random_batch(seed=3)
    total, final = 30, 0.8
    pruner = GradualPruner(model, final, scope, "gradual", start_frac=0.1, end_frac=0.6, every=2)
    pruner.start_()
    assert sparsity_of(model) == 0.0
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    n = _total(model)
    history = []
    for step in range(1, total + 1):
        loss = _train_steps(model, opt, batch, 1)
        pruner(step, total, loss)
        history.append(sparsity_of(model))
        if step % 2 == 0 and step < 18:  # at an update step, sparsity is the scheduled value
            assert abs(history[-1] - pruner.target_at(step, total)) < 0.01
    assert history == sorted(history)
    assert history[2] == 0.0  # before the window opens (step 3 = 0.1 of 30)
    assert 0.0 < history[9] < final
    end = int(0.6 * total)  # window ends at step 18: exactly final from there on
    assert all(abs(s - final) <= 0.01 for s in history[end - 1 :])
    assert abs(history[-1] - final) <= len(prunable(model)) / n  # rounding: one weight per module


def test_oneshot_and_threshold_pruners(tiny, batch):
    pruner = GradualPruner(tiny, 0.5, "global", "oneshot")
    pruner.start_()
    s = sparsity_of(tiny)
    assert abs(s - 0.5) <= 1 / _total(tiny)
    opt = torch.optim.SGD(tiny.parameters(), lr=0.1)
    for step in range(1, 4):
        pruner(step, 3, _train_steps(tiny, opt, batch, 1))
    assert sparsity_of(tiny) == s

    model = make_tiny(4)
    below = sum(int((m.weight.abs() < 0.02).sum()) for m in prunable(model).values())
    thr = GradualPruner(model, threshold=0.02, schedule="gradual")  # threshold means oneshot
    thr.start_()
    assert sparsity_of(model) == pytest.approx(below / _total(model))


def test_invalid_arguments(tiny):
    with pytest.raises(ValueError):
        magnitude_masks(tiny, 1.5)
    with pytest.raises(ValueError):
        magnitude_masks(tiny, 0.5, "neuron")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        GradualPruner(tiny, 0.5, threshold=0.1)
    with pytest.raises(ValueError):
        GradualPruner(tiny, 0.5, start_frac=0.8, end_frac=0.2)
    with pytest.raises(RuntimeError):
        GradualPruner(tiny, 0.5)(1, 10, 0.0)
