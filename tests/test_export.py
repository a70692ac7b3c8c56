"""Export and reload: same predictions, same bytes, no teacher / study / MLflow needed."""

import json

import numpy as np
import pytest

from autocompress import load_compressed
from autocompress.config import Experiment
from autocompress.errors import ArtifactError, ConfigError
from autocompress.export import export_folder
from autocompress.recipe import Recipe
from autocompress.session import engine_inputs, run_recipe
from conftest import make_sentences

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
    inputs, teacher = prepared
    res = run_recipe(inputs, RECIPES[name], tmp_path / "trial", teacher)
    out = export_folder(tmp_path / "trial", tmp_path / "export")
    assert (out / "weights.safetensors").stat().st_size == res.metrics["weight_bytes"]
    model = load_compressed(out)
    texts, labels = make_sentences(48, seed=2)  # the generated dev split
    logits = model.logits(texts)
    acc = float((logits.argmax(-1) == np.array(labels)).mean())
    if name == "int8":
        # dynamic int8 quantizes activations per batch: padding differs from the evaluation batches
        assert abs(acc - res.metrics["accuracy"]) <= 2 / 48
    else:
        assert acc == pytest.approx(res.metrics["accuracy"])
    assert model.predict(texts[:3]) == [model.label_names[i] for i in logits[:3].argmax(-1)]
    assert json.loads((out / "recipe.json").read_text()) == RECIPES[name].to_dict()
    assert "dev accuracy" in (out / "README.md").read_text()


def test_onnx_fp32_matches_torch_and_8_bits_is_int8(prepared, tmp_path):
    inputs, teacher = prepared
    texts, _ = make_sentences(48, seed=2)
    run_recipe(inputs, Recipe(layers=(0, 1), vocab_prune=True), tmp_path / "fp32", teacher)
    out = export_folder(tmp_path / "fp32", tmp_path / "e32", onnx=True)
    ort = load_compressed(out, runtime="onnxruntime").logits(texts)
    assert np.allclose(ort, load_compressed(out).logits(texts), atol=1e-4)  # the graph, vocabulary map included

    run_recipe(inputs, Recipe(bits=8), tmp_path / "int8", teacher)
    out = export_folder(tmp_path / "int8", tmp_path / "e8", onnx=True)
    import onnx

    ops = {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul"}
    a = load_compressed(out, runtime="onnxruntime").logits(texts)
    b = load_compressed(out).logits(texts)
    # both quantize to 8 bits (weights per channel, activations per batch): small differences only
    assert np.abs(a - b).max() <= 0.25 * np.abs(b).max()  # a random tiny model: logits ~1e-2


def test_bad_exports(prepared, tmp_path):
    inputs, teacher = prepared
    run_recipe(inputs, Recipe(bits=4), tmp_path / "trial", teacher)
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
