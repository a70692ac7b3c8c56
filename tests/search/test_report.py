"""The search report of a hand-made study: counts, front, picks, hypervolume, markdown and files."""

import optuna
import pytest

from autocompress.errors import ConfigError
from autocompress.search.report import build_report, summarize, write_report

TEACHER = {"accuracy": 0.9, "bytes": 100e6, "latency_ms_b1": 10.0, "latency_ms_b32": 100.0}
RECIPE = {"layers": [0, 2], "bits": 8, "train_steps": 100, "temperature": 2.0, "alpha": 0.5}


def _complete(study, values, constraints, recipe=None):
    t = study.ask()
    for k, v in constraints.items():
        t.set_constraint(k, v)
    if recipe:
        t.set_user_attr("recipe", recipe)
    study.tell(t, values)


@pytest.fixture
def study():
    """Budget: at most 60 MB. Trial 2 is over it; trial 3 is dominated by trial 0; 4 failed; 5 pruned."""
    s = optuna.create_study(study_name="hand", directions=["maximize", "minimize", "minimize"])
    s.set_user_attr("teacher", TEACHER)
    s.set_user_attr("budget", {"max_bytes": 60_000_000})
    _complete(s, [0.88, 50e6, 5.0], {"bytes": -1 / 6}, RECIPE)
    _complete(s, [0.80, 10e6, 2.5], {"bytes": -5 / 6})
    _complete(s, [0.95, 100e6, 10.0], {"bytes": 2 / 3})
    _complete(s, [0.70, 80e6, 8.0], {"bytes": 1 / 3})
    failed = s.ask()
    failed.set_user_attr("error", "RuntimeError: boom")
    s.tell(failed, state=optuna.trial.TrialState.FAIL)
    s.tell(s.ask(), state=optuna.trial.TrialState.PRUNED)
    return s


def test_counts_front_and_picks(study):
    rep = build_report(study)
    assert rep.study == "hand"
    assert rep.counts == {"COMPLETE": 4, "FAIL": 1, "PRUNED": 1}
    assert [p.key for p in rep.points] == [0, 1, 2, 3]
    assert [p.key for p in rep.front] == [2, 0, 1]  # by accuracy; trial 3 is dominated by trial 0
    assert [p.feasible for p in rep.front] == [False, True, True]
    assert rep.best.key == 0  # the most accurate within budget (trial 2 is more accurate, but too big)
    assert rep.knee.key == 1  # normalized over the feasible front, trial 1 is nearer the ideal point
    assert rep.budget == "size <= 60 MB"
    assert rep.recipes[0] == RECIPE and rep.recipes[1] == {}


def test_hypervolume_by_hand(study):
    # losses (1 - accuracy, bytes / teacher, latency / teacher), reference (1, 2, 2), sliced on accuracy:
    # [0.05, 0.12): trial 2 alone, area 1 x 1; [0.12, 0.20): trial 0 covers 1.5 x 1.5;
    # [0.20, 1): trial 1 covers 1.9 x 1.75
    expected = 0.07 * 1.0 + 0.08 * 2.25 + 0.8 * 1.9 * 1.75
    assert build_report(study).hypervolume == pytest.approx(expected)


def test_markdown_rows(study):
    md = build_report(study).markdown()
    assert md.startswith("# Search report: study `hand`\n")
    assert "- trials: 4 complete, 1 fail, 1 pruned\n" in md
    assert "- budget: size <= 60 MB\n" in md
    assert "- recommended (highest accuracy within budget): **trial 0**\n" in md
    assert "- knee (balanced trade-off): trial 1\n" in md
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| trial")]
    assert len(rows) == 3
    assert rows[0].startswith("| 2 | 0.9500 | 105.6% | 100,000,000 | 1.0 | 10.00 | 1.00 | no |")
    assert rows[1].startswith("| 0 (best) | 0.8800 | 97.8% | 50,000,000 | 2.0 | 5.00 | 2.00 | yes | ")
    assert rows[1].endswith(f" {summarize(RECIPE)} |") and summarize(RECIPE)
    assert rows[2].startswith("| 1 (knee) | 0.8000 | 88.9% | 10,000,000 | 10.0 | 2.50 | 4.00 | yes |")


def test_nothing_within_budget():
    s = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    s.set_user_attr("teacher", TEACHER)
    _complete(s, [0.5, 200e6, 20.0], {"accuracy": 0.3})
    rep = build_report(s)
    assert rep.best is None and rep.knee is None
    assert rep.hypervolume == 0.0  # outside the reference box on bytes and latency
    md = rep.markdown()
    assert "none: no trial met the budget" in md and "- knee (balanced trade-off): none" in md
    assert "- budget: none" in md


def test_a_study_without_teacher_reference_is_refused():
    s = optuna.create_study(study_name="bare", directions=["maximize", "minimize", "minimize"])
    with pytest.raises(ConfigError, match="study 'bare' has no teacher reference yet"):
        build_report(s)


def test_write_report_writes_markdown_and_plot(study, tmp_path):
    rep, md, png = write_report(study, tmp_path / "r" / "hand")
    assert md == tmp_path / "r" / "hand" / "report.md" and png == tmp_path / "r" / "hand" / "pareto.png"
    assert md.read_text() == rep.markdown() + "\n![Pareto plot](pareto.png)\n"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
