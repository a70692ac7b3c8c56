"""Export and reload: same predictions, same bytes, no teacher / study / MLflow needed."""

import json
import os
import stat

import numpy as np
import pytest
from conftest import make_sentences

from autocompress import load_compressed
from autocompress.engine.artifact import run_bytes
from autocompress.config import Experiment
from autocompress.engine.measure import predict_logits, task_metrics
from autocompress.engine.errors import ArtifactError, ConfigError
from autocompress.export import export_folder
from autocompress.engine.recipe import Recipe
from autocompress.session import engine_inputs, run_recipe
from autocompress.testing import sample_metrics

RECIPES = {
    "fp32": Recipe(),
    "structured+vocab": Recipe(layers=(0, 2), heads_keep=0.5, ffn_keep=0.5, vocab_prune=True, train_steps=3,
                               batch_size=16),
    "sparse": Recipe(prune_ratio=0.5, train_steps=3, batch_size=16),
    "bf16": Recipe(bits=16),
    "int8": Recipe(bits=8, train_steps=3, batch_size=16),
    "4bit": Recipe(bits=4, embedding_bits=8, train_steps=3, batch_size=16),
    "2bit": Recipe(bits=2, embedding_bits=4),
    "binary": Recipe(bits=1, embedding_bits=8, prune_ratio=0.3, train_steps=3, batch_size=16),
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from conftest import make_teacher_dir, write_experiment, write_task

    root = tmp_path_factory.mktemp("exp")
    exp = Experiment.from_file(write_experiment(root, make_teacher_dir(root / "t"), write_task(root / "d")))
    return engine_inputs(exp)


@pytest.mark.parametrize("name", list(RECIPES))
def test_export_round_trip(prepared, tmp_path, name):
    inputs, _teacher = prepared
    res = run_recipe(inputs, RECIPES[name], tmp_path / "trial")
    out = export_folder(tmp_path / "trial", tmp_path / "export")
    assert (out / "weights.safetensors").stat().st_size == res.metrics.weight_bytes
    model = load_compressed(out)
    texts, labels = make_sentences(48, seed=2)  # the generated dev split: the test split
    logits = model.logits(texts)
    acc = float((logits.argmax(-1) == np.array(labels)).mean())
    if name == "int8":
        # dynamic int8 quantizes activations per batch: padding differs from the evaluation batches
        assert abs(acc - res.metrics.test_accuracy) <= 2 / 48
    else:
        assert acc == pytest.approx(res.metrics.test_accuracy)
    assert model.predict(texts[:3]) == [model.label_names[i] for i in logits[:3].argmax(-1)]
    assert json.loads((out / "recipe.json").read_text()) == RECIPES[name].to_dict()
    card = (out / "README.md").read_text()
    assert "validation accuracy (chose this model)" in card and "test accuracy (reported only)" in card


def test_onnx_fp32_matches_torch_and_8_bits_is_int8(prepared, tmp_path):
    inputs, _teacher = prepared
    texts, _ = make_sentences(48, seed=2)
    run_recipe(inputs, Recipe(layers=(0, 1), vocab_prune=True), tmp_path / "fp32")
    out = export_folder(tmp_path / "fp32", tmp_path / "e32", fmt="onnx")
    ort = load_compressed(out, runtime="onnxruntime").logits(texts)
    on_torch = load_compressed(out, runtime="torch").logits(texts)
    assert np.allclose(ort, on_torch, atol=1e-4)  # the graph, vocabulary map included

    run_recipe(inputs, Recipe(bits=8), tmp_path / "int8")
    out = export_folder(tmp_path / "int8", tmp_path / "e8", fmt="onnx")
    import onnx

    ops = {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul"}
    a = load_compressed(out, runtime="onnxruntime").logits(texts)
    b = load_compressed(out, runtime="torch").logits(texts)
    # both quantize to 8 bits (weights per channel, activations per batch): small differences only
    assert np.abs(a - b).max() <= 0.25 * np.abs(b).max()  # a random tiny model: logits ~1e-2


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_a_session_built_from_the_weights_leaves_no_files_behind(prepared, tmp_path, monkeypatch, runtime):
    """A torch export opened on another runtime is compiled from its weights in a scratch folder: the
    session runs from memory, so the folder is gone once it is open (loads used to leave one per call)."""
    import tempfile

    inputs, _teacher = prepared
    texts, _ = make_sentences(16, seed=2)
    run_recipe(inputs, Recipe(layers=(0, 1)), tmp_path / "trial")
    out = export_folder(tmp_path / "trial", tmp_path / "export")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    model = load_compressed(out, runtime=runtime)
    assert model.runtime == runtime
    assert list(scratch.iterdir()) == []
    on_torch = load_compressed(out, runtime="torch").logits(texts)
    assert np.allclose(model.logits(texts), on_torch, atol=1e-4)


def test_bad_exports(prepared, tmp_path):
    inputs, _teacher = prepared
    run_recipe(inputs, Recipe(bits=4), tmp_path / "trial")
    out = export_folder(tmp_path / "trial", tmp_path / "export")
    with pytest.raises(ConfigError, match="already exists"):
        export_folder(tmp_path / "trial", out)
    export_folder(tmp_path / "trial", out, force=True)
    data = bytearray((out / "weights.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (out / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="weights.safetensors is corrupted"):
        load_compressed(out)
    (out / "architecture.json").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        load_compressed(out)
    with pytest.raises(ArtifactError, match="no such export folder"):
        load_compressed(tmp_path / "nowhere")
    with pytest.raises(ArtifactError, match="not a complete trial folder"):
        export_folder(tmp_path, tmp_path / "e2")


def test_the_runtime_is_recorded_and_reload_uses_it(prepared, tmp_path):
    from dataclasses import replace

    from autocompress.engine.artifact import recorded_runtime

    inputs, _teacher = prepared
    texts, _ = make_sentences(48, seed=2)
    run_recipe(inputs, Recipe(layers=(0, 1)), tmp_path / "t")
    run_recipe(replace(inputs, runtime="onnxruntime"), Recipe(layers=(0, 1)), tmp_path / "o")
    assert recorded_runtime(tmp_path / "t") == "torch" and recorded_runtime(tmp_path / "o") == "onnxruntime"
    on_torch, on_ort = load_compressed(tmp_path / "t"), load_compressed(tmp_path / "o")
    assert (on_torch.runtime, on_ort.runtime) == ("torch", "onnxruntime")
    assert on_ort.metrics["runtime"] == "onnxruntime-fp32"
    assert np.allclose(on_ort.logits(texts), on_torch.logits(texts), atol=1e-4)
    assert load_compressed(tmp_path / "o", runtime="torch").runtime == "torch"  # an explicit choice wins
    # one copy of the weights in memory: the torch module is released once another runtime runs the model
    assert on_torch.model is not None and on_ort.model is None
    kept = load_compressed(tmp_path / "o", keep_torch=True)
    assert kept.model is not None and np.allclose(kept.logits(texts), on_ort.logits(texts), atol=1e-5)

    # the record, not the display name, decides
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    (tmp_path / "t" / "metrics.json").write_text(json.dumps({**metrics, "runtime": "onnxruntime-fp32"}))
    assert load_compressed(tmp_path / "t").runtime == "torch"
    # a folder written before the record existed: guessed from the display name, as before
    for folder in (tmp_path / "t", tmp_path / "o"):
        arch = json.loads((folder / "architecture.json").read_text())
        del arch["runtime"]
        (folder / "architecture.json").write_text(json.dumps(arch))
    assert load_compressed(tmp_path / "t").runtime == "onnxruntime"
    assert load_compressed(tmp_path / "o").runtime == "onnxruntime"
    (tmp_path / "o" / "metrics.json").write_text(json.dumps({**metrics, "runtime": "torch-fp32"}))
    assert load_compressed(tmp_path / "o").runtime == "torch"


def test_export_formats(prepared, tmp_path):
    from autocompress.engine.runtimes import export_formats

    inputs, _teacher = prepared
    run_recipe(inputs, Recipe(layers=(0,)), tmp_path / "trial")
    assert export_formats() == ("torch", "onnx", "onnx-static", "openvino")
    assert not (export_folder(tmp_path / "trial", tmp_path / "default") / "model.onnx").exists()  # as measured: torch
    plain = export_folder(tmp_path / "trial", tmp_path / "plain", fmt="torch")
    graph = export_folder(tmp_path / "trial", tmp_path / "graph", fmt="onnx")
    assert not (plain / "model.onnx").exists() and (graph / "model.onnx").is_file()
    assert "model.onnx" in json.loads((graph / "manifest.json").read_text())["files"]
    assert "`model.onnx`: what onnxruntime runs" in (graph / "README.md").read_text()
    assert "`model.onnx`" not in (plain / "README.md").read_text()
    assert sorted(p.name for p in graph.iterdir()) == sorted(
        ["weights.safetensors", "architecture.json", "recipe.json", "metrics.json", "task.json", "tokenizer",
         "manifest.json", "README.md", "model.onnx", "predict.py"])
    with pytest.raises(ConfigError, match="unknown export format 'tflite'; use one of torch, onnx, onnx-static, openvino"):
        export_folder(tmp_path / "trial", tmp_path / "x", fmt="tflite")
    # a static int8 graph calibrates on training rows: only a trial measured on it can ship one
    run_recipe(inputs, Recipe(layers=(0,), bits=8), tmp_path / "int8")
    with pytest.raises(ConfigError, match="calibrates on training rows.*--format torch"):
        export_folder(tmp_path / "int8", tmp_path / "x", fmt="onnx-static")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("runtime, files", [("onnxruntime-static", ["model.onnx"]),
                                            ("openvino", ["model.xml", "model.bin"])])
def test_an_export_ships_the_files_the_trial_was_measured_with(prepared, tmp_path, runtime, files):
    """Calibrated int8 graphs cannot be rebuilt from the weights: the export copies the measured files, and
    loading the export runs them, with the scores the trial measured."""
    inputs, _teacher = prepared
    texts, _ = make_sentences(48, seed=2)
    res = run_recipe(inputs, Recipe(layers=(0, 1), bits=8, runtime=runtime), tmp_path / "trial")
    out = export_folder(tmp_path / "trial", tmp_path / "export")  # default: the measured runtime's format
    for name in files:
        assert (out / name).read_bytes() == (tmp_path / "trial" / "runtime" / name).read_bytes()
    model = load_compressed(out)
    assert model.runtime == runtime and model.metrics["bits"] == 8
    test = inputs.data.test
    acc = task_metrics(predict_logits(model.run, test), test.labels)["accuracy"]
    assert acc == pytest.approx(res.metrics.test_accuracy)
    trial = tmp_path / "trial"  # its bytes are the measured runtime files, not the weights, plus the task files
    assert res.metrics.bytes == run_bytes(trial, *(trial / "runtime" / n for n in files))


def test_export_does_not_import_the_search():
    import subprocess
    import sys

    metrics = sample_metrics(weight_bytes=1000, layers=2, heads=8, ffn=128, vocab=120).to_dict()
    code = ("import sys; from autocompress.export import model_card; from autocompress.engine.metrics import Metrics; "
            f"card = model_card({{'bits': 8, 'layers': [0, 2]}}, Metrics.from_dict({metrics!r}), 'torch', []); "
            "assert 'layers 2' in card and '8-bit' in card, card; "
            "print(sorted(m for m in sys.modules if m.startswith(('autocompress.search', 'optuna', 'mlflow'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_export_is_readable_by_other_users(prepared, tmp_path):
    """Under the usual umask 022 every file of a trial and of its export is 0644 and every folder 0755
    (temporary files are created 0600 and used to stay so)."""
    inputs, _teacher = prepared
    before = os.umask(0o022)
    try:
        run_recipe(inputs, Recipe(layers=(0,), bits=8), tmp_path / "trial")
        export_folder(tmp_path / "trial", tmp_path / "export", fmt="onnx")
    finally:
        os.umask(before)
    for root in (tmp_path / "trial", tmp_path / "export"):
        modes = {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}
        assert {k: oct(v) for k, v in modes.items() if v != (0o755 if (root / k).is_dir() else 0o644)} == {}


def test_a_runtime_with_its_own_files_opens_them_without_building_torch(prepared, tmp_path, monkeypatch):
    from dataclasses import replace

    import autocompress.engine.storage as storage

    inputs, _teacher = prepared
    texts, _ = make_sentences(16, seed=3)
    run_recipe(replace(inputs, runtime="onnxruntime"), Recipe(layers=(0, 1), bits=8), tmp_path / "o")
    run_recipe(replace(inputs, runtime="onnxruntime"), Recipe(layers=(0, 1), bits=4), tmp_path / "p")
    expected = load_compressed(tmp_path / "o").logits(texts)
    calls = []
    real = storage.load_model
    monkeypatch.setattr(storage, "load_model", lambda folder: calls.append(folder) or real(folder))
    # int8: ONNX Runtime runs the model.onnx the trial deployed; the torch module is never built
    assert np.allclose(load_compressed(tmp_path / "o").logits(texts), expected, atol=1e-6) and calls == []
    # packed 4-bit weights are expanded at load: the module is built once, then released
    packed = load_compressed(tmp_path / "p")
    assert calls == [tmp_path / "p"] and packed.model is None and packed.runtime == "onnxruntime"
    assert load_compressed(tmp_path / "o", keep_torch=True).model is not None and len(calls) == 2

