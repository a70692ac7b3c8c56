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


# ---- a run that stops goes on from its checkpoint -------------------------------------------------


def _numbered_batches():
    """A different batch every step, the same sequence every time (as seeded training batches are)."""
    from conftest import random_batch

    step = 0
    while True:
        yield {**random_batch(seed=step), "labels": torch.tensor([0, 1, 0, 1, 0, 1]), "index": torch.arange(6)}
        step += 1


class _Stop(Exception):
    pass


def _stop_at(step: int):
    def hook(s, _n, _loss, _model):
        if s == step:
            raise _Stop

    return hook


def test_a_stopped_run_goes_on_from_its_checkpoint_to_the_same_weights(tmp_path):
    from conftest import make_tiny

    from autocompress.engine.checkpoint import Checkpoint

    settings = TrainSettings(steps=10, lr=1e-3)  # labels only; dropout on, so the RNG must come back too
    whole_model = make_tiny(seed=2, hidden_dropout_prob=0.2)
    torch.manual_seed(5)
    whole = train_(whole_model, _numbered_batches(), settings)

    model = make_tiny(seed=2, hidden_dropout_prob=0.2)
    torch.manual_seed(5)
    saved = Checkpoint(tmp_path / "run.partial", "run-a", every=3)
    with pytest.raises(_Stop):
        train_(model, _numbered_batches(), settings, hooks=[_stop_at(8)], checkpoint=saved)
    assert saved.saved_step() == 6  # saved after steps 3 and 6; step 7 and 8 are lost with the stop
    assert Checkpoint(tmp_path / "run.partial", "run-b").saved_step() == 0  # another run's key: not resumed

    torch.manual_seed(123)  # whatever the process did in between
    fresh = make_tiny(seed=9, hidden_dropout_prob=0.2)
    rest = train_(fresh, _numbered_batches(), settings, checkpoint=saved)
    assert len(rest) == 4 and rest == pytest.approx(whole[6:], rel=1e-6)
    expected, got = whole_model.state_dict(), fresh.state_dict()
    assert all(torch.allclose(expected[k], got[k], atol=1e-6) for k in expected)
    saved.clear()
    assert not (tmp_path / "run.partial").exists()
    with pytest.raises(ValueError, match="every must be at least 1"):
        Checkpoint(tmp_path, "k", every=0)
