"""Ternary and binary weights: TWN's threshold rule, base-3 packing, the clipped estimator, the staged
schedule, attention distillation, storage round trips, and a tiny model that learns with binary weights."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from conftest import make_tiny, random_batch

from autocompress.engine.distill import (
    TrainSettings,
    attention_loss,
    eager_attention,
    train_,
)
from autocompress.engine.lowbit import (
    pack_trits,
    packed_trits_size,
    ternary_rows,
    unpack_trits,
)
from autocompress.engine.quantize import (
    attach_fake_quant_,
    clamp_latent_,
    fake_quant,
    fake_quants,
    materialize_,
    quantize_rows,
)
from autocompress.engine.storage import load_weights, save_weights
from autocompress.engine.techniques import BuildContext, apply_all_, check
from autocompress.engine.techniques.lowbit import StageSwitch
from autocompress.engine.recipe import Recipe


def test_ternary_threshold_rule() -> None:
    # mean |w| of the nonzeros = 1.0, threshold 0.7: 0.5 and -0.6 fall to 0, alpha = mean(1.2, 1.7, 0.6 excluded)
    w = torch.tensor([[0.5, -1.2, 0.0, 1.7, -0.6], [0.0] * 5])
    codes, scale = ternary_rows(w)
    assert codes.tolist() == [[0, -1, 0, 1, 0], [0] * 5]
    assert scale[0].item() == pytest.approx(1.45)
    assert scale[1].item() == 1.0  # an all-zero row
    assert fake_quant(w, 2).flatten().tolist() == pytest.approx([0.0, -1.45, 0.0, 1.45, 0.0] + [0.0] * 5)


def test_ternary_zeroes_a_share_of_gaussian_weights() -> None:
    w = torch.randn(64, 512, generator=torch.Generator().manual_seed(0))
    codes, scale = quantize_rows(w, 2)
    zero_share = float((codes == 0).float().mean())
    assert 0.35 < zero_share < 0.55  # P(|z| <= 0.7 * E|z|) = P(|z| <= 0.56) = 0.42 for a normal z
    # TWN's alpha is the mean magnitude of the kept weights: larger than the plain mean |w|
    assert bool((scale > w.abs().mean(dim=1)).all())


@pytest.mark.parametrize("n", (0, 1, 4, 5, 6, 11, 1003))
def test_trits_round_trip_and_size(n: int) -> None:
    codes = torch.randint(-1, 2, (n,), generator=torch.Generator().manual_seed(n)).to(torch.int8)
    packed = pack_trits(codes)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(n / 5) == packed_trits_size(n)
    assert torch.equal(unpack_trits(packed, n), codes)


def test_trits_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="ternary codes"):
        pack_trits(torch.tensor([2], dtype=torch.int8))
    with pytest.raises(ValueError, match="need 1 bytes"):
        unpack_trits(torch.zeros(2, dtype=torch.uint8), 5)
    with pytest.raises(ValueError, match="below 243"):
        unpack_trits(torch.tensor([243], dtype=torch.uint8), 5)


@pytest.mark.parametrize("bits", (2, 1))
def test_clipped_estimator_stops_gradient_beyond_the_clip(bits: int) -> None:
    w = torch.tensor([[0.1, -0.2, 0.3, -3.0, 0.25]], requires_grad=True)
    _codes, scale = quantize_rows(w.detach(), bits)
    fake_quant(w, bits, clip=0.5).sum().backward()
    inside = (w.detach().abs() <= 0.5 * scale[:, None]).float()
    assert torch.equal(w.grad, inside)
    assert inside.sum() < w.numel()  # the outlier gets no gradient
    with pytest.raises(ValueError, match="2 and 1 bits"):
        fake_quant(w, 4, clip=1.0)


def test_clamp_latent_keeps_rows_within_clip_times_scale() -> None:
    model = make_tiny(seed=3)
    attach_fake_quant_(model, 1, 8)
    quantizers = fake_quants(model)
    for _, _, fq in quantizers:
        fq.clip = 1.0
    with torch.no_grad():
        for module, name, _ in quantizers:
            module.parametrizations[name].original.mul_(5.0)  # latent weights well past their scale
    model(**random_batch())
    clamp_latent_(model)
    checked = 0
    for module, name, fq in quantizers:
        if fq.bits > 2:
            continue  # 8-bit embeddings are not clipped
        latent = module.parametrizations[name].original
        assert bool((latent.abs() <= fq.last_scale[:, None] * (1 + 1e-6)).all())
        checked += 1
    assert checked > 0


def test_stage_switch_moves_quantizers_after_their_share_of_steps() -> None:
    model = make_tiny(seed=4)
    attach_fake_quant_(model, 2, 8)
    staged = [fq for _, _, fq in fake_quants(model) if fq.bits == 2]
    switch = StageSwitch(staged, 1, 0.5)
    switch(4, 10, 0.0, model)
    assert {fq.bits for fq in staged} == {2}
    switch(5, 10, 0.0, model)
    assert {fq.bits for fq in staged} == {1}


def test_lowbit_technique_applies_stage_and_clip(tiny_inputs) -> None:
    recipe = Recipe(bits=1, embedding_bits=8, stage_bits=2, stage_frac=0.25, ste_clip=2.0, train_steps=8)
    model = copy.deepcopy(tiny_inputs.teacher)
    ctx = BuildContext(tiny_inputs, recipe, tiny_inputs.data.train, tiny_inputs.teacher_logits)
    apply_all_(model, ctx)
    by_bits: dict[int, int] = {}
    for _, _, fq in fake_quants(model):
        by_bits[fq.bits] = by_bits.get(fq.bits, 0) + 1
        assert fq.clip == 2.0
    assert set(by_bits) == {2, 8}  # encoder weights start ternary, embeddings stay 8-bit
    assert any(isinstance(h, StageSwitch) for h in ctx.hooks)


@pytest.mark.parametrize(("changes", "message"), [
    ({"bits": 8, "stage_bits": 8, "train_steps": 10}, "not above bits 8"),
    ({"bits": 1, "stage_bits": 2}, "needs training steps"),
])
def test_lowbit_recipe_checks(changes: dict, message: str) -> None:
    assert message in (check(Recipe(**changes), 6) or "")


def test_lowbit_recipe_ok() -> None:
    assert check(Recipe(bits=1, stage_bits=2, ste_clip=1.5, train_steps=10), 6) is None
    assert check(Recipe(bits=8, ste_clip=1.5), 6) is None  # no effect above 2 bits, so a space may fix it


def test_new_default_fields_keep_fingerprints() -> None:
    r = Recipe(bits=8, train_steps=10)
    assert r.fingerprint() == Recipe(bits=8, train_steps=10, stage_frac=0.5, ste_clip=None).fingerprint()
    assert r.fingerprint() != Recipe(bits=8, train_steps=10, attention_kl=1.0).fingerprint()


def test_attention_loss_zero_for_equal_maps_and_ignores_padded_queries() -> None:
    g = torch.Generator().manual_seed(0)
    t = torch.softmax(torch.randn(2, 4, 6, 6, generator=g), dim=-1)
    mask = torch.ones(2, 6)
    assert attention_loss([t], [t], [0], mask).item() == pytest.approx(0.0, abs=1e-6)
    s = torch.softmax(torch.randn(2, 4, 6, 6, generator=g), dim=-1)
    assert attention_loss([s], [t], [0], mask).item() > 0.01
    # a student that differs only on padded queries has no loss
    mask[1, 3:] = 0
    s2 = t.clone()
    s2[1, :, 3:] = s[1, :, 3:]
    assert attention_loss([s2], [t], [0], mask).item() == pytest.approx(0.0, abs=1e-6)
    # fewer student heads: compared after averaging over heads
    assert attention_loss([t.mean(dim=1, keepdim=True)], [t], [0], mask).item() == pytest.approx(0.0, abs=1e-6)


def test_attention_distillation_trains_and_restores_attention_mode() -> None:
    teacher = make_tiny(seed=5)
    student = copy.deepcopy(teacher)
    impl = teacher.hf.config._attn_implementation
    batch = {**random_batch(n=8), "labels": torch.arange(8) % 2, "index": torch.arange(8)}
    losses = train_(student, iter([batch] * 4), TrainSettings(steps=4, lr=1e-3, attention_kl=1.0),
                    teacher=teacher, layer_map=(0, 1, 2))
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    assert teacher.hf.config._attn_implementation == impl == student.hf.config._attn_implementation
    with eager_attention(student):
        _, hidden, att = student.features(**random_batch(), attentions=True)
        assert len(att) == len(hidden) - 1 == 3
        assert torch.allclose(att[0].sum(dim=-1), torch.ones(()), atol=1e-5)


@pytest.mark.parametrize("bits", (2, 1))
def test_low_bit_storage_round_trip_is_bit_exact(tmp_path, bits: int) -> None:
    model = make_tiny(seed=6)
    attach_fake_quant_(model, bits, 8)
    materialize_(model)
    size = save_weights(model, tmp_path / "w.safetensors", bits, 8)
    state, _ = load_weights(tmp_path / "w.safetensors")
    for name, t in model.state_dict().items():
        assert torch.equal(state[name], t), name
    assert size == (tmp_path / "w.safetensors").stat().st_size


def test_ternary_file_is_smaller_than_two_bit_codes(tmp_path) -> None:
    model = make_tiny(seed=7, hidden=64, intermediate=256)
    sizes = {}
    for bits in (4, 2, 1):
        m = copy.deepcopy(model)
        attach_fake_quant_(m, bits, 8)
        materialize_(m)
        sizes[bits] = save_weights(m, tmp_path / f"{bits}.safetensors", bits, 8)
    assert sizes[4] > sizes[2] > sizes[1]


def _token_task(n: int = 64, length: int = 10, seed: int = 0):
    """Label 1 iff token 10 appears anywhere in the sentence: needs attention, not position."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(20, 120, (n, length), generator=g)
    ids[:, 0] = 2
    labels = torch.arange(n) % 2
    where = torch.randint(1, length, (n,), generator=g)
    ids[labels == 1, where[labels == 1]] = 10
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids),
            "labels": labels, "index": torch.arange(n)}


def test_tiny_model_learns_a_separable_task_with_binary_weights() -> None:
    torch.manual_seed(0)
    model = make_tiny(seed=8)
    attach_fake_quant_(model, 1, 8)
    train_batch, held_out = _token_task(n=256, seed=0), _token_task(n=256, seed=1)
    train_(model, iter([train_batch] * 150), TrainSettings(steps=150, lr=3e-3, warmup_frac=0.1))
    materialize_(model)
    # every encoder weight row now holds two values: ±alpha
    row = model.hf.bert.encoder.layer[0].attention.self.query.weight[0]
    assert row.abs().unique().numel() == 1
    with torch.no_grad():
        inputs = {k: held_out[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
        accuracy = float((model(**inputs).argmax(-1) == held_out["labels"]).float().mean())
    assert accuracy >= 0.9
