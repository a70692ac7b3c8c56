"""Side-by-side latency of stored models, for the speed ratios (x faster) reports show.

The teacher and the candidates are timed interleaved in one process, on the same input batches,
so a ratio compares two measurements taken under the same machine load, not a candidate with a
teacher latency stored once when the study was created. Each folder is a trial or export folder
(weights.safetensors, architecture.json, recipe.json with "bits") and runs on the runtime
recorded with it, resolved as `load_compressed` resolves it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import torch
from safetensors import SafetensorError

from ..engine import artifact
from ..engine.measure import interleaved_latency
from ..engine.runtimes import RunFn
from ..engine.storage import load_model
from ..engine.errors import ArtifactError
from ..export import measured_runtime, open_session

K = TypeVar("K", bound=Hashable)

TEXT = "The film was slow at first, but the acting is good and the ending made it worth watching."
NEEDED = (artifact.WEIGHTS, artifact.ARCHITECTURE, artifact.RECIPE)


def _check(folder: Path) -> None:
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: no such model folder")
    missing = [name for name in NEEDED if not (folder / name).is_file()]
    if missing:
        raise ArtifactError(f"{folder}: not a complete model folder (missing {', '.join(missing)})")


def latency_batches(folder: Path, seq_len: int, batch_sizes: Sequence[int]) -> dict[int, dict[str, torch.Tensor]]:
    """`TEXT` in the folder's tokenizer, repeated and cut to exactly `seq_len` tokens, one batch per size."""
    from transformers import AutoTokenizer

    if not (folder / artifact.TOKENIZER).is_dir():
        raise ArtifactError(f"{folder}: not a complete model folder (missing {artifact.TOKENIZER}/)")
    tokenizer = AutoTokenizer.from_pretrained(str(folder / artifact.TOKENIZER))
    ids = tokenizer(" ".join([TEXT] * seq_len), truncation=True, max_length=seq_len)["input_ids"]
    row = torch.tensor([ids], dtype=torch.long)
    return {bs: {"input_ids": row.repeat(bs, 1), "attention_mask": torch.ones_like(row).repeat(bs, 1),
                 "token_type_ids": torch.zeros_like(row).repeat(bs, 1)} for bs in batch_sizes}


def _run(folder: Path, workdir: Path, threads: int) -> RunFn:
    """The folder's model as a session on its recorded runtime (files it needs under `workdir`)."""
    try:
        bits = int(artifact.read_json(folder, artifact.RECIPE)["bits"])
        metrics = artifact.read_json(folder, artifact.METRICS) if (folder / artifact.METRICS).is_file() else {}
        model = load_model(folder)
    except (OSError, KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as err:
        raise ArtifactError(f"{folder}: cannot be loaded ({str(err).splitlines()[0]})") from None
    try:
        return open_session(folder, model, bits, measured_runtime(folder, metrics), threads, workdir).run
    except ValueError as err:  # a runtime the registry does not know, or measured files missing
        raise ArtifactError(f"{folder}: {err}") from None


def side_by_side(
    folders: Mapping[K, Path], *, seq_len: int, batch_sizes: Sequence[int] = (1, 32), threads: int,
    rounds: int = 5, repeats: int = 10, warmup: int = 2, workdir: Path | None = None,
) -> dict[K, dict[int, float]]:
    """Median milliseconds of every folder's model at every batch size, timed interleaved.

    Inputs come from the first folder's tokenizer. Runtime files (e.g. ONNX) go in a temporary
    directory, under `workdir` when given, removed afterwards.
    """
    paths = {key: Path(folder) for key, folder in folders.items()}
    if not paths:
        raise ValueError("side_by_side needs at least one model folder")
    for folder in paths.values():
        _check(folder)
    inputs = latency_batches(next(iter(paths.values())), seq_len, batch_sizes)
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="autocompress-remeasure-", dir=workdir) as tmp:
        runs = {str(i): _run(folder, Path(tmp) / str(i), threads) for i, folder in enumerate(paths.values())}
        timed = interleaved_latency(runs, inputs, rounds=rounds, repeats=repeats, warmup=warmup, threads=threads)
    return {key: timed[str(i)] for i, key in enumerate(paths)}
