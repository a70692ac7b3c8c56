"""The weight widths a recipe may ask for, and their names: one place that the quantization technique, the
quantization mechanics, the runtimes and the experiment config share (no torch here)."""

from __future__ import annotations

from typing import Literal, get_args

Bits = Literal[32, 16, 8, 4, 2, 1]
QUANT_WIDTHS: tuple[int, ...] = tuple(b for b in get_args(Bits) if b < 16)  # the integer widths: 8, 4, 2, 1


def width_name(bits: int) -> str:
    """How people call a weight width: 'binary', 'ternary', 'bf16', 'fp32' or 'k-bit'."""
    return {1: "binary", 2: "ternary", 16: "bf16", 32: "fp32"}.get(bits, f"{bits}-bit")
