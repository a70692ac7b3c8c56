"""Training under CPU bfloat16 autocast: bf16 forward passes, float32 weights, loss and optimizer."""

import copy
import math

import torch

from autocompress.engine.distill import TrainSettings, train_
from autocompress.engine.quantize import attach_fake_quant_
from autocompress.engine.techniques.distillation import train_settings
from autocompress.engine.recipe import Recipe

from conftest import make_tiny, separable_batches


def _linear_output_dtypes(model):
    seen = set()
    handles = [m.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
               for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return seen, handles


def test_bf16_training_learns_with_float32_weights():
    model = make_tiny(seed=1)
    seen, handles = _linear_output_dtypes(model)
    losses = train_(model, separable_batches(), TrainSettings(steps=40, lr=5e-3, bf16=True))
    for h in handles:
        h.remove()
    assert seen == {torch.bfloat16}  # the matmuls ran in bfloat16
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert not model.training


def test_fp32_training_stays_fp32():
    model = make_tiny(seed=1)
    seen, handles = _linear_output_dtypes(model)
    train_(model, separable_batches(), TrainSettings(steps=2, lr=5e-3))
    for h in handles:
        h.remove()
    assert seen == {torch.float32}


def test_bf16_with_hidden_mse_fake_quant_and_teacher_logits():
    teacher = make_tiny(seed=2)
    student = copy.deepcopy(teacher)
    attach_fake_quant_(student, 4, 8)
    logits = torch.tensor([[2.0, -2.0], [-2.0, 2.0]] * 8)
    losses = train_(student, separable_batches(), TrainSettings(steps=6, lr=1e-3, alpha=0.5, hidden_mse=1.0, bf16=True),
                    teacher_logits=logits, teacher=teacher, layer_map=(0, 1, 2))
    assert len(losses) == 6 and all(math.isfinite(v) for v in losses)
    assert all(p.dtype == torch.float32 for p in student.parameters())
    assert all(p.dtype == torch.float32 for p in teacher.parameters())


def test_recipe_field_reaches_the_train_settings():
    assert Recipe().bf16 is False and train_settings(Recipe()).bf16 is False
    assert train_settings(Recipe(bf16=True, train_steps=5)).bf16 is True
