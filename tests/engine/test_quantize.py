"""Per-row quantization, fake-quant with STE, bit packing and fake-quant on the tiny classifier."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from autocompress.engine.quantize import (
    QUANT_WIDTHS,
    FakeQuant,
    attach_fake_quant_,
    dequantize_rows,
    fake_quant,
    levels,
    materialize_,
    pack,
    pack_bitmap,
    quant_targets,
    quantize_rows,
    unpack,
    unpack_bitmap,
)

ENC = "hf.bert.encoder.layer."
EMB = "hf.bert.embeddings."


def weights(rows: int = 16, cols: int = 37, seed: int = 0, zero_frac: float = 0.3) -> torch.Tensor:
    """A random weight matrix with row magnitudes 1e-3..10, a fraction of exact zeros (pruned)
    and, when zero_frac > 0, one all-zero row."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g) * torch.logspace(-3, 1, rows)[:, None]
    w[torch.rand(rows, cols, generator=g) < zero_frac] = 0.0
    if zero_frac > 0:
        w[3] = 0.0
    return w


def bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and torch.equal(a.view(torch.int32), b.view(torch.int32))


def test_levels() -> None:
    assert [levels(k) for k in QUANT_WIDTHS] == [255, 15, 3, 2]
    with pytest.raises(ValueError):
        levels(3)


@pytest.mark.parametrize("bits", QUANT_WIDTHS)
def test_codes_range_and_distinct_levels_per_row(bits: int) -> None:
    w = weights()
    codes, scale = quantize_rows(w, bits)
    assert codes.dtype == torch.int8 and codes.shape == w.shape
    assert scale.dtype == torch.float32 and scale.shape == (w.shape[0],)
    assert bool((scale > 0).all()) and bool(torch.isfinite(scale).all())
    q = fake_quant(w, bits)
    for row, qrow in zip(codes, q):
        # at 1 bit the extra value 0 only marks pruned weights
        assert qrow[qrow != 0].unique().numel() <= 2**bits
        assert qrow.unique().numel() <= levels(bits) + (bits == 1)
        if bits == 1:
            assert set(row.tolist()) <= {-1, 0, 1}
            mags = qrow[qrow != 0].abs().unique()
            assert mags.numel() <= 1  # values are ±alpha (and 0 for pruned weights)
        else:
            qmax = 2 ** (bits - 1) - 1
            assert int(row.abs().max()) <= qmax
            assert row.unique().numel() <= levels(bits)


@pytest.mark.parametrize("bits", (8, 4))
def test_k_bit_scale_and_error(bits: int) -> None:
    w = weights(zero_frac=0.0)
    codes, scale = quantize_rows(w, bits)
    qmax = 2 ** (bits - 1) - 1
    top = w.abs().amax(dim=1)
    live = top > 0
    torch.testing.assert_close(scale[live], top[live] / qmax, rtol=1e-4, atol=0)
    # the row maximum uses the extreme code; rounding error is at most half a step
    assert bool((codes.abs().amax(dim=1)[live] == qmax).all())
    err = (dequantize_rows(codes, scale) - w).abs()
    assert bool((err <= scale[:, None] * 0.5001).all())


def test_binary_scale_is_mean_magnitude_of_nonzeros() -> None:
    w = torch.tensor([[0.5, -1.5, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [-2.0, 0.0, 0.0, 0.0]])
    codes, scale = quantize_rows(w, 1)
    assert codes.tolist() == [[1, -1, 0, 1], [0, 0, 0, 0], [-1, 0, 0, 0]]
    assert scale[0].item() == pytest.approx(1.0) and scale[2].item() == 2.0
    assert scale[1].item() > 0
    assert fake_quant(w, 1).tolist() == [[1.0, -1.0, 0.0, 1.0], [0.0] * 4, [-2.0, 0.0, 0.0, 0.0]]


@pytest.mark.parametrize("bits", QUANT_WIDTHS)
def test_fake_quant_is_bitwise_dequantize_of_quantize(bits: int) -> None:
    w = weights(seed=1)
    assert bitwise_equal(fake_quant(w, bits), dequantize_rows(*quantize_rows(w, bits)))


@pytest.mark.parametrize("bits", (*QUANT_WIDTHS, 16, 32))
def test_straight_through_gradient(bits: int) -> None:
    w = weights(seed=2).requires_grad_(True)
    fake_quant(w, bits).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


def test_16_and_32_bits() -> None:
    w = weights(seed=3)
    assert fake_quant(w, 32) is w
    q = fake_quant(w, 16)
    assert torch.equal(q, w.to(torch.bfloat16).float())
    assert not torch.equal(q, w)


@pytest.mark.parametrize("bits", QUANT_WIDTHS)
def test_zeros_stay_zero(bits: int) -> None:
    w = weights(seed=4, zero_frac=0.5)
    zero = w == 0
    codes, _ = quantize_rows(w, bits)
    assert bool((codes[zero] == 0).all())
    assert bool((fake_quant(w, bits)[zero] == 0).all())
    if bits == 1:  # binary never zeroes a nonzero weight
        assert bool((codes[~zero] != 0).all())


@pytest.mark.parametrize("bits", QUANT_WIDTHS)
@pytest.mark.parametrize("seed", range(5))
def test_requantization_is_idempotent(bits: int, seed: int) -> None:
    w = weights(rows=64, cols=101, seed=seed)
    codes, scale = quantize_rows(w, bits)
    q = fake_quant(w, bits)
    codes2, scale2 = quantize_rows(q, bits)
    assert torch.equal(codes2, codes)
    assert bitwise_equal(scale2, scale)
    assert bitwise_equal(fake_quant(q, bits), q)


@pytest.mark.parametrize("bits", QUANT_WIDTHS)
@pytest.mark.parametrize("n", (1, 7, 8, 9, 13, 1001))
def test_pack_round_trip_and_size(bits: int, n: int) -> None:
    g = torch.Generator().manual_seed(n)
    if bits == 1:
        codes = torch.randint(0, 2, (n,), generator=g).to(torch.int8) * 2 - 1
    else:
        qmax = 2 ** (bits - 1) - 1
        codes = torch.randint(-qmax, qmax + 1, (n,), generator=g).to(torch.int8)
    packed = pack(codes, bits)
    assert packed.dtype == torch.uint8 and packed.dim() == 1
    assert packed.numel() == math.ceil(n * bits / 8)
    assert torch.equal(unpack(packed, bits, n), codes)


@pytest.mark.parametrize("bits", QUANT_WIDTHS)
def test_packed_bytes_shrink_by_32_over_k(bits: int) -> None:
    w = weights(rows=64, cols=128, zero_frac=0.0)
    codes, _ = quantize_rows(w, bits)
    packed = pack(codes, bits)  # 2-D codes are flattened
    assert torch.equal(unpack(packed, bits, w.numel()).view_as(codes), codes)
    assert w.numel() * 4 / packed.numel() == 32 / bits


def test_pack_binary_maps_zero_to_minus_one_and_rejects_out_of_range() -> None:
    codes = torch.tensor([1, 0, -1, 1, 0], dtype=torch.int8)
    assert unpack(pack(codes, 1), 1, 5).tolist() == [1, -1, -1, 1, -1]
    with pytest.raises(ValueError):
        pack(torch.tensor([8], dtype=torch.int8), 4)
    with pytest.raises(ValueError):
        unpack(pack(codes, 4), 4, 7)  # wrong byte count


@pytest.mark.parametrize("n", (1, 8, 13, 100))
def test_bitmap_round_trip(n: int) -> None:
    mask = torch.rand(n, generator=torch.Generator().manual_seed(n)) < 0.4
    packed = pack_bitmap(mask)
    assert packed.numel() == math.ceil(n / 8)
    assert torch.equal(unpack_bitmap(packed, n), mask)


def test_quant_targets_names(tiny) -> None:
    t = quant_targets(tiny, 4, 8)
    params = dict(tiny.named_parameters())
    assert set(t) <= set(params)
    assert t[ENC + "0.attention.self.query.weight"] == 4
    assert t[ENC + "2.output.dense.weight"] == 4
    assert t[ENC + "1.intermediate.dense.weight"] == 4
    assert t["hf.bert.pooler.dense.weight"] == 4
    assert t[EMB + "word_embeddings.weight"] == 8
    assert t[EMB + "position_embeddings.weight"] == 8
    assert len(t) == 3 * 6 + 1 + 2
    assert not any("classifier" in n or "LayerNorm" in n or "token_type" in n or n.endswith(".bias") for n in t)


def test_quant_targets_omit_16_and_32(tiny) -> None:
    assert set(quant_targets(tiny, 8, 32)) == {n for n in quant_targets(tiny, 8, 8) if not n.startswith(EMB)}
    only_emb = quant_targets(tiny, 16, 2)
    assert set(only_emb) == {EMB + "word_embeddings.weight", EMB + "position_embeddings.weight"}
    assert quant_targets(tiny, 32, 16) == {}
    with pytest.raises(ValueError):
        quant_targets(tiny, 3, 8)


def _logits(model, batch) -> torch.Tensor:
    return model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])


def test_attach_8_bit_changes_logits_slightly_and_keeps_gradients(tiny, batch) -> None:
    ref = _logits(tiny, batch).detach()
    attach_fake_quant_(tiny, 8, 8)
    query = tiny.hf.bert.encoder.layer[0].attention.self.query
    assert isinstance(query.parametrizations.weight[0], FakeQuant)
    out = _logits(tiny, batch)
    assert out.shape == ref.shape and bool(torch.isfinite(out).all())
    rel = ((out - ref).norm() / ref.norm()).item()
    assert 0 < rel < 0.05
    out.sum().backward()
    for module in (query, tiny.hf.bert.embeddings.word_embeddings, tiny.hf.bert.pooler.dense):
        grad = module.parametrizations.weight.original.grad
        assert grad is not None and bool(grad.abs().sum() > 0)
    with pytest.raises(ValueError):
        attach_fake_quant_(tiny, 8, 8)


def test_attach_16_bit_registers_bf16_rounding(tiny) -> None:
    attach_fake_quant_(tiny, 16, 32)
    dense = tiny.hf.bert.encoder.layer[1].output.dense
    assert [p.bits for p in dense.parametrizations.weight] == [16]
    assert torch.equal(dense.weight, dense.parametrizations.weight.original.to(torch.bfloat16).float())
    assert not parametrize.is_parametrized(tiny.hf.bert.embeddings.word_embeddings)


class _HalfMask(nn.Module):
    """A stand-in pruning mask zeroing the first half of every row."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        mask = torch.ones_like(w)
        mask[:, : w.shape[1] // 2] = 0
        return w * mask


@pytest.mark.parametrize("bits", QUANT_WIDTHS)
def test_materialize_after_mask_leaves_quantized_plain_weights(tiny, batch, bits: int) -> None:
    query = tiny.hf.bert.encoder.layer[0].attention.self.query
    parametrize.register_parametrization(query, "weight", _HalfMask())
    attach_fake_quant_(tiny, bits, 8)
    assert [type(p) for p in query.parametrizations.weight] == [_HalfMask, FakeQuant]
    targets = quant_targets(tiny, bits, 8)
    live = {n: tiny.get_submodule(n.rsplit(".", 1)[0]).weight.detach().clone() for n in targets}
    before = _logits(tiny, batch).detach()
    materialize_(tiny)
    assert not any(parametrize.is_parametrized(m) for m in tiny.modules())
    params = dict(tiny.named_parameters())
    assert set(targets) <= set(params)
    assert torch.equal(_logits(tiny, batch), before)
    for name, k in targets.items():
        w = params[name].detach()
        assert type(params[name]) is nn.Parameter and torch.equal(w, live[name])
        for row in w:  # at 1 bit, 0 (pruned) comes on top of ±alpha
            assert (row if k > 1 else row[row != 0]).unique().numel() <= 2**k
        codes, scale = quantize_rows(w, k)
        assert bitwise_equal(dequantize_rows(codes, scale), w)  # the exporter's re-derivation is exact
    assert bool((params[ENC + "0.attention.self.query.weight"][:, :16] == 0).all())
