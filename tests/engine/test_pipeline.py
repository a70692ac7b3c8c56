"""End to end on a tiny teacher and generated data: build, store, reload, measure."""

import json

import numpy as np
import pytest
import torch

from autocompress.engine.measure import predict_logits, task_metrics
from autocompress.engine.pipeline import compress
from autocompress.engine.storage import load_model
from autocompress.engine.errors import ConfigError
from autocompress.engine.recipe import Recipe
from autocompress.session import read_metrics, run_recipe
from autocompress.testing import STORED_METRIC_KEYS


def test_identity_recipe_measures_the_teacher(tiny_inputs, tmp_path):
    res = compress(tiny_inputs, Recipe(), tmp_path / "a")
    data = tiny_inputs.data
    teacher_acc = task_metrics(predict_logits(tiny_inputs.teacher, data.validation), data.validation.labels)
    teacher_test = task_metrics(predict_logits(tiny_inputs.teacher, data.test), data.test.labels)
    assert res.metrics.accuracy == pytest.approx(teacher_acc["accuracy"])
    assert res.metrics.test_accuracy == pytest.approx(teacher_test["accuracy"])
    assert res.metrics.accuracy > 0.9  # the tiny teacher solves the generated task
    # bytes: everything running it needs; the weights file is the second figure
    folder = tmp_path / "a"
    needed = [folder / "weights.safetensors", folder / "architecture.json", folder / "task.json",
              *(p for p in (folder / "tokenizer").rglob("*") if p.is_file())]
    assert res.metrics.bytes == sum(p.stat().st_size for p in needed)
    assert res.metrics.weight_bytes == (folder / "weights.safetensors").stat().st_size < res.metrics.bytes
    assert res.metrics.runtime == "torch-fp32" and res.metrics.fast_kernel is True
    assert res.metrics.latency_ms_b1 > 0 and res.metrics.latency_ms_b32 > 0
    # float32 weights: the file is the parameters' bytes plus a small header
    assert 4 * res.metrics.params <= res.metrics.weight_bytes < 4 * res.metrics.params + 20_000


def test_every_technique_together(tiny_inputs, tmp_path):
    recipe = Recipe(layers=(0, 2), heads_keep=0.5, ffn_keep=0.5, vocab_prune=True, prune_ratio=0.5,
                    bits=4, embedding_bits=8, train_steps=8, lr=1e-3, batch_size=16)
    base = compress(tiny_inputs, Recipe(), tmp_path / "teacher")
    res = compress(tiny_inputs, recipe, tmp_path / "c")
    m = res.metrics
    assert (m.layers, m.heads, m.ffn) == (2, 4, 64)
    assert m.vocab < tiny_inputs.teacher.config.vocab_size
    assert m.sparsity >= 0.5 - 1e-3
    assert m.weight_bytes < base.metrics.weight_bytes / 6
    assert m.fast_kernel is False and "no fast CPU kernel" in m.runtime_note
    assert len(res.losses) == 8 and np.isfinite(res.losses).all()
    # the numbers describe the stored bytes: a fresh reload predicts the same
    again = load_model(tmp_path / "c")
    rows = tiny_inputs.data.validation
    assert task_metrics(predict_logits(again, rows), rows.labels)["accuracy"] == pytest.approx(m.accuracy)


@pytest.mark.parametrize("bits, runtime", [(16, "torch-bf16"), (8, "torch-int8-dynamic")])
def test_fast_runtimes_for_16_and_8_bits(tiny_inputs, tmp_path, bits, runtime):
    fp32 = compress(tiny_inputs, Recipe(), tmp_path / "fp32")
    res = compress(tiny_inputs, Recipe(bits=bits), tmp_path / str(bits))
    assert res.metrics.runtime == runtime and res.metrics.fast_kernel is True
    # what the runtime loads was stored at that precision: bf16 halves the file, int8 codes cut it further
    # (the tiny model's fp32 head, LayerNorms, biases and per-row scales keep the ratios above 1/2 and 1/4)
    ratio = res.metrics.weight_bytes / fp32.metrics.weight_bytes
    assert 0.45 < ratio < 0.6 if bits == 16 else 0.25 < ratio < 0.45


def test_onnxruntime_int8(tiny_inputs, tmp_path):
    from dataclasses import replace

    ort_inputs = replace(tiny_inputs, runtime="onnxruntime")
    torch_res = compress(tiny_inputs, Recipe(bits=8), tmp_path / "t")
    ort_res = compress(ort_inputs, Recipe(bits=8), tmp_path / "o")
    assert ort_res.metrics.runtime == "onnxruntime-int8"
    folder = tmp_path / "o"
    # the runtime's own file counts instead of the weights, with everything else running it needs
    needed = [folder / "runtime" / "model.onnx", folder / "architecture.json", folder / "task.json",
              *(p for p in (folder / "tokenizer").rglob("*") if p.is_file())]
    assert ort_res.metrics.bytes == sum(p.stat().st_size for p in needed)
    assert abs(ort_res.metrics.accuracy - torch_res.metrics.accuracy) <= 0.1


def test_start_from_a_student_continues_compression(tiny_inputs, tmp_path):
    first = compress(tiny_inputs, Recipe(layers=(0, 1)), tmp_path / "s")
    second = compress(tiny_inputs, Recipe(layers=(0, 1), heads_keep=0.25), tmp_path / "s2", start=first.model)
    assert second.metrics.heads == 2 and second.metrics.layers == 2


def test_bad_layer_index_is_a_config_error(tiny_inputs, tmp_path):
    with pytest.raises(ConfigError, match="layers 0..2"):
        run_recipe(tiny_inputs, Recipe(layers=(0, 7)), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_gradual_pruning_reaches_target_through_training(tiny_inputs, tmp_path):
    res = compress(tiny_inputs, Recipe(prune_ratio=0.7, prune_schedule="gradual", train_steps=10, lr=1e-3,
                                       batch_size=16), tmp_path / "g")
    assert res.metrics.sparsity == pytest.approx(0.7, abs=0.01)
    assert torch.isfinite(torch.tensor(res.losses)).all()


def test_threshold_pruning_end_to_end(tiny_inputs, tmp_path):
    """A recipe with prune_threshold builds (it used to crash: the ratio was passed with it)."""
    from autocompress.engine.targets import encoder_linears

    weights = [m.weight.detach().abs() for m in encoder_linears(tiny_inputs.teacher).values()]
    threshold = float(torch.cat([w.flatten() for w in weights]).median())  # half the weights lie below
    below = sum(int((w < threshold).sum()) for w in weights) / sum(w.numel() for w in weights)
    res = run_recipe(tiny_inputs, Recipe(prune_threshold=threshold, train_steps=4, batch_size=16, lr=1e-3),
                     tmp_path / "t")
    assert res.metrics.sparsity == pytest.approx(below, abs=1e-6)  # masked at the start, kept at zero
    # metrics.json holds the record's stored form, with every key
    stored = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert stored == res.metrics.to_dict()
    assert set(stored) == STORED_METRIC_KEYS
    assert read_metrics(tmp_path / "t") == res.metrics


def test_calibration_batches_are_seeded_training_rows_at_the_timing_length(tiny_inputs):
    from autocompress.engine.pipeline import calibration_batches

    train = tiny_inputs.data.train
    batches = calibration_batches(train, seq_len=10, batches=3, size=4)
    assert len(batches) == 3
    for b in batches:
        assert set(b) == {"input_ids", "attention_mask", "token_type_ids"}
        assert b["input_ids"].shape == (4, 10) and b["input_ids"].dtype == torch.int64
    rows = {tuple(r.tolist()) for b in batches for r in b["input_ids"]}
    train_rows = {tuple(train.row(i)[0][:10].tolist() + [0] * (10 - min(10, len(train.row(i)[0]))))
                  for i in range(len(train))}
    assert rows <= train_rows  # training rows only: never validation or test rows
    again = calibration_batches(train, seq_len=10, batches=3, size=4)
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(batches, again))  # seeded


def test_a_recipe_runtime_overrides_the_experiment_and_is_recorded(tiny_inputs, tmp_path):
    from autocompress.engine.artifact import recorded_runtime

    res = compress(tiny_inputs, Recipe(layers=(0,), bits=4, runtime="onnxruntime"), tmp_path / "o")
    assert tiny_inputs.runtime == "torch" and recorded_runtime(tmp_path / "o") == "onnxruntime"
    # 4-bit weights stay packed on disk and run as ONNX Runtime int8 after expansion at load
    assert res.metrics.runtime == "onnxruntime-int8" and res.metrics.fast_kernel
    assert not list((tmp_path / "o" / "runtime").glob("*.onnx"))
    folder = tmp_path / "o"
    needed = [folder / "weights.safetensors", folder / "architecture.json", folder / "task.json",
              *(p for p in (folder / "tokenizer").rglob("*") if p.is_file())]
    assert res.metrics.bytes == sum(p.stat().st_size for p in needed)


def test_post_training_quantization_trains_in_float_and_stores_the_same_width(tiny_inputs, tmp_path, monkeypatch):
    """qat: false attaches no fake-quant while training; the stored weights are 8-bit all the same, and the
    candidate records the ratio of its batch-1 latency to the teacher timed beside it."""
    from autocompress.engine import quantize

    attached = []
    real = quantize.attach_fake_quant_
    monkeypatch.setattr(quantize, "attach_fake_quant_", lambda *a, **k: (attached.append(a[1:3]), real(*a, **k)))
    ptq = run_recipe(tiny_inputs, Recipe(layers=[0, 1], bits=8, train_steps=3, batch_size=8, qat=False), tmp_path / "p")
    assert attached == []
    qat = run_recipe(tiny_inputs, Recipe(layers=[0, 1], bits=8, train_steps=3, batch_size=8), tmp_path / "q")
    assert attached == [(8, 8)]
    assert ptq.metrics.bits == qat.metrics.bits == 8
    assert ptq.metrics.weight_bytes == qat.metrics.weight_bytes  # the same packed widths
    for m in (ptq.metrics, qat.metrics):
        assert m.reference_ms_b1 > 0 and m.latency_ratio_b1 > 0 and m.latency_ms_b1 > 0


def test_qat_off_refuses_the_low_bit_training_knobs():
    from autocompress.engine.techniques import check

    assert "set qat: true" in check(Recipe(bits=1, qat=False, ste_clip=1.0, train_steps=2), 2)
