"""Low-rank factorization of the FFN linears: exact at full rank, optimal at lower rank, stored
in factored form (fewer bytes for real) and reloaded to the same predictions."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from autocompress.engine.measure import predict_logits
from autocompress.engine.pipeline import compress
from autocompress.engine.storage import load_model
from autocompress.engine.targets import encoder_linears
from autocompress.engine.lowrank import LowRankLinear, factorize_
from autocompress.engine.errors import ConfigError
from autocompress.engine.recipe import Recipe
from conftest import make_tiny


def _linear(out_f=12, in_f=8, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(in_f, out_f)


def test_full_rank_reproduces_the_linear():
    lin = _linear()
    x = torch.randn(5, 8)
    assert torch.allclose(LowRankLinear.from_linear(lin, 8)(x), lin(x), atol=1e-5)


@pytest.mark.parametrize("rank", [1, 3, 6])
def test_truncation_error_is_the_dropped_singular_values(rank):
    lin = _linear()
    low = LowRankLinear.from_linear(lin, rank)
    w = lin.weight.detach()
    approx = low.up.weight.detach() @ low.down.weight.detach()
    s = torch.linalg.svdvals(w)
    assert torch.linalg.norm(w - approx).item() == pytest.approx(s[rank:].pow(2).sum().sqrt().item(), rel=1e-4)
    assert torch.equal(low.up.bias, lin.bias)
    assert low.down.weight.shape == (rank, 8) and low.up.weight.shape == (12, rank)


def test_factors_are_targets_of_pruning_and_quantization():
    model = make_tiny()
    before = encoder_linears(model)
    factorize_(model, 0.25)
    after = encoder_linears(model)
    assert len(after) == len(before) + 2 * 3  # each layer's two FFN linears became two factors each
    assert "hf.bert.encoder.layer.0.intermediate.dense.down" in after
    assert "hf.bert.encoder.layer.0.intermediate.dense" not in after


def test_rank_keep_is_validated():
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match="rank_keep"):
            Recipe.from_dict({"rank_keep": bad})


def test_stored_factored_model_is_smaller_and_reloads_the_same(tiny_inputs, tmp_path):
    full = compress(tiny_inputs, Recipe(train_steps=3, batch_size=16), tmp_path / "full")
    low = compress(tiny_inputs, Recipe(rank_keep=0.25, train_steps=3, batch_size=16, bits=8), tmp_path / "low")
    arch = json.loads((tmp_path / "low" / "architecture.json").read_text())
    assert arch["ffn_ranks"] == [{"intermediate": 8, "output": 8}] * 3  # a quarter of min(32, 64)
    # the tiny FFN is 32 x 64: 2 * 32 * 64 weights per layer become 2 * 8 * (32 + 64)
    assert low.metrics.params == full.metrics.params - 3 * (2 * 32 * 64 - 2 * 8 * 96)
    assert low.metrics.weight_bytes < full.metrics.weight_bytes
    again = load_model(tmp_path / "low")
    rows = tiny_inputs.data.validation
    np.testing.assert_array_equal(predict_logits(again, rows), predict_logits(low.model, rows))
