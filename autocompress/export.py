"""Export a compressed model to a self-contained folder, and load it back without the teacher,
the study or MLflow. Weights stay in their compressed form; nothing is loaded with pickle.

The folder's files, its manifest and the recorded runtime belong to `autocompress.engine.artifact`.
An export adds manifest.json (sha256 of every file, checked on load), README.md (a model card)
and, for a runtime that loads its own files (`--format onnx`, `--format openvino`), those files
(model.onnx: int8 for ONNX Runtime when the recipe is 8-bit; model.xml + model.bin) and predict.py,
which runs them with only that runtime, tokenizers and numpy installed (no torch).
"""

from __future__ import annotations

import json
import gc
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .engine import artifact
from .engine._io import atomic_dir
from .engine.artifact import MANIFEST, verify
from .describe import summarize
from .engine.metrics import Metrics
from .engine.runtimes import Session, for_format
from .engine.runtimes import get as get_runtime
from .engine.runtimes.openvino_runtime import XML
from .engine.errors import ArtifactError, ConfigError

DEFAULT_RUNTIME = "torch"
STANDALONE = {artifact.ONNX: "onnxruntime", XML: "openvino"}
"""The runtime files predict.py runs, and the package each needs (besides tokenizers and numpy)."""


def export_folder(trial_folder: Path, out: Path, *, force: bool = False, threads: int = 2,
                  fmt: str | None = None) -> Path:
    """Copy a trial's compressed model into `out` with a manifest and a model card.

    `fmt` is one of `autocompress.engine.runtimes.export_formats()`; None means the format of the
    runtime the trial was measured on. A runtime that loads its own files (ONNX, OpenVINO) gets the
    files the trial was measured with, copied as they are; for another runtime they are built from
    the weights (refused when that needs calibration rows the export does not have).
    """
    trial_folder = Path(trial_folder)
    missing = artifact.missing_files(trial_folder)
    if missing or not (trial_folder / artifact.TOKENIZER).is_dir():
        raise ArtifactError(f"{trial_folder}: not a complete trial folder "
                            f"(missing {', '.join(missing) or artifact.TOKENIZER + '/'})")
    recipe = artifact.read_json(trial_folder, artifact.RECIPE)
    metrics = artifact.read_json(trial_folder, artifact.METRICS)
    bits = int(recipe["bits"])
    measured = measured_runtime(trial_folder, metrics)
    try:
        runtime = get_runtime(measured) if fmt is None else for_format(fmt)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    deployed = trial_folder / artifact.RUNTIME_DIR
    measured_files = runtime.name == measured and _has_files(deployed, runtime.export_files)
    if runtime.export_files and not measured_files and runtime.needs_calibration(bits):
        raise ConfigError(f"--format {runtime.export_format}: {runtime.name} at {bits} bits calibrates on training "
                          f"rows, which an export does not have; export with --format "
                          f"{get_runtime(measured).export_format} (what the trial was measured on)")
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; choose another --out or pass --force to replace it")
    with atomic_dir(out) as tmp:
        for name in artifact.MODEL_FILES:
            shutil.copy2(trial_folder / name, tmp / name)
        shutil.copytree(trial_folder / artifact.TOKENIZER, tmp / artifact.TOKENIZER)
        shipped: list[str] = []
        if measured_files:
            for name in runtime.export_files:
                shutil.copy2(deployed / name, tmp / name)
            shipped = list(runtime.export_files)
        elif runtime.export_files:
            from .engine.storage import load_model

            work = tmp / "_runtime"
            session = runtime.build(load_model(tmp), bits, work, threads)
            for f in session.files:
                shutil.move(str(f), tmp / f.name)
                shipped.append(f.name)
            shutil.rmtree(work)
        # the standalone script answers as a classifier does: other task types load with autocompress
        task_type = artifact.read_json(tmp, artifact.TASK).get("task", "classification")
        standalone = ship_predict_script(tmp, shipped)
        if task_type == "embedding":  # SentenceTransformer(folder, trust_remote_code=True) loads it
            write_sentence_transformers_files(tmp)
        card = model_card(recipe, Metrics.from_dict(metrics), runtime.name, shipped, standalone)
        (tmp / artifact.CARD).write_text(card)
        artifact.write_manifest(tmp, runtime.name if shipped else None)
    return out


SENTENCE_TRANSFORMERS = [{"idx": 0, "name": "0", "path": "",
                          "type": "autocompress.sentence_transformers_module.CompressedEmbedder"}]
"""An embedding export's modules.json: autocompress's module alone (it pools; `encode(normalize_embeddings=True)`
normalizes)."""


def write_sentence_transformers_files(folder: Path) -> None:
    """modules.json and config_sentence_transformers.json for an embedding export in `folder`."""
    (folder / "modules.json").write_text(json.dumps(SENTENCE_TRANSFORMERS, indent=2) + "\n")
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps({"similarity_fn_name": "cosine", "prompts": {}, "default_prompt_name": None}, indent=2) + "\n")


def ship_predict_script(folder: Path, shipped: list[str]) -> str | None:
    """Write predict.py (autocompress/deploy_script.py) into an export that ships files it can run, and
    tokenizer/tokenizer.json if the tokenizer lacks it; returns the package it runs them with (None: no
    script, the export ships no such file)."""
    package = next((STANDALONE[n] for n in shipped if n in STANDALONE), None)
    if package is None:
        return None
    from importlib.resources import files

    write_tokenizer_json(folder / artifact.TOKENIZER)
    source = files("autocompress").joinpath("deploy_script.py").read_text()
    (folder / artifact.PREDICT).write_text(source)
    return package


def write_tokenizer_json(tokenizer_dir: Path) -> None:
    """Make sure `tokenizer_dir` holds tokenizer.json (what `tokenizers.Tokenizer.from_file` reads);
    ConfigError when the tokenizer has no `tokenizers` form to save."""
    path = tokenizer_dir / artifact.TOKENIZER_JSON
    if path.is_file():
        return
    from transformers import AutoTokenizer

    backend = getattr(AutoTokenizer.from_pretrained(str(tokenizer_dir)), "backend_tokenizer", None)
    if backend is None:
        raise ConfigError(f"{tokenizer_dir}: this tokenizer has no {artifact.TOKENIZER_JSON} form, which "
                          f"{artifact.PREDICT} needs; export with --format torch")
    backend.save(str(path), pretty=False)


def _has_files(folder: Path, names: tuple[str, ...]) -> bool:
    return bool(names) and all((folder / n).is_file() for n in names)


_KIND = {"spearman": "model", "pearson": "model", "entity_f1": "tagger"}


def model_card(recipe: dict, m: Metrics, runtime: str, shipped: list[str], standalone: str | None = None) -> str:
    """The export's README.md: what was measured, how to load it; `standalone`: the package predict.py
    runs the shipped files with (None: the export has no predict.py)."""
    share = f" ({m.retention:.1%} of the teacher)" if m.retention is not None else ""
    lines = [
        f"# Compressed text {_KIND.get(m.metric, 'classifier')} (autocompress)",
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
        *([f"| cut from | elastic network `{m.elastic_id}` |"] if m.elastic_id else []),
        "",
        "Load it with `autocompress.load_compressed(folder)`, or `autocompress predict folder \"text\"`.",
    ]
    if shipped:
        lines.append(f"{' and '.join(f'`{n}`' for n in shipped)}: what {runtime} runs (inputs input_ids, "
                     "attention_mask, token_type_ids); `load_compressed` opens them.")
    else:
        lines.append(f"{runtime} runs it from the weights file, expanded at load time.")
    if standalone:
        lines += ["", f"`{artifact.PREDICT}` runs them with only `{standalone}`, `tokenizers` and `numpy` installed "
                  f"(no torch, transformers or autocompress): `python {artifact.PREDICT} \"a text\" ...` prints "
                  "one answer per text (a label, a score, the entities or the embedding), `--json` the full "
                  "answers (texts on standard input, one per line, when none are given; a pair task takes each "
                  "pair as two texts)."]
    return "\n".join(lines) + "\n"


@dataclass
class CompressedModel:
    """A reloaded compressed model, run on the runtime it was measured on.

    model: the torch module, when torch runs it (or when asked to keep it); None otherwise, so that a
    model run by ONNX Runtime or OpenVINO holds one copy of its weights in memory, not two.
    """

    model: torch.nn.Module | None
    tokenizer: Any
    label_names: list[str]
    max_length: int
    recipe: dict
    metrics: dict
    run: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    runtime: str = DEFAULT_RUNTIME  # registry name of the runtime `run` uses
    task_type: str = "classification"  # `engine/tasks/`: what an output row is

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
        """A classifier's label of each text."""
        return [self.label_names[i] for i in self.logits(texts, pairs).argmax(-1)]

    @property
    def task(self):
        from .engine.tasks import get_task

        return get_task(self.task_type)

    def outputs(self, texts: list[str], pairs: list[str] | None = None) -> list[np.ndarray]:
        """Each text's output row (a per-token model: one row per real token)."""
        from .predictions import row_outputs

        return row_outputs(self.run, self.tokenizer, texts, pairs, self.max_length)

    def predictions(self, texts: list[str], pairs: list[str] | None = None) -> list[dict]:
        """The task's answer for each text: a label and its probabilities, a score, entities, an embedding."""
        from .predictions import predictions

        return predictions(self.task, self.run, self.tokenizer, self.label_names, texts, pairs, self.max_length)


def _return_freed_memory() -> None:
    """Hand the heap that building a session from the weights freed back to the system. glibc keeps freed
    blocks for reuse. `resident_memory` of the SST-2 benchmark's trial 57 (5 layers, 4 bits, run by ONNX Runtime;
    measured 2026-12-06): 417 MB without this, 265 MB with it; most of the rest is model code torch and
    transformers load once per process. Does nothing where there is no glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:  # a C library that cannot be opened by that name: nothing to hand back through it
        return
    if trim is not None:
        trim(0)


def measured_runtime(folder: Path, metrics: dict) -> str:
    """Registry name of the runtime the model was measured on: as recorded with the model, or,
    for folders written before it was recorded, guessed from the measured runtime's display name."""
    recorded = artifact.recorded_runtime(folder)
    if recorded is not None:
        return recorded
    return "onnxruntime" if str(metrics.get("runtime", "")).startswith("onnxruntime") else DEFAULT_RUNTIME


def open_session(folder: Path, model: torch.nn.Module | Callable[[], torch.nn.Module], bits: int, target: str,
                 threads: int, workdir: Path | None = None) -> Session:
    """The model of `folder` as a session on runtime `target`: the runtime files the folder holds
    (in runtime/ for a trial, at the top for an export), which is what was measured, else a session
    built from the weights (in `workdir`; without one, in a temporary folder removed once the session is open).

    `model` may be a function that loads it: it is then only called when no runtime file serves."""
    rt = get_runtime(target)
    # the files there were measured on `target` (a trial), or exported for it (an export's manifest)
    if target in (artifact.recorded_runtime(folder), artifact.shipped_runtime(folder)):
        for place in (folder / artifact.RUNTIME_DIR, folder):
            if _has_files(place, rt.export_files):
                try:
                    return rt.open(place, bits, threads)
                except FileNotFoundError:  # this precision deploys no file of its own
                    break
    if rt.needs_calibration(bits):
        raise ValueError(f"{target} at {bits} bits needs the runtime files it was measured with "
                         f"({', '.join(rt.export_files)}), which the folder lacks; re-export the trial")
    module = model if isinstance(model, torch.nn.Module) else model()
    if workdir is not None:
        return rt.build(module, bits, workdir, threads)
    scratch = Path(tempfile.mkdtemp(prefix="autocompress-rt-"))
    try:  # a session holds what it runs once it is open: the files it was built from go with the folder
        return rt.build(module, bits, scratch, threads)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def load_compressed(folder: str | Path, runtime: str | None = None, threads: int | None = None,
                    keep_torch: bool = False) -> CompressedModel:
    """Rebuild an exported (or trial) model: weights, shapes, tokenizer and the measured runtime.

    runtime: a registry name; by default the runtime whose own files the export ships (`--format onnx`,
    `--format openvino`), else the runtime the model was measured on.
    keep_torch: keep the torch module (`.model`) beside another runtime's session. By default a
    runtime that runs its own files (an ONNX graph, an OpenVINO IR) opens them without the torch
    module ever being built, and one that builds its session from the weights releases the module
    once the session is open.
    """
    from transformers import AutoTokenizer

    from .engine.storage import load_model

    folder = Path(folder)
    if (folder / MANIFEST).exists() or not (folder / artifact.WEIGHTS).exists():
        verify(folder)

    def fail(err: Exception) -> ArtifactError:
        return ArtifactError(f"{folder}: cannot be loaded ({str(err).splitlines()[0]}); re-export the model")

    built: list[torch.nn.Module] = []

    def torch_model() -> torch.nn.Module:
        if not built:
            try:
                built.append(load_model(folder))
            except (OSError, KeyError, ValueError, RuntimeError) as err:
                raise fail(err) from None
        return built[0]

    try:
        recipe = artifact.read_json(folder, artifact.RECIPE)
        metrics = artifact.read_json(folder, artifact.METRICS)
        task = artifact.read_json(folder, artifact.TASK)
        tokenizer = AutoTokenizer.from_pretrained(str(folder / artifact.TOKENIZER))
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise fail(err) from None
    target = runtime or artifact.shipped_runtime(folder) or measured_runtime(folder, metrics)
    n_threads = threads or int(metrics.get("threads", 2))
    try:
        session = open_session(folder, torch_model, int(recipe["bits"]), target, n_threads)
        built_here = bool(built)  # the session was built from the torch module, not opened from its files
    except ValueError as err:  # an unknown runtime, or one that needs its measured files
        raise ArtifactError(f"{folder}: {err}") from None
    torch.set_num_threads(n_threads)
    model = torch_model() if target == DEFAULT_RUNTIME or keep_torch else None
    built.clear()
    gc.collect()
    if model is None and built_here:
        _return_freed_memory()
    return CompressedModel(model, tokenizer, task["label_names"], int(task["max_length"]), recipe, metrics,
                           session.run, target, task.get("task", "classification"))
