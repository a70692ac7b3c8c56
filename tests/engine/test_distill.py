import math

import pytest
import torch

from autocompress.engine.distill import TrainingDiverged, TrainSettings, kd_loss, train_


def test_kd_loss_matches_the_formula_by_hand():
    s = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]])
    t = torch.tensor([[1.0, 0.0, -1.0], [3.0, -2.0, 0.0]])
    labels = torch.tensor([0, 2])
    T, alpha = 2.5, 0.7
    total = 0.0
    for i in range(2):
        ps = [math.exp(v / T) for v in s[i].tolist()]
        pt = [math.exp(v / T) for v in t[i].tolist()]
        ps = [p / sum(ps) for p in ps]
        pt = [p / sum(pt) for p in pt]
        kl = sum(a * math.log(a / b) for a, b in zip(pt, ps))
        raw = [math.exp(v) for v in s[i].tolist()]
        ce = -math.log(raw[labels[i]] / sum(raw))
        total += alpha * T * T * kl + (1 - alpha) * ce
    expected = total / 2
    assert kd_loss(s, t, labels, T, alpha).item() == pytest.approx(expected, rel=1e-5)


def test_kd_loss_without_teacher_is_cross_entropy():
    s = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 1])
    assert kd_loss(s, None, y, 2.0, 0.7).item() == pytest.approx(torch.nn.functional.cross_entropy(s, y).item())


def _batches(batch):
    while True:
        yield {**batch, "labels": torch.tensor([0, 1, 0, 1, 0, 1]), "index": torch.arange(6)}


def test_training_lowers_the_distillation_loss(tiny, batch):
    teacher_logits = torch.tensor([[3.0, -3.0], [-3.0, 3.0]] * 3)
    losses = train_(tiny, _batches(batch), TrainSettings(steps=40, lr=5e-3, alpha=0.5, temperature=2.0),
                    teacher_logits=teacher_logits)
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def test_hooks_see_every_step(tiny, batch):
    seen = []
    train_(tiny, _batches(batch), TrainSettings(steps=4, lr=1e-4), hooks=[lambda s, n, l, m: seen.append((s, n, m is tiny))])
    assert seen == [(1, 4, True), (2, 4, True), (3, 4, True), (4, 4, True)]


def test_nan_loss_raises(tiny, batch):
    with torch.no_grad():
        tiny.hf.classifier.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged):
        train_(tiny, _batches(batch), TrainSettings(steps=2, lr=1e-4))
