"""Ternary and binary rows: the two quantizers below 4 bits, and base-3 packing for ternary codes.

- **Binary** (1 bit): codes sign(w) in {-1, +1}, one scale per row, alpha = mean |w| over the row's
  nonzero weights (the L2-optimal scale for fixed signs). Exact zeros (pruned weights) keep code 0.
- **Ternary** (TWN, Li et al. 2016): per row a threshold delta = 0.7 * mean |w| over nonzero weights;
  codes sign(w) where |w| > delta, else 0; alpha = mean |w| over the weights above the threshold.
  Stored five codes to a byte (3^5 = 243 <= 256): 1.6 bits per weight.

Both are idempotent: quantizing `codes * alpha` again gives the same codes and bitwise the same
alpha (the means are taken in float64, where n copies of a float32 sum exactly), which the
exporter relies on (see `quantize.py`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

TERNARY_THRESHOLD = 0.7  # delta = 0.7 * mean |w| (TWN's approximation of the optimal threshold)
TRITS_PER_BYTE = 5


def _acc(w: Tensor) -> torch.dtype:
    return torch.float32 if w.device.type == "mps" else torch.float64  # MPS has no float64


def _mean_abs(w: Tensor, keep: Tensor) -> Tensor:
    """Per-row mean of |w| over the entries where `keep` is set (float64 where available)."""
    count = keep.sum(dim=1)
    total = (w.abs().to(_acc(w)) * keep).sum(dim=1)
    return total / count.clamp(min=1), count


def binary_rows(w: Tensor) -> tuple[Tensor, Tensor]:
    """(int8 codes in {-1, 0, +1}, float32 scale per row): sign(w), alpha = mean |w| of the nonzeros."""
    alpha, count = _mean_abs(w, w != 0)
    alpha = alpha.to(torch.float32)
    return torch.sign(w).to(torch.int8), torch.where(count > 0, alpha, torch.ones_like(alpha))


def ternary_rows(w: Tensor) -> tuple[Tensor, Tensor]:
    """(int8 codes in {-1, 0, +1}, float32 scale per row) by TWN's threshold rule."""
    mean, _ = _mean_abs(w, w != 0)
    above = w.abs().to(mean.dtype) > TERNARY_THRESHOLD * mean[:, None]
    alpha, count = _mean_abs(w, above)
    alpha = alpha.to(torch.float32)
    codes = torch.where(above, torch.sign(w), torch.zeros_like(w)).to(torch.int8)
    return codes, torch.where(count > 0, alpha, torch.ones_like(alpha))


def packed_trits_size(n: int) -> int:
    return (n + TRITS_PER_BYTE - 1) // TRITS_PER_BYTE


def pack_trits(codes: Tensor) -> Tensor:
    """Flatten ternary codes (-1, 0, +1) into ceil(n / 5) bytes, base 3, first code least significant."""
    flat = codes.reshape(-1).to(torch.int32)
    if flat.numel() and int(flat.abs().max()) > 1:
        raise ValueError("ternary codes must lie in [-1, 1]")
    u = F.pad(flat + 1, (0, -flat.numel() % TRITS_PER_BYTE)).view(-1, TRITS_PER_BYTE)
    powers = 3 ** torch.arange(TRITS_PER_BYTE, dtype=torch.int32, device=u.device)
    return (u * powers).sum(dim=1).to(torch.uint8)


def unpack_trits(packed: Tensor, n: int) -> Tensor:
    """The n int8 codes `pack_trits` stored."""
    if packed.dim() != 1 or packed.dtype != torch.uint8:
        raise ValueError(f"packed trits must be a 1-D uint8 tensor, got {packed.dtype} {tuple(packed.shape)}")
    if packed.numel() != packed_trits_size(n):
        raise ValueError(f"{n} ternary codes need {packed_trits_size(n)} bytes, got {packed.numel()}")
    if packed.numel() and int(packed.max()) >= 3**TRITS_PER_BYTE:
        raise ValueError("a byte of packed trits must be below 243")
    powers = 3 ** torch.arange(TRITS_PER_BYTE, dtype=torch.int32, device=packed.device)
    u = (packed.to(torch.int32)[:, None] // powers) % 3
    return (u.reshape(-1)[:n] - 1).to(torch.int8)
