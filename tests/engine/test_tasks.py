"""The task contract: each task's scores against hand-computed values, its loss, its batches, its constant
predictor, its labels read from files (bad ones: one line naming file and row), and its model built back from
its architecture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autocompress.engine.batches import collate, pack
from autocompress.engine.errors import DataError
from autocompress.engine.measure import predict_logits
from autocompress.engine.tasks import SCORE_NAMES, TASK_NAMES, get_task, task_of
from autocompress.engine.tasks.base import correlations
from autocompress.engine.tasks.embedding import pair_cosines
from autocompress.engine.tasks.tokens import IGNORED

REGRESSION, TOKENS, EMBEDDING = get_task("regression"), get_task("token_classification"), get_task("embedding")


def test_the_registry_names_every_task_and_its_scores():
    assert TASK_NAMES == ("regression", "classification", "token_classification", "embedding")
    assert {"accuracy", "spearman", "entity_f1"} <= set(SCORE_NAMES)
    with pytest.raises(ValueError, match="unknown task type 'ranking'; known: regression, classification"):
        get_task("ranking")


def test_correlations_by_hand():
    # ranks equal the values; d = x - mean = (-1.5, -0.5, 0.5, 1.5), e = (-1.5, 0.5, -0.5, 1.5):
    # sum(d * e) = 2.25 - 0.25 - 0.25 + 2.25 = 4, sum(d^2) = sum(e^2) = 5, so both are 4 / 5
    got = correlations(np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 2, 4]))
    assert got == pytest.approx({"pearson": 0.8, "spearman": 0.8})
    # Pearson sees the values, Spearman only their order
    got = correlations(np.array([1.0, 2, 3, 100]), np.array([1.0, 2, 3, 4]))
    assert got["spearman"] == pytest.approx(1.0) and got["pearson"] < 0.8
    assert correlations(np.full(4, 2.5), np.array([1.0, 3, 2, 4])) == {"pearson": 0.0, "spearman": 0.0}


def test_regression_scores_loss_and_constant_predictor():
    rows = pack([[1, 5, 2]] * 4, [[0, 0, 0]] * 4, np.array([1.0, 3.0, 2.0, 4.0]))
    assert rows.labels.dtype == np.float32
    assert REGRESSION.metrics(np.array([[1.0], [2.0], [3.0], [4.0]]), rows, ()) == pytest.approx(
        {"pearson": 0.8, "spearman": 0.8})
    said, out = REGRESSION.constant_outputs(rows, rows, ())
    assert said == "2.500" and REGRESSION.metrics(out, rows, ())["spearman"] == 0.0
    student, teacher = torch.tensor([[1.0], [2.0]]), torch.tensor([[2.0], [2.0]])
    batch = {"labels": torch.tensor([1.0, 4.0])}
    assert REGRESSION.loss(student, teacher, batch, 2.0, 0.0).item() == pytest.approx((0 + 4) / 2)  # labels only
    assert REGRESSION.loss(student, teacher, batch, 2.0, 1.0).item() == pytest.approx((1 + 0) / 2)  # teacher only


def test_a_regression_label_that_is_not_a_number_names_its_row():
    with pytest.raises(DataError, match=r"train data: row 3 has label 'high', not a number"):
        REGRESSION.label_values(["1.5", "2", "high"], None, "train data")


def test_embedding_pairs_are_scored_by_cosine_similarity():
    # pair 0: identical directions (cos 1); pair 1: orthogonal (cos 0); pair 2: opposite (cos -1)
    out = np.array([[1.0, 0], [2, 0], [1, 0], [0, 3], [1, 1], [-1, -1]])
    assert pair_cosines(out) == pytest.approx([1.0, 0.0, -1.0])
    rows = pack([[1, 2]] * 6, [[0, 0]] * 6, np.repeat([5.0, 2.5, 0.0], 2))
    assert EMBEDDING.metrics(out, rows, ()) == pytest.approx({"spearman": 1.0, "pearson": 1.0})
    said, constant = EMBEDDING.constant_outputs(rows, rows, ())
    assert EMBEDDING.metrics(constant, rows, ())["spearman"] == 0.0


def test_embedding_loss_is_zero_only_on_the_teacher_embedding():
    t = torch.tensor([[1.0, 2.0], [0.5, -1.0]])
    assert EMBEDDING.loss(t.clone(), t, {}, 2.0, 0.5).item() == pytest.approx(0.0, abs=1e-6)
    assert EMBEDDING.loss(t * 2, t, {}, 2.0, 0.5).item() > 0  # same direction, wrong length: MSE counts it
    assert EMBEDDING.loss(-t, t, {}, 2.0, 0.5).item() > 2  # opposite: cosine distance 2 on every row


def _tagged_rows():
    names = ("O", "B-PER", "I-PER", "B-LOC")
    # two rows: [CLS] Ann Lee went [SEP] / [CLS] Paris ##ian [SEP]; sub-words and specials carry no label
    labels = [np.array([IGNORED, 1, 2, 0, IGNORED]), np.array([IGNORED, 3, IGNORED, IGNORED])]
    return names, pack([[1, 7, 8, 9, 2], [1, 10, 11, 2]], [[0] * 5, [0] * 4], labels, per_token=True)


def test_token_rows_batch_with_ignored_padding_and_their_place_in_the_split():
    _, rows = _tagged_rows()
    assert len(rows) == 2 and rows.labels.shape == (9,)
    b = collate(rows, np.array([1, 0]))
    assert b["labels"].tolist() == [[IGNORED, 3, IGNORED, IGNORED, IGNORED], [IGNORED, 1, 2, 0, IGNORED]]
    assert b["token_index"].tolist() == [[5, 6, 7, 8, -1], [0, 1, 2, 3, 4]]
    again = rows.subset(np.array([1]))
    assert again.per_token and again.labels.tolist() == [IGNORED, 3, IGNORED, IGNORED]


def test_entity_scores_of_token_outputs_by_hand():
    names, rows = _tagged_rows()
    gold = np.eye(4, dtype=np.float32)[np.maximum(rows.labels, 0)]
    assert TOKENS.metrics(gold, rows, names)["entity_f1"] == 1.0
    # the person cut short (B-PER O): 1 of 2 entities right, 1 of 2 predicted right
    wrong = gold.copy()
    wrong[2] = np.eye(4)[0]
    got = TOKENS.metrics(wrong, rows, names)
    assert got == pytest.approx({"entity_f1": 0.5, "entity_precision": 0.5, "entity_recall": 0.5,
                                 "token_accuracy": 3 / 4})
    said, constant = TOKENS.constant_outputs(rows, rows, names)
    assert said == "O" and TOKENS.metrics(constant, rows, names)["entity_f1"] == 0.0


def test_token_loss_ignores_padding_and_unlabelled_tokens():
    _, rows = _tagged_rows()
    b = collate(rows, np.array([0, 1]))
    student = torch.zeros(2, 5, 4)
    student[..., 0] = 5.0  # confident O everywhere
    teacher = torch.randn(9, 4)
    hard = TOKENS.loss(student, None, b, 2.0, 0.0)
    # four labelled tokens (PER, PER, O, LOC): CE of the three entity ones is 5 + log(1 + 3e^-5) each, O's small
    per = torch.nn.functional.cross_entropy(student[0, 1:4], torch.tensor([1, 2, 0]), reduction="sum")
    per = per + torch.nn.functional.cross_entropy(student[1, 1:2], torch.tensor([3]), reduction="sum")
    assert hard.item() == pytest.approx(per.item() / 4, rel=1e-5)
    soft = TOKENS.loss(student, TOKENS.targets(teacher, b), b, 2.0, 1.0)
    assert torch.isfinite(soft) and soft.item() > 0


def test_per_token_outputs_land_in_the_split_token_layout():
    _, rows = _tagged_rows()

    def run(ids, mask, types):  # each token's output is its id and its row length, so places can be checked
        return torch.stack([ids.float(), mask.sum(1, keepdim=True).expand_as(ids).float()], -1)

    out = predict_logits(run, rows, batch_size=1)
    assert out.shape == (9, 2)
    assert out[:, 0].tolist() == rows.ids.tolist() and out[:, 1].tolist() == [5] * 5 + [4] * 4


@pytest.mark.parametrize("name", ["regression", "token_classification", "embedding", "classification"])
def test_a_model_of_each_task_is_known_by_its_head_and_rebuilt_from_its_architecture(name):
    from autocompress.engine.architecture import architecture, build
    from autocompress.engine.model import Classifier
    from autocompress.testing import tiny_family

    task = get_task(name)
    config = tiny_family("bert", 40)
    task.configure_(config, ("O", "B-X", "I-X") if name == "token_classification" else ("a", "b"))
    torch.manual_seed(0)
    model = Classifier(task.auto_class().from_config(config)).eval()
    assert task_of(model.hf) is task and model.task is task
    again = build(architecture(model))
    again.load_state_dict(model.state_dict())
    ids = torch.tensor([[1, 5, 6, 7, 2]])
    x = (ids, torch.ones_like(ids), torch.zeros_like(ids))
    width = {"regression": (1, 1), "token_classification": (1, 5, 3), "embedding": (1, 32),
             "classification": (1, 2)}[name]
    assert tuple(model(*x).shape) == width and again.task is task
    assert torch.allclose(model(*x), again(*x), atol=1e-6)
