"""Every model family through the engine, on tiny randomly initialized models of each family's own config
class with a tokenizer of its kind: what each cut keeps, the rebuild from stored bytes, the elastic network
and every CPU runtime."""

from __future__ import annotations

import pytest
import torch

from autocompress.engine.elastic import SubnetShape, active_subnet, extract, rank_units_
from autocompress.engine.families import family_for, family_of
from autocompress.engine.lowrank import factorize_
from autocompress.engine.model import Classifier
from autocompress.engine.prune import attach_masks_, magnitude_masks
from autocompress.engine.quantize import attach_fake_quant_, materialize_
from autocompress.engine.runtimes import get, make_runtime, open_runtime
from autocompress.engine.storage import load_model, save_model
from autocompress.engine.structured import layer_shapes, magnitude_importance, prune_heads_, prune_neurons_
from autocompress.engine.student import keep_layers_, select_layers
from autocompress.engine.vocab import prune_vocab_
from autocompress.testing import TINY_FAMILIES, make_sentences, make_teacher_dir, tiny_tokenizer

FAMILY = pytest.mark.parametrize("family", TINY_FAMILIES)
_FOLDERS: dict[str, object] = {}


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    def folder(family: str):
        if family not in _FOLDERS:
            _FOLDERS[family] = make_teacher_dir(tmp_path_factory.mktemp(family), family=family)
        return _FOLDERS[family]

    return folder


def _load(folder) -> Classifier:
    from transformers import AutoModelForSequenceClassification

    return Classifier(AutoModelForSequenceClassification.from_pretrained(folder)).eval()


def _batch(family: str, n: int = 6, seed: int = 3) -> dict[str, torch.Tensor]:
    """Generated sentences as the family's tokenizer encodes them, padded (some rows are shorter)."""
    texts, _ = make_sentences(n, seed=seed)
    enc = tiny_tokenizer(family)(texts, padding=True, return_tensors="pt", return_token_type_ids=True)
    return {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


def _logits(model, x) -> torch.Tensor:
    with torch.inference_mode():
        return model(x["input_ids"], x["attention_mask"], x["token_type_ids"])


def _heads_removable(model: Classifier) -> bool:
    return model.family.why_not("heads_keep") is None


@FAMILY
def test_each_tiny_teacher_is_of_its_family_and_well_above_chance(family, teacher_dir):
    model = _load(teacher_dir(family))
    assert family_of(model.config) is family_for(family)
    assert layer_shapes(model) == [(4, 64)] * 3
    texts, labels = make_sentences(64, seed=7)
    enc = tiny_tokenizer(family)(texts, padding=True, return_tensors="pt", return_token_type_ids=True)
    pred = _logits(model, enc).argmax(-1)
    assert (pred == torch.tensor(labels)).float().mean() > 0.9


@FAMILY
def test_a_cut_that_removes_nothing_leaves_the_outputs_unchanged(family, teacher_dir):
    model, x = _load(teacher_dir(family)), _batch(family)
    before = _logits(model, x)
    keep_layers_(model, range(3))
    prune_heads_(model, [range(4)] * 3)
    prune_neurons_(model, [range(64)] * 3)
    used = torch.unique(torch.cat([x["input_ids"].flatten(), torch.tensor([model_unk(family)])]))
    prune_vocab_(model, used.sort().values, unk_id=model_unk(family))
    assert torch.allclose(_logits(model, x), before, atol=1e-5)


def model_unk(family: str) -> int:
    return int(tiny_tokenizer(family).unk_token_id)


@FAMILY
@pytest.mark.parametrize("bits, embedding_bits", [(8, 8), (4, 8), (2, 4), (1, 8)])
def test_every_cut_is_stored_and_rebuilt_from_its_bytes(family, bits, embedding_bits, teacher_dir, tmp_path):
    model, x = _load(teacher_dir(family)), _batch(family)
    model = select_layers(model, (0, 2))
    if _heads_removable(model):
        prune_heads_(model, [[0, 3], [1, 2, 3]])
    prune_neurons_(model, [range(0, 64, 2), range(40)])
    used = torch.unique(torch.cat([x["input_ids"].flatten(), torch.tensor([model_unk(family)])]))
    prune_vocab_(model, used.sort().values, unk_id=model_unk(family))
    factorize_(model, 0.5)
    attach_masks_(model, magnitude_masks(model, 0.3, "global"))
    attach_fake_quant_(model, bits, embedding_bits)
    materialize_(model)
    save_model(model, tmp_path / "m", bits, embedding_bits)
    again = load_model(tmp_path / "m")
    assert family_of(again.config) is model.family
    assert layer_shapes(again) == layer_shapes(model)
    assert torch.allclose(_logits(again, x), _logits(model, x), atol=1e-5)


@FAMILY
def test_the_pruned_vocabulary_keeps_the_outputs_of_the_tokens_it_keeps(family, teacher_dir):
    # RoBERTa and MPNet count positions from the padding id: a remapped padding id must not move them
    model, x = _load(teacher_dir(family)), _batch(family)
    before = _logits(model, x)
    used = torch.unique(torch.cat([x["input_ids"].flatten(), torch.tensor([model_unk(family)])]))
    prune_vocab_(model, used.sort().values, unk_id=model_unk(family))
    assert model.family.word_table(model.hf).num_embeddings == len(used)
    assert torch.allclose(_logits(model, x), before, atol=1e-5)


@FAMILY
def test_elastic_ranking_keeps_the_function_and_a_subnet_runs_as_its_extracted_copy(family, teacher_dir):
    model, x = _load(teacher_dir(family)), _batch(family)
    before = _logits(model, x)
    rank_units_(model, magnitude_importance(model))
    assert torch.allclose(_logits(model, x), before, atol=1e-5)
    shape = SubnetShape(depth=2, heads_keep=0.5, ffn_keep=0.5)
    with active_subnet(model, shape):
        shared = _logits(model, x)
    sub = extract(model, shape)
    assert len(sub.encoder_layers) == 2 and len(model.encoder_layers) == 3
    assert layer_shapes(sub) == [(2 if _heads_removable(model) else 4, 32)] * 2
    assert torch.allclose(_logits(sub, x), shared, atol=1e-5)
    assert torch.allclose(_logits(model, x), before, atol=1e-5)  # the network is whole again


def test_a_family_that_keeps_its_heads_refuses_to_remove_one_and_a_search_leaves_them_out(teacher_dir, monkeypatch):
    import dataclasses

    from autocompress.engine import families
    from autocompress.search.space import SearchSpace
    from autocompress.search.study import SearchSettings, fitted_to_family

    keeps = dataclasses.replace(family_for("bert"), unsupported={"heads_keep": "its heads carry state"})
    monkeypatch.setitem(families._BY_TYPE, "bert", keeps)
    model = _load(teacher_dir("bert"))
    with pytest.raises(ValueError, match="bert: heads cannot be removed \\(its heads carry state\\)"):
        prune_heads_(model, [[0, 1]] * 3)
    space = SearchSpace.model_validate({"name": "s", "dims": {"heads_keep": {"choices": [0.5, 1.0]},
                                                              "ffn_keep": {"choices": [0.5, 1.0]}}})
    lines: list[str] = []
    fitted = fitted_to_family(SearchSettings(study="s", space=space), keeps, lines.append)
    assert set(fitted.space.dims) == {"ffn_keep"}
    assert lines == ["search: 'heads_keep' is left out of search space 's' for this bert teacher: its heads carry state"]


# ---- runtimes ---------------------------------------------------------------------------------

RUNTIMES = ("torch", "onnxruntime", "openvino")
REL_TOL = {32: 1e-3, 16: 0.1, 8: 0.3, 4: 0.3}  # 4 bits: weights expanded at load to what the runtime runs


@FAMILY
@pytest.mark.parametrize("name", RUNTIMES)
@pytest.mark.parametrize("bits", (32, 16, 8, 4))
def test_every_runtime_runs_every_family_and_reopens_its_files(family, name, bits, teacher_dir, tmp_path):
    model, x = _load(teacher_dir(family)), _batch(family, n=8)
    calibration = [_batch(family, n=8, seed=s) for s in (11, 12)] if get(name).needs_calibration(bits) else ()
    session = make_runtime(model, bits, name, tmp_path, 1, calibration)
    ref = _logits(model, x)
    with torch.inference_mode():
        out = session.run(x["input_ids"], x["attention_mask"], x["token_type_ids"])
    assert out.shape == ref.shape
    assert (out - ref).abs().max() <= REL_TOL[bits] * ref.abs().max()
    if session.files:  # what it deployed opens again to the same outputs
        opened = open_runtime(name, tmp_path, bits, 1)
        with torch.inference_mode():
            again = opened.run(x["input_ids"], x["attention_mask"], x["token_type_ids"])
        assert torch.equal(again, out)


def test_modernbert_without_its_first_layer_keeps_each_layers_attention_and_norm(teacher_dir, tmp_path):
    # its first layer has no norm before attention and layers alternate full / sliding-window attention
    model, x = _load(teacher_dir("modernbert")), _batch("modernbert")
    kinds = [layer.attention_type for layer in model.encoder_layers]
    sub = select_layers(model, (1, 2))
    assert sub.config.layer_types == kinds[1:]
    save_model(sub, tmp_path / "m", 32, 32)
    again = load_model(tmp_path / "m")
    assert [layer.attention_type for layer in again.encoder_layers] == kinds[1:]
    assert not isinstance(again.encoder_layers[0].attn_norm, torch.nn.Identity)
    assert torch.allclose(_logits(again, x), _logits(sub, x), atol=1e-5)


_RELOAD = """
import json, sys, torch
from pathlib import Path
from autocompress.engine.storage import load_model
torch.set_num_threads(1)  # as the tests run: the same order of sums
x = {k: torch.tensor(v) for k, v in json.loads(sys.stdin.read()).items()}
with torch.inference_mode():
    print(json.dumps(load_model(Path(sys.argv[1]))(x["input_ids"], x["attention_mask"], x["token_type_ids"]).tolist()))
"""


@FAMILY
def test_a_stored_cut_reloads_in_a_fresh_process_to_the_same_logits(family, teacher_dir, tmp_path):
    import json
    import subprocess
    import sys

    model, x = _load(teacher_dir(family)), _batch(family)
    model = select_layers(model, (1, 2))
    if _heads_removable(model):
        prune_heads_(model, [[1, 2], [0, 3]])
    prune_neurons_(model, [range(0, 64, 4), range(20)])
    attach_fake_quant_(model, 8, 8)
    materialize_(model)
    save_model(model, tmp_path / "m", 8, 8)
    feeds = json.dumps({k: v.tolist() for k, v in x.items()})
    proc = subprocess.run([sys.executable, "-c", _RELOAD, str(tmp_path / "m")], input=feeds, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert torch.allclose(torch.tensor(json.loads(proc.stdout)), _logits(model, x), rtol=0, atol=1e-6)


@FAMILY
def test_layer_wise_distillation_trains_a_student_of_every_family(family, teacher_dir):
    # hidden-state MSE and attention KL between mapped layers, as the distillation technique asks for them
    from autocompress.engine.distill import TrainSettings, train_

    teacher, x = _load(teacher_dir(family)), _batch(family, n=8)
    student = select_layers(teacher, (0, 2))
    labels = torch.arange(8) % 2

    def batches():
        while True:
            yield {**x, "labels": labels, "index": torch.arange(8)}

    settings = TrainSettings(steps=3, lr=1e-3, alpha=0.5, hidden_mse=1.0, attention_kl=1.0)
    losses = train_(student, batches(), settings, teacher_logits=_logits(teacher, x), teacher=teacher,
                    layer_map=(0, 2))
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
