"""The technique registry: the Recipe is the union of the techniques' fields, every technique is a
no-op at its defaults, and every shape a technique changes is stored and rebuilt."""

import pytest
import torch

from autocompress.engine.architecture import Architecture, architecture, build
from autocompress.engine.student import select_layers
from autocompress.engine.techniques import TECHNIQUES, BuildContext, apply_all_, check
from autocompress.engine.techniques.heads_ffn import HeadsAndNeurons
from autocompress.engine.lowrank import factorize_
from autocompress.engine.techniques.unstructured import schedule_of
from autocompress.engine.vocab import prune_vocab_
from autocompress.engine.structured import prune_structured_
from autocompress.engine.recipe import Recipe
from conftest import make_tiny


def test_recipe_fields_are_the_techniques_fields_each_owned_once():
    owned = [name for t in TECHNIQUES for name in t.Fields.model_fields]
    assert len(owned) == len(set(owned))
    assert set(owned) == set(Recipe.model_fields)
    assert [t.name for t in TECHNIQUES][:4] == ["layers", "vocabulary", "heads_ffn", "lowrank"]


def test_at_their_defaults_the_techniques_leave_the_teacher_as_it_is(tiny_inputs):
    model = select_layers(tiny_inputs.teacher, None)
    ctx = BuildContext(tiny_inputs, Recipe(), tiny_inputs.data.train, tiny_inputs.teacher_logits)
    apply_all_(model, ctx)
    assert ctx.hooks == []
    before, after = tiny_inputs.teacher.state_dict(), model.state_dict()
    assert list(before) == list(after)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert architecture(model).to_dict() == architecture(tiny_inputs.teacher).to_dict()


def test_teacher_dependent_check_names_the_problem():
    assert check(Recipe(layers=(0, 5)), 3) == "layers: the teacher has layers 0..2, got [0, 5]"
    assert check(Recipe(layers=(0, 2)), 3) is None


@pytest.mark.parametrize("recipe, expected", [
    (Recipe(prune_threshold=0.1, train_steps=50), "oneshot"),  # a threshold is always one shot
    (Recipe(prune_ratio=0.5, train_steps=0), "oneshot"),  # nothing to spread a schedule over
    (Recipe(prune_ratio=0.5, train_steps=50), "gradual"),
    (Recipe(prune_ratio=0.5, train_steps=50, prune_schedule="oneshot"), "oneshot"),
])
def test_one_place_decides_the_pruning_schedule(recipe, expected):
    assert schedule_of(recipe) == expected


def _every_shape_changed():
    model = make_tiny(seed=3)
    prune_vocab_(model, torch.tensor([0, 1, 2, 3, 7, 9, 40, 99]), unk_id=1)
    prune_structured_(model, [2, 4, 3], [40, 64, 17])
    factorize_(model, 0.5)
    return model


def test_architecture_round_trip_rebuilds_every_technique_shape():
    model = _every_shape_changed()
    arch = architecture(model).to_dict()
    assert arch["heads"] == [2, 4, 3] and arch["ffn"] == [40, 64, 17]
    assert arch["vocab_full_size"] == 120 and arch["unk_id"] == 1
    assert arch["ffn_ranks"][0] == {"intermediate": 16, "output": 16}  # half of min(32, 40)
    rebuilt = build(Architecture.from_dict(arch), model.kept_tokens)
    want = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == want
    rebuilt.load_state_dict(model.state_dict())
    ids = torch.tensor([[2, 7, 99, 50, 3]])  # 50 was dropped: it maps to [UNK]
    mask = torch.ones_like(ids)
    assert torch.equal(rebuilt(ids, mask), model.eval()(ids, mask))


def test_an_architecture_file_from_before_the_registry_still_loads():
    model = make_tiny(seed=1)
    old = {"config": architecture(model).config, "heads": [4, 4, 4], "ffn": [64, 64, 64],
           "vocab_full_size": None, "unk_id": None}
    rebuilt = build(Architecture.from_dict(old))
    rebuilt.load_state_dict(model.state_dict())
    assert architecture(rebuilt).to_dict() == old


def test_head_removal_ranks_on_the_candidate_training_rows(tiny_inputs):
    model = select_layers(tiny_inputs.teacher, None)
    recipe = Recipe(heads_keep=0.5, ffn_keep=0.25, batch_size=8)
    HeadsAndNeurons().apply_(model, BuildContext(tiny_inputs, recipe, tiny_inputs.data.train,
                                                 tiny_inputs.teacher_logits))
    assert HeadsAndNeurons().describe(model) == {"heads": [2, 2, 2], "ffn": [16, 16, 16]}
