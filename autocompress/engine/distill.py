"""Knowledge distillation: the KD loss and the training loop every fine-tuning step uses.

Plain task fine-tuning is the same loop with alpha = 0 (cross-entropy on labels only).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from .checkpoint import Checkpoint
from .device import autocast, placed, to_device
from .tasks import Task
from .tasks.classification import CLASSIFICATION, kd_loss

__all__ = ["kd_loss", "task_loss", "train_", "TrainSettings", "TrainingDiverged"]

if TYPE_CHECKING:
    from .batches import Encoded
    from .structured import Importance


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def task_loss(model: nn.Module, outputs: torch.Tensor, teacher_outputs: torch.Tensor | None,
              batch: dict[str, torch.Tensor], temperature: float, alpha: float) -> torch.Tensor:
    """The distillation loss of `model`'s task (`tasks/`) on one batch: `teacher_outputs` are the cached
    outputs of every training row (None: labels only), picked for the batch's rows here."""
    task = model_task(model)
    teacher = task.targets(teacher_outputs, batch) if teacher_outputs is not None else None
    return task.loss(outputs, teacher, batch, temperature, alpha)


def model_task(model: nn.Module) -> Task:
    """The task of a model the engine trains (a module with no `task` is a classifier)."""
    return getattr(model, "task", None) or CLASSIFICATION


def distilled_importance(model: nn.Module, rows: Encoded, teacher_logits: torch.Tensor, *, batch_size: int,
                         seed: int, batches: int, temperature: float, alpha: float, device: str = "cpu") -> Importance:
    """First-order Taylor importance of `model`'s heads and FFN neurons (`structured.taylor_importance`)
    under the distillation loss, on `batches` shuffled training batches of `rows` (an `Encoded` split with
    row indices into `teacher_logits`). The batch order is seeded with `seed + 1`, apart from training's.
    It is computed on `device`; the scores and the model come back on the CPU."""
    import itertools

    from .batches import infinite_batches
    from .structured import taylor_importance

    on = torch.device(device)
    logits = teacher_logits.to(on)

    def loss_fn(out: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return task_loss(model, out, logits, batch, temperature, alpha)

    sample = (to_device(b, on) for b in itertools.islice(infinite_batches(rows, batch_size, seed + 1), batches))
    with placed(on, model):
        return taylor_importance(model, sample, loss_fn)


def hidden_loss(student_hidden: Sequence[torch.Tensor], teacher_hidden: Sequence[torch.Tensor],
                layer_map: Sequence[int], mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error between student layer i's output and teacher layer layer_map[i]'s output."""
    m = mask.unsqueeze(-1).to(student_hidden[0].dtype)
    total = student_hidden[0].new_zeros(())
    for i, j in enumerate(layer_map):
        diff = (student_hidden[i + 1] - teacher_hidden[j + 1]) * m
        total = total + diff.pow(2).sum() / (m.sum() * diff.shape[-1])
    return total / max(len(layer_map), 1)


def attention_loss(student_att: Sequence[torch.Tensor], teacher_att: Sequence[torch.Tensor],
                   layer_map: Sequence[int], mask: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) between the attention distributions of student layer i and teacher
    layer layer_map[i], per head and query, averaged over the real (unpadded) queries.

    Maps are [batch, heads, query, key]. When the student kept fewer heads than the teacher, both
    are averaged over their heads first.
    """
    q = mask.to(student_att[0].dtype)  # [batch, query]
    total = student_att[0].new_zeros(())
    for i, j in enumerate(layer_map):
        s, t = student_att[i], teacher_att[j]
        if s.shape[1] != t.shape[1]:
            s, t = s.mean(dim=1, keepdim=True), t.mean(dim=1, keepdim=True)
        kl = (torch.special.xlogy(t, t) - t * torch.log(s.clamp_min(1e-9))).sum(dim=-1)  # [b, h, query]
        total = total + (kl * q[:, None, :]).sum() / (q.sum() * kl.shape[1])
    return total / max(len(layer_map), 1)


@contextlib.contextmanager
def eager_attention(*models: nn.Module | None):
    """Run the models' attention in eager mode (the only one that returns attention maps)."""
    saved = []
    for m in models:
        hf = getattr(m, "hf", None)
        if hf is not None:
            saved.append((hf, hf.config._attn_implementation))
            hf.set_attn_implementation("eager")
    try:
        yield
    finally:
        for hf, impl in saved:
            hf.set_attn_implementation(impl)


@dataclass(frozen=True)
class TrainSettings:
    steps: int
    lr: float
    temperature: float = 2.0
    alpha: float = 0.0
    hidden_mse: float = 0.0
    attention_kl: float = 0.0
    warmup_frac: float = 0.06
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    # forward passes (student, and teacher for hidden MSE / attention KL) under bfloat16 autocast on `device`; the
    # master weights, gradients, optimizer state and the loss stay float32
    bf16: bool = False
    # where the steps run (`engine/device.py`): the model, the teacher and each batch move there for training,
    # and the model comes back to the CPU afterwards
    device: str = "cpu"


# after_step(step, total_steps, loss, model) runs after every optimizer step (pruning
# schedules, progress, early stopping: it may raise to stop training).
StepHook = Callable[[int, int, float, nn.Module], None]


def train_(
    model: nn.Module,
    batches: Iterator[dict[str, torch.Tensor]],
    settings: TrainSettings,
    *,
    teacher_logits: torch.Tensor | None = None,
    teacher: nn.Module | None = None,
    layer_map: Sequence[int] = (),
    hooks: Sequence[StepHook] = (),
    checkpoint: Checkpoint | None = None,
) -> list[float]:
    """Train `model` in place for `settings.steps` steps; returns the loss of each step it ran.

    teacher_logits[i] are the cached teacher logits of training row i (batches carry 'index').
    `teacher` is only needed for hidden-state MSE and attention KL (settings.hidden_mse,
    settings.attention_kl > 0). With `checkpoint`, the run is saved every `checkpoint.every` steps and one
    saved before under the same key goes on from its step (`engine/checkpoint.py`; `batches` must then be
    the same seeded sequence: the batches already trained on are drawn and skipped); the losses returned are
    those of the steps this call ran.
    """
    if settings.steps == 0:
        return []
    use_attention = settings.attention_kl > 0 and teacher is not None
    use_teacher = teacher if (use_attention or settings.hidden_mse > 0) else None
    on = torch.device(settings.device)
    with eager_attention(*((model, teacher) if use_attention else ())), placed(on, model, use_teacher):
        logits = teacher_logits.to(on) if teacher_logits is not None else None
        return _train(model, batches, settings, logits, teacher, layer_map, hooks, checkpoint)


def optimizer(model: nn.Module, steps: int, lr: float, warmup_frac: float, weight_decay: float):
    """(trainable parameters, AdamW without decay on biases and norms, warmup-then-linear-decay schedule)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    warmup = max(1, int(steps * warmup_frac))

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (steps - step) / max(1, steps - warmup))

    return params, opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_at)


def _train(model: nn.Module, batches: Iterator[dict[str, torch.Tensor]], settings: TrainSettings,
           teacher_logits: torch.Tensor | None, teacher: nn.Module | None, layer_map: Sequence[int],
           hooks: Sequence[StepHook], checkpoint: Checkpoint | None = None) -> list[float]:
    params, opt, sched = optimizer(model, settings.steps, settings.lr, settings.warmup_frac, settings.weight_decay)
    start = checkpoint.restore_(model, opt, sched) if checkpoint is not None else 0
    for _ in range(start):
        next(batches)  # the batches the saved steps trained on
    use_hidden = settings.hidden_mse > 0 and teacher is not None
    use_attention = settings.attention_kl > 0 and teacher is not None
    features = use_hidden or use_attention
    on = torch.device(settings.device)
    model.train()
    losses: list[float] = []
    for step in range(start, settings.steps):
        batch = to_device(next(batches), on)
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
        with autocast(on, settings.bf16):
            if features:
                logits, s_hidden, s_att = model.features(**inputs, attentions=use_attention)
                with torch.no_grad():
                    _, t_hidden, t_att = teacher.features(**inputs, attentions=use_attention)
            else:
                logits = model(**inputs)
        # the loss in float32 (a no-op without autocast); gradients flow back through the casts
        loss = task_loss(model, logits.float(), teacher_logits, batch, settings.temperature, settings.alpha)
        if use_hidden:
            s_hidden, t_hidden = [h.float() for h in s_hidden], [h.float() for h in t_hidden]
            loss = loss + settings.hidden_mse * hidden_loss(s_hidden, t_hidden, layer_map, batch["attention_mask"])
        if use_attention:
            s_att, t_att = [a.float() for a in s_att], [a.float() for a in t_att]
            loss = loss + settings.attention_kl * attention_loss(s_att, t_att, layer_map, batch["attention_mask"])
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingDiverged(f"loss became {value} at step {step}; lower the learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
        opt.step()
        sched.step()
        losses.append(value)
        for hook in hooks:
            hook(step + 1, settings.steps, value, model)
        if checkpoint is not None and (step + 1) % checkpoint.every == 0 and step + 1 < settings.steps:
            checkpoint.save(step + 1, model, opt, sched)
    model.eval()
    return losses
