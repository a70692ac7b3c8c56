"""Students from teacher layers, and the architecture that rebuilds them."""

import pytest
import torch

from autocompress.engine.architecture import Architecture, architecture, build
from autocompress.engine.student import evenly_spaced_layers, keep_layers_, select_layers
from conftest import make_tiny


@pytest.mark.parametrize("n, depth, expected", [(6, 3, (0, 2, 4)), (6, 2, (0, 3)), (6, 6, tuple(range(6))),
                                                (12, 4, (0, 3, 6, 9)), (3, 1, (0,))])
def test_evenly_spaced_layers(n, depth, expected):
    assert evenly_spaced_layers(n, depth) == expected


@pytest.mark.parametrize("depth", [0, 7])
def test_depth_out_of_range(depth):
    with pytest.raises(ValueError, match="depth must be between 1 and 6"):
        evenly_spaced_layers(6, depth)


def test_keep_layers_in_place_renumbers_and_keeps_weights():
    model = make_tiny(seed=2)
    third = model.encoder_layers[2].output.dense.weight.clone()
    keep_layers_(model, (0, 2))
    assert len(model.encoder_layers) == 2 and model.config.num_hidden_layers == 2
    assert torch.equal(model.encoder_layers[1].output.dense.weight, third)
    with pytest.raises(ValueError, match="do not exist"):
        keep_layers_(model, (0, 5))


def test_select_layers_leaves_the_teacher_alone():
    teacher = make_tiny(seed=2)
    student = select_layers(teacher, (1,))
    assert len(teacher.encoder_layers) == 3 and len(student.encoder_layers) == 1
    student.encoder_layers[0].output.dense.weight.data.zero_()
    assert teacher.encoder_layers[1].output.dense.weight.abs().sum() > 0


def test_build_from_a_students_architecture_has_its_shapes():
    student = select_layers(make_tiny(seed=5), (0, 2))
    arch = Architecture.from_dict(architecture(student).to_dict())
    assert arch.config["num_hidden_layers"] == 2
    rebuilt = build(arch)
    rebuilt.load_state_dict(student.state_dict())
    ids = torch.tensor([[2, 10, 11, 3]])
    assert torch.equal(rebuilt(ids, torch.ones_like(ids)), student.eval()(ids, torch.ones_like(ids)))
