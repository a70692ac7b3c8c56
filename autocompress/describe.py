"""Plain-language descriptions of what a compression candidate is, for reports and model cards."""

from __future__ import annotations

from typing import Any

from .engine.widths import width_name


def summarize(r: dict[str, Any]) -> str:
    """One line describing a recipe (as `Recipe.to_dict()` gives it); '' for an empty one."""
    if not r:
        return ""
    parts = ["elastic sub-network"] if r.get("elastic") else []
    parts.append(f"layers {len(r['layers'])}" if r.get("layers") else "all layers")
    if r.get("heads_keep", 1) < 1 or r.get("ffn_keep", 1) < 1:
        parts.append(f"heads {r['heads_keep']:.2f} ffn {r['ffn_keep']:.2f}")
    if r.get("vocab_prune"):
        parts.append("vocab pruned")
    if r.get("prune_ratio"):
        parts.append(f"{r['prune_ratio']:.0%} sparse")
    bits = r.get("bits", 32)
    emb = r.get("embedding_bits") or bits
    parts.append(width_name(bits) + (f" (emb {width_name(emb)})" if emb != bits else ""))
    if r.get("stage_bits"):
        parts.append(f"{width_name(r['stage_bits'])} first")
    parts.append(f"{r.get('train_steps', 0)} steps, T {r.get('temperature', 0):.1f}, alpha {r.get('alpha', 0):.2f}")
    return ", ".join(parts)
