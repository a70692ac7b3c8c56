import pytest

from autocompress.engine.errors import ConfigError
from autocompress.search.budget import Budget
from autocompress.testing import sample_metrics


def test_constraints_are_negative_inside_and_positive_outside():
    b = Budget(max_bytes=1_000_000, max_latency_ms=5.0, min_retention=0.95)
    inside = b.constraints(sample_metrics(bytes=500_000, latency_ms={1: 4.0}, accuracy=0.88), teacher_score=0.9)
    outside = b.constraints(sample_metrics(bytes=2_000_000, latency_ms={1: 6.0}, accuracy=0.80), teacher_score=0.9)
    assert all(v <= 0 for v in inside.values()) and set(inside) == {"bytes", "latency", "score"}
    assert all(v > 0 for v in outside.values())
    assert outside["bytes"] == pytest.approx(1.0) and outside["score"] == pytest.approx(0.855 - 0.80)


def test_the_floor_is_on_the_task_metric():
    m = sample_metrics(metric="mcc", accuracy=0.95, mcc=0.40)  # accurate, but barely correlated
    assert Budget(min_score=0.5).constraints(m, teacher_score=0.8)["score"] == pytest.approx(0.5 - 0.40)
    assert Budget(min_score=0.5).describe("mcc") == "mcc >= 0.5"
    assert Budget(min_score=-0.5).score_floor(0.8) == -0.5  # mcc can be negative


def test_score_floor_takes_the_stricter_limit():
    assert Budget(min_score=0.8, min_retention=0.95).score_floor(0.9) == pytest.approx(0.855)
    assert Budget(min_score=0.9, min_retention=0.5).score_floor(0.9) == pytest.approx(0.9)
    assert Budget().score_floor(0.9) is None and Budget().constraints(sample_metrics(), 0.9) == {}


@pytest.mark.parametrize("kw, needle", [({"min_retention": 1.2}, "impossible"), ({"min_score": -1.1}, "impossible"),
                                        ({"max_bytes": 0}, "above 0"), ({"max_latency_ms": -1}, "above 0")])
def test_impossible_budgets(kw, needle):
    with pytest.raises(ConfigError, match=needle):
        Budget(**kw)
