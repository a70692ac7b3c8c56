"""Where training runs: device names, their resolution against what torch sees, autocast, and training on a
GPU (tests marked `cuda` run only where torch sees one; `pytest -m cuda` on a GPU machine)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from autocompress.engine import device
from autocompress.engine.distill import TrainSettings, distilled_importance, train_
from autocompress.engine.elastic import ElasticSettings, train_elastic_
from autocompress.engine.measure import predict_logits
from autocompress.engine.quantize import attach_fake_quant_
from autocompress.engine.errors import ConfigError
from conftest import make_tiny, separable_batches


@pytest.mark.parametrize("spec", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_device_names_accepted(spec):
    assert device.check_spec(spec) == spec


@pytest.mark.parametrize("spec", ["gpu", "CUDA", "cuda:", "cuda:x", "cpu:0", "mps", ""])
def test_device_names_rejected_in_one_line(spec):
    with pytest.raises(ValueError, match=r"^device must be auto, cpu, cuda or cuda:N \(N a GPU index\), got "):
        device.check_spec(spec)


def test_auto_is_the_cpu_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.resolve("auto") == torch.device("cpu")
    assert device.resolve("cpu") == torch.device("cpu")


def test_a_gpu_torch_does_not_see_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError) as err:
        device.resolve("cuda:1")
    assert str(err.value).startswith("device 'cuda:1': ")
    assert "use --device cpu (or auto), or install torch's CUDA build" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_gpu_index_beyond_the_count_names_the_valid_ones(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match=r"^device 'cuda:2': torch sees 2 CUDA device\(s\), cuda:0 to cuda:1; "
                                          r"pick one of those$"):
        device.resolve("cuda:2")
    assert device.resolve("cuda:1") == torch.device("cuda", 1)


def test_bf16_autocast_by_precision_and_device(monkeypatch):
    cpu = torch.device("cpu")
    assert device.bf16_autocast(cpu, "auto") is False  # the CPU keeps fp32 unless asked
    assert device.bf16_autocast(cpu, "bf16") is True
    assert device.bf16_autocast(cpu, "fp32") is False
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert device.bf16_autocast(torch.device("cuda", 0), "auto") is True
    assert device.bf16_autocast(torch.device("cuda", 0), "fp32") is False
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert device.bf16_autocast(torch.device("cuda", 0), "auto") is False  # pre-Ampere GPUs train in fp32
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16"):
        device.bf16_autocast(cpu, "fp16")


def test_placed_brings_models_back_to_the_cpu_also_after_an_error():
    model = make_tiny(seed=0)
    with pytest.raises(RuntimeError, match="inside"), device.placed(torch.device("cpu"), model, None):
        raise RuntimeError("inside")
    assert next(model.parameters()).device.type == "cpu"


def test_training_on_the_cpu_is_what_it_was():
    """`device="cpu"` (the default) runs the same steps as before the device existed."""
    a, b = make_tiny(seed=1), make_tiny(seed=1)
    torch.manual_seed(0)
    la = train_(a, separable_batches(), TrainSettings(steps=5, lr=5e-3))
    torch.manual_seed(0)
    lb = train_(b, separable_batches(), TrainSettings(steps=5, lr=5e-3, device="cpu"))
    assert la == lb


# ---- on a GPU ------------------------------------------------------------------------------------------


def _on_cpu(model: torch.nn.Module) -> bool:
    return all(t.device.type == "cpu" for t in [*model.parameters(), *model.buffers()])


@pytest.mark.cuda
def test_training_on_the_gpu_learns_and_returns_the_model_on_the_cpu():
    cpu, gpu = make_tiny(seed=1), make_tiny(seed=1)
    logits = torch.tensor([[2.0, -2.0], [-2.0, 2.0]] * 8)
    settings = TrainSettings(steps=30, lr=5e-3, alpha=0.5)
    l_cpu = train_(cpu, separable_batches(), settings, teacher_logits=logits)
    l_gpu = train_(gpu, separable_batches(), TrainSettings(**{**settings.__dict__, "device": "cuda"}),
                   teacher_logits=logits)
    assert _on_cpu(gpu) and not gpu.training
    assert l_gpu[0] == pytest.approx(l_cpu[0], rel=1e-4)  # the same first loss: the same model and batch
    assert sum(l_gpu[-5:]) < 0.5 * sum(l_gpu[:5])


@pytest.mark.cuda
def test_gpu_bf16_training_with_a_teacher_fake_quant_and_hidden_mse():
    teacher = make_tiny(seed=2)
    student = copy.deepcopy(teacher)
    attach_fake_quant_(student, 4, 8)
    logits = torch.tensor([[2.0, -2.0], [-2.0, 2.0]] * 8)
    seen = set()
    handles = [m.register_forward_hook(lambda _m, _i, out: seen.add((out.device.type, out.dtype)))
               for m in student.modules() if isinstance(m, torch.nn.Linear)]
    losses = train_(student, separable_batches(), TrainSettings(steps=6, lr=1e-3, alpha=0.5, hidden_mse=1.0,
                                                                 attention_kl=0.5, bf16=True, device="cuda"),
                    teacher_logits=logits, teacher=teacher, layer_map=(0, 1, 2))
    for h in handles:
        h.remove()
    assert seen == {("cuda", torch.bfloat16)}
    assert len(losses) == 6 and all(math.isfinite(v) for v in losses)
    assert _on_cpu(student) and _on_cpu(teacher)
    assert all(p.dtype == torch.float32 for p in student.parameters())


@pytest.mark.cuda
def test_importance_and_logits_on_the_gpu_match_the_cpu():
    model = make_tiny(seed=3)
    from autocompress.engine.batches import Encoded

    ids = np.tile(np.arange(2, 14, dtype=np.int32), 8)
    rows = Encoded(ids=ids, types=np.zeros(len(ids), dtype=np.int8), offsets=np.arange(0, len(ids) + 1, 12),
                   labels=np.array([0, 1] * 4))
    logits = torch.zeros(8, 2)
    on_cpu = distilled_importance(model, rows, logits, batch_size=4, seed=0, batches=2, temperature=2, alpha=0.5)
    on_gpu = distilled_importance(model, rows, logits, batch_size=4, seed=0, batches=2, temperature=2, alpha=0.5,
                                  device="cuda")
    assert _on_cpu(model)
    for a, b in zip([*on_cpu[0], *on_cpu[1]], [*on_gpu[0], *on_gpu[1]]):
        assert b.device.type == "cpu" and torch.allclose(a, b, rtol=1e-3, atol=1e-6)
    ref = predict_logits(model, rows)
    model.to("cuda")
    got = predict_logits(model, rows)
    model.to("cpu")
    np.testing.assert_allclose(got, ref, atol=1e-4)


@pytest.mark.cuda
def test_elastic_training_on_the_gpu_quantization_aware():
    model = make_tiny(seed=4)
    logits = torch.tensor([[2.0, -2.0], [-2.0, 2.0]] * 8)
    settings = ElasticSettings(steps=8, lr=1e-3, depths=(1, 2, 3), heads_fracs=(0.5, 1.0), ffn_fracs=(0.5, 1.0),
                               bits=(8, 4), device="cuda", bf16=True)
    losses = train_elastic_(model, separable_batches(), settings, teacher_logits=logits)
    assert len(losses) == 8 and all(math.isfinite(v) for v in losses)
    assert _on_cpu(model)


@pytest.mark.cuda
@pytest.mark.parametrize("recipe", [
    dict(prune_ratio=0.5, bits=4, embedding_bits=8, train_steps=6),  # gradual masks and QAT together
    dict(heads_keep=0.5, ffn_keep=0.5, layers=[0, 2], vocab_prune=True, hidden_mse=1.0, attention_kl=0.5,
         train_steps=6),  # structured cuts ranked on the GPU, feature distillation from the teacher there
    dict(bits=1, stage_bits=4, ste_clip=1.0, train_steps=6),  # staged binary with the clipping hook
])
def test_candidates_train_on_the_gpu_and_are_stored_and_measured_from_the_cpu(tiny_inputs, tmp_path, recipe):
    from dataclasses import replace

    from autocompress.engine.recipe import Recipe
    from autocompress.session import read_metrics, run_recipe

    inputs = replace(tiny_inputs, train_device="cuda:0", train_bf16=True)
    result = run_recipe(inputs, Recipe(batch_size=8, lr=1e-3, **recipe), tmp_path / "c")
    assert result.metrics.train_device == "cuda:0 bf16"
    assert read_metrics(tmp_path / "c").train_device == "cuda:0 bf16"
    assert _on_cpu(result.model) and _on_cpu(inputs.teacher)
    assert 0.0 <= result.metrics.accuracy <= 1.0 and result.metrics.final_loss is not None
