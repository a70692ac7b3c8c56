"""Weight quantization: per-row symmetric k-bit codes, fake-quant for training, bit packing.

A quantized 2-D tensor is a pair (codes, scale): int8 codes of the tensor's shape and one
float32 scale per row (dim 0: an output channel of an `nn.Linear`, a token of an embedding
table); its value is `codes * scale[:, None]`. For 8 and 4 bits the codes are symmetric integers
in [-qmax, qmax] with qmax = 2^(k-1) - 1 and the scale is max |row| / qmax; 2 bits is ternary
(-alpha, 0, +alpha by TWN's threshold rule) and 1 bit binary (±alpha, alpha the mean magnitude),
see `lowbit.py`. Exact zeros (pruned weights) always get code 0.

Two properties matter to the rest of the engine:

* `fake_quant(w)` is bitwise `dequantize_rows(*quantize_rows(w))`, and quantizing those values
  again gives back the same codes and scales. The exporter re-derives codes from materialized
  weights, so the stored model computes exactly what was trained and evaluated. To make this
  exact for 8 and 4 bits, each scale is rounded to a float32 with few enough significant bits that
  every `code * scale` product is exact (a relative change below 2^-16 for 8-bit).
* Training sees the quantized weights through `torch.nn.utils.parametrize` with the
  straight-through estimator, chained after any pruning mask registered earlier. Binary and
  ternary quantizers may clip it: no gradient reaches a latent weight beyond `clip * alpha`, and
  `clamp_latent_` keeps the latent weights inside that range (BinaryConnect's clipped STE).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .lowbit import binary_rows, ternary_rows
from .model import Classifier
from .targets import embedding_tables, encoder_linears
from .widths import QUANT_WIDTHS

# the integer widths (8, 4, 2, 1) come from the technique that owns the `bits` recipe key;
# 16: bfloat16 storage; 32: untouched
_WIDTHS = (*QUANT_WIDTHS, 16, 32)


def _check_bits(bits: int, allowed: tuple[int, ...] = QUANT_WIDTHS) -> None:
    if bits not in allowed:
        raise ValueError(f"bit-width must be one of {allowed}, got {bits!r}")


def _qmax(bits: int) -> int:
    """Largest code magnitude: 2^(k-1) - 1 for k >= 2 (1: ternary), 1 for binary."""
    return max(2 ** (bits - 1) - 1, 1)


def levels(bits: int) -> int:
    """How many distinct codes a row can use: 2^k - 1 for k >= 2 (-qmax..qmax; 3 for ternary), 2 for
    binary (±1).

    Binary rows may also hold 0, but only for weights that were exactly zero (pruned).
    """
    _check_bits(bits)
    return 2 if bits == 1 else 2 * _qmax(bits) + 1


def _round_significand(x: Tensor, drop: int) -> Tensor:
    """Round positive finite float32 values to 24 - `drop` significant bits (half up)."""
    if drop == 0:
        return x
    i = x.contiguous().view(torch.int32)
    i = (i + (1 << (drop - 1))) & ~((1 << drop) - 1)
    return i.view(torch.float32)


def _check_2d(w: Tensor) -> None:
    if w.dim() != 2:
        raise ValueError(f"per-row quantization needs a 2-D tensor, got shape {tuple(w.shape)}")


def quantize_rows(w: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """Per-row symmetric quantization of a 2-D tensor: (int8 codes of w's shape, float32 scale [rows]).

    8 / 4 bits: scale = max|row| / qmax (rounded so that code * scale is exact), codes = round(w / scale)
    clamped to [-qmax, qmax]. 2 bits: ternary, 1 bit: binary (`lowbit.py`). All-zero rows get scale 1.
    Exact zeros map to code 0 at every width.
    """
    _check_bits(bits)
    _check_2d(w)
    w = w.detach().to(torch.float32)
    if bits == 1:
        return binary_rows(w)
    if bits == 2:
        return ternary_rows(w)
    qmax = _qmax(bits)
    top = w.abs().amax(dim=1)
    # With <= 24 - bitlen(qmax) significant bits in the scale, |code| * scale fits float32 exactly.
    scale = _round_significand(top / qmax, qmax.bit_length())
    scale = torch.where(top > 0, scale, torch.ones_like(scale))
    codes = torch.round(w / scale[:, None]).clamp_(-qmax, qmax)
    return codes.to(torch.int8), scale


def dequantize_rows(codes: Tensor, scale: Tensor) -> Tensor:
    """float32 values `codes * scale[:, None]`."""
    _check_2d(codes)
    return codes.to(torch.float32) * scale.to(torch.float32)[:, None]


def fake_quant(w: Tensor, bits: int, clip: float | None = None) -> Tensor:
    """Quantize-dequantize `w` in the forward pass; identity gradient (straight-through estimator).

    bits in QUANT_WIDTHS: per-row quantization; 16: round to bfloat16; 32: `w` unchanged. `clip`
    (binary and ternary only): the gradient is zero where |w| > clip * the row's scale.
    """
    return _fake_quant(w, bits, clip)[0]


def _fake_quant(w: Tensor, bits: int, clip: float | None) -> tuple[Tensor, Tensor | None]:
    """(fake-quantized w, its per-row scales or None at 16 / 32 bits)."""
    _check_bits(bits, _WIDTHS)
    if clip is not None and bits > 2:
        raise ValueError(f"the clipped straight-through estimator is for 2 and 1 bits, not {bits}")
    if bits == 32:
        return w, None
    scale = None
    with torch.no_grad():
        if bits == 16:
            q = w.to(torch.bfloat16).to(w.dtype)
        else:
            codes, scale = quantize_rows(w, bits)
            q = dequantize_rows(codes, scale).to(w.dtype)
    # `q + 0` keeps q bitwise (unlike `w + (q - w)`), while d/dw (w - w.detach()) = 1.
    through = w - w.detach()
    if clip is not None:
        through = through * (w.detach().abs() <= clip * scale.to(w.dtype)[:, None])
    return q + through, scale


def _pack_fields(u: Tensor, bits: int) -> Tensor:
    """Pack non-negative integers < 2^bits (bits | 8) into bytes, first value in the low bits."""
    per = 8 // bits
    u = u.reshape(-1).to(torch.int32)
    u = F.pad(u, (0, -u.numel() % per)).view(-1, per)
    shifts = torch.arange(per, dtype=torch.int32, device=u.device) * bits
    return (u << shifts).sum(dim=1).to(torch.uint8)


def _unpack_fields(packed: Tensor, bits: int, n: int) -> Tensor:
    """Inverse of `_pack_fields`: n int32 values."""
    if packed.dim() != 1 or packed.dtype != torch.uint8:
        raise ValueError(f"packed data must be a 1-D uint8 tensor, got {packed.dtype} {tuple(packed.shape)}")
    expected = (n * bits + 7) // 8
    if packed.numel() != expected:
        raise ValueError(f"{n} values at {bits} bits need {expected} bytes, got {packed.numel()}")
    per = 8 // bits
    shifts = torch.arange(per, dtype=torch.int32, device=packed.device) * bits
    u = (packed.to(torch.int32)[:, None] >> shifts) & ((1 << bits) - 1)
    return u.reshape(-1)[:n]


def pack(codes: Tensor, bits: int) -> Tensor:
    """Flatten `codes` and pack them into ceil(n * bits / 8) bytes (uint8, 1-D).

    k >= 2: offset binary (code + 2^(k-1)), 8 // k codes per byte; k = 1: one bit per code
    (set for code > 0, so zeros are not representable: store them in a bitmap).
    """
    _check_bits(bits)
    flat = codes.reshape(-1).to(torch.int32)
    if bits == 1:
        return _pack_fields(flat > 0, 1)
    qmax = _qmax(bits)
    if flat.numel() and int(flat.abs().max()) > qmax:
        raise ValueError(f"{bits}-bit codes must lie in [-{qmax}, {qmax}]")
    return _pack_fields(flat + 2 ** (bits - 1), bits)


def unpack(packed: Tensor, bits: int, n: int) -> Tensor:
    """The n int8 codes `pack(codes, bits)` stored (±1 at 1 bit)."""
    _check_bits(bits)
    u = _unpack_fields(packed, bits, n)
    out = u * 2 - 1 if bits == 1 else u - 2 ** (bits - 1)
    return out.to(torch.int8)


def pack_bitmap(mask: Tensor) -> Tensor:
    """A boolean tensor, flattened, as bits: ceil(n / 8) uint8 bytes."""
    return _pack_fields(mask.reshape(-1).to(torch.bool), 1)


def unpack_bitmap(packed: Tensor, n: int) -> Tensor:
    """The n booleans `pack_bitmap` stored (flat)."""
    return _unpack_fields(packed, 1, n).to(torch.bool)


class FakeQuant(nn.Module):
    """Parametrization: the weight as `fake_quant(original, bits, clip)` (16: bfloat16, 32: identity).

    `bits` may be changed between steps (a staged schedule); `last_scale` holds the per-row scales
    of the latest forward pass, for `clamp_latent_`.
    """

    def __init__(self, bits: int, clip: float | None = None):
        super().__init__()
        _check_bits(bits, _WIDTHS)
        self.bits = bits
        self.clip = clip
        self.last_scale: Tensor | None = None

    def forward(self, w: Tensor) -> Tensor:
        q, self.last_scale = _fake_quant(w, self.bits, self.clip if self.bits <= 2 else None)
        return q

    def extra_repr(self) -> str:
        return f"bits={self.bits}" + (f", clip={self.clip}" if self.clip is not None else "")


def fake_quants(model: nn.Module) -> list[tuple[nn.Module, str, FakeQuant]]:
    """(module, tensor name, its FakeQuant) for every fake-quantized weight of `model`."""
    out = []
    for module in model.modules():
        if parametrize.is_parametrized(module):
            for tensor_name, chain in module.parametrizations.items():
                out.extend((module, tensor_name, p) for p in chain if isinstance(p, FakeQuant))
    return out


@torch.no_grad()
def clamp_latent_(model: nn.Module) -> None:
    """Clip every latent weight under a clipped quantizer to [-clip * scale, clip * scale] of its row.

    The scales are those of the latest forward pass. With a pruning mask in the chain, the latent
    weights are the unmasked ones; masked entries stay masked whatever their latent value.
    """
    for module, tensor_name, fq in fake_quants(model):
        if fq.clip is None or fq.bits > 2 or fq.last_scale is None:
            continue
        latent = module.parametrizations[tensor_name].original
        bound = (fq.clip * fq.last_scale).to(latent.dtype)[:, None]
        latent.copy_(torch.maximum(torch.minimum(latent, bound), -bound))


def _widths(model: Classifier, bits: int, embedding_bits: int) -> dict[str, int]:
    """Every quantizable weight with its width (16 and 32 included), keyed by parameter name."""
    _check_bits(bits, _WIDTHS)
    _check_bits(embedding_bits, _WIDTHS)
    out = {f"{name}.weight": bits for name in encoder_linears(model)}
    out.update({f"{name}.weight": embedding_bits for name in embedding_tables(model)})
    return out


def quant_targets(model: Classifier, bits: int, embedding_bits: int) -> dict[str, int]:
    """Integer-quantized weights -> bit-width (in QUANT_WIDTHS).

    Encoder linear weights and the pooler dense weight get `bits`; the word and position
    embedding tables get `embedding_bits`. Token-type embeddings, LayerNorms, biases and the
    classifier head are never quantized; widths 16 and 32 are left out. Keys are the plain
    parameter names (for BERT, `hf.bert.encoder.layer.0.attention.self.query.weight`), as
    `named_parameters()` / `state_dict()` spell them on a model without parametrizations.
    """
    return {name: k for name, k in _widths(model, bits, embedding_bits).items() if k in QUANT_WIDTHS}


def attach_fake_quant_(model: Classifier, bits: int, embedding_bits: int, *, every_width: bool = False) -> None:
    """Register `FakeQuant` on every target weight (width 16 included, 32 skipped unless `every_width`:
    then a quantizer that passes the weight through, for its width to be changed later).

    Chained after parametrizations already on the weight (e.g. a pruning mask), so the quantizer
    sees their output. Raises ValueError if fake-quant is already attached.
    """
    for name, k in _widths(model, bits, embedding_bits).items():
        if k == 32 and not every_width:
            continue
        module_name, tensor_name = name.rsplit(".", 1)
        module = model.get_submodule(module_name)
        if parametrize.is_parametrized(module, tensor_name) and any(
            isinstance(p, FakeQuant) for p in module.parametrizations[tensor_name]
        ):
            raise ValueError(f"fake-quant is already attached to {name}")
        parametrize.register_parametrization(module, tensor_name, FakeQuant(k))


def detach_fake_quant_(model: nn.Module) -> None:
    """Remove every weight's `FakeQuant`, leaving the latent (unquantized) weight it was fed.

    Only for weights whose one parametrization is the quantizer (as `attach_fake_quant_` leaves a
    plain model); raises ValueError for a quantizer chained after another parametrization.
    """
    for module, tensor_name, _fq in fake_quants(model):
        if len(module.parametrizations[tensor_name]) != 1:
            raise ValueError(f"{tensor_name} has other parametrizations before its quantizer")
        parametrize.remove_parametrizations(module, tensor_name, leave_parametrized=False)


def materialize_(model: nn.Module) -> None:
    """Remove every parametrization, leaving plain parameters that hold the parametrized values."""
    for module in list(model.modules()):
        if parametrize.is_parametrized(module):
            for tensor_name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, tensor_name, leave_parametrized=True)
