"""The search report of a hand-made study: counts, front, picks, hypervolume, markdown and files."""

from pathlib import Path

import optuna
import pytest

from autocompress.engine.errors import ArtifactError, ConfigError
from autocompress.search import remeasure
from autocompress.search.report import TEACHER as TEACHER_KEY
from autocompress.search.report import build_report, summarize, write_report
from autocompress.search.study import PROTOCOL
from autocompress.testing import sample_metrics

# latency_ms_b1 is absurd on purpose: the report must never divide by the stored teacher time
TEACHER = {"metric": "accuracy", "score": 0.9, "test_score": 0.89, "bytes": 100_000_000, "weight_bytes": 99_000_000,
           "latency_ms_b1": 1e6, "latency_ms_b32": 1e7, "majority_label": "1", "majority_score": 0.55,
           "majority_test_score": 0.51, "validation_rows": 200, "test_rows": 100}
RECIPE = {"layers": [0, 2], "bits": 8, "train_steps": 100, "temperature": 2.0, "alpha": 0.5}


def _reference(study, **changes):
    study.set_user_attr("protocol", PROTOCOL)
    study.set_user_attr("teacher", {**TEACHER, **changes})
    study.set_user_attr("teacher_folder", "/models/teacher")


def _complete(study, values, constraints, recipe=None, degenerate=False):
    t = study.ask()
    for k, v in constraints.items():
        t.set_constraint(k, v)
    if recipe:
        t.set_user_attr("recipe", recipe)
    t.set_user_attr("folder", f"/models/trial-{t.number}")
    t.set_user_attr("degenerate", degenerate)
    t.set_user_attr("metrics", sample_metrics(accuracy=values[0], test_accuracy=values[0] - 0.01,
                                              bytes=int(values[1]), weight_bytes=int(values[1]) - 1000,
                                              latency_ms={1: values[2], 32: 10 * values[2]}).to_dict())
    study.tell(t, values)


@pytest.fixture
def study():
    """Budget: at most 60 MB. Trial 2 is over it; trial 3 is dominated by trial 0; 4 failed; 5 pruned."""
    s = optuna.create_study(study_name="hand", directions=["maximize", "minimize", "minimize"])
    _reference(s)
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


@pytest.fixture
def timed(monkeypatch):
    """Side-by-side timing replaced by fixed numbers: teacher 10 ms, each trial its stored ms."""
    calls = []

    def fake(folders, *, seq_len, batch_sizes, threads, **_kw):
        calls.append(dict(folders))
        stored = {0: 5.0, 1: 2.5, 2: 10.0, 3: 8.0}
        return {k: {1: 10.0 if k == TEACHER_KEY else stored[k]} for k in folders}

    monkeypatch.setattr(remeasure, "side_by_side", fake)
    return calls


def test_counts_front_and_picks(study):
    rep = build_report(study, remeasure=False)
    assert rep.study == "hand"
    assert rep.counts == {"COMPLETE": 4, "FAIL": 1, "PRUNED": 1}
    assert [p.key for p in rep.points] == [0, 1, 2, 3]
    assert [p.key for p in rep.front] == [2, 0, 1]  # by score; trial 3 is dominated by trial 0
    assert [p.feasible for p in rep.front] == [False, True, True]
    assert rep.best.key == 0  # the best score within budget (trial 2 scores higher, but is too big)
    assert rep.knee.key == 1  # normalized over the feasible front, trial 1 is nearer the ideal point
    assert rep.budget == "size <= 60 MB"
    assert rep.recipes[0] == RECIPE and rep.recipes[1] == {}
    assert rep.latency_b1 is None and rep.x_faster(rep.front[0]) is None


def test_ratios_come_from_the_side_by_side_timing_not_the_stored_reference(study, timed):
    rep = build_report(study)
    assert timed == [{TEACHER_KEY: Path("/models/teacher"),
                      **{k: Path(f"/models/trial-{k}") for k in (2, 0, 1)}}]
    assert [rep.x_faster(p) for p in rep.front] == [1.0, 2.0, 4.0]  # 10 ms over 10, 5 and 2.5 ms
    # losses (1 - score, bytes / teacher, latency / teacher), reference (1, 2, 2), sliced on the score:
    # [0.05, 0.12): trial 2 alone, area 1 x 1; [0.12, 0.20): trial 0 covers 1.5 x 1.5;
    # [0.20, 1): trial 1 covers 1.9 x 1.75
    assert rep.hypervolume == pytest.approx(0.07 * 1.0 + 0.08 * 2.25 + 0.8 * 1.9 * 1.75)


def test_without_remeasuring_no_speed_ratio_and_a_size_only_hypervolume(study):
    rep = build_report(study, remeasure=False)
    # (1 - score, bytes / teacher), reference (1, 2): trial 2 1 x 0.07 ... as a staircase
    assert rep.hypervolume == pytest.approx(0.07 * 1.0 + 0.08 * 1.5 + 0.8 * 1.9)
    md = rep.markdown()
    assert "no speed ratio is given" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| 0 (best)"))
    assert "| 5.00 | — |" in row


def test_markdown_rows(study, timed):
    md = build_report(study).markdown()
    assert md.startswith("# Search report: study `hand`\n")
    assert "- chosen on **validation** rows (200); **test** rows (100) are only reported" in md
    assert "- trials: 4 complete, 1 fail, 1 pruned\n" in md
    assert "- budget: size <= 60 MB\n" in md
    assert "- teacher: validation accuracy 0.9000, test accuracy 0.8900, 100,000,000 bytes" in md
    assert "- majority class ('1' for every row): validation accuracy 0.5500, test accuracy 0.5100" in md
    assert "teacher 10.00 ms" in md
    assert ("- recommended (highest validation score within budget; latency confirmed side by side over 5 rounds): "
            "**trial 0**\n") in md
    assert "- knee (balanced trade-off): trial 1\n" in md
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| trial")]
    assert len(rows) == 3
    assert rows[0].startswith("| 2 | 0.9500 | 0.9400 | 105.6% | 100,000,000 | 99,999,000 | 1.0 | 10.00 | 1.00 | — | no |")
    assert rows[1].startswith("| 0 (best) | 0.8800 | 0.8700 | 97.8% | 50,000,000 | 49,999,000 | 2.0 | 5.00 | 2.00 | — | yes |")
    assert rows[1].endswith(f" {summarize(RECIPE)} |") and summarize(RECIPE)
    assert rows[2].startswith("| 1 (knee) | 0.8000 | 0.7900 | 88.9% | 10,000,000 | 9,999,000 | 10.0 | 2.50 | 4.00 | — | yes |")


def test_nothing_within_budget(timed):
    s = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    _reference(s)
    _complete(s, [0.5, 200e6, 20.0], {"score": 0.3})
    rep = build_report(s, remeasure=False)
    assert rep.best is None and rep.knee is None
    assert rep.hypervolume == 0.0  # outside the reference box on bytes
    md = rep.markdown()
    assert "none: no trial met the budget" in md and "- knee (balanced trade-off): none" in md
    assert "- budget: none" in md


def test_degenerate_trials_are_counted_and_left_off_the_front(timed):
    s = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    _reference(s)
    _complete(s, [0.85, 50e6, 5.0], {})
    _complete(s, [0.55, 1e6, 1.0], {"above_majority": 1e-9}, degenerate=True)  # the majority class, tiny
    rep = build_report(s)
    assert [p.key for p in rep.front] == [0] and [p.key for p in rep.degenerate] == [1]
    assert rep.best.key == 0 and rep.knee.key == 0
    assert "1 degenerate (no better than the majority class" in rep.markdown()


@pytest.mark.parametrize("attrs", [{}, {"teacher": TEACHER}])  # no search ran / a study older than validation rows
def test_a_study_without_a_validation_reference_is_refused(attrs):
    s = optuna.create_study(study_name="bare", directions=["maximize", "minimize", "minimize"])
    for k, v in attrs.items():
        s.set_user_attr(k, v)
    with pytest.raises(ConfigError, match="study 'bare' has no teacher reference chosen on validation rows"):
        build_report(s)


def test_write_report_writes_markdown_and_plot(study, timed, tmp_path):
    rep, md, png = write_report(study, tmp_path / "r" / "hand")
    assert md == tmp_path / "r" / "hand" / "report.md" and png == tmp_path / "r" / "hand" / "pareto.png"
    assert md.read_text() == rep.markdown() + "\n![Pareto plot](pareto.png)\n"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_a_front_whose_folders_are_elsewhere_names_the_way_out(study):
    with pytest.raises(ArtifactError, match="no such model folder.*or pass --no-remeasure"):
        build_report(study)  # the hand-made study's folders do not exist on this machine


def _baseline(name, label, score, test, nbytes):
    return {"name": name, "label": label, "runtime": "onnxruntime", "bits": 8, "folder": f"/models/{name}",
            "metrics": sample_metrics(accuracy=score, test_accuracy=test, bytes=nbytes).to_dict()}


def _time_beside_a_3ms_baseline(monkeypatch):
    """Side-by-side batch-1 times: the teacher 10 ms, baseline "ort" 3 ms, the trials as stored."""
    def fake(folders, *, seq_len, batch_sizes, threads, rounds, **_kw):
        stored = {0: 5.0, 1: 2.5, 2: 10.0, 3: 8.0}
        return {k: {1: 10.0 if k == TEACHER_KEY else 3.0 if k == "baseline:ort" else stored[k]} for k in folders}

    monkeypatch.setattr(remeasure, "side_by_side", fake)


def test_the_report_says_when_no_trial_dominates_the_best_baseline(study, monkeypatch):
    """A baseline better than every trial on validation: the report says so in one line and names the closest."""
    study.set_user_attr("baselines", [_baseline("ort", "ONNX Runtime dynamic int8", 0.96, 0.95, 20_000_000)])
    _time_beside_a_3ms_baseline(monkeypatch)
    rep = build_report(study, memory=False)
    assert rep.best.key == 0 and rep.verdict.beaten == () and rep.verdict.closest == 1
    md = rep.markdown()
    assert "| ONNX Runtime dynamic int8 | torch-int8-dynamic | 0.9600 | 0.9500 | 20,000,000 | 5.0 | 3.00 | 3.33 |" in md
    assert ("- trial 0 dominates 0 of 1 baselines (not ONNX Runtime dynamic int8) on validation accuracy, bytes and "
            "side-by-side batch-1 latency") in md
    # trial 1: 16.7 % short on accuracy, half the bytes, faster: the nearest to dominating it
    assert ("- **no trial dominates the best baseline** (ONNX Runtime dynamic int8) on validation; closest: trial 1 "
            "(accuracy 0.8000 vs 0.9600, 10.00 vs 20.00 MB, batch-1 2.50 vs 3.00 ms)") in md


def test_the_report_names_a_front_trial_that_dominates_the_baselines_when_the_pick_does_not(study, monkeypatch):
    """The pick (trial 0) is more accurate but larger and slower than the baseline; trial 1, also on the front
    and within budget, dominates it: the report says so and how to export it."""
    study.set_user_attr("baselines", [_baseline("ort", "ONNX Runtime dynamic int8", 0.79, 0.78, 20_000_000)])
    _time_beside_a_3ms_baseline(monkeypatch)
    rep = build_report(study, memory=False)
    assert rep.best.key == 0 and rep.verdict.beaten == () and rep.verdict.instead == 1
    assert ("- **trial 1 dominates every baseline** on validation accuracy, bytes and side-by-side batch-1 latency, "
            "and every baseline on the test rows (within budget; the pick scores higher on validation): "
            "`export --pick 1` exports it") in rep.markdown()
