"""Structured (neuron) pruning: attention heads and FFN neurons are removed physically.

Layers may end up with different head counts and FFN widths; `layer_shapes` reports them.
Units are ranked by first-order Taylor importance (Michel et al. 2019 for heads, Molchanov et
al. 2017 for neurons) or, without data, by weight magnitude.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize
from transformers.pytorch_utils import prune_linear_layer

from .model import Classifier

Importance = tuple[list[torch.Tensor], list[torch.Tensor]]  # (per-layer head scores, neuron scores)
LossFn = Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]


def layer_shapes(model: Classifier) -> list[tuple[int, int]]:
    """(attention heads, FFN neurons) of each encoder layer."""
    return [(layer.attention.self.num_attention_heads, layer.intermediate.dense.out_features)
            for layer in model.encoder_layers]


def taylor_importance(model: Classifier, batches: Iterable[dict[str, torch.Tensor]], loss_fn: LossFn) -> Importance:
    """First-order Taylor importance of every head and FFN neuron, summed over examples.

    Per example, a unit scores |sum over its activations of activation * dLoss/dactivation|:
    a head's activations are its slice of the input of `attention.output.dense` (all tokens,
    all head dims), a neuron's the input of `output.dense` (after GELU) over all tokens.
    Runs in eval mode (no dropout) and leaves parameters, their `.grad` (gradients are taken
    with `torch.autograd.grad`, never accumulated) and the train/eval mode unchanged.
    """
    layers = list(model.encoder_layers)
    head_sizes = [layer.attention.self.attention_head_size for layer in layers]
    heads = [torch.zeros(h) for h, _ in layer_shapes(model)]
    neurons = [torch.zeros(f) for _, f in layer_shapes(model)]
    acts: list[torch.Tensor] = []

    def save_input(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        acts.append(args[0])

    def leaf_embeddings(_module: nn.Module, _args: tuple, out: torch.Tensor) -> torch.Tensor:
        # With frozen parameters the activations would not require grad: start the graph here.
        return out if out.requires_grad else out.detach().requires_grad_(True)

    handles = [model.hf.base_model.embeddings.register_forward_hook(leaf_embeddings)]
    for layer in layers:
        handles.append(layer.attention.output.dense.register_forward_pre_hook(save_input))
        handles.append(layer.output.dense.register_forward_pre_hook(save_input))
    was_training = model.training
    model.eval()
    seen = 0
    try:
        with torch.enable_grad():
            for batch in batches:
                acts.clear()
                logits = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
                grads = torch.autograd.grad(loss_fn(logits, batch), acts)
                for i, d in enumerate(head_sizes):
                    # [batch, features]: activation * grad summed over tokens, per example
                    h = (acts[2 * i].detach() * grads[2 * i]).float().sum(dim=1)
                    f = (acts[2 * i + 1].detach() * grads[2 * i + 1]).float().sum(dim=1)
                    heads[i] += h.view(h.shape[0], -1, d).sum(-1).abs().sum(0).cpu()
                    neurons[i] += f.abs().sum(0).cpu()
                seen += 1
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
        acts.clear()
    if seen == 0:
        raise ValueError("taylor_importance needs at least one batch")
    return heads, neurons


def magnitude_importance(model: Classifier) -> Importance:
    """Data-free importance: a head scores ||its attention-output columns|| * ||its q/k/v rows||,
    a neuron ||its intermediate row|| * ||its output column|| (L2 norms, biases included)."""
    heads, neurons = [], []
    with torch.no_grad():
        for layer in model.encoder_layers:
            sa = layer.attention.self
            n, d = sa.num_attention_heads, sa.attention_head_size
            qkv = torch.cat([_rows(m) for m in (sa.query, sa.key, sa.value)], dim=1)  # [n*d, 3*(hidden+1)]
            out = layer.attention.output.dense.weight.float()  # [hidden, n*d]
            heads.append(qkv.view(n, -1).norm(dim=1) * out.view(out.shape[0], n, d).norm(dim=(0, 2)))
            inter = _rows(layer.intermediate.dense)  # [ffn, hidden+1]
            neurons.append(inter.norm(dim=1) * layer.output.dense.weight.float().norm(dim=0))
    return [h.cpu() for h in heads], [f.cpu() for f in neurons]


def _rows(linear: nn.Linear) -> torch.Tensor:
    """Weight rows with the bias appended as a last column (float32)."""
    w = linear.weight.float()
    if linear.bias is None:
        return w
    return torch.cat([w, linear.bias.float().unsqueeze(1)], dim=1)


def _keep_index(keep: Sequence[int], size: int, what: str, layer: int) -> torch.Tensor | None:
    """Sorted kept indices, or None when everything is kept (nothing to do)."""
    idx = sorted(int(i) for i in keep)
    if not idx:
        raise ValueError(f"layer {layer}: keep at least one {what}")
    if len(set(idx)) != len(idx) or idx[0] < 0 or idx[-1] >= size:
        raise ValueError(f"layer {layer}: {what} indices must be distinct and in 0..{size - 1}, got {list(keep)}")
    if len(idx) == size:
        return None
    return torch.tensor(idx, dtype=torch.long)


def _slice(linear: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """`prune_linear_layer` that keeps dtype and requires_grad of the original layer."""
    new = prune_linear_layer(linear, index, dim).to(dtype=linear.weight.dtype)
    new.requires_grad_(linear.weight.requires_grad)
    return new


def _check(model: Classifier, keep: list[Sequence[int]], modules: Callable[[nn.Module], list[nn.Linear]]) -> None:
    """One keep list per layer, and no parametrized module among those to slice."""
    if len(keep) != len(model.encoder_layers):
        raise ValueError(f"need one keep list per encoder layer ({len(model.encoder_layers)}), got {len(keep)}")
    if any(parametrize.is_parametrized(m) for layer in model.encoder_layers for m in modules(layer)):
        raise ValueError("structured pruning must come before weight masks or quantization "
                         "(a module to slice is parametrized)")


def _attention_linears(layer: nn.Module) -> list[nn.Linear]:
    sa = layer.attention.self
    return [sa.query, sa.key, sa.value, layer.attention.output.dense]


def _ffn_linears(layer: nn.Module) -> list[nn.Linear]:
    return [layer.intermediate.dense, layer.output.dense]


def prune_heads_(model: Classifier, keep: list[Sequence[int]]) -> None:
    """Keep only heads `keep[i]` (indices into the current heads) of each layer i.

    All keep lists are validated before any layer changes.
    """
    _check(model, keep, _attention_linears)
    layers = list(model.encoder_layers)
    idxs = [_keep_index(k, layer.attention.self.num_attention_heads, "head", i)
            for i, (layer, k) in enumerate(zip(layers, keep))]
    for layer, idx in zip(layers, idxs):
        if idx is None:
            continue
        sa = layer.attention.self
        d = sa.attention_head_size
        rows = (idx[:, None] * d + torch.arange(d)).flatten()
        sa.query, sa.key, sa.value = (_slice(m, rows, 0) for m in (sa.query, sa.key, sa.value))
        layer.attention.output.dense = _slice(layer.attention.output.dense, rows, 1)
        sa.num_attention_heads = len(idx)
        sa.all_head_size = len(idx) * d


def prune_neurons_(model: Classifier, keep: list[Sequence[int]]) -> None:
    """Keep only FFN neurons `keep[i]` (indices into the current neurons) of each layer i.

    All keep lists are validated before any layer changes.
    """
    _check(model, keep, _ffn_linears)
    layers = list(model.encoder_layers)
    idxs = [_keep_index(k, layer.intermediate.dense.out_features, "neuron", i)
            for i, (layer, k) in enumerate(zip(layers, keep))]
    for layer, idx in zip(layers, idxs):
        if idx is None:
            continue
        layer.intermediate.dense = _slice(layer.intermediate.dense, idx, 0)
        layer.output.dense = _slice(layer.output.dense, idx, 1)


def _top(scores: torch.Tensor, k: int) -> list[int]:
    """Indices of the k highest scores (ties: lower index first), in original order."""
    order = torch.argsort(scores, descending=True, stable=True)
    return sorted(order[:k].tolist())


def prune_structured_(
    model: Classifier,
    heads: int | Sequence[int],
    neurons: int | Sequence[int],
    importance: Importance | None = None,
) -> None:
    """Keep the `heads` most important heads and `neurons` most important FFN neurons per layer
    (an int for all layers, or one count per layer). Layers already at or below a target are
    left alone. `importance` defaults to `magnitude_importance(model)`."""
    n = len(model.encoder_layers)
    head_t = [heads] * n if isinstance(heads, int) else list(heads)
    ffn_t = [neurons] * n if isinstance(neurons, int) else list(neurons)
    if len(head_t) != n or len(ffn_t) != n:
        raise ValueError(f"need one target per encoder layer ({n})")
    if min(head_t + ffn_t) < 1:
        raise ValueError("keep at least one head and one neuron per layer")
    head_scores, ffn_scores = importance if importance is not None else magnitude_importance(model)
    shapes = layer_shapes(model)
    for i, ((h, f), hs, fs) in enumerate(zip(shapes, head_scores, ffn_scores)):
        if hs.numel() != h or fs.numel() != f:
            raise ValueError(f"layer {i}: importance shapes ({hs.numel()}, {fs.numel()}) do not match the model ({h}, {f})")
    prune_heads_(model, [_top(hs, t) if h > t else range(h)
                         for (h, _), hs, t in zip(shapes, head_scores, head_t)])
    prune_neurons_(model, [_top(fs, t) if f > t else range(f)
                           for (_, f), fs, t in zip(shapes, ffn_scores, ffn_t)])
