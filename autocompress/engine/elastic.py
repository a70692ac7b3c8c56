"""An elastic student (DynaBERT, Hou et al. 2020): one network trained once, any sub-network evaluated.

The heads and FFN neurons of every layer are first put in descending order of importance
(`rank_units_`), so that "the first k heads, the first m neurons" is always the best sub-network
of that width and smaller sub-networks are prefixes of larger ones. A sub-network (`SubnetShape`:
depth, kept fraction of heads, kept fraction of FFN neurons) then runs on the shared weights under
`active_subnet`, or is copied out as a plain model by `extract`. `train_elastic_` distills from
cached teacher logits with the sandwich rule: every step trains the largest, the smallest and a
few random sub-networks together. With `bits` it is also quantization-aware (as bit-width is one
more elastic dimension in APQ, Wang et al. 2020): each sub-network of a step runs at a weight width
of its own (the largest in float, the smallest at the narrowest width), so that sub-networks cut and
quantized after training need fewer recovery steps, or none.

Two more signals, each off by default: layer-wise distillation (`hidden_mse`, `attention_kl`: every
sub-network's layer outputs and attention maps follow a frozen copy of the ranked network at the start,
on the layers `layer_map` pairs them with, as TinyBERT maps a shallow student onto its teacher), and
progressive shrinking (`progressive`, as in Once-for-All, Cai et al. 2020): the first steps train the
largest shape only, the next ones also shallower shapes, the rest every shape (`PROGRESSIVE_STAGES`).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from .device import autocast, placed, to_device
from .distill import StepHook, TrainingDiverged, attention_loss, eager_attention, hidden_loss, optimizer, task_loss
from .model import Classifier, record_every_layer_
from .quantize import QUANT_WIDTHS, attach_fake_quant_, detach_fake_quant_, fake_quants
from .structured import Importance, attention_linears, ffn_linears, layer_shapes, prune_heads_, prune_neurons_
from .student import evenly_spaced_layers, keep_layers_

T = TypeVar("T")
_ACTIVE = "_elastic_subnet_active"  # set on a model while `active_subnet` runs on it


# ---- ranking: heads and neurons in descending importance ------------------------------------


def _permute_rows_(linear: nn.Linear, order: torch.Tensor) -> None:
    """Reorder the output rows (weight rows and bias) of `linear` to `order`."""
    linear.weight.copy_(linear.weight[order])
    if linear.bias is not None:
        linear.bias.copy_(linear.bias[order])


def _permute_columns_(linear: nn.Linear, order: torch.Tensor) -> None:
    """Reorder the input columns of `linear` to `order` (the bias is not indexed by inputs)."""
    linear.weight.copy_(linear.weight[:, order])


def rank_units_(model: Classifier, importance: Importance) -> None:
    """Reorder every layer's attention heads and FFN neurons, in place, so that their importance
    is descending (ties keep their current order). The model computes the same function.

    Heads move as blocks of head-size rows of query, key and value (weights and biases) and the
    matching columns of the attention's output projection; neurons move as rows of the FFN's input
    linear (with its bias) and columns of its output linear. A family whose heads cannot be removed
    keeps their order (only neurons move).
    """
    head_scores, ffn_scores = importance
    shapes = layer_shapes(model)
    if len(head_scores) != len(shapes) or len(ffn_scores) != len(shapes):
        raise ValueError(f"need importance for every encoder layer ({len(shapes)})")
    for i, ((h, f), hs, fs) in enumerate(zip(shapes, head_scores, ffn_scores)):
        if hs.numel() != h or fs.numel() != f:
            raise ValueError(f"layer {i}: importance shapes ({hs.numel()}, {fs.numel()}) do not match the model ({h}, {f})")
    family = model.family
    if any(parametrize.is_parametrized(m) for layer in model.encoder_layers
           for m in attention_linears(family, layer) + ffn_linears(family, layer)):
        raise ValueError("ranking must come before weight masks or quantization (a module to permute is parametrized)")
    with torch.no_grad():
        for layer, hs, fs in zip(model.encoder_layers, head_scores, ffn_scores):
            if not family.why_not("heads_keep"):
                d = family.head_size(layer)
                heads = torch.argsort(hs.flatten().float(), descending=True, stable=True)
                rows = (heads[:, None] * d + torch.arange(d)).flatten()
                family.reorder_heads_(layer, heads)
                for linear in family.head_linears(layer):
                    _permute_rows_(linear, family.head_row_index(layer, rows))
                _permute_columns_(family.part(layer, family.attention_out), rows)
            neurons = torch.argsort(fs.flatten().float(), descending=True, stable=True)
            ffn_in, ffn_out = ffn_linears(family, layer)
            _permute_rows_(ffn_in, family.ffn_row_index(layer, neurons))
            _permute_columns_(ffn_out, neurons)


# ---- sub-network shapes ----------------------------------------------------------------------


@dataclass(frozen=True)
class SubnetShape:
    """A sub-network: `depth` evenly spaced layers, the first `heads_keep` of each layer's heads
    and the first `ffn_keep` of its FFN neurons (fractions of the model's config)."""

    depth: int
    heads_keep: float = 1.0
    ffn_keep: float = 1.0


@dataclass(frozen=True)
class SubnetCounts:
    """What a `SubnetShape` keeps of one model: layer indices and per-layer head and neuron counts."""

    layers: tuple[int, ...]
    heads: int
    neurons: int


def subnet_counts(model: Classifier, shape: SubnetShape) -> SubnetCounts:
    """Turn a shape into counts the way the heads/FFN technique does: heads =
    max(1, round(heads_keep * the config's head count)) (all of them where the family keeps its heads),
    neurons = max(1, round(ffn_keep * the config's FFN width)), layers =
    `evenly_spaced_layers(number of encoder layers, depth)`."""
    for name, value in (("heads_keep", shape.heads_keep), ("ffn_keep", shape.ffn_keep)):
        if not 0.0 < value <= 1.0:
            raise ValueError(f"{name} must be in (0, 1], got {value}")
    cfg, family = model.config, model.family
    heads = family.config_heads_count(cfg)
    return SubnetCounts(
        layers=evenly_spaced_layers(len(model.encoder_layers), shape.depth),
        heads=heads if family.why_not("heads_keep") else max(1, round(shape.heads_keep * heads)),
        neurons=max(1, round(shape.ffn_keep * family.config_ffn_size(cfg))),
    )


# ---- running and copying a sub-network -------------------------------------------------------


def _keep_prefix(width: int) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]]:
    """A forward pre-hook that zeroes all but the first `width` input features of a linear."""

    def hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        x = args[0]
        return (F.pad(x[..., :width], (0, x.shape[-1] - width)), *args[1:])

    return hook


@contextlib.contextmanager
def active_subnet(model: Classifier, shape: SubnetShape) -> Iterator[Classifier]:
    """Make `model(...)` compute the sub-network `shape` on the shared weights (nothing copied).

    Only the selected layers run (the encoder's layer list is swapped for them); in each, only the
    first heads reach the attention's output projection and only the first FFN neurons reach the FFN's
    output linear (the rest of their inputs are zeroed by forward pre-hooks, so they get no gradient either).
    Everything is restored on exit, also when the block raises. Rank the units first
    (`rank_units_`) so that the first units are the most important ones.
    """
    if getattr(model, _ACTIVE, False):
        raise RuntimeError("a sub-network is already active on this model")
    counts = subnet_counts(model, shape)
    family = model.family
    record_every_layer_(model.hf)
    original = model.encoder_layers
    kept = [original[i] for i in counts.layers]
    layer_ids = []
    handles = []
    setattr(model, _ACTIVE, True)
    try:
        for new_idx, layer in enumerate(kept):
            layer_ids.append(family.set_layer_index(layer, new_idx))
            if counts.heads < family.heads(layer):
                hook = _keep_prefix(counts.heads * family.head_size(layer))
                handles.append(family.part(layer, family.attention_out).register_forward_pre_hook(hook))
            if counts.neurons < family.neurons(layer):
                hook = _keep_prefix(counts.neurons)
                handles.append(family.part(layer, family.ffn_out).register_forward_pre_hook(hook))
        family.set_encoder_layers(model.hf, nn.ModuleList(kept))
        yield model
    finally:
        family.set_encoder_layers(model.hf, original)
        for layer, idx in zip(kept, layer_ids):
            family.set_layer_index(layer, idx)
        for handle in handles:
            handle.remove()
        delattr(model, _ACTIVE)


def extract(model: Classifier, shape: SubnetShape) -> Classifier:
    """A standalone copy of the sub-network `shape`: the selected layers, and in each the first
    heads and FFN neurons, physically sliced. `model` is left unchanged."""
    if getattr(model, _ACTIVE, False):
        raise RuntimeError("cannot extract while a sub-network is active on the model")
    counts = subnet_counts(model, shape)
    sub = copy.deepcopy(model)
    keep_layers_(sub, counts.layers)
    shapes = layer_shapes(sub)
    prune_heads_(sub, [range(min(counts.heads, h)) for h, _ in shapes])
    prune_neurons_(sub, [range(min(counts.neurons, f)) for _, f in shapes])
    return sub


# ---- training with the sandwich rule ---------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ElasticSettings:
    """Training of an elastic student (fields by keyword). Each step trains the largest and the
    smallest shape made of the allowed values, plus `random_subnets` shapes drawn from them
    (seeded by `seed`)."""

    steps: int
    lr: float
    temperature: float = 2.0
    alpha: float = 1.0  # weight of the soft (teacher) loss; 1 - alpha weighs the label loss
    depths: tuple[int, ...]
    heads_fracs: tuple[float, ...]
    ffn_fracs: tuple[float, ...]
    random_subnets: int = 2
    warmup_frac: float = 0.06
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    bits: tuple[int, ...] = ()  # weight widths (8, 4, 2, 1) sub-networks also train at (see embedding_width)
    embedding_bits: tuple[int, ...] = ()  # narrower table widths quantized shapes may also train at (table_widths)
    device: str = "cpu"  # where the steps run (`engine/device.py`); the model comes back to the CPU
    bf16: bool = False  # forward passes under bfloat16 autocast on `device` (float32 weights, loss and optimizer)
    hidden_mse: float = 0.0  # weight of the layer outputs' MSE against the frozen start (`layer_map`)
    attention_kl: float = 0.0  # weight of the attention maps' KL against the frozen start (kept heads only)
    progressive: bool = False  # largest shape first, then shallower ones, then every shape (`stage_settings`)

    def __post_init__(self) -> None:
        if self.steps < 0 or self.random_subnets < 0:
            raise ValueError("steps and random_subnets must not be negative")
        if self.hidden_mse < 0 or self.attention_kl < 0:
            raise ValueError("hidden_mse and attention_kl must not be negative")
        if not (self.depths and self.heads_fracs and self.ffn_fracs):
            raise ValueError("depths, heads_fracs and ffn_fracs each need at least one value")
        if any(b not in QUANT_WIDTHS for b in (*self.bits, *self.embedding_bits)):
            raise ValueError(f"bits and embedding_bits must be among {list(QUANT_WIDTHS)}, got "
                             f"{list(self.bits)} and {list(self.embedding_bits)}")
        if self.embedding_bits and not self.bits:
            raise ValueError("embedding_bits needs bits: tables train quantized only in quantization-aware training")

    @property
    def largest(self) -> SubnetShape:
        return SubnetShape(max(self.depths), max(self.heads_fracs), max(self.ffn_fracs))

    @property
    def smallest(self) -> SubnetShape:
        return SubnetShape(min(self.depths), min(self.heads_fracs), min(self.ffn_fracs))


# progressive shrinking: the shares of the steps after which shallower shapes, then every shape, train
PROGRESSIVE_STAGES = (0.1, 0.4)


def stage_settings(settings: ElasticSettings, step: int) -> ElasticSettings:
    """The settings step `step` draws its shapes from. Without `progressive`, `settings` itself. With it: before
    the first of `PROGRESSIVE_STAGES` (a share of the steps) only the largest shape; before the second, every
    depth at the largest width; then every shape. Each step trains as many shapes in every stage."""
    if not settings.progressive:
        return settings
    done = step / max(settings.steps, 1)
    if done >= PROGRESSIVE_STAGES[1]:
        return settings
    largest = settings.largest
    depths = settings.depths if done >= PROGRESSIVE_STAGES[0] else (largest.depth,)
    return replace(settings, depths=depths, heads_fracs=(largest.heads_keep,), ffn_fracs=(largest.ffn_keep,))


def layer_map(depth: int, n_layers: int) -> tuple[int, ...]:
    """The reference layer each of a `depth`-layer sub-network's layers learns from, out of `n_layers`: layer i
    to layer ceil((i + 1) * n_layers / depth) - 1, spread evenly with the last on the last (TinyBERT's uniform
    mapping), so that the layer the head reads follows the one it was trained on."""
    if not 1 <= depth <= n_layers:
        raise ValueError(f"depth must be between 1 and {n_layers}, got {depth}")
    return tuple(-(-(i + 1) * n_layers // depth) - 1 for i in range(depth))


def _pick(values: Sequence[T], generator: torch.Generator) -> T:
    """One of `values`, uniformly, drawn from `generator`."""
    return values[int(torch.randint(len(values), (1,), generator=generator))]


def sandwich_shapes(settings: ElasticSettings, generator: torch.Generator) -> list[SubnetShape]:
    """The shapes one step trains: the largest, the smallest, then `random_subnets` shapes whose
    depth, head fraction and FFN fraction are each drawn uniformly from the allowed values."""
    shapes = [settings.largest, settings.smallest]
    for _ in range(settings.random_subnets):
        shapes.append(SubnetShape(_pick(settings.depths, generator), _pick(settings.heads_fracs, generator),
                                  _pick(settings.ffn_fracs, generator)))
    return shapes


def sandwich_widths(settings: ElasticSettings, n_shapes: int, generator: torch.Generator) -> list[int]:
    """The weight width of each of a step's `n_shapes` sandwich shapes (32: float): the largest in float,
    the smallest at the narrowest of `settings.bits`, each random one drawn from float and `bits`.
    All float without `bits` (and nothing is drawn, so float-only training draws the same shapes)."""
    if not settings.bits:
        return [32] * n_shapes
    choices = (32, *settings.bits)
    return [32, min(settings.bits)] + [_pick(choices, generator) for _ in range(n_shapes - 2)]


def embedding_width(width: int) -> int:
    """The embedding tables' width while the weights train at `width`: the same, but not below 4
    (binary or ternary tables lose too much unless they train at that width: see `table_widths`)."""
    return width if width == 32 else max(width, 4)


def table_widths(settings: ElasticSettings, widths: Sequence[int], generator: torch.Generator) -> list[int]:
    """The embedding tables' width for each of a step's shapes, whose weights train at `widths`.

    Without `settings.embedding_bits`: `embedding_width` of each (nothing is drawn, so the shapes and widths
    drawn stay those of a network trained before the setting existed). With it, a quantized shape's tables
    train at a width drawn from `embedding_width` of its weights' and the narrower `embedding_bits`; the
    smallest shape (the second) at the narrowest of them. Float shapes keep float tables."""
    if not settings.embedding_bits:
        return [embedding_width(w) for w in widths]
    out = []
    for i, width in enumerate(widths):
        if width == 32:
            out.append(32)
            continue
        widest = embedding_width(width)
        choices = (widest, *sorted((e for e in settings.embedding_bits if e < widest), reverse=True))
        out.append(choices[-1] if i == 1 else _pick(choices, generator))
    return out


def train_elastic_(
    model: Classifier,
    batches: Iterator[dict[str, torch.Tensor]],
    settings: ElasticSettings,
    *,
    teacher_logits: torch.Tensor,
    hooks: Sequence[StepHook] = (),
) -> list[float]:
    """Distill `model` in place into an elastic student; returns each step's mean loss over its shapes.

    teacher_logits[i] are the cached teacher logits of training row i (batches carry 'index' and
    'labels'). Per step, the sandwich shapes' KD losses are back-propagated one shape at a time
    (each divided by the number of shapes), then one AdamW step is taken with the warmup-then-linear
    decay schedule and gradient clipping of `distill.train_`. Dropout and the shape draws use their
    own generators seeded from `settings.seed` (the global RNG is left as it was), so a run is
    repeatable. The model is left in eval mode.

    With `settings.bits`, every weight the quantizer targets trains under a `FakeQuant` whose width is
    set per shape (`sandwich_widths`; embedding tables at `table_widths`); the quantizers are removed at the end
    (also after an error),
    leaving the latent float weights, which trials quantize after cutting.

    With `settings.hidden_mse` or `settings.attention_kl`, a frozen copy of `model` as it is before the first step
    (rank its units first) is the reference of layer-wise distillation: per step one forward pass of it, and each
    shape's layer outputs (and attention maps of its kept heads) follow the reference's on `layer_map`.
    """
    if settings.steps == 0:
        return []
    for shape in (settings.largest, settings.smallest):
        subnet_counts(model, shape)  # rejects impossible shapes before any training
    layerwise = settings.hidden_mse > 0 or settings.attention_kl > 0
    reference = copy.deepcopy(model).eval().requires_grad_(False) if layerwise else None
    on = torch.device(settings.device)
    cuda = [on] if on.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):
        torch.default_generator.manual_seed(settings.seed)  # dropout, restored by fork_rng
        if cuda:
            with torch.cuda.device(on):
                torch.cuda.manual_seed(settings.seed)  # dropout on the GPU draws from that device's generator
        if settings.bits:
            attach_fake_quant_(model, 32, 32, every_width=True)
        try:
            attention = eager_attention(model, reference) if settings.attention_kl > 0 else contextlib.nullcontext()
            with attention, placed(on, model, reference):
                return _train(model, batches, settings, teacher_logits.to(on), hooks, reference)
        finally:
            if settings.bits:
                detach_fake_quant_(model)
            model.eval()


def _train(model: Classifier, batches: Iterator[dict[str, torch.Tensor]], settings: ElasticSettings,
           teacher_logits: torch.Tensor, hooks: Sequence[StepHook], reference: Classifier | None) -> list[float]:
    params, opt, sched = optimizer(model, settings.steps, settings.lr, settings.warmup_frac, settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)
    quantizers = [(fq, isinstance(module, nn.Embedding)) for module, _, fq in fake_quants(model)]
    model.train()
    losses: list[float] = []
    on = torch.device(settings.device)
    attentions = settings.attention_kl > 0
    for step in range(settings.steps):
        batch = to_device(next(batches), on)
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
        stage = stage_settings(settings, step)
        shapes = sandwich_shapes(stage, generator)
        widths = sandwich_widths(stage, len(shapes), generator)
        tables = table_widths(stage, widths, generator)
        if reference is not None:
            with torch.no_grad(), autocast(on, settings.bf16):
                _, ref_hidden, ref_att = reference.features(**inputs, attentions=attentions)
            ref_hidden = [h.float() for h in ref_hidden]  # once a step, for every shape's loss
            ref_att = [a.float() for a in ref_att] if attentions else None
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for shape, width, table_width in zip(shapes, widths, tables):
            for fq, table in quantizers:
                fq.bits = table_width if table else width
            with active_subnet(model, shape), autocast(on, settings.bf16):
                if reference is None:
                    logits = model(**inputs)
                else:
                    logits, hidden, att = model.features(**inputs, attentions=attentions)
            loss = task_loss(model, logits.float(), teacher_logits, batch, settings.temperature, settings.alpha)
            if reference is not None:
                loss = loss + _layerwise_loss(model, shape, settings, batch["attention_mask"], (hidden, att),
                                              (ref_hidden, ref_att))
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainingDiverged(f"loss became {value} at step {step} ({shape}); lower the learning rate")
            (loss / len(shapes)).backward()
            total += value
        if settings.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
        opt.step()
        sched.step()
        mean = total / len(shapes)
        losses.append(mean)
        for hook in hooks:
            hook(step + 1, settings.steps, mean, model)
    return losses


def _layerwise_loss(model: Classifier, shape: SubnetShape, settings: ElasticSettings, mask: torch.Tensor,
                    sub: tuple, ref: tuple) -> torch.Tensor:
    """The weighted hidden-state MSE and attention KL of one shape's (hidden states, attention maps) against the
    reference's (already float32), on `layer_map`; the attention maps compared are those of the shape's kept heads (the first
    ones, in both: the reference is the ranked network)."""
    (hidden, att), (ref_hidden, ref_att) = sub, ref
    pairs = layer_map(shape.depth, len(ref_hidden) - 1)
    loss = hidden[0].new_zeros((), dtype=torch.float32)
    if settings.hidden_mse > 0:
        loss = loss + settings.hidden_mse * hidden_loss([h.float() for h in hidden], ref_hidden, pairs, mask)
    if settings.attention_kl > 0:
        heads = subnet_counts(model, shape).heads
        loss = loss + settings.attention_kl * attention_loss([a[:, :heads].float() for a in att],
                                                             [a[:, :heads] for a in ref_att], pairs, mask)
    return loss
