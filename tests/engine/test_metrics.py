"""The metrics record: stored keys, round trips, older files, and the one definition of retention."""

import json

import pytest

from autocompress.engine.metrics import OPTIONAL, Metrics, retention, score_at_retention
from autocompress.testing import STORED_METRIC_KEYS, sample_metrics


def test_to_dict_gives_the_stored_keys():
    m = sample_metrics()
    d = m.to_dict()
    assert set(d) == STORED_METRIC_KEYS
    assert (d["latency_ms_b1"], d["latency_ms_b32"]) == (1.5, 12.25) == (m.latency_ms_b1, m.latency_ms_b32)
    assert "latency_ms" not in d


@pytest.mark.parametrize("changes", [
    {},
    {"final_loss": None},  # no training
    {"teacher_score": None, "retention": None},  # no teacher given
    {"final_loss": None, "teacher_score": None, "retention": None, "runtime_note": None},
    {"latency_ms": {1: 2.0, 8: 5.0, 32: 30.0}},  # other batch sizes
    {"latency_ms": {}},
    {"fast_kernel": False, "bits": 4, "embedding_bits": 32, "sparsity": 0.5},
], ids=["full", "untrained", "no-teacher", "bare", "batch-sizes", "no-latency", "slow-4bit"])
def test_round_trip_through_json(changes):
    m = sample_metrics(**changes)
    d = json.loads(json.dumps(m.to_dict(), sort_keys=True))  # as written to and read from metrics.json
    again = Metrics.from_dict(d)
    assert again == m
    assert again.to_dict() == m.to_dict()
    left_out = {k for k, v in changes.items() if v is None}
    latency = {f"latency_ms_b{bs}" for bs in m.latency_ms}
    assert set(d) == {k for k in STORED_METRIC_KEYS - left_out if not k.startswith("latency_ms_b")} | latency


def test_an_older_file_without_the_optional_keys_reads():
    old = {k: v for k, v in sample_metrics().to_dict().items() if k not in OPTIONAL and not k.startswith("test_")}
    m = Metrics.from_dict(old)
    assert (m.final_loss, m.teacher_score, m.retention, m.runtime_note, m.test_score) == (None,) * 5
    assert m.metric == "accuracy" and m.score == m.accuracy  # records from before task metrics were scored in accuracy
    assert m.to_dict() == {**old, "metric": "accuracy"}


def test_unknown_keys_are_skipped_and_missing_ones_named():
    d = {**sample_metrics().to_dict(), "x_smaller": 4.0, "latency_ms_b1_compiled": 0.5}
    assert Metrics.from_dict(d) == sample_metrics()
    del d["bytes"], d["threads"]
    with pytest.raises(KeyError, match="metrics lack bytes, threads"):
        Metrics.from_dict(d)


def test_with_teacher_sets_the_retention():
    m = sample_metrics(teacher_score=None, retention=None).with_teacher(0.8)
    assert m.teacher_score == 0.8 and m.retention == retention(m.accuracy, 0.8) == pytest.approx(0.875 / 0.8)


def test_the_score_is_the_task_metric_on_validation_rows_and_the_test_score_beside_it():
    m = sample_metrics(metric="mcc", teacher_score=None, retention=None)
    assert (m.score, m.test_score) == (0.75, 0.72)
    assert m.scores("test") == {"accuracy": 0.86, "f1": 0.855, "mcc": 0.72}
    assert m.with_teacher(0.8).retention == pytest.approx(0.75 / 0.8)  # mcc against the teacher's mcc


def test_retention_of_mcc_is_zero_for_a_constant_prediction_and_undefined_for_a_chance_teacher():
    assert retention(0.0, 0.6) == 0.0 and retention(-0.3, 0.6) == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="above 0"):
        retention(0.5, 0.0)
    assert sample_metrics(metric="mcc").with_teacher(0.0).retention is None


def test_retention_and_its_inverse():
    assert retention(0.855, 0.9) == pytest.approx(0.95)
    assert score_at_retention(0.95, 0.9) == pytest.approx(0.855)
    assert retention(score_at_retention(0.97, 0.83), 0.83) == pytest.approx(0.97)
