"""Export a compressed model to a self-contained folder, and load it back without the teacher,
the study or MLflow. Weights stay in their compressed form; nothing is loaded with pickle.

The folder's files, its manifest and the recorded runtime belong to `autocompress.artifact`.
An export adds manifest.json (sha256 of every file, checked on load), README.md (a model card)
and, for a runtime that loads its own file (`--format onnx`), that file (model.onnx: int8 for
ONNX Runtime when the recipe is 8-bit).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import artifact
from ._io import atomic_dir
from .artifact import MANIFEST, verify
from .describe import summarize
from .engine.metrics import Metrics
from .engine.runtimes import for_format, make_runtime
from .errors import ArtifactError, ConfigError

DEFAULT_RUNTIME = "torch"


def export_folder(trial_folder: Path, out: Path, *, force: bool = False, threads: int = 2,
                  fmt: str = "torch") -> Path:
    """Copy a trial's compressed model into `out` with a manifest and a model card.

    `fmt` is one of `autocompress.engine.runtimes.export_formats()` ("torch": the compressed
    weights only; "onnx": adds model.onnx).
    """
    try:
        runtime = for_format(fmt)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    trial_folder = Path(trial_folder)
    missing = artifact.missing_files(trial_folder)
    if missing or not (trial_folder / artifact.TOKENIZER).is_dir():
        raise ArtifactError(f"{trial_folder}: not a complete trial folder "
                            f"(missing {', '.join(missing) or artifact.TOKENIZER + '/'})")
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; choose another --out or pass --force to replace it")
    with atomic_dir(out) as tmp:
        for name in artifact.MODEL_FILES:
            shutil.copy2(trial_folder / name, tmp / name)
        shutil.copytree(trial_folder / artifact.TOKENIZER, tmp / artifact.TOKENIZER)
        recipe = artifact.read_json(tmp, artifact.RECIPE)
        metrics = artifact.read_json(tmp, artifact.METRICS)
        if runtime.export_file is not None:
            from .engine.storage import load_model

            work = tmp / "_runtime"
            session = runtime.build(load_model(tmp), int(recipe["bits"]), work, threads)
            if session.artifact is not None:
                shutil.move(str(session.artifact), tmp / runtime.export_file)
            shutil.rmtree(work)
        card = model_card(recipe, Metrics.from_dict(metrics), (tmp / artifact.ONNX).is_file())
        (tmp / artifact.CARD).write_text(card)
        artifact.write_manifest(tmp)
    return out


def model_card(recipe: dict, m: Metrics, onnx: bool) -> str:
    share = f" ({m.retention:.1%} of the teacher)" if m.retention is not None else ""
    lines = [
        "# Compressed text classifier (autocompress)",
        "",
        f"Recipe: {summarize(recipe)}.",
        "",
        "| measured | value |",
        "|---|---|",
        f"| validation {m.metric} (chose this model) | {m.score:.4f}{share} |",
        f"| test {m.metric} (reported only) | {'not measured' if m.test_score is None else f'{m.test_score:.4f}'} |",
        f"| bytes to run it (model, architecture, task, tokenizer) | {m.bytes:,} |",
        f"| weights file | {m.weight_bytes:,} bytes |",
        (f"| latency batch 1 / 32 | {m.latency_ms_b1:.2f} / {m.latency_ms_b32:.1f} ms ({m.threads} threads, "
         f"length {m.seq_len}) |"),
        f"| runtime | {m.runtime}: {m.runtime_note} |",
        f"| shape | {m.layers} layers, {m.heads} heads, {m.ffn} FFN neurons, vocabulary {m.vocab} |",
        "",
        "Load it with `autocompress.load_compressed(folder)`, or `autocompress predict folder \"text\"`.",
    ]
    if onnx:
        lines.append("`model.onnx` runs in ONNX Runtime with inputs input_ids, attention_mask, token_type_ids.")
    return "\n".join(lines) + "\n"


@dataclass
class CompressedModel:
    """A reloaded compressed model, run on the runtime it was measured on."""

    model: torch.nn.Module
    tokenizer: Any
    label_names: list[str]
    max_length: int
    recipe: dict
    metrics: dict
    run: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    runtime: str = DEFAULT_RUNTIME  # registry name of the runtime `run` uses

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


def measured_runtime(folder: Path, metrics: dict) -> str:
    """Registry name of the runtime the model was measured on: as recorded with the model, or,
    for folders written before it was recorded, guessed from the measured runtime's display name."""
    recorded = artifact.recorded_runtime(folder)
    if recorded is not None:
        return recorded
    return "onnxruntime" if str(metrics.get("runtime", "")).startswith("onnxruntime") else DEFAULT_RUNTIME


def load_compressed(folder: str | Path, runtime: str | None = None, threads: int | None = None) -> CompressedModel:
    """Rebuild an exported (or trial) model: weights, shapes, tokenizer and the measured runtime."""
    from transformers import AutoTokenizer

    from .engine.storage import load_model

    folder = Path(folder)
    if (folder / MANIFEST).exists() or not (folder / artifact.WEIGHTS).exists():
        verify(folder)
    try:
        recipe = artifact.read_json(folder, artifact.RECIPE)
        metrics = artifact.read_json(folder, artifact.METRICS)
        task = artifact.read_json(folder, artifact.TASK)
        model = load_model(folder)
        tokenizer = AutoTokenizer.from_pretrained(str(folder / artifact.TOKENIZER))
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise ArtifactError(f"{folder}: cannot be loaded ({str(err).splitlines()[0]}); re-export the model") from None
    target = runtime or measured_runtime(folder, metrics)
    n_threads = threads or int(metrics.get("threads", 2))
    session = make_runtime(model, int(recipe["bits"]), target, Path(tempfile.mkdtemp(prefix="autocompress-rt-")),
                           n_threads)
    torch.set_num_threads(n_threads)
    return CompressedModel(model, tokenizer, task["label_names"], int(task["max_length"]), recipe, metrics,
                           session.run, target)
