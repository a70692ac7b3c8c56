"""Compressed weight storage: one safetensors file whose bytes are the model's real size.

Quantized tensors are stored as packed k-bit codes (ternary: five codes to a byte) plus one
float32 scale per row; tensors that
pruning made sparse store a 1-bit occupancy bitmap plus their nonzero values when that is
smaller; 16-bit models store bfloat16. `load_weights` rebuilds the dense float tensors exactly
as the compressed model computes with them. No pickle is involved.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ._io import usual_mode
from .model import Classifier
from .prune import prunable
from .targets import embedding_tables
from .lowbit import pack_trits, unpack_trits
from .quantize import dequantize_rows, pack, pack_bitmap, quant_targets, quantize_rows, unpack, unpack_bitmap

FORMAT = "autocompress-weights-v1"
KEPT_TOKENS = "vocab.kept_tokens"


def _bitmap_pays(n: int, nnz: int, bits_per_value: int) -> bool:
    return (n + 7) // 8 + (nnz * bits_per_value + 7) // 8 < (n * bits_per_value + 7) // 8


def save_weights(model: Classifier, path: Path, bits: int, embedding_bits: int) -> int:
    """Write the model's weights in compressed form to `path`; returns the file's bytes."""
    targets = quant_targets(model, bits, embedding_bits)
    sparse_ok = {f"{name}.weight" for name in prunable(model)}
    half = {f"{name}.weight" for name in embedding_tables(model)} if embedding_bits == 16 else set()
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, dict] = {}
    for name, t in model.state_dict().items():
        t = t.detach()
        if not t.is_floating_point():
            tensors[name] = t.contiguous()
            continue
        if name in targets:
            k = targets[name]
            codes, scale = quantize_rows(t.float(), k)
            flat = codes.flatten()
            nz = flat != 0
            nnz = int(nz.sum())
            info = {"bits": k, "shape": list(t.shape)}
            if k == 2:  # ternary: zero is a code, no bitmap needed
                sparse = False
                tensors[name + "::codes"] = pack_trits(flat)
                info["packing"] = "trits"
            else:
                sparse = (k == 1 and nnz < flat.numel()) or (k > 2 and _bitmap_pays(flat.numel(), nnz, k))
                if sparse:
                    tensors[name + "::nz"] = pack_bitmap(nz)
                    flat = flat[nz]
                tensors[name + "::codes"] = pack(flat, k)
            tensors[name + "::scale"] = scale.float().contiguous()
            meta[name] = {**info, "sparse": sparse, "n": int(flat.numel())}
            continue
        dtype = torch.bfloat16 if (bits == 16 or name in half) else torch.float32
        t = t.to(dtype)
        flat = t.flatten()
        nz = flat != 0
        if name in sparse_ok and _bitmap_pays(flat.numel(), int(nz.sum()), t.element_size() * 8):
            tensors[name + "::nz"] = pack_bitmap(nz)
            tensors[name + "::values"] = flat[nz].contiguous()
            meta[name] = {"bits": 0, "shape": list(t.shape), "sparse": True}
        else:
            tensors[name] = t.contiguous()
    if model.kept_tokens is not None:
        tensors[KEPT_TOKENS] = model.kept_tokens.to(torch.int32)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": FORMAT, "tensors": json.dumps(meta)})
    usual_mode(path)  # safetensors creates the file 0600
    return path.stat().st_size


def load_weights(path: Path) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """The dense float32 state dict and the kept-token list (None: full vocabulary)."""
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
        if header.get("format") != FORMAT:
            raise ValueError(f"{path} is not an autocompress weights file")
        meta = json.loads(header["tensors"])
        raw = {k: f.get_tensor(k) for k in f.keys()}
    state: dict[str, torch.Tensor] = {}
    for name, info in meta.items():
        shape = info["shape"]
        n = 1
        for s in shape:
            n *= s
        nz = unpack_bitmap(raw.pop(name + "::nz"), n) if info["sparse"] else None
        if info["bits"]:
            scale = raw.pop(name + "::scale")
            count = int(nz.sum()) if nz is not None else n
            packed = raw.pop(name + "::codes")
            if info.get("packing") == "trits":
                codes = unpack_trits(packed, count)
            else:
                codes = unpack(packed, info["bits"], count)
            if nz is not None:
                full = torch.zeros(n, dtype=codes.dtype)
                full[nz] = codes
                codes = full
            state[name] = dequantize_rows(codes.view(shape), scale)
        else:
            values = raw.pop(name + "::values")
            full = torch.zeros(n, dtype=values.dtype)
            full[nz] = values
            state[name] = full.view(shape).float()
    kept = raw.pop(KEPT_TOKENS, None)
    for name, t in raw.items():
        state[name] = t.float() if t.is_floating_point() else t
    return state, (kept.long() if kept is not None else None)


# The folder's file names and architecture.json belong to the artifact module.
from .artifact import ARCHITECTURE, WEIGHTS, read_architecture, write_architecture  # noqa: F401


def save_model(model: Classifier, folder: Path, bits: int, embedding_bits: int, runtime: str | None = None) -> int:
    """Write weights + architecture into `folder`; returns the weight file's bytes.

    `runtime`: registry name of the runtime the model is measured on, recorded with the model.
    """
    from .architecture import architecture

    write_architecture(folder, architecture(model).to_dict(), runtime)
    return save_weights(model, folder / WEIGHTS, bits, embedding_bits)


def load_model(folder: Path) -> Classifier:
    """Rebuild a compressed model from `folder` (no teacher needed)."""
    from .architecture import Architecture, build

    arch = Architecture.from_dict(read_architecture(folder))
    state, kept = load_weights(folder / WEIGHTS)
    model = build(arch, kept)
    model.load_state_dict(state, strict=True)
    return model.eval()
