"""Structured (neuron) pruning: attention heads and FFN neurons are removed physically.

Layers may end up with different head counts and FFN widths; `layer_shapes` reports them. Where each
family keeps heads and neurons comes from its `Family` (`families/`).
Units are ranked by first-order Taylor importance (Michel et al. 2019 for heads, Molchanov et
al. 2017 for neurons) or, without data, by weight magnitude.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize
from transformers.pytorch_utils import prune_linear_layer

from .families import Family
from .model import Classifier

Importance = tuple[list[torch.Tensor], list[torch.Tensor]]  # (per-layer head scores, neuron scores)
LossFn = Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]


def layer_shapes(model: Classifier) -> list[tuple[int, int]]:
    """(attention heads, FFN neurons) of each encoder layer."""
    family = model.family
    return [(family.heads(layer), family.neurons(layer)) for layer in model.encoder_layers]


def taylor_importance(model: Classifier, batches: Iterable[dict[str, torch.Tensor]], loss_fn: LossFn) -> Importance:
    """First-order Taylor importance of every head and FFN neuron, summed over examples.

    Per example, a unit scores |sum over its activations of activation * dLoss/dactivation|:
    a head's activations are its slice of the input of the attention's output projection (all
    tokens, all head dims), a neuron's the input of the FFN's output linear (after the activation)
    over all tokens.
    Runs in eval mode (no dropout) and leaves parameters, their `.grad` (gradients are taken
    with `torch.autograd.grad`, never accumulated) and the train/eval mode unchanged.
    """
    family = model.family
    layers = list(model.encoder_layers)
    head_sizes = [family.head_size(layer) for layer in layers]
    heads = [torch.zeros(h) for h, _ in layer_shapes(model)]
    neurons = [torch.zeros(f) for _, f in layer_shapes(model)]
    acts: list[torch.Tensor] = []

    def save_input(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        acts.append(args[0])

    def leaf_embeddings(_module: nn.Module, _args: tuple, out: torch.Tensor) -> torch.Tensor:
        # With frozen parameters the activations would not require grad: start the graph here.
        return out if out.requires_grad else out.detach().requires_grad_(True)

    handles = [family.embeddings_module(model.hf).register_forward_hook(leaf_embeddings)]
    for layer in layers:
        handles.append(family.part(layer, family.attention_out).register_forward_pre_hook(save_input))
        handles.append(family.part(layer, family.ffn_out).register_forward_pre_hook(save_input))
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
    a neuron ||its FFN input row|| * ||its FFN output column|| (L2 norms, biases included)."""
    family = model.family
    heads, neurons = [], []
    with torch.no_grad():
        for layer in model.encoder_layers:
            n, d = family.heads(layer), family.head_size(layer)
            qkv = family.head_weights(layer)  # [n*d, 3*(hidden+1)]
            out = family.part(layer, family.attention_out).weight.float()  # [hidden, n*d]
            heads.append(qkv.reshape(n, -1).norm(dim=1) * out.view(out.shape[0], n, d).norm(dim=(0, 2)))
            inter = family.ffn_weights(layer)  # [ffn, hidden+1]
            neurons.append(inter.norm(dim=1) * family.part(layer, family.ffn_out).weight.float().norm(dim=0))
    return [h.cpu() for h in heads], [f.cpu() for f in neurons]


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


def _check(model: Classifier, keep: list[Sequence[int]],
           modules: Callable[[Family, nn.Module], list[nn.Linear]]) -> None:
    """One keep list per layer, and no parametrized module among those to slice."""
    if len(keep) != len(model.encoder_layers):
        raise ValueError(f"need one keep list per encoder layer ({len(model.encoder_layers)}), got {len(keep)}")
    family = model.family
    if any(parametrize.is_parametrized(m) for layer in model.encoder_layers for m in modules(family, layer)):
        raise ValueError("structured pruning must come before weight masks or quantization "
                         "(a module to slice is parametrized)")


def attention_linears(family: Family, layer: nn.Module) -> list[nn.Linear]:
    """The linears a head removal slices: the per-head projections (rows) and the output (columns)."""
    return [*family.head_linears(layer), family.part(layer, family.attention_out)]


def ffn_linears(family: Family, layer: nn.Module) -> list[nn.Linear]:
    """The linears a neuron removal slices: the FFN's input (rows) and output (columns)."""
    return [family.part(layer, family.ffn_in), family.part(layer, family.ffn_out)]


def prune_heads_(model: Classifier, keep: list[Sequence[int]]) -> None:
    """Keep only heads `keep[i]` (indices into the current heads) of each layer i.

    All keep lists are validated before any layer changes.
    """
    _check(model, keep, attention_linears)
    family = model.family
    layers = list(model.encoder_layers)
    idxs = [_keep_index(k, family.heads(layer), "head", i) for i, (layer, k) in enumerate(zip(layers, keep))]
    if any(idx is not None for idx in idxs) and family.why_not("heads_keep"):
        raise ValueError(f"{family.name}: heads cannot be removed ({family.why_not('heads_keep')})")
    for layer, idx in zip(layers, idxs):
        if idx is None:
            continue
        family.keep_heads_(layer, idx)
        d = family.head_size(layer)
        rows = (idx[:, None] * d + torch.arange(d)).flatten()
        for path in family.head_paths(layer):
            family.set_part(layer, path, _slice(family.part(layer, path), family.head_row_index(layer, rows), 0))
        family.set_part(layer, family.attention_out, _slice(family.part(layer, family.attention_out), rows, 1))
        family.set_heads(layer, len(idx))


def prune_neurons_(model: Classifier, keep: list[Sequence[int]]) -> None:
    """Keep only FFN neurons `keep[i]` (indices into the current neurons) of each layer i.

    All keep lists are validated before any layer changes.
    """
    _check(model, keep, ffn_linears)
    family = model.family
    layers = list(model.encoder_layers)
    idxs = [_keep_index(k, family.neurons(layer), "neuron", i) for i, (layer, k) in enumerate(zip(layers, keep))]
    for layer, idx in zip(layers, idxs):
        if idx is None:
            continue
        family.set_part(layer, family.ffn_in, _slice(family.part(layer, family.ffn_in), family.ffn_row_index(layer, idx), 0))
        family.set_part(layer, family.ffn_out, _slice(family.part(layer, family.ffn_out), idx, 1))


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
