"""The elastic student: ranked units, sub-networks on shared weights, their copies, sandwich training."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from conftest import make_tiny, random_batch, separable_batches
from torch.nn.utils import parametrize

from autocompress.engine.distill import TrainingDiverged, eager_attention, kd_loss
from autocompress.engine.elastic import (
    ElasticSettings,
    SubnetShape,
    active_subnet,
    extract,
    layer_map,
    rank_units_,
    sandwich_shapes,
    sandwich_widths,
    stage_settings,
    table_widths,
    subnet_counts,
    train_elastic_,
)
from autocompress.engine.quantize import (
    attach_fake_quant_,
    detach_fake_quant_,
    fake_quants,
)
from autocompress.engine.structured import (
    layer_shapes,
    magnitude_importance,
    prune_structured_,
)

HEAD = 8  # tiny models: hidden 32, 4 heads
TEACHER = torch.tensor([[2.0, -2.0], [-2.0, 2.0]] * 8)  # teacher logits of the 16 separable rows


def _logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])


def _random_importance(model, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shapes = layer_shapes(model)
    return [torch.rand(h, generator=g) for h, _ in shapes], [torch.rand(f, generator=g) for _, f in shapes]


def _settings(**overrides) -> ElasticSettings:
    kw = {"steps": 30, "lr": 5e-3, "depths": (1, 2, 3), "heads_fracs": (0.25, 0.5, 1.0),
          "ffn_fracs": (0.25, 0.5, 1.0)}
    kw.update(overrides)
    return ElasticSettings(**kw)


# ---- ranking ---------------------------------------------------------------------------------


@pytest.mark.parametrize("importance", ["random", "magnitude"])
def test_ranking_preserves_the_function(importance):
    model = make_tiny(seed=3)
    batch = random_batch()  # with padding
    before = _logits(model, batch)
    scores = _random_importance(model) if importance == "random" else magnitude_importance(model)
    rank_units_(model, scores)
    torch.testing.assert_close(_logits(model, batch), before, atol=1e-5, rtol=0)


def test_ranking_moves_the_right_rows_and_columns():
    model = make_tiny(seed=4)
    layer = model.encoder_layers[1]
    sa = layer.attention.self
    q, q_bias, v = sa.query.weight.clone(), sa.query.bias.clone(), sa.value.weight.clone()
    attn_out = layer.attention.output.dense.weight.clone()
    inter, inter_bias = layer.intermediate.dense.weight.clone(), layer.intermediate.dense.bias.clone()
    ffn_out = layer.output.dense.weight.clone()
    heads, neurons = _random_importance(model)
    heads[1] = torch.tensor([0.1, 0.4, 0.3, 0.2])  # descending: heads 1, 2, 3, 0
    neurons[1] = torch.arange(64.0)  # descending: neurons 63, 62, ..., 0
    rank_units_(model, (heads, neurons))
    for new, old in enumerate([1, 2, 3, 0]):
        new_rows, old_rows = slice(new * HEAD, (new + 1) * HEAD), slice(old * HEAD, (old + 1) * HEAD)
        assert torch.equal(sa.query.weight[new_rows], q[old_rows])
        assert torch.equal(sa.query.bias[new_rows], q_bias[old_rows])
        assert torch.equal(sa.value.weight[new_rows], v[old_rows])
        assert torch.equal(layer.attention.output.dense.weight[:, new_rows], attn_out[:, old_rows])
    assert torch.equal(layer.intermediate.dense.weight, inter.flip(0))
    assert torch.equal(layer.intermediate.dense.bias, inter_bias.flip(0))
    assert torch.equal(layer.output.dense.weight, ffn_out.flip(1))


def test_after_ranking_magnitude_importance_is_descending():
    model = make_tiny(seed=5)
    rank_units_(model, magnitude_importance(model))
    for scores in (s for group in magnitude_importance(model) for s in group):
        assert torch.all(scores[:-1] >= scores[1:])


def test_ranking_rejects_mismatched_importance():
    model = make_tiny()
    heads, neurons = _random_importance(model)
    heads[0] = torch.rand(3)
    with pytest.raises(ValueError, match="layer 0: importance shapes"):
        rank_units_(model, (heads, neurons))
    with pytest.raises(ValueError, match="every encoder layer"):
        rank_units_(model, (heads[:2], neurons[:2]))


# ---- shapes, active sub-networks and their copies ---------------------------------------------


def test_subnet_counts_round_like_the_heads_ffn_technique():
    model = make_tiny(num_hidden_layers=4)
    counts = subnet_counts(model, SubnetShape(2, 0.3, 0.1))
    assert (counts.layers, counts.heads, counts.neurons) == ((0, 2), 1, 6)  # round(1.2), round(6.4)
    counts = subnet_counts(model, SubnetShape(4, 0.01, 1.0))
    assert (counts.layers, counts.heads, counts.neurons) == ((0, 1, 2, 3), 1, 64)  # at least one head
    for bad in (SubnetShape(2, 0.0, 1.0), SubnetShape(2, 1.0, 1.5)):
        with pytest.raises(ValueError, match="must be in"):
            subnet_counts(model, bad)
    with pytest.raises(ValueError, match="depth must be between"):
        subnet_counts(model, SubnetShape(5))


SHAPES = [SubnetShape(4, 1.0, 1.0), SubnetShape(2, 1.0, 1.0), SubnetShape(4, 0.5, 1.0), SubnetShape(4, 1.0, 0.25),
          SubnetShape(3, 0.5, 0.25), SubnetShape(1, 0.25, 0.5)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_active_subnet_computes_what_extract_copies(shape):
    model = make_tiny(seed=6, num_hidden_layers=4)
    rank_units_(model, _random_importance(model))
    batch = random_batch()
    full = _logits(model, batch)
    with active_subnet(model, shape):
        assert len(model.encoder_layers) == shape.depth
        active = _logits(model, batch)
    sub = extract(model, shape)
    counts = subnet_counts(model, shape)
    torch.testing.assert_close(_logits(sub, batch), active, atol=1e-5, rtol=0)
    assert layer_shapes(sub) == [(counts.heads, counts.neurons)] * shape.depth
    assert sub.config.num_hidden_layers == shape.depth
    assert layer_shapes(model) == [(4, 64)] * 4  # the elastic model is untouched
    torch.testing.assert_close(_logits(model, batch), full, atol=0, rtol=0)
    if shape == SubnetShape(4, 1.0, 1.0):
        torch.testing.assert_close(active, full, atol=0, rtol=0)
    else:
        assert not torch.allclose(active, full, atol=1e-4)


def test_top_units_after_ranking_are_the_structured_pruning():
    """After ranking, the first k heads / m neurons are the k / m most important ones."""
    model = make_tiny(seed=7)
    importance = _random_importance(model, seed=1)
    pruned = copy.deepcopy(model)
    prune_structured_(pruned, 2, 16, importance)
    rank_units_(model, importance)
    batch = random_batch()
    torch.testing.assert_close(_logits(extract(model, SubnetShape(3, 0.5, 0.25)), batch), _logits(pruned, batch),
                               atol=1e-5, rtol=0)


def test_sub_networks_are_nested():
    model = make_tiny(seed=8)
    small, big = extract(model, SubnetShape(3, 0.5, 0.25)), extract(model, SubnetShape(3, 1.0, 1.0))
    for s, b in zip(small.encoder_layers, big.encoder_layers):
        for name in ("query", "key", "value"):
            s_lin, b_lin = getattr(s.attention.self, name), getattr(b.attention.self, name)
            assert torch.equal(s_lin.weight, b_lin.weight[: 2 * HEAD]) and torch.equal(s_lin.bias, b_lin.bias[: 2 * HEAD])
        assert torch.equal(s.attention.output.dense.weight, b.attention.output.dense.weight[:, : 2 * HEAD])
        assert torch.equal(s.intermediate.dense.weight, b.intermediate.dense.weight[:16])
        assert torch.equal(s.intermediate.dense.bias, b.intermediate.dense.bias[:16])
        assert torch.equal(s.output.dense.weight, b.output.dense.weight[:, :16])


def _assert_restored(model, layers, full, batch):
    assert model.encoder_layers is layers and len(model.encoder_layers) == 4
    assert model.config.num_hidden_layers == 4
    assert [layer.attention.self.layer_idx for layer in model.encoder_layers] == [0, 1, 2, 3]
    assert not any(m._forward_pre_hooks for m in model.modules())
    torch.testing.assert_close(_logits(model, batch), full, atol=0, rtol=0)


def test_active_subnet_restores_the_model_also_after_an_exception():
    model = make_tiny(seed=9, num_hidden_layers=4)
    layers, batch = model.encoder_layers, random_batch()
    full = _logits(model, batch)
    shape = SubnetShape(2, 0.5, 0.25)
    with active_subnet(model, shape):
        assert len(model.encoder_layers) == 2 and model.config.num_hidden_layers == 2
    _assert_restored(model, layers, full, batch)
    with pytest.raises(KeyError, match="boom"), active_subnet(model, shape):
        _logits(model, batch)
        raise KeyError("boom")
    _assert_restored(model, layers, full, batch)
    with active_subnet(model, shape):
        with pytest.raises(RuntimeError, match="already active"), active_subnet(model, SubnetShape(1)):
            pass
        with pytest.raises(RuntimeError, match="cannot extract"):
            extract(model, shape)
    _assert_restored(model, layers, full, batch)


# ---- sandwich training -----------------------------------------------------------------------


def _kd(model, shape) -> float:
    batch = next(separable_batches())
    with active_subnet(model, shape):
        logits = _logits(model, batch)
    return float(kd_loss(logits, TEACHER[batch["index"]], batch["labels"], 2.0, 1.0))


def test_sandwich_shapes_are_largest_smallest_then_drawn_values():
    settings = _settings(random_subnets=3)
    shapes = sandwich_shapes(settings, torch.Generator().manual_seed(0))
    assert shapes[:2] == [SubnetShape(3, 1.0, 1.0), SubnetShape(1, 0.25, 0.25)] and len(shapes) == 5
    for s in shapes[2:]:
        assert s.depth in settings.depths and s.heads_keep in settings.heads_fracs and s.ffn_keep in settings.ffn_fracs
    assert shapes == sandwich_shapes(settings, torch.Generator().manual_seed(0))


def test_elastic_training_lowers_the_loss_of_the_smallest_and_largest_subnets():
    model = make_tiny(seed=1)
    settings = _settings()
    before = {s: _kd(model, s) for s in (settings.largest, settings.smallest)}
    calls = []
    rng = torch.random.get_rng_state()
    losses = train_elastic_(model, separable_batches(), settings, teacher_logits=TEACHER,
                            hooks=[lambda step, total, loss, m: calls.append((step, total, loss, m is model))])
    assert torch.equal(torch.random.get_rng_state(), rng)  # the global RNG is left alone
    assert len(losses) == 30 and all(math.isfinite(v) for v in losses)
    assert calls == [(i + 1, 30, v, True) for i, v in enumerate(losses)]
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])
    for shape, loss in before.items():
        assert _kd(model, shape) < 0.5 * loss, shape
    assert not model.training and len(model.encoder_layers) == 3
    assert not any(m._forward_pre_hooks for m in model.modules())


def test_elastic_training_is_repeatable_for_a_seed():
    runs = []
    for seed in (0, 0, 1):
        model = make_tiny(seed=1)
        runs.append((train_elastic_(model, separable_batches(), _settings(steps=4, seed=seed), teacher_logits=TEACHER),
                     model.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(v, runs[1][1][k]) for k, v in runs[0][1].items())
    assert runs[0][0] != runs[2][0]  # other random sub-networks
    assert train_elastic_(make_tiny(), separable_batches(), _settings(steps=0), teacher_logits=TEACHER) == []


def test_elastic_training_stops_on_a_non_finite_loss():
    model = make_tiny(seed=1)
    with pytest.raises(TrainingDiverged, match="step 0"):
        train_elastic_(model, separable_batches(), _settings(steps=3), teacher_logits=torch.full((16, 2), math.nan))
    assert not model.training and len(model.encoder_layers) == 3
    assert not any(m._forward_pre_hooks for m in model.modules())


def test_settings_are_checked():
    with pytest.raises(ValueError, match="at least one value"):
        _settings(depths=())
    with pytest.raises(ValueError, match="depth must be between"):
        train_elastic_(make_tiny(), separable_batches(), _settings(depths=(2, 5)), teacher_logits=TEACHER)


# ---- quantization-aware elastic training -----------------------------------------------------------


def test_sandwich_widths_are_float_then_narrowest_then_drawn():
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert sandwich_widths(_settings(), 4, g) == [32, 32, 32, 32]
    assert torch.equal(g.get_state(), state)  # float-only training draws nothing more
    widths = sandwich_widths(_settings(bits=(8, 4)), 6, g)
    assert widths[:2] == [32, 4] and set(widths[2:]) <= {32, 8, 4}
    assert widths == sandwich_widths(_settings(bits=(8, 4)), 6, torch.Generator().manual_seed(0).set_state(state))
    with pytest.raises(ValueError, match="bits and embedding_bits must be among"):
        _settings(bits=(3,))
    with pytest.raises(ValueError, match="bits and embedding_bits must be among"):
        _settings(bits=(4,), embedding_bits=(3,))
    with pytest.raises(ValueError, match="embedding_bits needs bits"):
        _settings(embedding_bits=(2,))


def test_table_widths_follow_the_weights_unless_narrower_tables_are_asked_for():
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert table_widths(_settings(bits=(8, 1)), [32, 1, 8, 2], g) == [32, 4, 8, 4]  # embedding_width of each
    assert torch.equal(g.get_state(), state)  # nothing drawn: networks trained before the setting draw the same
    settings = _settings(bits=(8, 4), embedding_bits=(2,))
    drawn = [table_widths(settings, [32, 4, 8, 4, 32], g) for _ in range(40)]
    assert all(d[0] == 32 and d[1] == 2 and d[4] == 32 for d in drawn)  # float stays float, the smallest narrowest
    assert {d[2] for d in drawn} == {8, 2} and {d[3] for d in drawn} == {4, 2}  # the weights' width or narrower
    again = torch.Generator().manual_seed(0)
    assert drawn == [table_widths(settings, [32, 4, 8, 4, 32], again) for _ in range(40)]  # seeded


def _kd_at(model, shape, bits: int) -> float:
    q = copy.deepcopy(model)
    attach_fake_quant_(q, bits, bits)
    return _kd(q, shape)


def test_quantization_aware_training_sets_each_shapes_width_and_leaves_plain_weights():
    model = make_tiny(seed=1)
    keys = sorted(model.state_dict())
    settings = _settings(bits=(4,), random_subnets=2)
    before = _kd_at(model, settings.smallest, 4)
    seen: list[int] = []
    handle = model.register_forward_pre_hook(lambda m, _args: seen.append(fake_quants(m)[0][2].bits))
    losses = train_elastic_(model, separable_batches(), settings, teacher_logits=TEACHER)
    handle.remove()
    assert len(seen) == 4 * 30 and seen[0::4] == [32] * 30 and seen[1::4] == [4] * 30  # largest float, smallest 4
    assert set(seen[2::4] + seen[3::4]) == {32, 4}
    assert all(math.isfinite(v) for v in losses) and sum(losses[-5:]) < 0.5 * sum(losses[:5])
    assert not any(parametrize.is_parametrized(m) for m in model.modules())  # the quantizers are gone
    assert sorted(model.state_dict()) == keys  # plain weights under their own names, ready to cut and store
    assert _kd_at(model, settings.smallest, 4) < 0.5 * before  # the smallest learned at 4 bits


def test_quantization_aware_training_keeps_embeddings_at_4_bits_or_more():
    model = make_tiny(seed=1)
    seen: list[set[tuple[bool, int]]] = []

    def record(m, _args):
        seen.append({(isinstance(module, torch.nn.Embedding), fq.bits) for module, _, fq in fake_quants(m)})

    handle = model.register_forward_pre_hook(record)
    train_elastic_(model, separable_batches(), _settings(steps=2, bits=(8, 1)), teacher_logits=TEACHER)
    handle.remove()
    assert seen[1] == {(True, 4), (False, 1)}  # the smallest: binary weights, 4-bit tables
    assert seen[0] == {(True, 32), (False, 32)}  # the largest: float
    assert all(s in ({(True, 32), (False, 32)}, {(True, 8), (False, 8)}, {(True, 4), (False, 1)}) for s in seen)


def test_quantization_aware_training_with_narrower_tables_trains_them_at_that_width():
    model = make_tiny(seed=1)
    keys = sorted(model.state_dict())
    seen: list[set[tuple[bool, int]]] = []

    def record(m, _args):
        seen.append({(isinstance(module, torch.nn.Embedding), fq.bits) for module, _, fq in fake_quants(m)})

    settings = _settings(steps=30, bits=(4,), embedding_bits=(2,))
    smallest = settings.smallest
    q = copy.deepcopy(model)
    attach_fake_quant_(q, 4, 2)
    before = _kd(q, smallest)
    handle = model.register_forward_pre_hook(record)
    losses = train_elastic_(model, separable_batches(), settings, teacher_logits=TEACHER)
    handle.remove()
    assert all(s == {(True, 2), (False, 4)} for s in seen[1::4])  # the smallest: 4-bit weights, ternary tables
    assert {(True, 4), (False, 4)} in seen and {(True, 2), (False, 4)} in seen[2::4] + seen[3::4]  # both drawn
    assert all(math.isfinite(v) for v in losses) and sorted(model.state_dict()) == keys
    q = copy.deepcopy(model)
    attach_fake_quant_(q, 4, 2)
    assert _kd(q, smallest) < 0.5 * before  # it learned with ternary tables


def test_quantization_aware_training_removes_its_quantizers_after_an_error():
    model = make_tiny(seed=1)
    with pytest.raises(TrainingDiverged):
        train_elastic_(model, separable_batches(), _settings(steps=2, bits=(8,)),
                       teacher_logits=torch.full((16, 2), math.nan))
    assert not any(parametrize.is_parametrized(m) for m in model.modules())


def test_detaching_refuses_a_quantizer_after_another_parametrization():
    model = make_tiny()
    layer = model.encoder_layers[0].output.dense
    parametrize.register_parametrization(layer, "weight", torch.nn.Identity())
    attach_fake_quant_(model, 4, 8)
    with pytest.raises(ValueError, match="other parametrizations"):
        detach_fake_quant_(model)


# ---- layer-wise distillation and progressive shrinking ----------------------------------------------


def test_layer_map_spreads_layers_and_ends_on_the_last():
    assert layer_map(6, 6) == (0, 1, 2, 3, 4, 5)
    assert layer_map(3, 6) == (1, 3, 5)
    assert layer_map(4, 6) == (1, 2, 4, 5)
    assert layer_map(1, 3) == (2,)
    with pytest.raises(ValueError, match="depth must be between"):
        layer_map(7, 6)


def test_progressive_stages_grow_from_the_largest_to_every_shape():
    settings = _settings(steps=100, progressive=True)
    first, second, last = (stage_settings(settings, step) for step in (0, 10, 40))
    assert (first.depths, first.heads_fracs, first.ffn_fracs) == ((3,), (1.0,), (1.0,))
    assert (second.depths, second.heads_fracs, second.ffn_fracs) == ((1, 2, 3), (1.0,), (1.0,))
    assert last == settings
    assert stage_settings(settings, 9).depths == (3,) and stage_settings(settings, 39).ffn_fracs == (1.0,)
    g = torch.Generator().manual_seed(0)
    assert set(sandwich_shapes(first, g)) == {SubnetShape(3, 1.0, 1.0)}
    plain = _settings(steps=100)
    assert all(stage_settings(plain, step) is plain for step in (0, 50))


def _layerwise_gap(model, reference, shape, batch) -> float:
    """Hidden-state MSE of `shape`'s layers against the reference's, on the layer map."""
    from autocompress.engine.distill import hidden_loss

    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad(), active_subnet(model, shape):
        _, hidden, _ = model.features(**inputs)
    with torch.no_grad():
        _, ref, _ = reference.features(**inputs)
    return float(hidden_loss(hidden, ref, layer_map(shape.depth, 3), batch["attention_mask"]))


@pytest.mark.parametrize("attention_kl", [0.0, 1.0])
def test_layerwise_distillation_keeps_each_shapes_layers_nearer_the_reference(attention_kl):
    """Trained toward teacher logits the random tiny model's layers drift; with the layer-wise terms the
    sub-networks' layers stay nearer the frozen start than with the same steps on logits alone."""
    batch = next(separable_batches())
    small = SubnetShape(2, 0.5, 0.5)
    gaps, first_losses = {}, {}
    for weight in (0.0, 1.0):
        model = make_tiny(seed=1)
        reference = copy.deepcopy(model).eval()
        settings = _settings(steps=30, hidden_mse=weight, attention_kl=attention_kl * weight)
        losses = train_elastic_(model, separable_batches(), settings, teacher_logits=TEACHER)
        assert all(math.isfinite(v) for v in losses) and sum(losses[-5:]) < sum(losses[:5])
        assert model.hf.config._attn_implementation == reference.hf.config._attn_implementation  # restored
        gaps[weight], first_losses[weight] = _layerwise_gap(model, reference, small, batch), losses[0]
    assert gaps[1.0] < 0.5 * gaps[0.0]
    assert first_losses[1.0] > first_losses[0.0]  # the layer terms add to the logits' loss


def test_layerwise_and_progressive_training_is_repeatable_for_a_seed():
    runs = []
    for _ in range(2):
        model = make_tiny(seed=1)
        settings = _settings(steps=6, hidden_mse=1.0, attention_kl=0.5, progressive=True, bits=(8,))
        runs.append((train_elastic_(model, separable_batches(), settings, teacher_logits=TEACHER), model.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(v, runs[1][1][k]) for k, v in runs[0][1].items())
    with pytest.raises(ValueError, match="must not be negative"):
        _settings(hidden_mse=-1.0)


def test_a_sub_network_run_first_leaves_every_layer_recorded():
    """transformers 5 hooks the layers present at the first call asking for hidden states; a sub-network going
    first must not leave the model reporting fewer layers afterwards (nor a copy made then)."""
    model = make_tiny(seed=1)
    batch = next(separable_batches())
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        with active_subnet(model, SubnetShape(2, 0.5, 0.5)):
            assert len(model.features(**inputs)[1]) == 3
        assert len(model.features(**inputs)[1]) == 4
        with eager_attention(model):
            assert len(copy.deepcopy(model).features(**inputs, attentions=True)[2]) == 3
