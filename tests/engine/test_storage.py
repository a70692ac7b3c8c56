"""Round trips of the compressed storage: what is reloaded computes what was stored."""

import pytest
import torch

from autocompress.engine.prune import attach_masks_, magnitude_masks
from autocompress.engine.quantize import attach_fake_quant_, materialize_
from autocompress.engine.storage import load_model, save_model
from autocompress.engine.structured import layer_shapes, prune_heads_, prune_neurons_
from autocompress.engine.student import select_layers
from autocompress.engine.vocab import prune_vocab_
from conftest import make_tiny, random_batch


def _compressed(bits: int, emb_bits: int, sparse: float = 0.0, structured: bool = False, vocab: bool = False):
    model = make_tiny(seed=1)
    if structured:
        prune_heads_(model, [[0, 2], [1], [0, 1, 3]])
        prune_neurons_(model, [range(0, 64, 2), range(40), range(10, 30)])
    if vocab:
        prune_vocab_(model, torch.tensor(sorted(set(range(0, 120, 3)) | {1})), unk_id=1)
    if sparse:
        attach_masks_(model, magnitude_masks(model, sparse, "global"))
    if bits < 32 or emb_bits < 32:
        attach_fake_quant_(model, bits, emb_bits)
    materialize_(model)
    return model.eval()


CASES = [
    dict(bits=32, emb_bits=32),
    dict(bits=16, emb_bits=16),
    dict(bits=8, emb_bits=8),
    dict(bits=4, emb_bits=8),
    dict(bits=2, emb_bits=4),
    dict(bits=1, emb_bits=8),
    dict(bits=32, emb_bits=32, sparse=0.6),
    dict(bits=8, emb_bits=8, sparse=0.5),
    dict(bits=1, emb_bits=4, sparse=0.5),
    dict(bits=32, emb_bits=32, structured=True),
    dict(bits=4, emb_bits=4, structured=True, vocab=True, sparse=0.3),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_round_trip_reproduces_the_model(tmp_path, case):
    model = _compressed(**case)
    size = save_model(model, tmp_path, case["bits"], case["emb_bits"])
    assert size == (tmp_path / "weights.safetensors").stat().st_size
    again = load_model(tmp_path)
    assert layer_shapes(again) == layer_shapes(model)
    x = random_batch(8, 10, vocab=120, seed=3)
    a, b = model(**x), again(**x)
    if case["bits"] == 16:
        # bf16 storage: the model is meant to run in bf16, where both agree exactly
        assert torch.equal(model.to(torch.bfloat16)(**x), again.to(torch.bfloat16)(**x))
    else:
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
        assert torch.equal(a.argmax(-1), b.argmax(-1))


def test_bytes_shrink_with_bits(tmp_path):
    sizes = {}
    for bits in (32, 8, 4, 2, 1):
        sizes[bits] = save_model(_compressed(bits, bits), tmp_path / str(bits), bits, bits)
    # tiny models carry fixed overhead (header, biases, norms, scales); still strictly ordered
    assert sizes[32] > 2.5 * sizes[8] > 0
    assert sizes[32] > sizes[8] > sizes[4] > sizes[2] > sizes[1]


def test_sparsity_saves_bytes_in_float(tmp_path):
    dense = save_model(_compressed(32, 32), tmp_path / "d", 32, 32)
    sparse = save_model(_compressed(32, 32, sparse=0.7), tmp_path / "s", 32, 32)
    assert sparse < dense


def test_select_layers_keeps_teacher_weights():
    teacher = make_tiny(seed=2)
    student = select_layers(teacher, (0, 2))
    assert len(student.encoder_layers) == 2 and student.config.num_hidden_layers == 2
    assert torch.equal(student.encoder_layers[1].output.dense.weight, teacher.encoder_layers[2].output.dense.weight)
    assert len(teacher.encoder_layers) == 3  # the teacher is untouched


def test_vocab_pruning_keeps_outputs_for_kept_tokens():
    model = make_tiny(seed=4)
    x = random_batch(4, 8, vocab=60, seed=5)
    before = model(**x)
    kept = torch.tensor(sorted(set(x["input_ids"].flatten().tolist()) | {0, 1}))
    prune_vocab_(model, kept, unk_id=1)
    assert model.hf.base_model.embeddings.word_embeddings.num_embeddings == len(kept)
    assert torch.allclose(model(**x), before, atol=1e-6)
    # a token outside the kept set behaves like [UNK]
    y = dict(x, input_ids=x["input_ids"].clone())
    y["input_ids"][0, 1] = 119 if 119 not in kept else 118
    z = dict(x, input_ids=y["input_ids"].clone())
    z["input_ids"][0, 1] = 1
    assert torch.allclose(model(**y), model(**z))
