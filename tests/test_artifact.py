"""The artifact folder: file names, the manifest, the recorded runtime, per-tensor precision."""

import hashlib
import json

import pytest
import torch

from autocompress.engine import artifact
from autocompress.engine.artifact import (
    TensorPrecision, listing, read_architecture, recorded_runtime, tensor_precisions, verify, write_architecture,
    write_manifest,
)
from autocompress.engine.prune import attach_masks_, magnitude_masks, prunable
from autocompress.engine.quantize import attach_fake_quant_, materialize_, quant_targets
from autocompress.engine.storage import load_model, save_model
from autocompress.engine.errors import ArtifactError
from conftest import make_tiny, random_batch


def test_file_names():
    assert (artifact.WEIGHTS, artifact.ARCHITECTURE, artifact.RECIPE, artifact.METRICS, artifact.TASK) == (
        "weights.safetensors", "architecture.json", "recipe.json", "metrics.json", "task.json")
    assert (artifact.TOKENIZER, artifact.MANIFEST, artifact.CARD, artifact.ONNX) == (
        "tokenizer", "manifest.json", "README.md", "model.onnx")
    assert artifact.MODEL_FILES == ("weights.safetensors", "architecture.json", "recipe.json", "metrics.json",
                                    "task.json")


def test_missing_files_in_layout_order(tmp_path):
    assert artifact.missing_files(tmp_path) == list(artifact.MODEL_FILES)
    (tmp_path / "recipe.json").write_text("{}")
    (tmp_path / "weights.safetensors").write_bytes(b"")
    assert artifact.missing_files(tmp_path) == ["architecture.json", "metrics.json", "task.json"]


def _folder(tmp_path):
    folder = tmp_path / "model"
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "recipe.json").write_text('{"bits": 8}\n')
    (folder / "weights.safetensors").write_bytes(bytes(range(256)) * 4)
    (folder / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    return folder


def test_manifest_round_trip(tmp_path):
    folder = _folder(tmp_path)
    written = write_manifest(folder)
    assert written["format"] == "autocompress-export-v1"
    assert set(written["files"]) == {"recipe.json", "weights.safetensors", "tokenizer/vocab.txt"}
    assert written["files"]["weights.safetensors"] == hashlib.sha256(bytes(range(256)) * 4).hexdigest()
    assert json.loads((folder / "manifest.json").read_text()) == written
    assert verify(folder) == written
    assert listing(folder) == written["files"]  # the manifest does not list itself


@pytest.mark.parametrize("tamper, message", [
    (lambda f: (f / "recipe.json").write_text('{"bits": 4}\n'), "recipe.json is corrupted"),
    (lambda f: (f / "tokenizer" / "vocab.txt").unlink(), "tokenizer/vocab.txt is missing"),
    (lambda f: (f / "manifest.json").unlink(), "missing or unreadable manifest.json"),
    (lambda f: (f / "manifest.json").write_text('{"format": "v0", "files": {}}'), "unknown export format 'v0'"),
])
def test_tampering_is_detected(tmp_path, tamper, message):
    folder = _folder(tmp_path)
    write_manifest(folder)
    tamper(folder)
    with pytest.raises(ArtifactError, match=message):
        verify(folder)


def test_no_such_folder(tmp_path):
    with pytest.raises(ArtifactError, match="no such export folder"):
        verify(tmp_path / "nowhere")


def test_runtime_is_recorded_beside_the_architecture(tmp_path):
    model = make_tiny(seed=5)
    save_model(model, tmp_path / "a", 32, 32, runtime="onnxruntime")
    assert recorded_runtime(tmp_path / "a") == "onnxruntime"
    assert "runtime" not in read_architecture(tmp_path / "a")
    x = random_batch(4, 8, seed=6)
    assert torch.allclose(load_model(tmp_path / "a")(**x), model(**x), atol=1e-6)  # still loads
    save_model(model, tmp_path / "b", 32, 32)  # nothing recorded: folders written before this existed
    assert recorded_runtime(tmp_path / "b") is None
    assert read_architecture(tmp_path / "a") == read_architecture(tmp_path / "b")
    assert recorded_runtime(tmp_path / "nowhere") is None
    write_architecture(tmp_path / "c", {"heads": [4]}, runtime="torch")
    assert json.loads((tmp_path / "c" / "architecture.json").read_text()) == {"heads": [4], "runtime": "torch"}


def _quantized(bits: int, emb_bits: int, sparse: float = 0.0):
    model = make_tiny(seed=1)
    if sparse:
        attach_masks_(model, magnitude_masks(model, sparse, "global"))
    attach_fake_quant_(model, bits, emb_bits)
    materialize_(model)
    return model.eval()


@pytest.mark.parametrize("bits, emb_bits", [(8, 8), (4, 8), (4, 4)])
def test_precision_read_back_matches_what_was_saved(tmp_path, bits, emb_bits):
    model = _quantized(bits, emb_bits)
    save_model(model, tmp_path, bits, emb_bits)
    got = tensor_precisions(tmp_path)
    targets = quant_targets(model, bits, emb_bits)
    assert set(targets.values()) == {bits, emb_bits}
    state = model.state_dict()
    assert set(state) <= set(got)
    for name, t in state.items():
        p = got[name]
        assert p.shape == tuple(t.shape), name
        if name in targets:
            assert (p.bits, p.dtype) == (targets[name], f"int{targets[name]}"), name
        elif t.is_floating_point():
            assert (p.bits, p.dtype, p.sparse) == (32, "float32", False), name
        else:
            assert p.dtype.startswith("int") and p.bits == 8 * t.element_size() and not p.sparse, name
    emb = "hf.bert.embeddings.word_embeddings.weight"
    query = "hf.bert.encoder.layer.0.attention.self.query.weight"
    assert got[emb] == TensorPrecision(emb_bits, f"int{emb_bits}", False, (120, 32))
    assert got[query].bits == bits
    assert got["hf.classifier.weight"].dtype == "float32"  # the head is never quantized
    assert tensor_precisions(tmp_path / "weights.safetensors") == got


def test_sparse_and_bf16_tensors(tmp_path):
    model = _quantized(4, 8, sparse=0.7)
    save_model(model, tmp_path / "q", 4, 8)
    got = tensor_precisions(tmp_path / "q")
    linears = [f"{name}.weight" for name in prunable(model)]
    assert linears and all(got[n].sparse and got[n].bits == 4 for n in linears)
    assert not got["hf.bert.embeddings.word_embeddings.weight"].sparse

    dense_bits = _quantized(32, 32, sparse=0.7)  # float values behind an occupancy bitmap
    save_model(dense_bits, tmp_path / "f", 32, 32)
    got = tensor_precisions(tmp_path / "f")
    assert all((got[n].bits, got[n].dtype, got[n].sparse) == (32, "float32", True) for n in linears)

    half = make_tiny(seed=2)
    save_model(half, tmp_path / "h", 16, 16)
    got = tensor_precisions(tmp_path / "h")
    floats = [n for n, t in half.state_dict().items() if t.is_floating_point()]
    assert all((got[n].bits, got[n].dtype) == (16, "bfloat16") for n in floats)


def test_precision_of_a_foreign_file_is_an_artifact_error(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "weights.safetensors"))
    with pytest.raises(ArtifactError, match="not an autocompress weights file"):
        tensor_precisions(tmp_path)
    (tmp_path / "weights.safetensors").write_bytes(b"\x05")
    with pytest.raises(ArtifactError, match="unreadable weights header"):
        tensor_precisions(tmp_path)
