"""Structured pruning: importance of heads and FFN neurons, and their physical removal."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autocompress.engine.model import count_parameters
from autocompress.engine.prune import attach_masks_, magnitude_masks
from autocompress.engine.structured import (
    layer_shapes,
    magnitude_importance,
    prune_heads_,
    prune_neurons_,
    prune_structured_,
    taylor_importance,
)
from conftest import make_tiny, random_batch

HIDDEN, HEAD = 32, 8
DEAD_HEAD = (1, 2)  # (layer, head)
DEAD_NEURONS = (0, [5, 17, 40])  # (layer, neurons)


def _loss(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.cross_entropy(logits, batch["labels"])


def _batches(n: int = 2) -> list[dict[str, torch.Tensor]]:
    out = []
    for s in range(n):
        b = random_batch(seed=s)
        b["labels"] = torch.arange(b["input_ids"].shape[0]) % 2
        out.append(b)
    return out


def _with_dead_units(seed: int = 0, **overrides):
    """A tiny model where one head and some FFN neurons contribute nothing to the output."""
    model = make_tiny(seed, **overrides)
    layer, head = DEAD_HEAD
    li, neurons = DEAD_NEURONS
    with torch.no_grad():
        model.encoder_layers[layer].attention.output.dense.weight[:, head * HEAD : (head + 1) * HEAD] = 0
        model.encoder_layers[li].output.dense.weight[:, neurons] = 0
    return model


def _train_step(model, batch) -> None:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = _loss(model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]), batch)
    loss.backward()
    for p in model.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
    opt.step()
    model.eval()


def test_layer_shapes(tiny):
    assert layer_shapes(tiny) == [(4, 64)] * 3


@pytest.mark.parametrize("kind", ["taylor", "magnitude"])
def test_importance_zero_for_dead_units_only(kind):
    model = _with_dead_units()
    if kind == "taylor":
        heads, neurons = taylor_importance(model, _batches(), _loss)
    else:
        heads, neurons = magnitude_importance(model)
    assert [h.shape[0] for h in heads] == [4] * 3 and [f.shape[0] for f in neurons] == [64] * 3
    layer, head = DEAD_HEAD
    li, dead = DEAD_NEURONS
    assert heads[layer][head] == 0
    assert neurons[li][dead].abs().max() == 0
    live_heads = torch.cat([h for i, h in enumerate(heads) if i != layer] + [heads[layer][[0, 1, 3]]])
    live = torch.ones(64, dtype=torch.bool)
    live[dead] = False
    live_neurons = torch.cat([f for i, f in enumerate(neurons) if i != li] + [neurons[li][live]])
    assert (live_heads > 0).all()
    # a few GELU neurons may be (almost) never active on 2 batches; nearly all must score
    assert (live_neurons > 0).float().mean() > 0.95


def test_taylor_importance_leaves_the_model_unchanged(tiny):
    tiny.train()
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    taylor_importance(tiny, _batches(1), _loss)
    assert tiny.training and all(m.training for m in tiny.modules())
    assert all(p.grad is None for p in tiny.parameters())
    assert all(torch.equal(before[k], v) for k, v in tiny.state_dict().items())
    hooks = [m._forward_hooks for m in tiny.modules()] + [m._forward_pre_hooks for m in tiny.modules()]
    assert not any(hooks)


def test_taylor_importance_with_frozen_parameters():
    model = make_tiny(3).requires_grad_(False)
    heads, neurons = taylor_importance(model, _batches(1), _loss)
    assert all((h > 0).all() for h in heads)
    assert all(not p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_removing_dead_units_keeps_outputs_and_drops_exact_parameter_count(attn):
    model = _with_dead_units(attn_implementation=attn)
    inputs = _batches(1)[0]
    args = (inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"])
    with torch.no_grad():
        ref = model(*args)
    n_before = count_parameters(model)
    importance = taylor_importance(model, _batches(), _loss)
    # per-layer targets: exactly the dead units are the least important, so they go
    prune_structured_(model, heads=[4, 3, 4], neurons=[61, 64, 64], importance=importance)
    assert layer_shapes(model) == [(4, 61), (3, 64), (4, 64)]
    removed = 1 * (3 * (HIDDEN * HEAD + HEAD) + HIDDEN * HEAD) + 3 * (HIDDEN + 1 + HIDDEN)
    assert n_before - count_parameters(model) == removed
    with torch.no_grad():
        out = model(*args)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_parameter_count_with_uneven_pruning(tiny):
    n_before = count_parameters(tiny)
    prune_heads_(tiny, [[0], [1, 3], range(4)])
    prune_neurons_(tiny, [range(10), range(64), range(0, 64, 2)])
    assert layer_shapes(tiny) == [(1, 10), (2, 64), (4, 32)]
    heads_removed, neurons_removed = 3 + 2 + 0, 54 + 0 + 32
    expected = heads_removed * (3 * (HIDDEN * HEAD + HEAD) + HIDDEN * HEAD) + neurons_removed * (2 * HIDDEN + 1)
    assert n_before - count_parameters(tiny) == expected
    for layer, (h, _) in zip(tiny.encoder_layers, layer_shapes(tiny)):
        assert layer.attention.self.all_head_size == h * HEAD
        assert layer.attention.self.query.weight.shape == (h * HEAD, HIDDEN)


def test_pruned_model_trains_and_scores_again():
    model = make_tiny(5, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    batch = _batches(1)[0]
    prune_structured_(model, heads=[2, 3, 1], neurons=[16, 48, 8], importance=magnitude_importance(model))
    assert layer_shapes(model) == [(2, 16), (3, 48), (1, 8)]
    _train_step(model, batch)
    with torch.no_grad():
        assert torch.isfinite(model(batch["input_ids"], batch["attention_mask"])).all()
    # importance on an unevenly pruned model, then a second round of pruning
    heads, neurons = taylor_importance(model, [batch], _loss)
    assert [h.numel() for h in heads] == [2, 3, 1] and [f.numel() for f in neurons] == [16, 48, 8]
    prune_structured_(model, heads=2, neurons=12, importance=(heads, neurons))
    assert layer_shapes(model) == [(2, 12), (2, 12), (1, 8)]  # layers at/below target untouched
    _train_step(model, batch)


def test_kept_units_are_the_top_ones_in_original_order(tiny):
    sa = tiny.encoder_layers[0].attention.self
    q = sa.query.weight.detach().clone()
    inter = tiny.encoder_layers[0].intermediate.dense.weight.detach().clone()
    head_scores = [torch.tensor([0.1, 5.0, 0.2, 3.0])] + [torch.ones(4)] * 2
    ffn_scores = [torch.arange(64.0).flip(0)] + [torch.ones(64)] * 2
    prune_structured_(tiny, heads=2, neurons=3, importance=(head_scores, ffn_scores))
    expected_q = torch.cat([q[HEAD : 2 * HEAD], q[3 * HEAD : 4 * HEAD]])
    assert torch.equal(sa.query.weight, expected_q)
    assert torch.equal(tiny.encoder_layers[0].intermediate.dense.weight, inter[:3])
    assert layer_shapes(tiny) == [(2, 3)] * 3  # equal scores: ties kept lowest-index first


def test_dtype_is_preserved():
    model = make_tiny(6).double()
    prune_heads_(model, [[0, 1]] * 3)
    prune_neurons_(model, [range(5)] * 3)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    b = _batches(1)[0]
    assert model(b["input_ids"], b["attention_mask"]).dtype == torch.float64


def test_invalid_keep_lists(tiny):
    with pytest.raises(ValueError):
        prune_heads_(tiny, [[], range(4), range(4)])
    with pytest.raises(ValueError):
        prune_heads_(tiny, [[0, 4], range(4), range(4)])
    with pytest.raises(ValueError):
        prune_neurons_(tiny, [[1, 1], range(64), range(64)])
    with pytest.raises(ValueError):
        prune_neurons_(tiny, [range(64)] * 2)
    with pytest.raises(ValueError):
        prune_heads_(tiny, [[0], [0], []])  # validated before any layer changes
    with pytest.raises(ValueError):
        prune_structured_(tiny, heads=0, neurons=8)
    with pytest.raises(ValueError):
        prune_structured_(tiny, heads=2, neurons=8, importance=([torch.ones(3)] * 3, [torch.ones(64)] * 3))
    assert layer_shapes(tiny) == [(4, 64)] * 3


def test_refuses_parametrized_modules(tiny):
    attach_masks_(tiny, magnitude_masks(tiny, 0.5))
    with pytest.raises(ValueError, match="parametrized"):
        prune_heads_(tiny, [[0, 1]] * 3)
