"""Side-by-side latency of stored model folders: every folder and batch size measured, each on its
recorded runtime, interleaved within rounds, runtime files cleaned up. No assertion on timing values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from autocompress.engine import artifact
from autocompress.engine.model import Classifier
from autocompress.engine.storage import save_model
from autocompress.engine.errors import ArtifactError
from autocompress.engine.recipe import Recipe
from autocompress.search import remeasure
from autocompress.search.remeasure import side_by_side
from autocompress.testing import make_teacher_dir, tiny_config

FAST = {"threads": 1, "rounds": 2, "repeats": 1, "warmup": 0}


def model_folder(folder: Path, *, layers: int, bits: int = 32, runtime: str | None = "torch",
                 tokenizer: bool = False) -> Path:
    """A model folder as a trial writes it, built directly: weights + architecture.json (+ runtime) +
    recipe.json, and the teacher's tokenizer when asked. `layers` tells the folders' models apart."""
    from transformers import BertForSequenceClassification

    torch.manual_seed(layers)
    model = Classifier(BertForSequenceClassification(tiny_config(num_hidden_layers=layers))).eval()
    recipe = Recipe(bits=bits)
    save_model(model, folder, recipe.bits, recipe.emb_bits, runtime=runtime)
    (folder / artifact.RECIPE).write_text(json.dumps(recipe.to_dict()))
    if tokenizer:
        teacher = make_teacher_dir(folder.parent / f"{folder.name}-teacher")
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(teacher)).save_pretrained(folder / artifact.TOKENIZER)
    return folder


@pytest.fixture
def folders(tmp_path) -> dict[str, Path]:
    """The teacher in fp32, a candidate in int8 and a shallower fp32 one, all on torch eager."""
    return {"teacher": model_folder(tmp_path / "teacher", layers=3, tokenizer=True),
            "int8": model_folder(tmp_path / "int8", layers=2, bits=8),
            "small": model_folder(tmp_path / "small", layers=1)}


@pytest.fixture
def recorded(monkeypatch):
    """Wrap every session `side_by_side` builds: record (layers, target, batch, input tensors) per run call."""
    calls: list[dict] = []
    real = remeasure.open_session

    def spy(folder, model, bits, target, threads, workdir):
        session = real(folder, model, bits, target, threads, workdir)
        layers = len(model.encoder_layers)

        def run(ids, mask, types):
            calls.append({"layers": layers, "bits": bits, "target": target, "workdir": workdir,
                          "ids": ids, "mask": mask, "types": types})
            return session.run(ids, mask, types)

        return type(session)(session.name, run, session.fast_kernel, session.note, session.files)

    monkeypatch.setattr(remeasure, "open_session", spy)
    return calls


def test_every_folder_and_batch_size_measured(folders):
    out = side_by_side(folders, seq_len=12, batch_sizes=(1, 4), **FAST)
    assert set(out) == set(folders)
    for key in folders:
        assert set(out[key]) == {1, 4}
        assert all(math.isfinite(v) and v > 0 for v in out[key].values())


def test_default_batch_sizes_and_non_string_keys(folders):
    out = side_by_side({i: f for i, f in enumerate(folders.values())}, seq_len=8, threads=1, rounds=1, repeats=1,
                       warmup=0)
    assert list(out) == [0, 1, 2]
    assert all(set(v) == {1, 32} for v in out.values())


def test_int8_and_fp32_folders_together(folders, recorded):
    out = side_by_side({"teacher": folders["teacher"], "int8": folders["int8"]}, seq_len=10, batch_sizes=(2,), **FAST)
    assert set(out) == {"teacher", "int8"} and all(v[2] > 0 for v in out.values())
    assert {(c["layers"], c["bits"]) for c in recorded} == {(3, 32), (2, 8)}


def test_calls_alternate_between_folders_within_rounds(folders, recorded):
    side_by_side(folders, seq_len=12, batch_sizes=(1, 3), threads=1, rounds=3, repeats=2, warmup=1)
    # consecutive calls on the same model and batch are one latency_ms call (warm-up + repeats)
    steps = [(c["layers"], int(c["ids"].shape[0])) for c in recorded]
    collapsed = [s for i, s in enumerate(steps) if i == 0 or s != steps[i - 1]]
    # every round times every model on every batch; the order of the models rotates by one each round
    a, b, c = [(3, 1), (3, 3)], [(2, 1), (2, 3)], [(1, 1), (1, 3)]
    assert collapsed == a + b + c + b + c + a + c + a + b
    assert len(steps) == 3 * 3 * 2 * (2 + 1)


def test_inputs_are_full_length_rows_of_the_first_folders_tokenizer(folders, recorded):
    side_by_side(folders, seq_len=9, batch_sizes=(1, 5), **FAST)
    for c in recorded:
        bs = c["ids"].shape[0]
        assert c["ids"].shape == (bs, 9) and bs in (1, 5)
        assert torch.equal(c["mask"], torch.ones(bs, 9, dtype=torch.long))
        assert torch.equal(c["types"], torch.zeros(bs, 9, dtype=torch.long))
    ids = recorded[0]["ids"][0].tolist()
    assert ids[0] == 2 and ids[-1] == 3  # [CLS] ... [SEP] of the tiny teacher's vocabulary
    assert all(torch.equal(c["ids"][0], recorded[0]["ids"][0]) for c in recorded)  # one input row for all


def test_recorded_runtime_used_and_its_files_removed(tmp_path, folders, recorded):
    onnx = model_folder(tmp_path / "onnx8", layers=2, bits=8, runtime="onnxruntime")
    legacy = model_folder(tmp_path / "legacy", layers=1, runtime=None)  # no runtime recorded, no metrics.json
    work = tmp_path / "work"
    out = side_by_side({"teacher": folders["teacher"], "onnx": onnx, "legacy": legacy}, seq_len=8,
                       batch_sizes=(1, 2), workdir=work, **FAST)
    assert all(v > 0 for row in out.values() for v in row.values())
    targets = {c["layers"]: c["target"] for c in recorded}
    assert targets == {3: "torch", 2: "onnxruntime", 1: "torch"}
    assert all(work in c["workdir"].parents for c in recorded)
    assert list(work.iterdir()) == []  # the ONNX files went with the temporary directory


def test_runtime_guessed_from_metrics_for_older_folders(tmp_path, folders, recorded):
    old = model_folder(tmp_path / "old", layers=1, runtime=None)
    (old / artifact.METRICS).write_text(json.dumps({"runtime": "onnxruntime-fp32"}))
    side_by_side({"teacher": folders["teacher"], "old": old}, seq_len=8, batch_sizes=(1,), **FAST)
    assert {c["layers"]: c["target"] for c in recorded} == {3: "torch", 1: "onnxruntime"}


def test_missing_folder_named(tmp_path, folders):
    gone = tmp_path / "trials" / "7"
    with pytest.raises(ArtifactError, match="no such model folder") as err:
        side_by_side({**folders, "gone": gone}, seq_len=8, **FAST)
    assert str(gone) in str(err.value)


@pytest.mark.parametrize("name", [artifact.WEIGHTS, artifact.ARCHITECTURE, artifact.RECIPE])
def test_incomplete_folder_named(folders, name):
    (folders["int8"] / name).unlink()
    with pytest.raises(ArtifactError, match=f"missing {name}") as err:
        side_by_side(folders, seq_len=8, **FAST)
    assert str(folders["int8"]) in str(err.value)


def test_first_folder_without_tokenizer(folders):
    with pytest.raises(ArtifactError, match="missing tokenizer/") as err:
        side_by_side({"int8": folders["int8"], "teacher": folders["teacher"]}, seq_len=8, **FAST)
    assert str(folders["int8"]) in str(err.value)


@pytest.mark.parametrize("broken", ["weights", "recipe", "runtime"])
def test_unloadable_folder_named(folders, broken):
    folder = folders["small"]
    if broken == "weights":
        (folder / artifact.WEIGHTS).write_bytes(b"not safetensors")
    elif broken == "recipe":
        (folder / artifact.RECIPE).write_text(json.dumps({"layers": None}))
    else:
        spec = json.loads((folder / artifact.ARCHITECTURE).read_text())
        (folder / artifact.ARCHITECTURE).write_text(json.dumps({**spec, "runtime": "tpu"}))
    with pytest.raises(ArtifactError) as err:
        side_by_side(folders, seq_len=8, **FAST)
    assert str(folder) in str(err.value)


def test_no_folders():
    with pytest.raises(ValueError, match="at least one"):
        side_by_side({}, seq_len=8, threads=1)
