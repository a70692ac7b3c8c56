"""The compressed-model folder: its file names, its manifest, the runtime it was measured on, and
the precision of every tensor its weights file stores.

A trial folder and an export folder share one layout:
    weights.safetensors   packed k-bit codes + scales, sparse bitmaps, pruned shapes / vocabulary
    architecture.json     layers kept, heads and FFN width per layer, vocabulary map, and the
                          registry name of the runtime the model was measured on ("runtime")
    recipe.json           the Recipe that built it
    metrics.json          what the trial measured (accuracy, bytes, latency, runtime)
    task.json             label names, max length, single sentence or pair
    tokenizer/            the teacher's tokenizer
    manifest.json         sha256 of every file, checked on load (export folders only)
    README.md             a short model card (export folders only)
    model.onnx            with `export --format onnx` (model.xml + model.bin with `--format openvino`)
    predict.py            with an export that ships a runtime's own files: runs them with only that
                          runtime, tokenizers and numpy (no torch, transformers or autocompress)

Only light imports here (no torch): the CLI and the engine both use these names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._io import file_digest, write_json
from .errors import ArtifactError

WEIGHTS = "weights.safetensors"
ARCHITECTURE = "architecture.json"
RECIPE = "recipe.json"
METRICS = "metrics.json"
TASK = "task.json"
TOKENIZER = "tokenizer"
MANIFEST = "manifest.json"
CARD = "README.md"
ONNX = "model.onnx"
PREDICT = "predict.py"
"""The standalone script an export ships beside a runtime's own files (from autocompress/deploy_script.py)."""
TOKENIZER_JSON = "tokenizer.json"
"""The file in tokenizer/ that `tokenizers.Tokenizer.from_file` reads (what predict.py tokenizes with)."""
RUNTIME_DIR = "runtime"
"""The folder holding what a runtime deploys besides the weights (its ONNX or OpenVINO files)."""

MODEL_FILES = (WEIGHTS, ARCHITECTURE, RECIPE, METRICS, TASK)
"""The files of a complete trial folder, besides the tokenizer/ folder."""
TASK_FILES = (TASK, TOKENIZER)
"""What every candidate of one task ships besides its model: label names and the tokenizer."""

FORMAT = "autocompress-export-v1"
RUNTIME_KEY = "runtime"


# ---- reading and writing the model's files ------------------------------------------------------


def save_tokenizer(tokenizer: Any, folder: Path) -> None:
    """Save `tokenizer` into `folder` as transformers does, with tokenizer.json (when it has that form) written
    without indentation: the same tokenizer in about two thirds of the bytes that every model ships."""
    tokenizer.save_pretrained(folder)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and (folder / TOKENIZER_JSON).is_file():
        backend.save(str(folder / TOKENIZER_JSON), pretty=False)


def missing_files(folder: Path) -> list[str]:
    """Which of MODEL_FILES the folder lacks, in layout order (the tokenizer/ folder not checked)."""
    return [name for name in MODEL_FILES if not (folder / name).is_file()]


def read_json(folder: Path, name: str) -> Any:
    """One JSON file of the folder (OSError / ValueError propagate to the caller)."""
    return json.loads((folder / name).read_text())


def write_architecture(folder: Path, spec: dict[str, Any], runtime: str | None = None) -> None:
    """Write architecture.json; `runtime` (a registry name) is recorded beside the shapes."""
    data = dict(spec)
    if runtime is not None:
        data[RUNTIME_KEY] = runtime
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ARCHITECTURE).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_architecture(folder: Path) -> dict[str, Any]:
    """The architecture spec as written (the runtime entry removed)."""
    data = read_json(folder, ARCHITECTURE)
    data.pop(RUNTIME_KEY, None)
    return data


def recorded_runtime(folder: Path) -> str | None:
    """Registry name of the runtime the model was measured on; None for folders that predate it."""
    try:
        value = read_json(folder, ARCHITECTURE).get(RUNTIME_KEY)
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def run_bytes(folder: Path, *model_files: Path) -> int:
    """Bytes on disk of everything running the model needs: its model files (the weights, or the
    runtime's own files such as model.onnx), architecture.json, task.json and the tokenizer files."""
    files = [*map(Path, model_files), folder / ARCHITECTURE, folder / TASK]
    files += [p for p in sorted((folder / TOKENIZER).rglob("*")) if p.is_file()]
    return sum(p.stat().st_size for p in files if p.is_file())


# ---- manifest --------------------------------------------------------------------------------------


def listing(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` (relative paths, sorted), the manifest left out."""
    return {str(p.relative_to(folder)): file_digest(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def write_manifest(folder: Path, runtime: str | None = None) -> dict[str, Any]:
    """Record the digest of every file in manifest.json, and `runtime`, the registry name of the runtime
    whose own files the folder ships (none: the weights are what runs); returns what was written."""
    from . import __version__

    manifest: dict[str, Any] = {"format": FORMAT, "autocompress": __version__, "files": listing(folder)}
    if runtime is not None:
        manifest[RUNTIME_KEY] = runtime
    write_json(folder / MANIFEST, manifest)
    return manifest


def shipped_runtime(folder: Path) -> str | None:
    """Registry name of the runtime whose own files an export ships (its manifest's record); None for a
    trial folder, an export of the weights alone, or an export written before it was recorded."""
    try:
        value = read_json(folder, MANIFEST).get(RUNTIME_KEY)
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def verify(folder: Path) -> dict[str, Any]:
    """Check the manifest against the files; raise ArtifactError naming the first problem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: no such export folder")
    try:
        manifest = read_json(folder, MANIFEST)
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


# ---- per-tensor precision from the weights header ----------------------------------------------------

_DTYPES = {"F64": ("float64", 64), "F32": ("float32", 32), "F16": ("float16", 16), "BF16": ("bfloat16", 16),
           "I64": ("int64", 64), "I32": ("int32", 32), "I16": ("int16", 16), "I8": ("int8", 8),
           "U8": ("uint8", 8), "BOOL": ("bool", 8)}


@dataclass(frozen=True)
class TensorPrecision:
    """How one tensor is stored: `bits` per value, `dtype` of the values, `sparse` when only its
    nonzeros are stored (with an occupancy bitmap). Quantized tensors have dtype 'int<k>'."""

    bits: int
    dtype: str
    sparse: bool
    shape: tuple[int, ...]


def _stored(path: Path) -> tuple[dict[str, Any], dict[str, tuple[str, list[int]]]]:
    """The weights file's packing metadata and (dtype, shape) of every stored tensor, without loading one."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            stored = {k: (f.get_slice(k).get_dtype(), f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as err:  # missing file, or not a safetensors file
        raise ArtifactError(f"{path}: unreadable weights header ({str(err).splitlines()[0]})") from None
    if "tensors" not in meta:
        raise ArtifactError(f"{path}: not an autocompress weights file")
    return json.loads(meta["tensors"]), stored


def tensor_precisions(path: Path) -> dict[str, TensorPrecision]:
    """Precision of every stored tensor, read from the weights file's header (no tensor is loaded).

    `path` is a weights file or a folder holding one.
    """
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS
    packed, stored = _stored(path)
    out: dict[str, TensorPrecision] = {}
    for name, info in packed.items():
        shape = tuple(int(s) for s in info["shape"])
        k = int(info["bits"])
        if k:
            out[name] = TensorPrecision(k, f"int{k}", bool(info["sparse"]), shape)
        else:  # float values of a sparse tensor
            dtype, bits = _DTYPES[stored[name + "::values"][0]]
            out[name] = TensorPrecision(bits, dtype, True, shape)
    for name, (code, dims) in stored.items():
        if "::" in name:
            continue
        dtype, bits = _DTYPES[code]
        out[name] = TensorPrecision(bits, dtype, False, tuple(int(s) for s in dims))
    return out
