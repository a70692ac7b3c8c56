"""Export a compressed model to a self-contained folder, and load it back without the teacher,
the study or MLflow. Weights stay in their compressed form; nothing is loaded with pickle.

Folder layout:
    weights.safetensors   packed k-bit codes + scales, sparse bitmaps, pruned shapes / vocabulary
    architecture.json     layers kept, heads and FFN width per layer, vocabulary map
    recipe.json           the Recipe that built it
    metrics.json          what the trial measured (accuracy, bytes, latency, runtime)
    task.json             label names, max length, single sentence or pair
    tokenizer/            the teacher's tokenizer
    manifest.json         sha256 of every file, checked on load
    README.md             a short model card
    model.onnx            with --format onnx (int8 for ONNX Runtime when the recipe is 8-bit)
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__
from ._io import atomic_dir, file_digest, write_json
from .errors import ArtifactError, ConfigError

FILES = ("weights.safetensors", "architecture.json", "recipe.json", "metrics.json", "task.json")
MANIFEST = "manifest.json"
FORMAT = "autocompress-export-v1"


def _listing(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): file_digest(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def export_folder(trial_folder: Path, out: Path, *, force: bool = False, onnx: bool = False,
                  threads: int = 2) -> Path:
    """Copy a trial's compressed model into `out` with a manifest and a model card."""
    trial_folder = Path(trial_folder)
    missing = [f for f in FILES if not (trial_folder / f).is_file()]
    if missing or not (trial_folder / "tokenizer").is_dir():
        raise ArtifactError(f"{trial_folder}: not a complete trial folder (missing {', '.join(missing) or 'tokenizer/'})")
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; choose another --out or pass --force to replace it")
    with atomic_dir(out) as tmp:
        for f in FILES:
            shutil.copy2(trial_folder / f, tmp / f)
        shutil.copytree(trial_folder / "tokenizer", tmp / "tokenizer")
        recipe = json.loads((tmp / "recipe.json").read_text())
        metrics = json.loads((tmp / "metrics.json").read_text())
        if onnx:
            from .engine.runtime import onnx_runtime
            from .engine.storage import load_model

            rt = onnx_runtime(load_model(tmp), int(recipe["bits"]), tmp / "_onnx", threads)
            shutil.move(str(rt.artifact), tmp / "model.onnx")
            shutil.rmtree(tmp / "_onnx")
        (tmp / "README.md").write_text(model_card(recipe, metrics, onnx))
        write_json(tmp / MANIFEST, {"format": FORMAT, "autocompress": __version__, "files": _listing(tmp)})
    return out


def model_card(recipe: dict, m: dict, onnx: bool) -> str:
    from .search.report import summarize

    lines = [
        "# Compressed text classifier (autocompress)",
        "",
        f"Recipe: {summarize(recipe)}.",
        "",
        "| measured | value |",
        "|---|---|",
        f"| dev accuracy | {m['accuracy']:.4f}" + (f" ({m['retention']:.1%} of the teacher)" if "retention" in m else "") + " |",
        f"| weights on disk | {m['weight_bytes']:,} bytes |",
        f"| latency batch 1 / 32 | {m['latency_ms_b1']:.2f} / {m['latency_ms_b32']:.1f} ms ({m['threads']} threads, "
        f"length {m['seq_len']}) |",
        f"| runtime | {m['runtime']}: {m['runtime_note']} |",
        f"| shape | {m['layers']} layers, {m['heads']} heads, {m['ffn']} FFN neurons, vocabulary {m['vocab']} |",
        "",
        "Load it with `autocompress.load_compressed(folder)`, or `autocompress predict folder \"text\"`.",
    ]
    if onnx:
        lines.append("`model.onnx` runs in ONNX Runtime with inputs input_ids, attention_mask, token_type_ids.")
    return "\n".join(lines) + "\n"


def verify(folder: Path) -> dict:
    """Check the manifest against the files; raise ArtifactError naming the first problem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: no such export folder")
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        raise ArtifactError(f"{folder}: missing or unreadable {MANIFEST}; re-export the model") from None
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{folder}: unknown export format {manifest.get('format')!r}")
    for name, digest in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise ArtifactError(f"{folder}: {name} is missing; re-export the model")
        if file_digest(path) != digest:
            raise ArtifactError(f"{folder}: {name} is corrupted (checksum mismatch); re-export the model")
    return manifest


@dataclass
class CompressedModel:
    """A reloaded compressed model, run on the runtime it was measured on."""

    model: torch.nn.Module
    tokenizer: object
    label_names: list[str]
    max_length: int
    recipe: dict
    metrics: dict
    run: object  # (input_ids, attention_mask, token_type_ids) -> logits

    def logits(self, texts: list[str], pairs: list[str] | None = None, batch_size: int = 64) -> np.ndarray:
        out = []
        for i in range(0, len(texts), batch_size):
            b = self.tokenizer(texts[i : i + batch_size], pairs[i : i + batch_size] if pairs else None,
                               truncation=True, max_length=self.max_length, padding=True, return_tensors="pt",
                               return_token_type_ids=True)
            with torch.inference_mode():
                out.append(np.asarray(self.run(b["input_ids"], b["attention_mask"], b["token_type_ids"]),
                                      dtype=np.float32))
        return np.concatenate(out) if out else np.zeros((0, len(self.label_names)), np.float32)

    def predict(self, texts: list[str], pairs: list[str] | None = None) -> list[str]:
        return [self.label_names[i] for i in self.logits(texts, pairs).argmax(-1)]


def load_compressed(folder: str | Path, runtime: str | None = None, threads: int | None = None) -> CompressedModel:
    """Rebuild an exported (or trial) model: weights, shapes, tokenizer and the measured runtime."""
    from transformers import AutoTokenizer

    from .engine.runtime import make_runtime
    from .engine.storage import load_model

    folder = Path(folder)
    if (folder / MANIFEST).exists() or not (folder / "weights.safetensors").exists():
        verify(folder)
    try:
        recipe = json.loads((folder / "recipe.json").read_text())
        metrics = json.loads((folder / "metrics.json").read_text())
        task = json.loads((folder / "task.json").read_text())
        model = load_model(folder)
        tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise ArtifactError(f"{folder}: cannot be loaded ({str(err).splitlines()[0]}); re-export the model") from None
    target = runtime or ("onnxruntime" if str(metrics.get("runtime", "")).startswith("onnxruntime") else "torch")
    n_threads = threads or int(metrics.get("threads", 2))
    import tempfile

    rt = make_runtime(model, int(recipe["bits"]), target, Path(tempfile.mkdtemp(prefix="autocompress-rt-")), n_threads)
    torch.set_num_threads(n_threads)
    return CompressedModel(model, tokenizer, task["label_names"], int(task["max_length"]), recipe, metrics, rt.run)
